"""Exact views for the 2D Lab: forward marginals, oracle vector fields, the exact ODE job.

Why this module exists: the Lab's first views need no trained model. For a Gaussian-mixture
target the noised marginals, the score of VP diffusion and the marginal velocity of rectified
flow are known in closed form (:mod:`engines.gmm`), so the panel can show *the truth*: the
cloud at any t of the forward process, the exact field at that t, and the probability-flow
ODE of a perfect model carrying noise onto the data. Learned models (their own issues) are
later compared against exactly these views.

Time conventions (each process keeps its own, as in the papers and in ``reference.md``):

* ``"vp"`` (diffusion): ``x_t = sqrt(ab(t)) x0 + sqrt(1 - ab(t)) eps``; data at ``t = 0``,
  noise at ``t = 1`` (cosine schedule, ``ab(1) = 0`` exactly).
* ``"rf"`` (rectified flow): ``x_t = (1 - t) eps + t x1``; noise at ``t = 0``, data at ``t = 1``.

Pure numpy/torch: never imports Qt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from engines.gmm import GaussianMixture, rf_velocity, vp_score, vp_x0
from engines.jobs import ParamBox

__all__ = [
    "ARCH_DEFAULTS",
    "MODELS",
    "NFE_GRID",
    "PROCESSES",
    "SAMPLER_LABELS",
    "FieldView",
    "FlowLayerView",
    "LabSampleSnapshot",
    "LabSnapshot",
    "LabTrainSnapshot",
    "NfeCurve",
    "alpha_bar",
    "arrow_display_vectors",
    "data_end",
    "default_lr",
    "family",
    "field_job",
    "field_view",
    "flow_layer_view",
    "flow_view_job",
    "forward_marginal",
    "grid_points",
    "heat_levels",
    "histogram_density",
    "lab_sample",
    "lab_train_job",
    "latent_grid",
    "manifold_lines",
    "marginal_mixture",
    "mixture_density",
    "n_flow_layers",
    "nfe_curve_job",
    "noise_end",
    "ode_job",
    "polyline_arrays",
    "sample_job",
    "vector_field",
]

Process = Literal["vp", "rf"]
PROCESSES: tuple[str, ...] = ("vp", "rf")
Extent = tuple[float, float, float, float]


@dataclass(frozen=True)
class LabSnapshot:
    """One frame of the Lab: the particles at time ``t`` and, while the ODE runs, paths.

    ``trajectories`` is (T, M, 2) float32: the first M particles at each of the T times
    visited so far (T = 0 for a forward-process view), so the panel can draw paths.
    """

    step: int
    t: float
    speed: float
    points: np.ndarray
    trajectories: np.ndarray
    process: str = "vp"
    done: bool = False


def _check_process(process: str) -> None:
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; choose one of {PROCESSES}")


def cosine_alpha_bar(t: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal's cosine schedule, normalised so ab(0) = 1 and reaching 0 at t = 1."""
    f = math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return min(1.0, max(0.0, f / f0))


def alpha_bar(t: float) -> float:
    """The VP schedule (Nichol & Dhariwal cosine, ``ab(0) = 1``, ``ab(1) = 0``)."""
    return cosine_alpha_bar(min(1.0, max(0.0, float(t))))


def noise_end(process: str) -> float:
    """The time at which ``process`` is pure N(0, I) noise (VP: 1, RF: 0)."""
    _check_process(process)
    return 1.0 if process == "vp" else 0.0


def data_end(process: str) -> float:
    """The time at which ``process`` is the data (VP: 0, RF: 1)."""
    return 1.0 - noise_end(process)


def forward_marginal(process: str, data: np.ndarray, noise: np.ndarray, t: float) -> np.ndarray:
    """Exact samples of p_t by the forward process, float32 (n, 2).

    The *same* ``data``/``noise`` pairs are used at every t, so scrubbing t moves each point
    continuously (a coupling, not fresh samples per frame), and both directions agree.
    """
    _check_process(process)
    d = np.asarray(data, dtype=np.float64)
    e = np.asarray(noise, dtype=np.float64)
    n = min(d.shape[0], e.shape[0])
    d, e = d[:n], e[:n]
    t = min(1.0, max(0.0, float(t)))
    if process == "vp":
        ab = alpha_bar(t)
        x = math.sqrt(ab) * d + math.sqrt(1.0 - ab) * e
    else:
        x = (1.0 - t) * e + t * d
    return x.astype(np.float32)


def marginal_mixture(gmm: GaussianMixture, process: str, t: float) -> GaussianMixture:
    """The exact marginal p_t of a mixture target (itself a mixture)."""
    _check_process(process)
    t = min(1.0, max(0.0, float(t)))
    return gmm.noised_vp(alpha_bar(t)) if process == "vp" else gmm.interpolated_rf(t)


def grid_points(extent: Sequence[float], n: int = 21) -> np.ndarray:
    """An n x n grid of arrow origins inside ``extent``, (n*n, 2) float64, cell-centred."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    xs = xmin + (np.arange(n) + 0.5) * (xmax - xmin) / n
    ys = ymin + (np.arange(n) + 0.5) * (ymax - ymin) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def vector_field(gmm: GaussianMixture, process: str, t: float, pts: np.ndarray) -> np.ndarray:
    """The exact field at ``pts``: VP score ``grad log p_t`` or RF velocity ``E[x1 - x0 | x_t]``.

    VP at ``t = 0`` is evaluated at ``ab = 1 - 1e-4``: the data's own score, finite because
    every component has a positive-definite covariance.
    """
    _check_process(process)
    x = torch.from_numpy(np.asarray(pts, dtype=np.float64).reshape(-1, 2))
    t = min(1.0, max(0.0, float(t)))
    if process == "rf":
        return rf_velocity(gmm, x, t).numpy()
    return vp_score(gmm, x, min(alpha_bar(t), 1.0 - 1e-4)).numpy()


def arrow_display_vectors(vectors: np.ndarray, cell: float) -> np.ndarray:
    """Scale field vectors for drawing: direction kept, length in (0, 0.9 cell].

    Why not true length: the score spans orders of magnitude (huge near sharp modes), so
    lengths are squashed by ``tanh(|v| / typical)``; colour-free arrows then still show both
    the direction everywhere and where the field is strong.
    """
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 2)
    norm = np.hypot(v[:, 0], v[:, 1])
    if not np.any(norm > 0):
        return np.zeros_like(v)
    typical = float(np.median(norm[norm > 0]))
    length = 0.9 * cell * np.tanh(norm / max(typical, 1e-12))
    safe = np.where(norm > 0, norm, 1.0)
    return v / safe[:, None] * length[:, None]


def mixture_density(gmm: GaussianMixture, extent: Sequence[float], res: int = 160) -> np.ndarray:
    """Exact density on a res x res grid, image-oriented (row 0 is ``y = ymax``), float64."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    xs = xmin + (np.arange(res) + 0.5) * (xmax - xmin) / res
    ys = ymax - (np.arange(res) + 0.5) * (ymax - ymin) / res
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return np.exp(gmm.log_prob(pts)).reshape(res, res)


def histogram_density(points: np.ndarray, extent: Sequence[float], res: int = 128) -> np.ndarray:
    """Normalised 2-D histogram of samples, image-oriented like :func:`mixture_density`.

    The stand-in for the target density where no closed form exists (toy sets other than the
    mixtures, imported point sets).
    """
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hist, _, _ = np.histogram2d(pts[:, 1], pts[:, 0], bins=res, range=[[ymin, ymax], [xmin, xmax]])
    area = (xmax - xmin) * (ymax - ymin) / (res * res)
    total = max(pts.shape[0], 1)
    return hist[::-1] / (total * area)


def ode_job(
    gmm: GaussianMixture,
    process: str,
    noise: np.ndarray,
    params: ParamBox | None = None,
    *,
    n_frames: int = 120,
    n_traj: int = 64,
    frame_seconds: float = 1.0 / 60.0,
) -> Iterator[LabSnapshot]:
    """The exact probability-flow ODE from ``noise`` (n, 2) to the mixture, one step per frame.

    Each step advances the process time by ``speed / n_frames`` (``params['speed']``, read
    live), so at speed 1 the trip takes ``n_frames`` steps. VP uses the DDIM update with the
    exact posterior mean ``E[x0 | x_t]`` (the exact discretisation of the VP probability-flow
    ODE in ``sigma/sqrt(ab)``, finite at ``ab = 0``); RF uses Euler on the exact velocity.
    ``frame_seconds`` paces steps so the trip is watchable (0 runs flat out, for tests).
    The first snapshot is the noise itself at step 0.
    """
    _check_process(process)
    x = torch.from_numpy(np.array(noise, dtype=np.float64).reshape(-1, 2))
    m = min(int(n_traj), x.shape[0])
    t0, t1 = noise_end(process), data_end(process)
    direction = 1.0 if t1 > t0 else -1.0
    path: list[np.ndarray] = [x[:m].numpy().astype(np.float32)]
    progress = 0.0
    step = 0
    speed = 1.0

    def snap(t: float, done: bool) -> LabSnapshot:
        return LabSnapshot(
            step=step, t=t, speed=speed, points=x.numpy().astype(np.float32),
            trajectories=np.stack(path), process=process, done=done,
        )

    yield snap(t0, False)
    while progress < 1.0:
        started = time.perf_counter()
        if params is not None:
            speed = float(params.get().get("speed", 1.0))
        speed = max(speed, 1e-3)
        new_progress = min(1.0, progress + speed / n_frames)
        t_a = t0 + direction * progress
        t_b = t0 + direction * new_progress
        if process == "vp":
            ab_a, ab_b = alpha_bar(t_a), alpha_bar(t_b)
            x0_hat = vp_x0(gmm, x, ab_a)
            # E[eps | x_t] from the same posterior (one oracle call per step, not two):
            # x_t = sqrt(ab) x0 + sqrt(1 - ab) eps holds for the conditional means too.
            eps_hat = (x - math.sqrt(ab_a) * x0_hat) / math.sqrt(max(1.0 - ab_a, 1e-12))
            x = math.sqrt(ab_b) * x0_hat + math.sqrt(1.0 - ab_b) * eps_hat
        else:
            x = x + (t_b - t_a) * rf_velocity(gmm, x, t_a)
        progress = new_progress
        step += 1
        path.append(x[:m].numpy().astype(np.float32))
        done = progress >= 1.0
        if frame_seconds > 0 and not done:
            rest = frame_seconds - (time.perf_counter() - started)
            if rest > 0:
                time.sleep(rest)
        yield snap(t_b, done)


# ====================================================================== learned models
#
# Why an adapter layer: the four training engines (diffusion, flow matching, flows, GANs) each
# yield their own snapshot type with their own live-parameter names. The Lab wants one picture
# of "a model learning": a loss curve, a quality curve (sliced W2 to the target, measured here
# in the worker thread, never on the GUI thread), the latest samples and the model-specific
# extras (heat maps, arrows, manifolds, weights to sample from). These functions translate.

#: key -> (label shown in the Model combo, family)
MODELS: dict[str, tuple[str, str]] = {
    "exact": ("Exact oracle", "exact"),
    "ddpm": ("Diffusion (DDPM, learned)", "diffusion"),
    "rf": ("Rectified flow (learned)", "rf"),
    "nice": ("Flow: NICE", "flow"),
    "realnvp": ("Flow: RealNVP", "flow"),
    "glow": ("Flow: Glow", "flow"),
    "nsf": ("Flow: NSF (splines)", "flow"),
    "gan": ("GAN: vanilla (non-saturating)", "gan"),
    "wgan": ("GAN: WGAN (clipping)", "gan"),
    "wgan-gp": ("GAN: WGAN-GP", "gan"),
}
GAN_LOSS_OF: dict[str, str] = {"gan": "nonsaturating", "wgan": "wgan", "wgan-gp": "wgan-gp"}
#: (width, depth) per family. Flows and GANs: their engines' tested defaults; diffusion and RF:
#: 3x64 rather than the benchmarks' 3x128, which trains ~2x faster on a 2-core CPU and reaches
#: the same toy-data quality (engines.diffusion.train_diffusion's docstring figures).
ARCH_DEFAULTS: dict[str, tuple[int, int]] = {
    "diffusion": (64, 3), "rf": (64, 3), "flow": (32, 2), "gan": (64, 2),
}
LR_DEFAULTS: dict[str, float] = {"diffusion": 2e-3, "rf": 2e-3, "flow": 1e-3, "gan": 1e-3}
FLOW_LAYERS = 8
#: sampler key -> label; the rectified-flow model only has the ODE solvers (Euler / Heun).
SAMPLER_LABELS: dict[str, str] = {
    "ddpm": "DDPM ancestral",
    "ddim": "DDIM (η)",
    "sde": "Reverse SDE",
    "euler": "PF-ODE Euler",
    "heun": "PF-ODE Heun",
    "dpmpp2m": "DPM-Solver++ (2M)",
}
RF_SAMPLERS: tuple[str, ...] = ("euler", "heun")
NFE_GRID: tuple[int, ...] = (1, 2, 3, 5, 8, 12, 20, 35, 50, 100, 200)


def default_lr(model: str) -> float:
    """The learning rate a model starts with (clipped WGAN wants the smaller preset)."""
    return 5e-4 if model == "wgan" else LR_DEFAULTS.get(family(model), 1e-3)


def n_flow_layers(kind: str, n_layers: int = FLOW_LAYERS) -> int:
    """How many layers :func:`engines.flows.build_flow` stacks (Glow: 3 per step, NSF: 2)."""
    from engines.flows import build_flow

    return len(build_flow(kind, n_layers, 4, 1).layers)  # type: ignore[arg-type]


def family(model: str) -> str:
    """The engine family of a model key (``exact``, ``diffusion``, ``rf``, ``flow``, ``gan``)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {tuple(MODELS)}")
    return MODELS[model][1]


@dataclass(frozen=True)
class LabTrainSnapshot:
    """One frame of a learned model's training, the same shape for every family.

    Curves are whole histories (one point per engine chunk): ``loss`` against ``loss_steps``
    (MSE for diffusion/RF, NLL in nats for flows, G loss for GANs, with ``loss_d`` the D
    loss), ``quality`` (sliced W2 of the latest samples to the target) against
    ``quality_steps``. ``samples`` is the latest known sample set (it may be from an earlier
    frame: the engines sample only every few chunks); ``fresh`` says it is new.
    """

    model: str
    step: int
    loss_steps: np.ndarray
    loss: np.ndarray
    loss_d: np.ndarray | None
    floor: float | None
    quality_steps: np.ndarray
    quality: np.ndarray
    samples: np.ndarray
    fresh: bool
    lr: float
    batch_size: int
    steps_per_s: float
    config: dict | None = None
    state: dict | None = None
    heatmap: np.ndarray | None = None  # flow density / GAN critic, image-oriented
    extent: Extent | None = None
    push_points: np.ndarray | None = None
    push: np.ndarray | None = None
    manifold: np.ndarray | None = None
    modes_hit: int | None = None
    n_modes: int | None = None
    high_quality: float | None = None

    @property
    def points(self) -> np.ndarray:
        """What export and the window's tests call the particles on screen."""
        return self.samples


class _GanParams:
    """The Lab's one ``lr`` and the chosen loss, seen through the GAN engine's names.

    ``gan_train_job`` reads ``params.get()`` before every generator step; this view maps
    ``lr`` to both ``lr_g`` and ``lr_d`` and fills the loss's preset (``n_critic``, clip,
    penalty weight), so the Lab's lr spin box stays live for GANs too.
    """

    def __init__(self, box: ParamBox, loss: str) -> None:
        from engines.gans import GAN_PRESETS

        self.box = box
        self.loss = loss
        self.preset = dict(GAN_PRESETS[loss])

    def get(self) -> dict:
        p = self.box.get()
        lr = float(p.get("lr", self.preset.get("lr_g", 1e-3)))
        return {**self.preset, **p, "loss": self.loss, "lr_g": lr, "lr_d": lr}


class _Curve:
    """A growing (step, value) history, halved when long so drawing stays cheap."""

    def __init__(self, limit: int = 4000) -> None:
        self.x: list[float] = []
        self.y: list[float] = []
        self.limit = limit

    def add(self, x: float, y: float) -> None:
        self.x.append(float(x))
        self.y.append(float(y))
        if len(self.x) > self.limit:
            self.x, self.y = self.x[::2], self.y[::2]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.x, np.float64), np.asarray(self.y, np.float64)


def _extent_pairs(extent: Sequence[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    return (xmin, xmax), (ymin, ymax)


def lab_train_job(
    model: str,
    params: ParamBox,
    *,
    data: str | np.ndarray,
    target: np.ndarray,
    width: int | None = None,
    depth: int | None = None,
    conditional: bool = False,
    seed: int = 0,
    extent: Sequence[float] = (-4.0, 4.0, -4.0, 4.0),
    device: torch.device | str | None = None,
    quality_every_s: float = 0.5,
    quality_n: int = 1000,
    max_steps: int | None = None,
) -> Iterator[LabTrainSnapshot]:
    """Train ``model`` on ``data`` (a toy data set name, or points for diffusion/RF).

    Live ``params``: ``lr``, ``batch_size``, ``temperature`` (flows), read by the engines at
    every chunk. The sliced W2 to ``target`` is measured on at most ``quality_n`` of each new
    sample set, at most every ``quality_every_s`` seconds (it costs ~20 ms, a chunk is ~30).
    Flows and GANs train on named data sets only (their engines draw fresh batches by name).
    """
    from engines.metrics import sliced_wasserstein

    fam = family(model)
    w_def, d_def = ARCH_DEFAULTS.get(fam, (64, 2))
    width = int(width or w_def)
    depth = int(depth or d_def)
    if fam in ("flow", "gan") and not isinstance(data, str):
        raise ValueError("flows and GANs in the Lab train on the named toy data sets only")
    tgt = np.asarray(target, dtype=np.float64).reshape(-1, 2)[:quality_n]
    loss, loss_d, quality = _Curve(), _Curve(), _Curve()
    last_quality = -math.inf
    samples = np.zeros((0, 2), np.float32)
    config: dict | None = None
    state: dict | None = None
    floor: float | None = None
    dev = torch.device(device) if device is not None else torch.device("cpu")
    inner: Iterator
    if fam == "diffusion":
        from engines.diffusion import diffusion_train_job

        inner = diffusion_train_job(params, data, width=width, depth=depth, conditional=conditional,
                                    preview_every=100, preview_n=quality_n, seed=seed, device=dev,
                                    max_steps=max_steps)
    elif fam == "rf":
        from engines.flow_matching import fm_train_job

        inner = fm_train_job(params, data, width=width, depth=depth, conditional=conditional,
                             preview_every=100, preview_n=quality_n, seed=seed, device=dev,
                             max_steps=max_steps)
    elif fam == "flow":
        from engines.flows import flow_train_job

        assert isinstance(data, str)
        inner = flow_train_job(params, dataset=data, kind=model, n_layers=FLOW_LAYERS,  # type: ignore[arg-type]
                               hidden=width, depth=depth, seed=seed, extent=_extent_pairs(extent),
                               n_vis_samples=quality_n, device=dev, max_steps=max_steps)
    elif fam == "gan":
        from engines.gans import gan_train_job

        assert isinstance(data, str)
        inner = gan_train_job(_GanParams(params, GAN_LOSS_OF[model]), dataset=data,  # type: ignore[arg-type]
                              hidden=width, depth=depth, seed=seed, extent=_extent_pairs(extent),
                              n_vis_samples=quality_n, device=dev, max_steps=max_steps)
    else:
        raise ValueError("the exact oracle has nothing to train")
    p = params.get()
    extras: dict = {}  # sticky: the engines send views every few chunks, frames show the latest
    for snap in inner:
        new_samples: np.ndarray | None
        if fam in ("diffusion", "rf"):
            loss.add(snap.step, snap.loss)
            new_samples = snap.preview
            if snap.state is not None:
                state, config = snap.state, snap.config
            lr, batch, rate = snap.lr, snap.batch_size, snap.steps_per_s
        elif fam == "flow":
            loss.add(snap.step, snap.nll)
            floor = snap.entropy
            new_samples = snap.samples
            if snap.state is not None:
                state, config = snap.state, snap.config
            if snap.density is not None:
                extras.update(heatmap=snap.density, extent=tuple(v for pair in snap.extent for v in pair))
            lr, batch, rate = snap.lr, snap.batch_size, snap.steps_per_s
        else:
            loss.add(snap.step, snap.loss_g)
            loss_d.add(snap.step, snap.loss_d)
            new_samples = snap.samples
            if snap.heatmap is not None:
                extras.update(heatmap=snap.heatmap, extent=tuple(v for pair in snap.extent for v in pair),
                              push_points=snap.push_points, push=snap.push, manifold=snap.manifold)
            if snap.coverage is not None:
                extras.update(modes_hit=snap.coverage.modes_hit, n_modes=snap.coverage.n_modes,
                              high_quality=snap.coverage.high_quality)
            p = params.get()
            lr, batch, rate = float(p.get("lr", 1e-3)), int(p.get("batch_size", 256)), snap.steps_per_s
        fresh = new_samples is not None
        if new_samples is not None:
            samples = np.asarray(new_samples, np.float32)
            now = time.perf_counter()
            finite = samples[np.isfinite(samples).all(axis=1)]
            if now - last_quality >= quality_every_s and len(finite) and len(tgt):
                quality.add(snap.step, sliced_wasserstein(finite[:quality_n], tgt, n_projections=100))
                last_quality = now
        ls, lv_ = loss.arrays()
        qs, qv = quality.arrays()
        yield LabTrainSnapshot(
            model=model, step=int(snap.step), loss_steps=ls, loss=lv_,
            loss_d=loss_d.arrays()[1] if fam == "gan" else None, floor=floor,
            quality_steps=qs, quality=qv, samples=samples, fresh=fresh, lr=float(lr),
            batch_size=int(batch), steps_per_s=float(rate), config=config, state=state, **extras,
        )


# ---------------------------------------------------------------------- sampling learned models


@dataclass(frozen=True)
class LabSampleSnapshot:
    """Samples of a learned (or the exact) model with one sampler at one NFE, and 64 paths."""

    samples: np.ndarray
    trajectories: np.ndarray  # (T, M, 2), T <= 201
    nfe: int
    sampler: str
    exact: bool
    swd: float | None

    @property
    def points(self) -> np.ndarray:
        return self.samples


def _vp_schedule():  # the schedule diffusion_train_job trains with (its default)
    from engines.diffusion import VPSchedule

    return VPSchedule()


def _model_fn(fam: str, config: dict | None, state: dict | None, gmm: GaussianMixture | None,
              exact: bool):
    """The eps (diffusion) or velocity (RF) model function: the trained net, or the oracle."""
    if exact:
        if gmm is None:
            raise ValueError("the exact model exists only for Gaussian-mixture targets")
        if fam == "diffusion":
            from engines.diffusion import oracle_eps_model

            return oracle_eps_model(gmm, _vp_schedule())
        from engines.flow_matching import oracle_velocity_model

        return oracle_velocity_model(gmm)
    if config is None or state is None:
        raise ValueError("no trained weights yet: train the model first")
    from engines.nets import net_from_state

    net = net_from_state(config, state)
    if fam == "diffusion":
        from engines.diffusion import net_eps_model

        return net_eps_model(net, _vp_schedule())
    from engines.flow_matching import net_velocity_model

    return net_velocity_model(net)


def lab_sample(
    fam: str,
    *,
    config: dict | None,
    state: dict | None,
    gmm: GaussianMixture | None = None,
    exact: bool = False,
    sampler: str = "ddim",
    nfe: int = 50,
    eta: float = 0.0,
    guidance: float = 1.0,
    n: int = 2000,
    seed: int = 0,
    n_traj: int = 64,
    target: np.ndarray | None = None,
) -> LabSampleSnapshot:
    """Sample ``n`` points from a diffusion or RF model (weights from a training snapshot).

    Diffusion: any of :data:`engines.samplers.SAMPLERS` at ``nfe`` model evaluations on the
    VP schedule the model was trained with. RF: Euler or Heun on ``dx/dt = v`` (any other
    sampler name means Euler). A conditional model (``config['n_classes'] > 0``) is sampled
    with classifier-free guidance of scale ``guidance`` over all classes in turn; the exact
    model is conditioned the same way. The same ``seed`` gives the same starting noise, so
    moving a slider shows the sampler changing, not the noise.
    """
    from engines import samplers
    from engines.flow_matching import ode_sample

    if fam not in ("diffusion", "rf"):
        raise ValueError(f"sampling controls apply to diffusion and RF, not {fam!r}")
    nfe = max(1, int(nfe))
    base = _model_fn(fam, config, state, gmm, exact)
    n_classes = int((config or {}).get("n_classes", 0))
    if exact and n_classes and gmm is not None:
        n_classes = gmm.n_components
    labels = None
    model = base
    if n_classes > 0:
        labels = torch.arange(int(n)) % n_classes
        model = samplers.cfg_model(base, float(guidance))
    gen = torch.Generator().manual_seed(int(seed))
    x0 = torch.randn(int(n), 2, generator=gen)
    if fam == "diffusion":
        res = samplers.sample(sampler, model, x0, _vp_schedule(), nfe=nfe, eta=float(eta),
                              labels=labels, generator=gen, return_trajectory=True)
    else:
        method = "heun" if sampler == "heun" else "euler"
        steps = max(1, nfe // 2) if method == "heun" else nfe
        res = ode_sample(model, x0, steps, method=method, labels=labels, return_trajectory=True)
        sampler = method
    traj = np.zeros((0, 0, 2), np.float32)
    if res.trajectory is not None:
        t_idx = np.unique(np.linspace(0, res.trajectory.shape[0] - 1, 201).round().astype(int))
        traj = np.ascontiguousarray(res.trajectory[t_idx, :n_traj])
    swd = None
    out = np.asarray(res.samples, np.float32)
    finite = out[np.isfinite(out).all(axis=1)]
    if target is not None and len(finite):
        from engines.metrics import sliced_wasserstein

        swd = sliced_wasserstein(finite[:1000], np.asarray(target)[:1000], n_projections=100)
    return LabSampleSnapshot(samples=out, trajectories=traj, nfe=int(res.nfe), sampler=sampler,
                             exact=exact, swd=swd)


def sample_job(fam: str, **kwargs) -> Iterator[LabSampleSnapshot]:
    """:func:`lab_sample` as a one-step job, for the panel's sampling runner."""
    yield lab_sample(fam, **kwargs)


@dataclass(frozen=True)
class NfeCurve:
    """Sliced W2 to the target against NFE, for one sampler (grows one NFE per step)."""

    sampler: str
    nfe: np.ndarray
    swd: np.ndarray
    done: bool


def nfe_curve_job(
    fam: str,
    *,
    target: np.ndarray,
    nfes: Sequence[int] = NFE_GRID,
    n: int = 1000,
    **kwargs,
) -> Iterator[NfeCurve]:
    """Quality against NFE: one :func:`lab_sample` per NFE (same noise), one snapshot each."""
    xs: list[int] = []
    ys: list[float] = []
    sampler = str(kwargs.get("sampler", "ddim"))
    for i, k in enumerate(nfes):
        snap = lab_sample(fam, nfe=int(k), n=n, target=target, n_traj=0, **kwargs)
        xs.append(snap.nfe)
        ys.append(float("nan") if snap.swd is None else snap.swd)
        sampler = snap.sampler
        yield NfeCurve(sampler, np.asarray(xs), np.asarray(ys), i == len(nfes) - 1)


# ---------------------------------------------------------------------- flow and GAN views


@dataclass(frozen=True)
class FlowLayerView:
    """The flow after its first ``k`` generative layers (of ``n_layers``).

    ``grid`` (L, P, 2): a latent coordinate grid pushed through layers 1..k; ``base``: base
    samples (at the temperature) pushed the same way; ``data_latent``: the data pulled back
    through the remaining layers k+1..K, i.e. into the *same* intermediate space, so a good
    model shows ``base`` and ``data_latent`` on top of each other at every k.
    """

    k: int
    n_layers: int
    label: str
    grid: np.ndarray
    base: np.ndarray
    data_latent: np.ndarray


def latent_grid(lines: int = 15, points: int = 80, span: float = 3.0) -> np.ndarray:
    """(2 lines, points, 2): horizontal then vertical lines of the square [-span, span]^2."""
    c = np.linspace(-span, span, lines)
    u = np.linspace(-span, span, points)
    horiz = np.stack(np.broadcast_arrays(u[None, :], c[:, None]), axis=-1)
    vert = np.stack(np.broadcast_arrays(c[:, None], u[None, :]), axis=-1)
    return np.concatenate([horiz, vert]).astype(np.float32)


def flow_layer_view(
    config: dict,
    state: dict,
    k: int,
    *,
    data: np.ndarray,
    temperature: float = 1.0,
    n: int = 1000,
    seed: int = 0,
) -> FlowLayerView:
    """Rebuild a flow from a training snapshot's weights and show it after ``k`` layers."""
    from engines.flows import build_flow

    flow = build_flow(**config)
    flow.load_state_numpy(state)
    flow.eval()
    n_layers = len(flow.layers)
    k = max(0, min(int(k), n_layers))
    grid = latent_grid()
    with torch.no_grad():
        warped = flow.forward_layers(grid.reshape(-1, 2), k)[-1].reshape(grid.shape)
        z = np.random.default_rng(seed).standard_normal((n, 2)) * float(temperature)
        base = flow.forward_layers(z.astype(np.float32), k)[-1]
        back = flow.inverse_layers(np.asarray(data, np.float32)[:n])[n_layers - k]
    labels = flow.layer_labels()
    label = "base N(0, I)" if k == 0 else labels[k - 1]
    return FlowLayerView(k, n_layers, label, warped, base, back)


def flow_view_job(config: dict, state: dict, k: int, **kwargs) -> Iterator[FlowLayerView]:
    """:func:`flow_layer_view` as a one-step job."""
    yield flow_layer_view(config, state, k, **kwargs)


def heat_levels(image: np.ndarray, log: bool = True, span: float = 8.0) -> tuple[np.ndarray, float, float]:
    """A heat map ready to draw: ``(values, low, high)`` for a colour map.

    ``log=True`` (densities): natural log, floored ``span`` nats below the peak, so the
    tails between modes stay visible. ``log=False`` (critic values): the raw values with
    levels at their 2nd and 98th percentiles (a WGAN critic's offset is meaningless).
    """
    img = np.asarray(image, np.float64)
    if log:
        out = np.log(np.maximum(img, 1e-300))
        hi = float(np.nanmax(out)) if out.size else 0.0
        lo = hi - span
        return np.maximum(out, lo).astype(np.float32), lo, hi
    finite = img[np.isfinite(img)]
    if not finite.size:
        return img.astype(np.float32), 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [2.0, 98.0]))
    if hi <= lo:
        hi = lo + 1e-6
    return img.astype(np.float32), lo, hi


def polyline_arrays(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L, P, 2) polylines -> ``x, y, connect`` for one ``PlotCurveItem`` (no joins between lines)."""
    arr = np.asarray(lines, np.float64)
    if arr.ndim != 3 or arr.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, bool)
    n_lines, n_pts, _ = arr.shape
    connect = np.ones((n_lines, n_pts), bool)
    connect[:, -1] = False
    return arr[..., 0].ravel(), arr[..., 1].ravel(), connect.ravel()


def manifold_lines(manifold: np.ndarray) -> np.ndarray:
    """A GAN's (rows, n, 2) latent-grid image -> its rows and columns as polylines."""
    m = np.asarray(manifold, np.float64)
    if m.ndim != 3 or m.shape[0] < 2:
        return m.reshape(1, -1, 2) if m.size else np.zeros((0, 0, 2))
    if m.shape[0] != m.shape[1]:  # not a square sheet: rows only (one polyline length)
        return m
    return np.concatenate([m, m.transpose(1, 0, 2)])


@dataclass(frozen=True)
class FieldView:
    """A learned model's field at one time, next to the exact one (mixture targets).

    Diffusion: the score ``-eps/sqrt(1 - ab(t))`` (VP time, noise at t = 1); RF: the velocity
    (noise at t = 0). ``origins``/``learned``/``exact`` on an n x n arrow grid; ``diff`` is
    ``|learned - exact|`` on a res x res image grid (row 0 = top), ``None`` without an oracle.
    """

    t: float
    origins: np.ndarray
    learned: np.ndarray
    exact: np.ndarray | None
    diff: np.ndarray | None
    extent: Extent


def field_view(
    fam: str,
    *,
    config: dict | None,
    state: dict | None,
    gmm: GaussianMixture | None,
    t: float,
    extent: Sequence[float],
    n: int = 21,
    res: int = 64,
) -> FieldView:
    """Evaluate the learned field (and the exact one, if any) for the difference view."""
    if fam not in ("diffusion", "rf"):
        raise ValueError(f"fields exist for diffusion and RF, not {fam!r}")
    t = min(1.0, max(0.02, float(t)))
    learned_fn = _model_fn(fam, config, state, None, exact=False)
    exact_fn = _model_fn(fam, None, None, gmm, exact=True) if gmm is not None else None
    scale = 1.0
    if fam == "diffusion":
        scale = -1.0 / math.sqrt(max(1.0 - float(_vp_schedule().alpha_bar(t)), 1e-12))

    def evaluate(fn, pts: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32))
        with torch.inference_mode():
            out = fn(x, t, None)
        return out.detach().cpu().numpy().astype(np.float64) * scale  # a copy: FastMLP reuses its buffer

    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    origins = grid_points(extent, n)
    learned = evaluate(learned_fn, origins)
    exact = diff = None
    if exact_fn is not None:
        exact = evaluate(exact_fn, origins)
        xs = xmin + (np.arange(res) + 0.5) * (xmax - xmin) / res
        ys = ymax - (np.arange(res) + 0.5) * (ymax - ymin) / res
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        d = evaluate(learned_fn, pts) - evaluate(exact_fn, pts)
        diff = np.hypot(d[:, 0], d[:, 1]).reshape(res, res)
    return FieldView(t, origins, learned, exact, diff, (xmin, xmax, ymin, ymax))


def field_job(fam: str, **kwargs) -> Iterator[FieldView]:
    """:func:`field_view` as a one-step job."""
    yield field_view(fam, **kwargs)
