"""Rectified flow / flow matching on 2-D data: couplings, training, ODE sampling, reflow.

Convention (Liu et al. 2022; Lipman et al. 2023): ``x_t = (1 - t) x0 + t x1`` with the
*source* ``x0`` at ``t = 0`` (``N(0, I)`` or any toy distribution) and the *target* ``x1`` at
``t = 1``; a network ``v(x, t)`` regresses the conditional velocity ``x1 - x0``. The minimiser
is the marginal velocity ``E[x1 - x0 | x_t = x]`` (for a Gaussian-mixture target and Gaussian
source it is :func:`engines.gmm.rf_velocity`), whose ODE ``dx/dt = v`` carries the source onto
the target. Same time direction as :mod:`engines.gmm`, so the oracle is a drop-in model.

Why couplings matter (the lesson of this module): with independent pairs, paths cross, the
marginal velocity averages over them and the ODE curves, so few Euler steps fail. Mini-batch
optimal transport pairs (``coupling="ot"``) or a second *reflow* pass (train on pairs
``(x0, ODE(x0))`` of the first model) straighten the paths; :func:`straightness` measures it.

Pure numpy/torch/POT: never imports Qt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import ot
import torch

from engines import toy_data
from engines.diffusion import DataSource
from engines.gmm import GaussianMixture, rf_velocity
from engines.jobs import ParamBox
from engines.nets import (
    ChunkedTrainer,
    FastMLP,
    TimeMLP,
    TrainSnapshot,
    dropped_labels,
    run_train_job,
)
from engines.samplers import SampleResult

__all__ = [
    "COUPLINGS",
    "ODE_METHODS",
    "T_SAMPLINGS",
    "PairSource",
    "VelocityModel",
    "couple",
    "fm_batches",
    "fm_target",
    "fm_train_job",
    "interpolate",
    "make_velocity_net",
    "net_velocity_model",
    "ode_sample",
    "oracle_velocity_model",
    "ot_pairing",
    "reflow_pairs",
    "sample_t",
    "straightness",
    "train_flow_matching",
    "transport_cost",
]

COUPLINGS: tuple[str, ...] = ("independent", "ot")
T_SAMPLINGS: tuple[str, ...] = ("uniform", "logit_normal")
ODE_METHODS: tuple[str, ...] = ("euler", "heun")

# (x (N, 2), t in [0, 1], labels or None) -> velocity (N, 2); may return a reused buffer.
VelocityModel = Callable[[torch.Tensor, float, "torch.Tensor | None"], torch.Tensor]


# ====================================================================== the objective


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - t) x0 + t x1``; ``t`` (N,) or (N, 1) or scalar."""
    tt = t.reshape(-1, 1) if t.ndim > 0 else t
    return x0 + tt * (x1 - x0)


def fm_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Conditional velocity ``d x_t / dt = x1 - x0``: the regression target."""
    return x1 - x0


def sample_t(
    n: int,
    rng: np.random.Generator,
    kind: str = "uniform",
    mean: float = 0.0,
    std: float = 1.0,
) -> np.ndarray:
    """Training times (n,) float64 in (0, 1).

    ``logit_normal`` (SD3, Esser et al. 2024): ``t = sigmoid(m + s z)``, putting more weight
    on the middle of the path, where the velocity is hardest to predict (near t = 0 and 1
    the conditional expectation is nearly the mean or nearly known).
    """
    if kind == "uniform":
        return rng.uniform(0.0, 1.0, size=n)
    if kind == "logit_normal":
        return 1.0 / (1.0 + np.exp(-(mean + std * rng.standard_normal(n))))
    raise ValueError(f"t sampling must be one of {T_SAMPLINGS}, got {kind!r}")


def ot_pairing(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Exact mini-batch OT matching: ``perm`` with ``x0[perm[i]]`` paired to ``x1[i]``.

    Solves the assignment LP (POT ``ot.emd``, squared Euclidean cost, uniform weights) on the
    batch; with equal sizes and uniform weights the optimal plan is a permutation (Tong et
    al. 2023, "OT-CFM"). ~7 ms for 256 x 256 on the CPU, so it dominates a training step.
    """
    a = np.asarray(x0, dtype=np.float64)
    b = np.asarray(x1, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"OT pairing needs equal batches, got {a.shape} and {b.shape}")
    n = a.shape[0]
    w = np.full(n, 1.0 / n)
    plan = ot.emd(w, w, ot.dist(b, a), numItermax=max(100_000, 50 * n * n))
    return np.asarray(plan.argmax(axis=1), dtype=np.int64)


def couple(x0: np.ndarray, x1: np.ndarray, coupling: str = "independent") -> np.ndarray:
    """Reorder the source batch ``x0`` for the chosen coupling (target order is kept)."""
    if coupling == "independent":
        return x0
    if coupling == "ot":
        return x0[ot_pairing(x0, x1)]
    raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")


def transport_cost(x0: np.ndarray, x1: np.ndarray) -> float:
    """Mean squared displacement ``E ||x1 - x0||^2`` of a coupling (what OT minimises)."""
    d = np.asarray(x1, dtype=np.float64) - np.asarray(x0, dtype=np.float64)
    return float(np.mean(np.sum(d * d, axis=1)))


# ====================================================================== data


class PairSource:
    """Source and target samplers for flow matching.

    ``source``: ``"gaussian"`` (N(0, I)), a toy data set name, or a point array. ``target``:
    a toy data set name, a point array, or a :class:`engines.diffusion.DataSource`.
    ``pairs=(x0, x1)`` instead draws *fixed* pairs (reflow), ignoring source and target.
    ``draw(n)`` -> ``(x0, x1, labels_of_x1)`` float32, float32, int64.
    """

    def __init__(
        self,
        target: str | np.ndarray | DataSource = "8gaussians",
        source: str | np.ndarray = "gaussian",
        *,
        pairs: tuple[np.ndarray, np.ndarray] | None = None,
        target_labels: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.pairs = None
        if pairs is not None:
            p0 = np.asarray(pairs[0], dtype=np.float32)
            p1 = np.asarray(pairs[1], dtype=np.float32)
            if p0.shape != p1.shape or p0.ndim != 2:
                raise ValueError("reflow pairs must be two arrays of the same (n, 2) shape")
            self.pairs = (p0, p1)
            self.n_classes = 1
            return
        self.target = (
            target if isinstance(target, DataSource) else DataSource(target, target_labels, self.rng)
        )
        self.target.rng = self.rng
        self.n_classes = self.target.n_classes
        self.source_kind = source if isinstance(source, str) else "points"
        self.source_points: np.ndarray | None = None
        if isinstance(source, str):
            if source != "gaussian":
                toy_data.n_classes(source)  # validates the name
        else:
            self.source_points = np.asarray(source, dtype=np.float32)

    def draw_source(self, n: int) -> np.ndarray:
        if self.source_points is not None:
            return self.source_points[self.rng.integers(0, self.source_points.shape[0], size=n)]
        if self.source_kind == "gaussian":
            return self.rng.standard_normal((n, 2)).astype(np.float32)
        return toy_data.sample(self.source_kind, n, self.rng)

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.pairs is not None:
            idx = self.rng.integers(0, self.pairs[0].shape[0], size=n)
            return self.pairs[0][idx], self.pairs[1][idx], np.zeros(n, np.int64)
        x1, lab = self.target.draw(n)
        return self.draw_source(n), x1, lab


# ====================================================================== training


def make_velocity_net(
    width: int = 128, depth: int = 3, time_dim: int = 32, n_classes: int = 0
) -> TimeMLP:
    """A time- (and optionally class-) conditioned velocity MLP."""
    return TimeMLP(
        dim=2, width=width, depth=depth, time_dim=time_dim, n_classes=n_classes,
        prediction="velocity",
    )


def fm_batches(
    net: TimeMLP,
    pairs: PairSource,
    coupling: str = "independent",
    t_sampling: str = "uniform",
    p_uncond: float = 0.1,
) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Batch builder for :class:`engines.nets.ChunkedTrainer`: ``(feats(x_t, t), x1 - x0)``.

    The coupling is applied per training batch (mini-batch OT needs the batch), the rest
    (interpolation, time features) is vectorised over the chunk.
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    dev = net.inp.weight.device
    rng = pairs.rng

    def make(k: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n = k * b
        x0, x1, lab = pairs.draw(n)
        if coupling == "ot":
            x0 = np.concatenate([couple(x0[i * b:(i + 1) * b], x1[i * b:(i + 1) * b], "ot")
                                 for i in range(k)])
        t = sample_t(n, rng, t_sampling)
        xt = (1.0 - t)[:, None] * x0 + t[:, None] * x1
        feats = net.input_features(
            torch.from_numpy(xt.astype(np.float32)).to(dev),
            torch.from_numpy(t.astype(np.float32)).to(dev),
        ).reshape(k, b, -1)
        tgt = torch.from_numpy((x1 - x0).astype(np.float32)).to(dev).reshape(k, b, 2)
        return feats, tgt, dropped_labels(net, lab, rng, p_uncond, k, b)

    return make


def train_flow_matching(
    net: TimeMLP,
    pairs: PairSource,
    steps: int,
    *,
    coupling: str = "independent",
    t_sampling: str = "uniform",
    batch_size: int = 256,
    lr: float = 2e-3,
    final_lr: float | None = None,
    chunk: int = 100,
) -> np.ndarray:
    """Train a velocity net in place for ``steps`` AdamW steps (cosine lr decay to
    ``final_lr``, default ``lr/10``); returns the per-step losses."""
    trainer = ChunkedTrainer(net, fm_batches(net, pairs, coupling, t_sampling), lr=lr)
    lo = lr / 10.0 if final_lr is None else float(final_lr)
    out, done = [], 0
    while done < steps:
        k = min(chunk, steps - done)
        frac = (done + 0.5 * k) / max(steps, 1)
        out.append(trainer.run(k, batch_size, lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * frac))))
        done += k
    return np.concatenate(out) if out else np.zeros(0)


# ====================================================================== models and sampling


def net_velocity_model(
    net: TimeMLP, *, fast: bool = True, dtype: torch.dtype = torch.float32
) -> VelocityModel:
    """Wrap a velocity net as ``(x, t, labels) -> v`` (FastMLP snapshot when ``fast``)."""
    if not fast:

        def slow(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
            with torch.no_grad():
                return net(x, t, labels)

        return slow
    return FastMLP(net, dtype=dtype)


def oracle_velocity_model(gmm: GaussianMixture) -> VelocityModel:
    """The exact marginal velocity of rectified flow from N(0, I) to ``gmm`` (1-RF limit)."""

    def model(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        return rf_velocity(gmm, x, float(t), labels)

    return model


def ode_sample(
    model: VelocityModel,
    x0: torch.Tensor,
    steps: int = 100,
    *,
    method: str = "euler",
    labels: torch.Tensor | None = None,
    return_trajectory: bool = False,
    t_start: float = 0.0,
    t_end: float = 1.0,
) -> SampleResult:
    """Integrate ``dx/dt = v(x, t)`` from ``t_start`` to ``t_end`` on a uniform grid.

    Euler: one evaluation per step. Heun: two per step (the velocity at t = 1 is finite, so
    unlike the diffusion PF-ODE the last step is a full Heun step), NFE = 2 steps. The loop
    is allocation-free: in-place updates of one float32 state, trajectory written into a
    preallocated array. Runs backwards if ``t_end < t_start`` (target -> source).
    """
    if method not in ODE_METHODS:
        raise ValueError(f"method must be one of {ODE_METHODS}, got {method!r}")
    n = int(steps)
    if n < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ts = np.linspace(float(t_start), float(t_end), n + 1)
    x = x0.detach().to(torch.float32).clone()
    traj = None
    if return_trajectory:
        traj = np.empty((n + 1, *x.shape), dtype=np.float32)
        traj[0] = x.cpu().numpy()
    nfe = 0
    with torch.inference_mode():
        if method == "euler":
            for i in range(n):
                v = model(x, float(ts[i]), labels)
                x.add_(v, alpha=float(ts[i + 1] - ts[i]))
                if traj is not None:
                    traj[i + 1] = x.cpu().numpy()
            nfe = n
        else:
            v1 = torch.empty_like(x)
            xe = torch.empty_like(x)
            for i in range(n):
                dt = float(ts[i + 1] - ts[i])
                v1.copy_(model(x, float(ts[i]), labels))
                torch.add(x, v1, alpha=dt, out=xe)
                v2 = model(xe, float(ts[i + 1]), labels)
                x.add_(v1.add_(v2), alpha=0.5 * dt)
                if traj is not None:
                    traj[i + 1] = x.cpu().numpy()
            nfe = 2 * n
    return SampleResult(x.cpu().numpy(), traj, ts, nfe)


def reflow_pairs(
    model: VelocityModel,
    n: int,
    *,
    steps: int = 100,
    method: str = "euler",
    seed: int = 0,
    source: PairSource | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(x0, ODE_model(x0))`` for reflow (training a 2-rectified flow on them).

    ``x0`` from ``source.draw_source`` (default N(0, I)). The new coupling is deterministic,
    so its paths cannot cross and the next flow is straighter (Liu et al. 2022, Thm 3.6).
    """
    if source is not None:
        x0 = source.draw_source(int(n))
    else:
        x0 = np.random.default_rng(seed).standard_normal((int(n), 2)).astype(np.float32)
    x1 = ode_sample(model, torch.from_numpy(x0), steps, method=method).samples
    return x0, x1


def straightness(
    model: VelocityModel,
    x0: torch.Tensor,
    steps: int = 100,
    labels: torch.Tensor | None = None,
) -> float:
    """``S = int_0^1 E ||(x1 - x0) - v(x_t, t)||^2 dt`` along the model's own ODE paths.

    ``x1`` is the Euler endpoint from ``x0``; the integral is the average over the ``steps``
    velocities used by that Euler solve (left Riemann sum). S = 0 iff every path is a
    straight line travelled at constant speed, which is exactly when one Euler step suffices.
    """
    return _euler_with_straightness(model, x0, steps, labels)[1]


def _euler_with_straightness(
    model: VelocityModel,
    x0: torch.Tensor,
    steps: int,
    labels: torch.Tensor | None = None,
) -> tuple[np.ndarray, float]:
    """One Euler solve returning its endpoints and the straightness of its paths."""
    n = int(steps)
    if n < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = x0.detach().to(torch.float32).clone()
    start = x.clone()
    vs = torch.empty((n, *x.shape), dtype=torch.float32, device=x.device)
    dt = 1.0 / n
    with torch.inference_mode():
        for i in range(n):
            v = model(x, i * dt, labels)
            vs[i].copy_(v)
            x.add_(v, alpha=dt)
        disp = x - start
        dev = ((vs - disp[None]) ** 2).sum(-1).mean()
    return x.cpu().numpy(), float(dev)


# ====================================================================== GUI job


def fm_train_job(
    params: ParamBox,
    target: str | np.ndarray = "8gaussians",
    *,
    source: str | np.ndarray = "gaussian",
    target_labels: np.ndarray | None = None,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    coupling: str = "independent",
    t_sampling: str = "uniform",
    net: TimeMLP | None = None,
    width: int = 128,
    depth: int = 3,
    time_dim: int = 32,
    conditional: bool = False,
    ema: float = 0.0,
    max_steps: int | None = None,
    preview_every: int = 500,
    preview_n: int = 1000,
    preview_steps: int = 20,
    chunk_s: float = 0.03,
    seed: int = 0,
    device: torch.device | None = None,
) -> Iterator[TrainSnapshot]:
    """Train a flow-matching velocity net as a GUI job (see :func:`engines.nets.run_train_job`).

    Live ``params``: ``lr``, ``batch_size`` (and optional ``max_steps``, ``preview_every``).
    ``pairs`` trains a reflow model on fixed pairs (from :func:`reflow_pairs`). Previews:
    ``preview_n`` Euler samples with ``preview_steps`` steps from fixed source points, with
    the :func:`straightness` of those same paths in ``extra["straightness"]`` (one solve).
    """
    rng = np.random.default_rng(seed)
    ps = PairSource(target, source, pairs=pairs, target_labels=target_labels, rng=rng)
    if net is None:
        torch.manual_seed(seed)
        net = make_velocity_net(width, depth, time_dim, ps.n_classes if conditional else 0)
    if device is not None:
        net = net.to(device)
    dev = net.inp.weight.device
    trainer = ChunkedTrainer(net, fm_batches(net, ps, coupling, t_sampling), ema=ema)
    start = pairs[0][:preview_n] if pairs is not None else ps.draw_source(preview_n)
    start_t = torch.from_numpy(np.array(start, dtype=np.float32)).to(dev)

    def preview() -> tuple[np.ndarray, dict[str, float]]:
        model = net_velocity_model(trainer.sampling_net)
        end, s = _euler_with_straightness(model, start_t, preview_steps)
        return end, {"straightness": s}

    return run_train_job(
        params, trainer, preview, max_steps=max_steps, preview_every=preview_every,
        chunk_s=chunk_s,
    )
