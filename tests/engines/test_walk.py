"""Random-walk engine vs exact laws.

Statistical tests use fixed seeds and a stated tolerance: chi-square goodness of fit with
p-value > 1e-4 (bins with expected count < 5 are pooled into their neighbour), or z-scores
below 5. The exact laws themselves are checked against brute force (path counting, dynamic
programming, linear systems), so a wrong formula cannot hide behind a wrong simulation.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from scipy import integrate, stats

from engines import walk_theory as th
from engines.jobs import ParamBox, as_job
from engines.walk import (
    Barrier,
    WalkConfig,
    WalkResult,
    WalkSimulation,
    bench_walk,
    fast_displacement,
    naive_displacement,
    simulate,
    walk_job,
)

P_MIN = 1e-4  # chi-square p-value threshold
Z_MAX = 5.0  # z-score threshold


def chi2_pvalue(observed: np.ndarray, probs: np.ndarray, min_expected: float = 5.0) -> float:
    """Goodness of fit of counts to probabilities, pooling sparse bins left to right."""
    observed = np.asarray(observed, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    assert observed.shape == probs.shape
    assert abs(probs.sum() - 1.0) < 1e-9, probs.sum()
    expected = probs * observed.sum()
    obs_pooled, exp_pooled = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(observed, expected, strict=True):
        acc_o += o
        acc_e += e
        if acc_e >= min_expected:
            obs_pooled.append(acc_o)
            exp_pooled.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0 or acc_o > 0:
        obs_pooled[-1] += acc_o
        exp_pooled[-1] += acc_e
    assert len(obs_pooled) >= 3, "too few bins for a meaningful test"
    return float(stats.chisquare(obs_pooled, exp_pooled).pvalue)


def with_tail(counts: np.ndarray, probs: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Append the "not yet happened" bin so counts and probabilities both sum to totals."""
    return (
        np.append(counts, total - counts.sum()),
        np.append(probs, 1.0 - probs.sum()),
    )


def final_counts(result: WalkResult, n: int) -> np.ndarray:
    """Final-position counts on positions -n..n (index k + n)."""
    out = np.zeros(2 * n + 1, dtype=np.int64)
    lo = round(float(result.hist_edges[0]) + 0.5)
    out[lo + n : lo + n + result.hist_counts.size] = result.hist_counts
    return out


# --------------------------------------------------------------------------------------
# Layering
# --------------------------------------------------------------------------------------


def test_engine_import_pulls_in_no_qt() -> None:
    code = (
        "import sys, engines.walk, engines.walk_theory;"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'superqt', 'widgets', 'playground')"
        " if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------
# Exact laws against brute force
# --------------------------------------------------------------------------------------


def test_binomial_pmf_matches_scipy_and_stays_finite_at_1e4() -> None:
    k = np.arange(-40, 41)
    ours = th.binomial_pmf(40, k, p=0.3)
    ref = np.where((k + 40) % 2 == 0, stats.binom.pmf((k + 40) // 2, 40, 0.3), 0.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-300)
    big = th.binomial_pmf(10_000, np.arange(-10_000, 10_001), p=0.5)
    assert np.all(np.isfinite(big))
    assert abs(big.sum() - 1.0) < 1e-10
    # local CLT: P(S_n = k) ~ 2 * Gaussian density on the right parity (mean 0.2 n = 400)
    n = 2_000
    k = np.arange(360, 441, 2)
    np.testing.assert_allclose(
        th.binomial_pmf(n, k, 0.6), 2 * th.gaussian_limit_density(k, n, 0.6), rtol=0.02
    )


def test_one_dimensional_return_identities() -> None:
    m = np.arange(0, 61)
    exact_u = np.array([math.comb(j, j // 2) / 2**j if j % 2 == 0 else 0.0 for j in m])
    np.testing.assert_allclose(th.return_prob_1d(m), exact_u, rtol=1e-12)
    f = th.first_return_pmf_1d(m)
    np.testing.assert_allclose(f, th.renewal_first_return(exact_u), rtol=1e-10, atol=1e-15)
    # P(no return by 2n) = u_2n = 1 - P(first return <= 2n)
    np.testing.assert_allclose(1.0 - np.cumsum(f), th.no_return_prob_1d(m), rtol=1e-10)


def _dp_return_probs(dim: int, m_max: int) -> np.ndarray:
    """P(S_m = 0) by pushing the probability mass around a box, one step at a time."""
    size = 2 * m_max + 3
    mass = np.zeros((size,) * dim)
    centre = (m_max + 1,) * dim
    mass[centre] = 1.0
    out = [1.0]
    for _ in range(m_max):
        new = np.zeros_like(mass)
        for axis in range(dim):
            new += np.roll(mass, 1, axis=axis) + np.roll(mass, -1, axis=axis)
        mass = new / (2 * dim)
        out.append(mass[centre])
    return np.array(out)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_return_probabilities_match_path_counting(dim: int) -> None:
    np.testing.assert_allclose(th.return_probs(dim, 14), _dp_return_probs(dim, 14), rtol=1e-12)


def test_polya_constant_and_renewal_convergence() -> None:
    assert abs(th.polya_return_probability(3) - 0.3405373296) < 1e-9
    assert th.polya_return_probability(1) == th.polya_return_probability(2) == 1.0
    by = th.return_by_prob(3, 4000)
    assert np.all(np.diff(by) >= 0)
    assert by[-1] < th.polya_return_probability(3) < by[-1] + 0.01
    # 2-D is recurrent but slowly: still far from 1 at 2000 steps
    assert 0.6 < th.return_by_prob(2, 2000)[-1] < 0.8


def test_arcsine_laws() -> None:
    n = 2000
    last = th.last_zero_pmf(n)
    pos = th.time_positive_pmf(n)
    assert abs(last.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(last, pos, rtol=1e-12)  # Chung–Feller: same law
    assert abs(th.last_zero_pmf(11).sum() - 1.0) < 1e-12  # odd horizon
    assert abs(th.positive_count_pmf_continuous(300).sum() - 1.0) < 1e-12
    # discrete laws converge to the arcsine distribution
    cdf = np.cumsum(last)
    x = np.arange(n + 1) / n
    assert np.max(np.abs(cdf - th.arcsine_cdf(x))) < 0.02
    total, _ = integrate.quad(th.arcsine_density, 0, 1, limit=200)
    assert abs(total - 1.0) < 1e-6
    with pytest.raises(ValueError):
        th.time_positive_pmf(7)


@pytest.mark.parametrize("p", [0.5, 0.6])
def test_first_passage_formula_against_dynamic_programming(p: float) -> None:
    a, n_max = 3, 60
    mass = np.zeros(2 * n_max + a + 2)  # positions -n_max-1 .. a
    offset = n_max + 1
    mass[offset] = 1.0
    hit = [0.0]
    for _ in range(n_max):
        new = np.zeros_like(mass)
        new[1:] += p * mass[:-1]
        new[:-1] += (1 - p) * mass[1:]
        hit.append(new[offset + a])
        new[offset + a] = 0.0  # absorbed
        mass = new
    np.testing.assert_allclose(th.first_passage_pmf(np.arange(n_max + 1), a, p), hit, atol=1e-14)


@pytest.mark.parametrize("p", [0.5, 0.45, 0.6])
def test_gamblers_ruin_formula_against_linear_system(p: float) -> None:
    big_n = 10
    q = 1 - p
    a = np.eye(big_n + 1)
    rhs_h = np.zeros(big_n + 1)
    rhs_d = np.zeros(big_n + 1)
    for i in range(1, big_n):
        a[i, i + 1] -= p
        a[i, i - 1] -= q
        rhs_d[i] = 1.0
    rhs_h[big_n] = 1.0
    i = np.arange(big_n + 1)
    np.testing.assert_allclose(th.gamblers_ruin(i, big_n, p), np.linalg.solve(a, rhs_h), atol=1e-12)
    np.testing.assert_allclose(th.gamblers_ruin_duration(i, big_n, p), np.linalg.solve(a, rhs_d), atol=1e-9)
    assert np.isfinite(th.gamblers_ruin(500, 5000, 0.4)) and th.gamblers_ruin(500, 5000, 0.4) == 0.0


def test_heat_kernel_and_brownian_scaling() -> None:
    g = np.arange(-60, 61)
    xy = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
    assert abs(th.heat_kernel(xy, 100, dim=2).sum() - 1.0) < 1e-6
    # per-axis variance n/d: the 2-D walk at the origin ~ 2 * kernel (parity lattice)
    u = th.return_probs(2, 400)[400]
    assert abs(u / (2 * th.heat_kernel(np.zeros(2), 400, dim=2)) - 1) < 0.01
    path = np.arange(101)
    np.testing.assert_allclose(th.brownian_scaling(path, 100, [0.0, 0.25, 1.0]), [0.0, 2.5, 10.0])


# --------------------------------------------------------------------------------------
# Simulation against the laws
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def walk_1d() -> WalkResult:
    """One unbiased 1-D run shared by the per-step statistic tests."""
    return simulate(1, 40_000, 200, seed=11, level=5)


@pytest.mark.parametrize(("p", "per_step"), [(0.5, None), (0.6, None), (0.5, 10_000)])
def test_final_position_matches_binomial(p: float, per_step: int | None) -> None:
    n = 150
    r = simulate(1, 40_000, n, p=p, seed=3, per_step_walkers=per_step)
    assert r.hist_counts.sum() == 40_000 and r.positions.shape == (40_000, 1)
    probs = th.binomial_pmf(n, np.arange(-n, n + 1), p)
    support = probs > 0
    counts = final_counts(r, n)
    assert counts[~support].sum() == 0  # parity: S_n has the parity of n
    assert chi2_pvalue(counts[support], probs[support]) > P_MIN


def test_fast_path_matches_binomial_and_naive_reference() -> None:
    n, walkers = 333, 60_000  # not a multiple of 64: exercises the masked last word
    fast = fast_displacement(walkers, n, seed=5)
    naive = naive_displacement(walkers, n, seed=6)
    probs = th.binomial_pmf(n, np.arange(-n, n + 1))
    support = probs > 0
    for sample in (fast, naive):
        counts = np.bincount(sample + n, minlength=2 * n + 1)
        assert counts[~support].sum() == 0
        assert chi2_pvalue(counts[support], probs[support]) > P_MIN
    # two-sample test on the central bins (tails pooled)
    edges = np.concatenate([[-np.inf], np.arange(-40, 41, 4), [np.inf]])
    table = np.stack([np.histogram(fast, edges)[0], np.histogram(naive, edges)[0]])
    assert stats.chi2_contingency(table).pvalue > P_MIN
    assert stats.ks_2samp(fast, naive).pvalue > P_MIN


def test_first_return_and_return_by_curve(walk_1d: WalkResult) -> None:
    r, n = walk_1d, walk_1d.n
    f = th.first_return_pmf_1d(np.arange(n + 1))
    obs, probs = with_tail(r.first_return_counts[2::2], f[2::2], r.per_step_walkers)
    assert r.first_return_counts[1::2].sum() == 0
    assert chi2_pvalue(obs, probs) > P_MIN
    exact = np.cumsum(f)
    k = np.array([2, 10, 50, 200])
    sd = np.sqrt(exact[k] * (1 - exact[k]) / r.per_step_walkers)
    assert np.all(np.abs(r.return_by[k] - exact[k]) / sd < Z_MAX)


def test_last_visit_and_time_positive_follow_arcsine(walk_1d: WalkResult) -> None:
    r, n = walk_1d, walk_1d.n
    law = th.last_zero_pmf(n)
    assert r.last_zero_counts[1::2].sum() == 0 and r.positive_counts[1::2].sum() == 0
    assert chi2_pvalue(r.last_zero_counts[::2], law[::2]) > P_MIN
    assert chi2_pvalue(r.positive_counts[::2], th.time_positive_pmf(n)[::2]) > P_MIN
    edges, counts = r.positive_fraction_hist(bins=10)
    assert counts.sum() == r.per_step_walkers
    assert chi2_pvalue(counts, np.diff(th.arcsine_cdf(edges))) > 1e-30  # limit law, n = 200
    assert counts[0] > counts[5] and counts[-1] > counts[5]  # U shape


def test_first_passage_time(walk_1d: WalkResult) -> None:
    r, n, a = walk_1d, walk_1d.n, walk_1d.config.level
    law = th.first_passage_pmf(np.arange(n + 1), a)
    assert r.first_passage_counts[:a].sum() == 0
    obs, probs = with_tail(r.first_passage_counts[a::2], law[a::2], r.per_step_walkers)
    assert chi2_pvalue(obs, probs) > P_MIN


def test_mean_and_variance_curves_biased() -> None:
    p, n, w = 0.6, 300, 20_000
    r = simulate(1, w, n, p=p, seed=8)
    k = np.array([1, 10, 100, 300])
    mean, var = k * (2 * p - 1), 4 * k * p * (1 - p)
    assert np.all(np.abs(r.mean[k, 0] - mean) / np.sqrt(var / w) < Z_MAX)
    assert np.all(np.abs(r.var[k, 0] - var) / (var * math.sqrt(2 / w)) < Z_MAX)
    np.testing.assert_allclose(r.msd, r.var[:, 0] + r.mean[:, 0] ** 2)
    assert r.mean[0, 0] == 0 and r.var[0, 0] == 0


@pytest.mark.parametrize("dim", [2, 3])
def test_first_return_in_2d_and_3d_matches_renewal(dim: int) -> None:
    n, w = 120, 30_000
    r = simulate(dim, w, n, seed=20 + dim)
    f = th.first_return_pmf(dim, n)
    obs, probs = with_tail(r.first_return_counts[2::2], f[2::2], w)
    assert chi2_pvalue(obs, probs) > P_MIN
    # isotropy and E|S_n|^2 = n
    assert abs(r.msd[n] - n) / (n * math.sqrt(2 / w)) < Z_MAX
    np.testing.assert_allclose(r.var[n], n / dim, rtol=0.05)


def test_polya_3d_return_estimate_climbs_towards_constant() -> None:
    w, n = 40_000, 400
    r = simulate(3, w, n, seed=31, occupancy_radius=0)
    exact = th.return_by_prob(3, n)
    polya = th.polya_return_probability(3)
    horizons = [4, 25, 100, 400]
    est = r.return_by[horizons]
    sd = np.sqrt(exact[horizons] * (1 - exact[horizons]) / w)
    assert np.all(np.abs(est - exact[horizons]) / sd < Z_MAX)
    assert np.all(np.diff(est) > 0)  # grows with the horizon ...
    assert est[-1] < polya  # ... from below ...
    assert polya - est[-1] < 0.5 * (polya - est[1])  # ... and closes most of the gap


@pytest.mark.parametrize("p", [0.5, 0.45])
def test_gamblers_ruin_simulation(p: float) -> None:
    w, big_n, i = 20_000, 10, 3
    r = simulate(1, w, 1500, p=p, barrier=Barrier("absorbing", 0, big_n), start=i, seed=41)
    assert r.absorbed_lower + r.absorbed_upper == w  # P(alive after 1500 steps) ~ 1e-30
    win = th.gamblers_ruin(i, big_n, p)
    assert abs(r.absorbed_upper / w - win) / math.sqrt(win * (1 - win) / w) < Z_MAX
    assert set(np.unique(r.positions)) <= {0, big_n}
    t = np.arange(r.n + 1)
    times = np.repeat(t, r.absorption_time_counts)
    assert abs(times.mean() - th.gamblers_ruin_duration(i, big_n, p)) / (times.std() / math.sqrt(w)) < Z_MAX


def test_reflecting_barrier_gives_folded_walk() -> None:
    n, w = 101, 40_000
    r = simulate(1, w, n, barrier={"kind": "reflecting", "lower": 0}, seed=51)
    assert r.positions.min() >= 0
    law = th.binomial_pmf(n, np.arange(0, n + 1)) * 2  # P(|S_n| = k), k > 0 (n odd: no 0)
    counts = np.bincount(r.positions[:, 0], minlength=n + 1)
    assert counts.sum() == r.hist_counts.sum() == w
    support = law > 0
    assert counts[~support].sum() == 0  # mirror reflection keeps the parity (a sticky wall would not)
    assert chi2_pvalue(counts[support], law[support]) > P_MIN
    both = simulate(1, 2_000, 300, barrier=Barrier("reflecting", -3, 4), seed=52)
    assert both.positions.min() >= -3 and both.positions.max() <= 4
    assert both.display_paths.min() >= -3 and both.display_paths.max() <= 4


def test_gaussian_walk_heat_kernel_and_sparre_andersen() -> None:
    n, w = 100, 30_000
    r = simulate(1, w, n, step_kind="gaussian", seed=61)
    assert stats.kstest(r.positions[:, 0] / math.sqrt(n), "norm").pvalue > P_MIN
    assert chi2_pvalue(r.positive_counts, th.positive_count_pmf_continuous(n)) > P_MIN
    assert r.first_return_counts is None and r.return_by is None
    r2 = simulate(2, 5_000, 50, step_kind="gaussian", seed=62)
    assert stats.kstest(r2.positions[:, 1] / math.sqrt(50 / 2), "norm").pvalue > P_MIN


def test_weighted_2d_walk_drifts() -> None:
    probs = (0.4, 0.1, 0.25, 0.25)  # +x, -x, +y, -y
    n, w = 200, 20_000
    r = simulate(2, w, n, seed=71, direction_probs=probs)
    drift = np.array([probs[0] - probs[1], probs[2] - probs[3]])
    step_var = np.array([probs[0] + probs[1], probs[2] + probs[3]]) - drift**2
    z = (r.mean[n] - n * drift) / np.sqrt(n * step_var / w)
    assert np.all(np.abs(z) < Z_MAX)
    np.testing.assert_allclose(r.var[n], n * step_var, rtol=0.05)


def test_occupancy_counts_every_visit() -> None:
    n, w = 60, 20_000
    r = simulate(2, w, n, seed=81, occupancy_radius=n)
    assert r.occupancy.shape == (2 * n + 1, 2 * n + 1)
    assert r.occupancy.sum() == w * (n + 1)  # the grid covers every reachable site
    # expected visits per site = sum_k P(S_k = x), by pushing the probability mass around
    mass = np.zeros((2 * n + 1, 2 * n + 1))
    mass[n, n] = 1.0
    visits = mass.copy()
    for _ in range(n):
        mass = sum(np.roll(mass, s, axis=a) for a in (0, 1) for s in (1, -1)) / 4
        visits += mass
    centre = np.s_[n - 3 : n + 4, n - 3 : n + 4]
    np.testing.assert_allclose(r.occupancy[centre], w * visits[centre], rtol=0.05)
    assert abs(r.occupancy[n, n] / (w * th.return_probs(2, n).sum()) - 1) < 0.03
    small = simulate(2, 2_000, 200, seed=82, occupancy_radius=3)
    assert small.occupancy.shape == (7, 7) and small.occupancy.sum() < 2_000 * 201


def test_display_paths_are_bounded_and_consistent() -> None:
    r = simulate(2, 500, 1000, seed=91, display_walkers=30, display_points=64)
    assert r.display_paths.shape[0] == 30 and r.display_paths.shape[2] == 2
    assert r.display_t.size <= 65 and r.display_t[0] == 0 and r.display_t[-1] == 1000
    assert np.all(np.diff(r.display_t) > 0)
    np.testing.assert_array_equal(r.display_paths[:, -1], r.positions[:30])
    fine = simulate(1, 100, 50, seed=92, display_walkers=10, start=7)
    steps = np.abs(np.diff(fine.display_paths[:, :, 0], axis=1))
    assert fine.display_t.size == 51 and np.all(steps == 1)  # every step kept, all ±1
    assert np.all(fine.display_paths[:, 0, 0] == 7)  # absolute positions, from the start
    np.testing.assert_array_equal(fine.display_paths[:, -1], fine.positions[:10])


def test_streaming_memory_does_not_grow_with_steps() -> None:
    def peak(steps: int) -> int:
        tracemalloc.start()
        try:
            simulate(1, 8_192, steps, seed=1, display_walkers=50)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(2_000), peak(8_000)
    assert long < 1.5 * short, (short, long)
    assert long < 8_192 * 8_000 / 4  # far below even an int8 walkers x steps array


def test_deterministic_for_a_seed_and_config_validation() -> None:
    a = simulate(1, 1_000, 100, seed=7, per_step_walkers=300)
    b = simulate(1, 1_000, 100, seed=7, per_step_walkers=300)
    np.testing.assert_array_equal(a.positions, b.positions)
    with pytest.raises(ValueError):
        WalkConfig(dim=4)
    with pytest.raises(ValueError):
        WalkConfig(dim=2, p=0.7)
    with pytest.raises(ValueError):
        WalkConfig(dim=2, barrier=Barrier("absorbing", 0, 5))
    with pytest.raises(ValueError):
        WalkConfig(barrier=Barrier("absorbing", 0, 5), start=0)
    with pytest.raises(ValueError):
        WalkConfig(dim=2, direction_probs=(0.5, 0.5, 0.1, 0.0))


def test_result_is_json_serialisable() -> None:
    r = simulate(2, 300, 40, seed=3)
    text = json.dumps(r.to_json_dict())
    back = json.loads(text)
    assert len(back["positions"]) == 300 and len(back["positions"][0]) == 2
    assert back["final_hist"]["counts"] == r.hist_counts.tolist()
    assert back["config"]["dim"] == 2 and back["walker_steps_per_s"] > 0
    one = json.loads(json.dumps(simulate(1, 200, 20, seed=3).to_json_dict(include_positions=False)))
    assert "positions" not in one and sum(one["positive_fraction_hist"]["counts"]) == 200


def test_walk_job_protocol_and_live_params() -> None:
    box = ParamBox(dim=1, walkers=20_000, steps=300, per_step_walkers=5_000, gui_only=True)
    job = as_job(walk_job(box, target_ms=5))
    snaps = [job.step()]
    assert snaps[0].n == 0 and not snaps[0].done
    while snaps[-1].n < 100:
        snaps.append(job.step())
    early = snaps[-1]
    frozen_sum = early.hist_counts.sum()
    with pytest.raises(dataclasses.FrozenInstanceError):
        early.n = 5  # type: ignore[misc]
    box.update(steps=400)  # a longer horizon continues the same run
    while not snaps[-1].done:
        snaps.append(job.step())
    final = snaps[-1]
    assert final.n == 400 and final.restarts == 0
    assert all(b.n >= a.n for a, b in itertools.pairwise(snaps))
    assert early.hist_counts.sum() == frozen_sum == 20_000
    assert early.mean.shape[0] == early.n + 1  # snapshot arrays did not follow the run
    assert final.walker_steps_per_s > 0 and final.display_paths.shape[1] == final.display_t.size
    with pytest.raises(StopIteration):
        job.step()

    box2 = ParamBox(dim=2, walkers=5_000, steps=200)
    gen = walk_job(box2, target_ms=5)
    first = [next(gen) for _ in range(4)][-1]
    box2.update(dim=3)  # a new law restarts once the sweep in flight finishes
    s = next(gen)
    for _ in range(50):
        if s.restarts:
            break
        s = next(gen)
    assert s.restarts == 1 and s.config.dim == 3 and s.n <= first.n
    rest = list(gen)
    last = rest[-1] if rest else s
    assert last.done and last.n == 200 and last.config.dim == 3


def test_torch_backend_on_cpu_matches_binomial() -> None:
    """The CUDA code path, exercised on CPU torch (same ops, different device)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops on a shared 2-core box: threads only contend
    try:
        n = 100
        r = simulate(1, 12_000, n, seed=4, backend="torch", per_step_walkers=6_000)
        ruin = simulate(1, 3_000, 400, barrier=Barrier("absorbing", 0, 8), start=2, seed=5, backend="torch")
    finally:
        torch.set_num_threads(threads)
    assert r.backend == "torch" and r.hist_counts.sum() == 12_000
    probs = th.binomial_pmf(n, np.arange(-n, n + 1))
    support = probs > 0
    counts = final_counts(r, n)
    assert counts[~support].sum() == 0
    assert chi2_pvalue(counts[support], probs[support]) > P_MIN
    f = th.first_return_pmf_1d(np.arange(n + 1))
    obs, pr = with_tail(r.first_return_counts[2::2], f[2::2], 6_000)
    assert chi2_pvalue(obs, pr) > P_MIN
    win = th.gamblers_ruin(2, 8)
    assert ruin.absorbed_lower + ruin.absorbed_upper == 3_000
    assert abs(ruin.absorbed_upper / 3_000 - win) / math.sqrt(win * (1 - win) / 3_000) < Z_MAX


def test_simulation_object_exposes_incremental_api() -> None:
    sim = WalkSimulation(WalkConfig(dim=1, walkers=1_000, steps=130, per_step_walkers=500))
    for _ in sim.sweep(70):
        pass
    assert sim.n == 70
    sim.run()
    assert sim.n == 130
    res = sim.result()
    assert res.n == 130 and res.mean.shape == (131, 1)
    assert np.all((res.positions[:, 0] - 130) % 2 == 0)


def test_bench_walk_reports_expected_fields() -> None:
    rows = bench_walk(
        walkers=20_000,
        fast_steps=512,
        naive_steps=16,
        mem_walkers=20_000,
        mem_steps=2_000,
        mem_per_step_walkers=1_000,
        repeats=1,
    )
    assert [r["name"] for r in rows] == ["walk.fast_path", "walk.peak_memory_1e6x1e4"]
    for row in rows:
        assert set(row) == {"name", "value", "unit", "baseline", "ratio", "device"}
        assert row["ratio"] == pytest.approx(row["value"] / row["baseline"])
    assert rows[0]["value"] > rows[0]["baseline"]  # popcount beats one add per step
    assert rows[1]["value"] < rows[1]["baseline"]  # streaming beats walkers x steps


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_at_start_counts_match_return_probabilities(dim: int) -> None:
    """u_k = P(S_k = start) per step, against the exact lattice law (z-scores, fixed seed)."""
    from engines.walk_theory import return_probs

    walkers, steps = 40_000, 60
    res = simulate(dim, walkers, steps, seed=11)
    u = res.at_start_counts / walkers
    exact = return_probs(dim, steps)
    assert res.at_start_counts[0] == walkers
    assert np.all(res.at_start_counts[1::2] == 0)  # odd times: never back at the start
    k = np.arange(2, steps + 1, 2)
    se = np.sqrt(exact[k] * (1 - exact[k]) / walkers)
    z = (u[k] - exact[k]) / se
    assert np.max(np.abs(z)) < 4.5
