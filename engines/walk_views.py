"""Curves the Random Walk panel draws: each empirical statistic beside its exact law.

The panel holds no math, so every theory curve (and every normalisation of an empirical
histogram to the same scale) is computed here from a :class:`engines.walk.WalkStats`. Each
function returns a small frozen dataclass of numpy arrays, ready for ``setData``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engines import walk_theory as th
from engines.fileio import atomic_write
from engines.walk import WalkStats

F = NDArray[np.float64]


@dataclass(frozen=True)
class Curve:
    x: F
    y: F


@dataclass(frozen=True)
class HistogramView:
    """Empirical P(S_n = k) (or a density for Gaussian steps) with the exact law and its limit."""

    n: int
    edges: F
    empirical: F  # per bin, as a probability (lattice) or a density (continuous)
    exact: Curve | None  # binomial law at lattice sites (1-D lattice walks only)
    limit: Curve  # Gaussian limit / heat kernel, on the same scale as ``empirical``
    label: str


def _heat_scale(cfg_dim: int, lattice: bool) -> float:
    """Lattice sites of a fixed parity are 2 apart, so P(S_n = k) ≈ 2 × density (1-D)."""
    return 2.0 if lattice and cfg_dim == 1 else 1.0


def histogram_view(stats: WalkStats, positions: NDArray[np.float64] | None = None,
                   n: int | None = None) -> HistogramView:
    """The first coordinate at step ``n`` (default: now), normalised so it can meet theory.

    ``positions`` (1-D array of first coordinates) replaces the snapshot's all-walker
    histogram, e.g. for the displayed walkers at an earlier ``n`` chosen by the time slider.
    """
    cfg = stats.config
    n = stats.n if n is None else n
    lattice = cfg.step_kind == "lattice"
    if positions is not None:
        pos = np.asarray(positions, dtype=np.float64)
        if lattice:
            lo, hi = int(pos.min()), int(pos.max())
            edges = np.arange(lo, hi + 2, dtype=np.float64) - 0.5
        else:
            edges = np.histogram_bin_edges(pos, bins=min(60, max(10, int(math.sqrt(pos.size)))))
        counts, _ = np.histogram(pos, bins=edges)
    else:
        edges, counts = stats.hist_edges, stats.hist_counts
    total = max(int(counts.sum()), 1)
    if lattice and cfg.dim == 1 and cfg.barrier is None and len(counts):
        # S_n - start has the parity of n: odd sites are empty by law, so draw one bar of
        # width 2 per reachable site instead of alternating empty bars.
        sites = np.round((edges[:-1] + edges[1:]) / 2).astype(np.int64)
        keep = (sites - cfg.start - n) % 2 == 0
        sites, counts = sites[keep], counts[keep]
        if len(sites):
            edges = np.append(sites - 1.0, sites[-1] + 1.0)
    widths = np.diff(edges)
    empirical = counts / total if lattice else counts / (total * widths)  # lattice: P(S_n = k)
    centres = (edges[:-1] + edges[1:]) / 2
    shift = float(cfg.start) if cfg.dim == 1 else 0.0
    exact = None
    x_fine = np.linspace(edges[0], edges[-1], 400)
    if n <= 0:
        return HistogramView(n, edges, empirical, None, Curve(x_fine, np.zeros_like(x_fine)), "n = 0")
    if cfg.dim == 1 and lattice and cfg.barrier is None:
        k = np.round(centres - shift).astype(np.int64)
        exact = Curve(centres, th.binomial_pmf(n, k, cfg.p))
        q = 1.0 - cfg.p
        if 0.0 < cfg.p < 1.0:
            limit_y = 2.0 * th.gaussian_limit_density(x_fine - shift, n, cfg.p)
        else:
            limit_y = np.zeros_like(x_fine)
        label = f"S_n, n = {n}: binomial law and N({n * (2 * cfg.p - 1):.4g}, {4 * n * cfg.p * q:.4g})"
    else:
        # Per-axis variance n/d for lattice walks; Gaussian steps have unit variance per axis.
        var = n / cfg.dim if lattice else float(n)
        limit_y = np.exp(-0.5 * (x_fine - shift) ** 2 / var) / math.sqrt(2 * math.pi * var)
        # The x-coordinate of a d-dim walk (d > 1) visits sites of both parities: spacing 1.
        limit_y = limit_y * _heat_scale(cfg.dim, lattice)
        label = f"first coordinate at n = {n}: heat kernel N(0, {var:.4g})"
        if cfg.barrier is not None:
            label += " (barriers on: the free-space kernel is shown for contrast)"
    return HistogramView(n, edges, empirical, exact, Curve(x_fine, limit_y), label)


@dataclass(frozen=True)
class MomentsView:
    n: F
    mean: F  # first coordinate
    var: F  # first coordinate
    msd: F
    mean_exact: F
    var_exact: F
    msd_exact: F
    envelope: F  # sqrt(n) for lattice walks (the ±√n band of the paths)


def moments_view(stats: WalkStats) -> MomentsView | None:
    """Mean, variance and mean squared displacement against n, with exact lines."""
    if stats.mean is None or stats.var is None or stats.msd is None:
        return None
    cfg = stats.config
    n = np.arange(stats.n + 1, dtype=np.float64)
    lattice = cfg.step_kind == "lattice"
    if cfg.dim == 1 and lattice:
        mean_exact = n * (2 * cfg.p - 1)
        var_exact = 4 * n * cfg.p * (1 - cfg.p)
        msd_exact = var_exact + mean_exact**2
    elif lattice:
        if cfg.direction_probs is not None:
            pr = np.asarray(cfg.direction_probs)
            drift = pr[0] - pr[1]
            second = pr[0] + pr[1]
            mean_exact = n * drift
            var_exact = n * (second - drift**2)
            means = np.array([pr[2 * a] - pr[2 * a + 1] for a in range(cfg.dim)])
            msd_exact = n + n * (n - 1) * float(means @ means)
        else:
            mean_exact = np.zeros_like(n)
            var_exact = n / cfg.dim
            msd_exact = n.copy()
    else:
        mean_exact = np.zeros_like(n)
        var_exact = n.copy()
        msd_exact = n * cfg.dim
    if cfg.barrier is not None:
        nan = np.full_like(n, np.nan)
        mean_exact = var_exact = msd_exact = nan  # no simple closed form with barriers
    return MomentsView(n, stats.mean[:, 0] - (cfg.start if cfg.dim == 1 else 0), stats.var[:, 0],
                       stats.msd, mean_exact, var_exact, msd_exact, np.sqrt(n))


@dataclass(frozen=True)
class ReturnsView:
    k: F
    return_by: F
    return_by_exact: F | None
    polya: float
    first_return_k: F  # even times with data
    first_return: F  # empirical f_k
    first_return_exact: F | None
    at_start: F | None  # empirical u_k = P(S_k = start) at the same even times
    at_start_exact: F | None  # u_2n = C(2n, n)/4^n in 1-D (exact lattice laws in 2-D/3-D)


def returns_view(stats: WalkStats) -> ReturnsView | None:
    """P(returned to the start by step k) and the first-return time law, with Pólya's limit."""
    cfg = stats.config
    if stats.return_by is None or stats.first_return_counts is None or stats.per_step_walkers == 0:
        return None
    k = np.arange(stats.n + 1, dtype=np.float64)
    exact_ok = (cfg.step_kind == "lattice" and cfg.barrier is None and cfg.direction_probs is None
                and cfg.p == 0.5)
    ret_exact = th.return_by_prob(cfg.dim, stats.n) if exact_ok else None
    f = stats.first_return_counts / stats.per_step_walkers
    f_exact = th.first_return_pmf(cfg.dim, stats.n) if exact_ok else None
    even = (np.arange(stats.n + 1) % 2 == 0) & (np.arange(stats.n + 1) > 0)
    u = stats.at_start_counts / stats.per_step_walkers if stats.at_start_counts is not None else None
    u_exact = th.return_probs(cfg.dim, stats.n) if exact_ok else None
    return ReturnsView(k, stats.return_by, ret_exact, th.polya_return_probability(cfg.dim),
                       k[even], f[even], f_exact[even] if f_exact is not None else None,
                       u[even] if u is not None else None, u_exact[even] if u_exact is not None else None)


@dataclass(frozen=True)
class PassageView:
    """First time T_a the walk reaches level a above its start, with (a/n) P(S_n = a)."""

    level: int
    k: F
    empirical: F
    exact: F
    reached: float  # fraction of walkers that reached a by now
    reached_exact: float


def passage_view(stats: WalkStats) -> PassageView | None:
    cfg = stats.config
    if stats.first_passage_counts is None or stats.per_step_walkers == 0 or cfg.barrier is not None:
        return None
    if cfg.step_kind != "lattice":
        return None
    k = np.arange(stats.n + 1, dtype=np.float64)
    emp = stats.first_passage_counts / stats.per_step_walkers
    exact = th.first_passage_pmf(np.arange(stats.n + 1), cfg.level, cfg.p)
    keep = (np.arange(stats.n + 1) % 2) == (cfg.level % 2)  # T_a has the parity of a
    keep[0] = False
    return PassageView(cfg.level, k[keep], emp[keep], exact[keep], float(emp.sum()), float(exact.sum()))


def exact_return_curves(m_max: int) -> dict[int, F]:
    """P(returned by step k) for the simple walk in 1, 2 and 3 dimensions (Pólya's picture)."""
    return {d: th.return_by_prob(d, m_max) for d in (1, 2, 3)}


def statistics_table(stats: WalkStats) -> tuple[list[str], F]:
    """Per-step statistics with their exact values, one row per step, for CSV export."""
    n = np.arange(stats.n + 1, dtype=np.float64)
    columns: list[tuple[str, F]] = [("n", n)]
    mom = moments_view(stats)
    if mom is not None:
        columns += [("mean_axis1", mom.mean), ("mean_axis1_exact", mom.mean_exact),
                    ("var_axis1", mom.var), ("var_axis1_exact", mom.var_exact),
                    ("msd", mom.msd), ("msd_exact", mom.msd_exact)]
    ret = returns_view(stats)
    if ret is not None:
        columns += [("p_returned_by_n", ret.return_by)]
        if ret.return_by_exact is not None:
            columns += [("p_returned_by_n_exact", ret.return_by_exact)]
        m = stats.per_step_walkers
        columns += [("p_first_return_at_n", stats.first_return_counts / m)]
        if stats.at_start_counts is not None:
            columns += [("p_at_start_at_n", stats.at_start_counts / m)]
        if ret.return_by_exact is not None:
            cfg = stats.config
            columns += [("p_first_return_at_n_exact", th.first_return_pmf(cfg.dim, stats.n)),
                        ("p_at_start_at_n_exact", th.return_probs(cfg.dim, stats.n))]
    pas = passage_view(stats)
    if pas is not None:
        m = stats.per_step_walkers
        columns += [(f"p_first_passage_to_{pas.level}_at_n", stats.first_passage_counts / m),
                    (f"p_first_passage_to_{pas.level}_at_n_exact",
                     th.first_passage_pmf(np.arange(stats.n + 1), pas.level, stats.config.p))]
    header = [name for name, _ in columns]
    return header, np.stack([np.asarray(col, dtype=np.float64) for _, col in columns], axis=1)


def save_statistics_csv(path: str | os.PathLike[str], stats: WalkStats) -> Path:
    """Write :func:`statistics_table` as CSV (atomic: an old file survives a failed write)."""
    header, table = statistics_table(stats)
    cfg = stats.config
    comment = (f"# random walk: dim={cfg.dim} walkers={cfg.walkers} steps_done={stats.n} p={cfg.p} "
               f"step_kind={cfg.step_kind} barrier={cfg.barrier} seed={cfg.seed} "
               f"per_step_walkers={stats.per_step_walkers}")

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(comment + "\n")
            np.savetxt(fh, table, delimiter=",", header=",".join(header), comments="", fmt="%.10g")

    return atomic_write(path, write)


@dataclass(frozen=True)
class ArcsineView:
    """Fraction of time positive and the time of the last visit to 0, both on x = k/n."""

    x: F
    positive: F  # empirical probability per even count, against x = count/n
    last_zero: F
    exact: F  # u_2k u_{n-2k}: the same discrete law for both (Chung–Feller)
    density_x: F
    density: F  # 1/(π√(x(1−x))) scaled to the per-point probabilities (× 2/n)


def arcsine_view(stats: WalkStats) -> ArcsineView | None:
    cfg = stats.config
    if (stats.positive_counts is None or stats.last_zero_counts is None or stats.n < 2
            or stats.per_step_walkers == 0 or cfg.barrier is not None):
        return None
    n = stats.n - (stats.n % 2)  # the clean law needs an even horizon
    if n != stats.n:
        return None
    m = stats.per_step_walkers
    idx = np.arange(0, n + 1, 2)
    x = idx / n
    positive = stats.positive_counts[idx] / m
    last_zero = stats.last_zero_counts[idx] / m
    unbiased = cfg.p == 0.5 and cfg.step_kind == "lattice"
    exact = th.time_positive_pmf(n)[idx] if unbiased else np.full_like(x, np.nan)
    dx = np.linspace(0.005, 0.995, 300)
    density = th.arcsine_density(dx) * 2.0 / n
    return ArcsineView(x, positive, last_zero, exact, dx, density)


@dataclass(frozen=True)
class RuinView:
    start: int
    lower: int
    upper: int
    p: float
    absorbed_lower: int
    absorbed_upper: int
    still_running: int
    p_upper_empirical: float  # among absorbed walkers... and overall
    p_upper_exact: float
    curve: Curve  # P(hit N first) against the start i, for context


def ruin_view(stats: WalkStats) -> RuinView | None:
    cfg = stats.config
    b = cfg.barrier
    if b is None or b.kind != "absorbing" or b.lower is None or b.upper is None:
        return None
    big_n = b.upper - b.lower
    i = cfg.start - b.lower
    walkers = cfg.walkers
    still = walkers - stats.absorbed_lower - stats.absorbed_upper
    p_emp = stats.absorbed_upper / walkers
    p_exact = float(th.gamblers_ruin(i, big_n, cfg.p)) if 0 < cfg.p < 1 else float(cfg.p == 1.0)
    ii = np.arange(0, big_n + 1, dtype=np.float64)
    curve = Curve(ii + b.lower, th.gamblers_ruin(ii, big_n, cfg.p) if 0 < cfg.p < 1 else ii * 0)
    return RuinView(cfg.start, b.lower, b.upper, cfg.p, stats.absorbed_lower, stats.absorbed_upper, still,
                    p_emp, p_exact, curve)


@dataclass(frozen=True)
class BrownianView:
    """Displayed paths rescaled as S_⌊nt⌋/√n on t ∈ [0, 1], with the ±1.96√t band."""

    t: F
    paths: F  # (P, T) first coordinate, rescaled
    band_t: F
    band: F  # 1.96 √(t · per-axis variance per step)


def brownian_view(stats: WalkStats) -> BrownianView | None:
    if stats.n < 1 or stats.display_paths.size == 0:
        return None
    cfg = stats.config
    t = stats.display_t / stats.n
    x = stats.display_paths[:, :, 0].astype(np.float64) - (cfg.start if cfg.dim == 1 else 0)
    per_step_var = 1.0 / cfg.dim if cfg.step_kind == "lattice" else 1.0
    if cfg.dim == 1 and cfg.step_kind == "lattice":
        x = x - stats.display_t * (2 * cfg.p - 1)  # centre a biased walk
        per_step_var = 4 * cfg.p * (1 - cfg.p)
    band_t = np.linspace(0, 1, 200)
    return BrownianView(t, x / math.sqrt(stats.n), band_t, 1.96 * np.sqrt(band_t * per_step_var))


def display_positions_at(stats: WalkStats, n: int) -> NDArray[np.float64]:
    """First coordinate of the displayed walkers at the stored time closest to ``n``."""
    j = int(np.argmin(np.abs(stats.display_t - n)))
    return stats.display_paths[:, j, 0].astype(np.float64)
