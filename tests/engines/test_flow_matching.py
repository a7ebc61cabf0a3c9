"""Flow matching: the regression target's closed form, couplings, ODE sampling, reflow, the job."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines import flow_matching as FM
from engines import metrics, toy_data
from engines.gmm import GaussianMixture, rf_velocity
from engines.jobs import ParamBox

GAUSS = GaussianMixture(
    np.array([1.0]), np.array([[2.0, -1.0]]), np.array([[[0.5, 0.2], [0.2, 0.3]]])
)


# ---------------------------------------------------------------------- the objective


@pytest.mark.parametrize("t", [0.2, 0.5, 0.85])
def test_fm_target_conditional_expectation_is_the_closed_form_velocity(t: float) -> None:
    # For Gaussian source and target, (x_t, x1 - x0) is jointly Gaussian, so E[x1 - x0 | x_t]
    # is the linear regression of the training target on x_t; it must equal rf_velocity.
    rng = np.random.default_rng(0)
    n = 200_000
    x0 = torch.from_numpy(rng.standard_normal((n, 2)))
    x1 = torch.from_numpy(GAUSS.sample(n, rng)[0].astype(np.float64))
    xt = FM.interpolate(x0, x1, torch.full((n,), t, dtype=torch.float64))
    y = FM.fm_target(x0, x1)
    design = torch.cat([xt, torch.ones(n, 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(design, y).solution
    q = torch.tensor([[0.0, 0.0], [1.5, -0.5], [2.0, 1.0], [-1.0, -1.0]], dtype=torch.float64) * t
    q = q + torch.tensor([0.3, -0.2], dtype=torch.float64)
    fitted = torch.cat([q, torch.ones(4, 1, dtype=torch.float64)], 1) @ coef
    torch.testing.assert_close(fitted, rf_velocity(GAUSS, q, t), atol=0.03, rtol=0.0)


def test_short_training_learns_the_exact_gaussian_velocity() -> None:
    torch.manual_seed(0)
    target = GAUSS.sample(50_000, np.random.default_rng(1))[0]
    net = FM.make_velocity_net(width=64, depth=2)
    FM.train_flow_matching(net, FM.PairSource(target, rng=np.random.default_rng(2)), 800, lr=5e-3)
    model = FM.net_velocity_model(net)
    rng = np.random.default_rng(3)
    for t in (0.2, 0.5, 0.8):
        x = torch.from_numpy(GAUSS.interpolated_rf(t).sample(2000, rng)[0])
        exact = rf_velocity(GAUSS, x, t)
        err = (model(x, t, None) - exact).norm(dim=1).mean() / exact.norm(dim=1).mean()
        assert err < 0.1, (t, float(err))


def test_logit_normal_t_concentrates_mid_path() -> None:
    rng = np.random.default_rng(0)
    u = FM.sample_t(100_000, rng, "uniform")
    ln = FM.sample_t(100_000, rng, "logit_normal")
    assert ln.min() > 0 and ln.max() < 1

    def mid(a: np.ndarray) -> float:
        return float(((a > 0.25) & (a < 0.75)).mean())

    assert mid(u) == pytest.approx(0.5, abs=0.01)
    assert mid(ln) == pytest.approx(0.728, abs=0.01)  # P(|z| < logit(0.75) = 1.0986)
    with pytest.raises(ValueError):
        FM.sample_t(10, rng, "beta")


def test_minibatch_ot_coupling_reduces_transport_cost() -> None:
    rng = np.random.default_rng(0)
    costs_ind, costs_ot = [], []
    for _ in range(3):
        x0 = rng.standard_normal((256, 2)).astype(np.float32)
        x1 = toy_data.sample("8gaussians", 256, rng)
        perm = FM.ot_pairing(x0, x1)
        np.testing.assert_array_equal(np.sort(perm), np.arange(256))  # a permutation
        costs_ind.append(FM.transport_cost(FM.couple(x0, x1, "independent"), x1))
        costs_ot.append(FM.transport_cost(FM.couple(x0, x1, "ot"), x1))
        # no single swap of two pairs can lower an optimal matching's cost
        i, j = rng.choice(256, 2, replace=False)
        xo = x0[perm]
        swapped = xo.copy()
        swapped[[i, j]] = swapped[[j, i]]
        assert FM.transport_cost(swapped, x1) >= FM.transport_cost(xo, x1) - 1e-9
    assert np.mean(costs_ot) < 0.5 * np.mean(costs_ind)


# ---------------------------------------------------------------------- sampling and reflow


def test_oracle_ode_transports_noise_onto_target() -> None:
    gmm = toy_data.mixture("8gaussians")
    model = FM.oracle_velocity_model(gmm)
    n = 2000
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    floor, _ = metrics.swd_floor("8gaussians", n, repeats=3, seed=4)
    target = toy_data.sample("8gaussians", n, np.random.default_rng(8))
    res = FM.ode_sample(model, x, 100, return_trajectory=True)
    assert res.trajectory is not None and res.trajectory.shape == (101, n, 2)
    np.testing.assert_array_equal(res.trajectory[0], x.numpy())
    assert res.nfe == 100
    assert metrics.sliced_wasserstein(res.samples, target) < 2.5 * floor
    one = FM.ode_sample(model, x, 1).samples  # curved 1-RF paths: one step fails
    assert metrics.sliced_wasserstein(one, target) > 5 * floor
    # Heun vs Euler at equal NFE against a fine reference
    ref = FM.ode_sample(model, x[:300], 400, method="heun").samples
    e = np.abs(FM.ode_sample(model, x[:300], 40).samples - ref).mean()
    h = FM.ode_sample(model, x[:300], 20, method="heun")
    assert h.nfe == 40
    assert np.abs(h.samples - ref).mean() < e


def test_reflow_straightens_paths_and_enables_one_step_sampling() -> None:
    gmm = toy_data.mixture("8gaussians")
    rf1 = FM.oracle_velocity_model(gmm)  # the exact 1-rectified flow
    x0, x1 = FM.reflow_pairs(rf1, 8000, steps=100, seed=0)
    torch.manual_seed(0)
    net = FM.make_velocity_net(width=64, depth=3)
    FM.train_flow_matching(net, FM.PairSource(pairs=(x0, x1), rng=np.random.default_rng(1)),
                           800, lr=5e-3)
    rf2 = FM.net_velocity_model(net)
    xs = torch.randn(2000, 2, generator=torch.Generator().manual_seed(7))
    s1 = FM.straightness(rf1, xs[:1000], 100)
    s2 = FM.straightness(rf2, xs[:1000], 100)
    assert s2 < 0.05 * s1, (s1, s2)
    # Straight *and* still right: 2-RF samples in one Euler step match the target far better
    # than 1-RF does, and stay near the floor with many steps.
    target = toy_data.sample("8gaussians", 2000, np.random.default_rng(3))
    floor, _ = metrics.swd_floor("8gaussians", 2000, repeats=3, seed=5)
    one1 = metrics.sliced_wasserstein(FM.ode_sample(rf1, xs, 1).samples, target)
    one2 = metrics.sliced_wasserstein(FM.ode_sample(rf2, xs, 1).samples, target)
    many2 = metrics.sliced_wasserstein(FM.ode_sample(rf2, xs, 50).samples, target)
    assert one2 < 0.25 * one1
    assert many2 < 2.5 * floor


def test_straightness_is_zero_for_constant_velocity() -> None:
    def const(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ones_like(x) * torch.tensor([1.0, -2.0])

    def swirl(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([-x[:, 1], x[:, 0]], 1)

    assert FM.straightness(const, torch.randn(100, 2), 10) == pytest.approx(0.0, abs=1e-10)
    assert FM.straightness(swirl, torch.randn(100, 2), 50) > 0.1


# ---------------------------------------------------------------------- GUI job


def test_fm_training_job_with_ot_coupling() -> None:
    params = ParamBox(lr=2e-3, batch_size=64)
    snaps = list(
        FM.fm_train_job(
            params, "moons", coupling="ot", t_sampling="logit_normal", width=32, depth=2,
            max_steps=60, preview_every=30, preview_n=100, preview_steps=10, chunk_s=0.01,
        )
    )
    assert snaps[-1].done and snaps[-1].step == 60
    previews = [s for s in snaps if s.preview is not None]
    assert previews and previews[-1].preview is not None
    assert previews[-1].preview.shape == (100, 2)
    assert previews[-1].extra["straightness"] >= 0.0
    assert previews[-1].state is not None and previews[-1].config["prediction"] == "velocity"


# ---------------------------------------------------------------------- speed (relative only)


def test_fast_paths_beat_plain_torch() -> None:
    """The absolute figures (10k x 100 steps <= 0.35 s is the target) come from
    ``playground bench lab`` on an idle machine; a test can only guard against the fast path
    falling behind the naive loop, timed by CPU clock at one thread (time spent descheduled
    does not count). Measured at this size: sampling ratio 0.44-0.64 in a fresh process, but
    0.79-0.85 once diffusers/transformers are imported (as the full suite does: the naive
    loop gets ~30 % faster, the fast path does not change), so the bound is "not slower";
    training 1.3-1.5x the plain loop's steps/s."""
    from engines.bench_lab import bench_lab

    rows = {
        r["name"]: r
        # best of 3 rounds of 20 steps: fixed costs and one unlucky round dominate shorter loops
        for r in bench_lab(particles=5000, sample_steps=20, train_steps=80, rounds=3, clock="cpu",
                           time_to_target=False)
    }
    assert rows["lab.sample_10k_x100"]["ratio"] < 0.95, rows["lab.sample_10k_x100"]
    assert rows["lab.sample_10k_x100_bf16"]["value"] > 0.0
    assert rows["lab.train_steps_per_s"]["ratio"] > 0.8, rows["lab.train_steps_per_s"]
