"""Exact views for the 2D Lab: forward marginals, oracle vector fields, the exact ODE job.

Why this module exists: the Lab's first views need no trained model. For a Gaussian-mixture
target the noised marginals, the score of VP diffusion and the marginal velocity of rectified
flow are known in closed form (:mod:`engines.gmm`), so the panel can show *the truth*: the
cloud at any t of the forward process, the exact field at that t, and the probability-flow
ODE of a perfect model carrying noise onto the data. Learned models (their own issues) are
later compared against exactly these views.

Time conventions (each process keeps its own, as in the papers and in ``reference.md``):

* ``"vp"`` (diffusion): ``x_t = sqrt(ab(t)) x0 + sqrt(1 - ab(t)) eps``; data at ``t = 0``,
  noise at ``t = 1``. ``ab`` is :class:`engines.diffusion.VPSchedule` of the chosen kind
  (``"linear"``, the default, or ``"cosine"``): the *same* schedule the learned diffusion
  trains and samples with, so exact and learned views of one t agree. ``ab(1)`` is tiny but
  not 0 (4.3e-5 linear, 1e-5 cosine): p_1 is N(0, I) to within ``sqrt(ab(1)) |x0|`` ~ 0.02.
* ``"rf"`` (rectified flow): ``x_t = (1 - t) eps + t x1``; noise at ``t = 0``, data at ``t = 1``.

Pure numpy/torch: never imports Qt.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from engines.gmm import GaussianMixture, rf_velocity, vp_score, vp_x0
from engines.jobs import ParamBox

if TYPE_CHECKING:  # imported lazily at run time, like the other engines used here
    from engines.diffusion import VPSchedule

__all__ = [
    "ARCH_DEFAULTS",
    "ERROR_NFES",
    "MODELS",
    "NFE_GRID",
    "PROCESSES",
    "SAMPLER_LABELS",
    "STRAIGHTNESS_MIN_STEPS",
    "ClassifierSnapshot",
    "ErrorCurve",
    "FieldView",
    "FlowLayerView",
    "LabComparison",
    "LabSampleSnapshot",
    "LabSnapshot",
    "LabTrainSnapshot",
    "NfeCurve",
    "alpha_bar",
    "arrow_display_vectors",
    "classifier_train_job",
    "compare_job",
    "data_end",
    "default_lr",
    "draw_source",
    "error_curve_job",
    "family",
    "field_job",
    "field_view",
    "flow_layer_view",
    "flow_view_job",
    "forward_marginal",
    "gan_defaults",
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
    "reflow_job",
    "sample_job",
    "vector_field",
    "vp_schedule",
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


def vp_schedule(schedule: str = "linear") -> VPSchedule:
    """The :class:`engines.diffusion.VPSchedule` of kind ``schedule`` (one per kind, cached).

    Why one place: the exact views, the learned diffusion's training, its samplers and the
    classifier must all share one ``ab(t)``, or "the same t" would mean different noise levels.
    """
    return _vp_schedule_cached(str(schedule))


@functools.lru_cache(maxsize=4)
def _vp_schedule_cached(kind: str) -> VPSchedule:
    from engines.diffusion import VPSchedule

    return VPSchedule(kind=kind)  # type: ignore[arg-type]  # VPSchedule validates the kind


def alpha_bar(t: float, schedule: str = "linear") -> float:
    """``ab(t)`` of the VP schedule (``ab(0) = 1``; ``ab(1)`` = 4.3e-5 linear, 1e-5 cosine)."""
    return float(vp_schedule(schedule).alpha_bar(min(1.0, max(0.0, float(t)))))


def noise_end(process: str) -> float:
    """The time at which ``process`` is pure N(0, I) noise (VP: 1, RF: 0)."""
    _check_process(process)
    return 1.0 if process == "vp" else 0.0


def data_end(process: str) -> float:
    """The time at which ``process`` is the data (VP: 0, RF: 1)."""
    return 1.0 - noise_end(process)


def forward_marginal(process: str, data: np.ndarray, noise: np.ndarray, t: float,
                     schedule: str = "linear") -> np.ndarray:
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
        ab = alpha_bar(t, schedule)
        x = math.sqrt(ab) * d + math.sqrt(1.0 - ab) * e
    else:
        x = (1.0 - t) * e + t * d
    return x.astype(np.float32)


def marginal_mixture(gmm: GaussianMixture, process: str, t: float,
                     schedule: str = "linear") -> GaussianMixture:
    """The exact marginal p_t of a mixture target (itself a mixture)."""
    _check_process(process)
    t = min(1.0, max(0.0, float(t)))
    return gmm.noised_vp(alpha_bar(t, schedule)) if process == "vp" else gmm.interpolated_rf(t)


def grid_points(extent: Sequence[float], n: int = 21) -> np.ndarray:
    """An n x n grid of arrow origins inside ``extent``, (n*n, 2) float64, cell-centred."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    xs = xmin + (np.arange(n) + 0.5) * (xmax - xmin) / n
    ys = ymin + (np.arange(n) + 0.5) * (ymax - ymin) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def vector_field(gmm: GaussianMixture, process: str, t: float, pts: np.ndarray,
                 schedule: str = "linear") -> np.ndarray:
    """The exact field at ``pts``: VP score ``grad log p_t`` or RF velocity ``E[x1 - x0 | x_t]``.

    VP at ``t = 0`` is evaluated at ``ab = 1 - 1e-4``: the data's own score, finite because
    every component has a positive-definite covariance.
    """
    _check_process(process)
    x = torch.from_numpy(np.asarray(pts, dtype=np.float64).reshape(-1, 2))
    t = min(1.0, max(0.0, float(t)))
    if process == "rf":
        return rf_velocity(gmm, x, t).numpy()
    return vp_score(gmm, x, min(alpha_bar(t, schedule), 1.0 - 1e-4)).numpy()


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
    schedule: str = "linear",
) -> Iterator[LabSnapshot]:
    """The exact probability-flow ODE from ``noise`` (n, 2) to the mixture, one step per frame.

    Each step advances the process time by ``speed / n_frames`` (``params['speed']``, read
    live), so at speed 1 the trip takes ``n_frames`` steps. VP uses the DDIM update with the
    exact posterior mean ``E[x0 | x_t]`` (the exact discretisation of the VP probability-flow
    ODE in ``sigma/sqrt(ab)``, finite at ``ab = 0``); RF uses Euler on the exact velocity.
    ``frame_seconds`` paces steps so the trip is watchable (0 runs flat out, for tests).
    ``schedule``: the VP ``ab(t)`` (see :func:`alpha_bar`); the start is N(0, I), which is
    p_1 up to ``sqrt(ab(1))`` ~ 0.007 times the data scale. The first snapshot is the noise
    itself at step 0.
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
            ab_a, ab_b = alpha_bar(t_a, schedule), alpha_bar(t_b, schedule)
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
    "gan": ("GAN: vanilla (minimax / non-saturating)", "gan"),
    "wgan": ("GAN: WGAN (clipping)", "gan"),
    "wgan-gp": ("GAN: WGAN-GP", "gan"),
}
#: model -> its default GAN loss; only ``gan`` may switch (``params['gan_loss']``, see
#: :data:`GAN_VANILLA_LOSSES`): the WGANs' loss is what makes them WGANs.
GAN_LOSS_OF: dict[str, str] = {"gan": "nonsaturating", "wgan": "wgan", "wgan-gp": "wgan-gp"}
#: The two generator losses of the vanilla GAN (same discriminator, Goodfellow et al. 2014).
GAN_VANILLA_LOSSES: tuple[str, ...] = ("nonsaturating", "minimax")
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
    schedule: str = "linear"  # the VP schedule a diffusion model trains with
    straightness: float | None = None  # RF: of the latest preview's Euler paths (0 = straight)
    reflow_round: int = 0  # RF: 0 for the 1-rectified flow, k after k reflows

    @property
    def points(self) -> np.ndarray:
        """What export and the window's tests call the particles on screen."""
        return self.samples


def gan_defaults(model: str) -> dict[str, float | int]:
    """The starting GAN controls of a model: ``{"lr_g", "lr_d", "n_critic"}``.

    For the panel to fill its spin boxes when the user picks a GAN (and what
    :class:`_GanParams` falls back to for any control the box lacks): the engine's tested
    preset for the model's loss (:data:`engines.gans.GAN_PRESETS`), e.g. five critic steps
    and a smaller RMSprop rate for clipped WGAN. Raises ``ValueError`` for a non-GAN model.
    """
    from engines.gans import GAN_PRESETS

    if family(model) != "gan":
        raise ValueError(f"{model!r} is not a GAN; choose one of {tuple(GAN_LOSS_OF)}")
    preset = GAN_PRESETS[GAN_LOSS_OF[model]]
    return {"lr_g": float(preset["lr_g"]), "lr_d": float(preset["lr_d"]),
            "n_critic": int(preset["n_critic"])}


class _GanParams:
    """The Lab's live controls, seen through the GAN engine's names.

    ``gan_train_job`` reads ``params.get()`` before every generator step, so every control
    read here is live. ``lr_g``/``lr_d`` each fall back to the Lab's one ``lr``, then to the
    preset (two time-scale training needs them apart; a plain lr box still works);
    ``n_critic`` falls back to the preset. ``gan_loss`` ("nonsaturating", the default, or
    "minimax") switches the generator loss of model ``gan`` only: the WGANs keep their own
    loss whatever the box says. The loss's preset also fills clip / penalty weight.
    """

    def __init__(self, box: ParamBox, model: str) -> None:
        from engines.gans import GAN_PRESETS

        if model not in GAN_LOSS_OF:
            raise ValueError(f"{model!r} is not a GAN; choose one of {tuple(GAN_LOSS_OF)}")
        self.box = box
        self.model = model
        self.presets = GAN_PRESETS

    def loss(self, p: dict) -> str:
        """The engine loss for the box's current values (see the class docstring)."""
        if self.model != "gan":
            return GAN_LOSS_OF[self.model]
        loss = str(p.get("gan_loss", GAN_LOSS_OF["gan"]))
        if loss not in GAN_VANILLA_LOSSES:
            raise ValueError(f"gan_loss must be one of {GAN_VANILLA_LOSSES}, got {loss!r}")
        return loss

    def get(self) -> dict:
        p = self.box.get()
        loss = self.loss(p)
        preset = dict(self.presets[loss])
        lr = p.get("lr")
        lr_g = float(p.get("lr_g", lr if lr is not None else preset["lr_g"]))
        lr_d = float(p.get("lr_d", lr if lr is not None else preset["lr_d"]))
        n_critic = int(p.get("n_critic", preset["n_critic"]))
        return {**preset, **p, "loss": loss, "lr_g": lr_g, "lr_d": lr_d, "n_critic": n_critic}


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


def _check_finite(fam: str, step: int, loss: float, loss_d: float, lr: float) -> None:
    """Stop a diverged run with a message the user can act on (the runner shows it as is).

    Why stop rather than carry on: once a weight is NaN every later step is NaN too, and the
    samples on screen would vanish; the panel keeps the last good frame instead."""
    from engines.jobs import JobStopped

    if math.isfinite(loss) and math.isfinite(loss_d):
        return
    what = {"flow": "negative log-likelihood", "gan": "GAN loss"}.get(fam, "loss")
    bad = loss if not math.isfinite(loss) else loss_d
    raise JobStopped(
        f"Training diverged at step {step:,}: the {what} became {bad}. The last good samples "
        f"stay on screen. Lower the learning rate (it was {lr:.2g}) and press Train to start "
        "a new model.")


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
    latent_dim: int = 2,
    schedule: str = "linear",
    prediction: str = "eps",
    source: str | np.ndarray = "gaussian",
    coupling: str = "independent",
    t_sampling: str = "uniform",
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    init: tuple[dict, dict] | None = None,
    reflow_round: int = 0,
    resume: tuple[dict, dict] | None = None,
    step_offset: int = 0,
) -> Iterator[LabTrainSnapshot]:
    """Train ``model`` on ``data`` (a toy data set name, or a user's (n, 2) point set).

    Live ``params``: ``lr``, ``batch_size``, ``temperature`` (flows), read by the engines at
    every chunk. The sliced W2 to ``target`` is measured on at most ``quality_n`` of each new
    sample set, at most every ``quality_every_s`` seconds (it costs ~20 ms, a chunk is ~30).
    Every model trains on point sets too (their rows are resampled as batches). GANs also
    read ``lr_g``, ``lr_d``, ``n_critic`` and, for ``gan``, ``gan_loss`` live (see
    :class:`_GanParams`, defaults from :func:`gan_defaults`); ``latent_dim`` is the GAN's
    latent size, fixed for the run like the architecture.

    Diffusion trains on the VP ``schedule`` (``"linear"``/``"cosine"``, the one the exact
    views use) with the network predicting ``prediction`` (``"eps"``, ``"x0"`` or ``"v"``;
    the loss is the MSE of that target, and sampling converts it to ε). Rectified flow:
    ``source`` (``"gaussian"``, a toy name or points), ``coupling`` (``"independent"``/``"ot"``)
    and ``t_sampling`` (``"uniform"``/``"logit_normal"``) go to
    :func:`engines.flow_matching.fm_train_job`, whose previews' path straightness lands in
    ``straightness``. ``pairs``/``init``/``reflow_round`` are :func:`reflow_job`'s: fixed
    training pairs, ``(config, state)`` to warm-start from, and the round to report.

    ``resume=(config, state)`` continues training exactly that model (a loaded file, see
    :mod:`engines.lab_models`): architecture from ``config``, weights from ``state``, fresh
    optimizer; ``step_offset`` is added to the reported steps so curves carry on.
    """
    from engines.metrics import sliced_wasserstein

    fam = family(model)
    model_obj = None
    if resume is not None:
        from engines.lab_models import rebuild

        model_obj = rebuild(fam, *resume)
        if device is not None:
            model_obj = model_obj.to(torch.device(device))
    w_def, d_def = ARCH_DEFAULTS.get(fam, (64, 2))
    width = int(width or w_def)
    depth = int(depth or d_def)
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

        inner = diffusion_train_job(params, data, net=model_obj, width=width, depth=depth,
                                    conditional=conditional,
                                    schedule=vp_schedule(schedule), prediction=prediction,  # type: ignore[arg-type]
                                    preview_every=100, preview_n=quality_n, seed=seed, device=dev,
                                    max_steps=max_steps)
    elif fam == "rf":
        from engines.flow_matching import fm_train_job

        inner = fm_train_job(params, data, width=width, depth=depth, conditional=conditional,
                             source=source, coupling=coupling, t_sampling=t_sampling,
                             pairs=pairs,
                             net=model_obj if init is None else _warm_start_net(*init),
                             preview_every=100, preview_n=quality_n, seed=seed, device=dev,
                             max_steps=max_steps)
    elif fam == "flow":
        from engines.flows import flow_train_job

        inner = flow_train_job(params, model_obj, dataset=data, kind=model, n_layers=FLOW_LAYERS,  # type: ignore[arg-type]
                               hidden=width, depth=depth, seed=seed, extent=_extent_pairs(extent),
                               n_vis_samples=quality_n, device=dev, max_steps=max_steps)
    elif fam == "gan":
        from engines.gans import gan_train_job

        inner = gan_train_job(_GanParams(params, model), model_obj, dataset=data,  # type: ignore[arg-type]
                              latent_dim=int(latent_dim), hidden=width, depth=depth, seed=seed,
                              extent=_extent_pairs(extent),
                              n_vis_samples=quality_n, device=dev, max_steps=max_steps)
    else:
        raise ValueError("the exact oracle has nothing to train")
    p = params.get()
    # sticky: the engines send views every few chunks, frames show the latest
    extras: dict = {"schedule": str(schedule), "reflow_round": int(reflow_round)}
    off = int(step_offset)
    for snap in inner:
        new_samples: np.ndarray | None
        step = off + int(snap.step)
        if fam in ("diffusion", "rf"):
            loss.add(step, snap.loss)
            new_samples = snap.preview
            if "straightness" in snap.extra:
                extras["straightness"] = float(snap.extra["straightness"])
            if snap.state is not None:
                state, config = snap.state, snap.config
            lr, batch, rate = snap.lr, snap.batch_size, snap.steps_per_s
        elif fam == "flow":
            loss.add(step, snap.nll)
            floor = snap.entropy
            new_samples = snap.samples
            if snap.state is not None:
                state, config = snap.state, snap.config
            if snap.density is not None:
                extras.update(heatmap=snap.density, extent=tuple(v for pair in snap.extent for v in pair))
            lr, batch, rate = snap.lr, snap.batch_size, snap.steps_per_s
        else:
            loss.add(step, snap.loss_g)
            loss_d.add(step, snap.loss_d)
            new_samples = snap.samples
            if snap.state is not None:
                state, config = snap.state, snap.config
            if snap.heatmap is not None:
                extras.update(heatmap=snap.heatmap, extent=tuple(v for pair in snap.extent for v in pair),
                              push_points=snap.push_points, push=snap.push, manifold=snap.manifold)
            if snap.coverage is not None:
                extras.update(modes_hit=snap.coverage.modes_hit, n_modes=snap.coverage.n_modes,
                              high_quality=snap.coverage.high_quality)
            p = _GanParams(params, model).get()  # the generator's lr is the one shown
            lr, batch, rate = float(p["lr_g"]), int(p.get("batch_size", 256)), snap.steps_per_s
        _check_finite(fam, step, loss.y[-1], loss_d.y[-1] if fam == "gan" else 0.0, lr)
        fresh = new_samples is not None
        if new_samples is not None:
            samples = np.asarray(new_samples, np.float32)
            now = time.perf_counter()
            finite = samples[np.isfinite(samples).all(axis=1)]
            if now - last_quality >= quality_every_s and len(finite) and len(tgt):
                quality.add(step, sliced_wasserstein(finite[:quality_n], tgt, n_projections=100))
                last_quality = now
        ls, lv_ = loss.arrays()
        qs, qv = quality.arrays()
        yield LabTrainSnapshot(
            model=model, step=step, loss_steps=ls, loss=lv_,
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
    straightness: float | None = None  # RF only: see _sample_straightness
    #: every particle at up to :data:`MAX_FRAMES` of the sampler's times, (F, n, 2), and those
    #: process times (F,) (VP: from 1 down to 0; RF: from 0 up to 1): the learned reverse
    #: process, for the panel's t slider
    frames: np.ndarray | None = None
    frame_times: np.ndarray | None = None

    @property
    def points(self) -> np.ndarray:
        return self.samples

    def frame_at(self, t: float) -> tuple[int, np.ndarray] | None:
        """The frame whose time is nearest ``t``: ``(index, points)``, or None without frames."""
        if self.frames is None or self.frame_times is None or not len(self.frame_times):
            return None
        k = int(np.argmin(np.abs(self.frame_times - float(t))))
        return k, self.frames[k]


#: Frames of a sampling run kept for scrubbing (all particles): 61 x 20,000 x 2 float32 is 10 MB.
MAX_FRAMES = 61


def _model_fn(fam: str, config: dict | None, state: dict | None, gmm: GaussianMixture | None,
              exact: bool, schedule: str = "linear", bf16: bool = False):
    """The eps (diffusion) or velocity (RF) model function: the trained net, or the oracle.

    ``bf16``: the trained net's hidden layers in bfloat16 (about 2x faster on CPUs with
    AVX512-BF16, ~1e-3 relative error: a preview precision; the oracle is always float64)."""
    if exact:
        if gmm is None:
            raise ValueError("the exact model exists only for Gaussian-mixture targets")
        if fam == "diffusion":
            from engines.diffusion import oracle_eps_model

            return oracle_eps_model(gmm, vp_schedule(schedule))
        from engines.flow_matching import oracle_velocity_model

        return oracle_velocity_model(gmm)
    if config is None or state is None:
        raise ValueError("no trained weights yet: train the model first")
    from engines.nets import net_from_state

    net = net_from_state(config, state)
    dtype = torch.bfloat16 if bf16 else torch.float32
    if fam == "diffusion":
        from engines.diffusion import net_eps_model

        return net_eps_model(net, vp_schedule(schedule), dtype=dtype)
    from engines.flow_matching import net_velocity_model

    return net_velocity_model(net, dtype=dtype)


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
    schedule: str = "linear",
    source: str | np.ndarray = "gaussian",
    guidance_kind: str = "cfg",
    classifier: tuple[dict, dict] | None = None,
    class_label: int | None = None,
    bf16: bool = False,
) -> LabSampleSnapshot:
    """Sample ``n`` points from a diffusion or RF model (weights from a training snapshot).

    Diffusion: any of :data:`engines.samplers.SAMPLERS` at ``nfe`` model evaluations on the
    VP ``schedule`` the model was trained with. RF: Euler or Heun on ``dx/dt = v`` (any other
    sampler name means Euler), from ``source`` (``"gaussian"``, a toy data set name or a point
    array, as in training; see :func:`draw_source`).

    Guidance. ``guidance_kind="cfg"``: a conditional model (``config['n_classes'] > 0``) is
    sampled with classifier-free guidance of scale ``guidance``; the exact model is
    conditioned the same way when its config says so or a ``class_label`` is given.
    ``guidance_kind="classifier"`` (diffusion only): the *unconditional* model (a conditional
    net's null class; the exact unconditional oracle) plus ``guidance`` times the gradient of
    a noise-aware classifier: the trained one in ``classifier`` (``(config, state)`` of a
    :class:`ClassifierSnapshot`) for a learned model, the exact Bayes posterior
    (:func:`engines.diffusion.oracle_classifier_grad`) for the exact model. ``class_label``
    ``None`` asks for every class in turn (labels ``arange(n) % K``), else every particle
    for that class. The same ``seed`` gives the same starting noise (whatever the sampler,
    guidance or model), so moving a slider shows the sampler changing, not the noise.
    ``bf16=True`` runs a trained net's hidden layers in bfloat16 (the panel's fast preview).
    """
    from engines import samplers
    from engines.flow_matching import ode_sample

    if fam not in ("diffusion", "rf"):
        raise ValueError(f"sampling controls apply to diffusion and RF, not {fam!r}")
    if guidance_kind not in ("cfg", "classifier"):
        raise ValueError(f"guidance_kind must be 'cfg' or 'classifier', got {guidance_kind!r}")
    nfe = max(1, int(nfe))
    n = int(n)
    sched = vp_schedule(schedule)
    base = _model_fn(fam, config, state, gmm, exact, schedule, bf16=bf16)
    labels = None
    model = base
    if guidance_kind == "classifier":
        if fam != "diffusion":
            raise ValueError("classifier guidance applies to diffusion models only")
        from engines.diffusion import classifier_grad, oracle_classifier_grad

        if exact:
            assert gmm is not None  # _model_fn raised otherwise
            grad = oracle_classifier_grad(gmm, sched)
            k = gmm.n_components
        else:
            if classifier is None:
                raise ValueError("classifier guidance needs a trained classifier: train one first")
            from engines.nets import net_from_state

            grad = classifier_grad(net_from_state(*classifier))
            k = int(classifier[0].get("out_dim", 0))
        labels = _guidance_labels(n, k, class_label)
        model = samplers.classifier_guided_model(base, grad, float(guidance), sched)
    else:
        n_classes = int((config or {}).get("n_classes", 0))
        if exact and gmm is not None and (n_classes or class_label is not None):
            n_classes = gmm.n_components
        if n_classes > 0:
            labels = _guidance_labels(n, n_classes, class_label)
            model = samplers.cfg_model(base, float(guidance))
    gen = torch.Generator().manual_seed(int(seed))
    straight: float | None = None
    if fam == "diffusion":
        x0 = torch.randn(n, 2, generator=gen)
        res = samplers.sample(sampler, model, x0, sched, nfe=nfe, eta=float(eta),
                              labels=labels, generator=gen, return_trajectory=True)
    else:
        x0 = draw_source(source, n, seed, generator=gen)
        method = "heun" if sampler == "heun" else "euler"
        steps = max(1, nfe // 2) if method == "heun" else nfe
        res = ode_sample(model, x0, steps, method=method, labels=labels, return_trajectory=True)
        sampler = method
        straight = _sample_straightness(model, x0, labels, res.trajectory)
    traj = np.zeros((0, 0, 2), np.float32)
    frames = frame_times = None
    if res.trajectory is not None:
        last = res.trajectory.shape[0] - 1
        t_idx = np.unique(np.linspace(0, last, 201).round().astype(int))
        traj = np.ascontiguousarray(res.trajectory[t_idx, :n_traj])
        f_idx = np.unique(np.linspace(0, last, MAX_FRAMES).round().astype(int))
        frames = np.ascontiguousarray(res.trajectory[f_idx], dtype=np.float32)
        ts = getattr(res, "ts", None)
        if ts is not None and len(ts) == last + 1:  # the sampler's own time grid (VP)
            frame_times = np.asarray(ts, np.float64)[f_idx]
        else:  # RF integrates on a uniform grid from 0 to 1
            frame_times = f_idx / max(last, 1)
    swd = None
    out = np.asarray(res.samples, np.float32)
    finite = out[np.isfinite(out).all(axis=1)]
    if target is not None and len(finite):
        from engines.metrics import sliced_wasserstein

        swd = sliced_wasserstein(finite[:1000], np.asarray(target)[:1000], n_projections=100)
    return LabSampleSnapshot(samples=out, trajectories=traj, nfe=int(res.nfe), sampler=sampler,
                             exact=exact, swd=swd, straightness=straight, frames=frames,
                             frame_times=frame_times)


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
    schedule: str = "linear",
    **kwargs,
) -> Iterator[NfeCurve]:
    """Quality against NFE: one :func:`lab_sample` per NFE (same noise), one snapshot each."""
    xs: list[int] = []
    ys: list[float] = []
    sampler = str(kwargs.get("sampler", "ddim"))
    for i, k in enumerate(nfes):
        snap = lab_sample(fam, nfe=int(k), n=n, target=target, n_traj=0, schedule=schedule, **kwargs)
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
    schedule: str = "linear",
) -> FieldView:
    """Evaluate the learned field (and the exact one, if any) for the difference view."""
    if fam not in ("diffusion", "rf"):
        raise ValueError(f"fields exist for diffusion and RF, not {fam!r}")
    t = min(1.0, max(0.02, float(t)))
    learned_fn = _model_fn(fam, config, state, None, exact=False, schedule=schedule)
    exact_fn = _model_fn(fam, None, None, gmm, exact=True, schedule=schedule) if gmm is not None else None
    scale = 1.0
    if fam == "diffusion":
        scale = -1.0 / math.sqrt(max(1.0 - alpha_bar(t, schedule), 1e-12))

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


# ====================================================================== RF source, reflow, guidance, compare
#
# Why a section of its own: issue #3's teaching gaps (rectified-flow sources and reflow,
# classifier guidance, side-by-side samplers, Euler vs Heun) all reuse the adapters above
# (lab_train_job, lab_sample); only the glue lives here.

#: Fewest Euler steps a straightness figure is measured on: the paths of a 1-step solve are
#: straight by construction, so coarser sampler runs are re-measured on this many steps (the
#: training previews use the same count, engines.flow_matching.fm_train_job's preview_steps).
STRAIGHTNESS_MIN_STEPS = 20


def draw_source(
    source: str | np.ndarray,
    n: int,
    seed: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` rectified-flow start points (n, 2) float32 from ``source``, reproducibly.

    ``"gaussian"``: N(0, I) from ``generator`` (else a fresh ``torch.Generator`` seeded with
    ``seed``), the very draw :func:`lab_sample` always made, so the shared-noise property of
    the sampling views is kept. A toy data set name: ``toy_data.sample(name, n,
    default_rng(seed))``. A point array: ``n`` of its rows resampled with that generator.
    """
    n = int(n)
    if isinstance(source, str):
        if source == "gaussian":
            gen = generator if generator is not None else torch.Generator().manual_seed(int(seed))
            return torch.randn(n, 2, generator=gen)
        from engines import toy_data

        pts = toy_data.sample(source, n, np.random.default_rng(int(seed)))
        return torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32))
    arr = np.asarray(source, dtype=np.float32).reshape(-1, 2)
    if arr.shape[0] == 0:
        raise ValueError("the source point set is empty")
    idx = np.random.default_rng(int(seed)).integers(0, arr.shape[0], size=n)
    return torch.from_numpy(np.ascontiguousarray(arr[idx]))


def _guidance_labels(n: int, n_classes: int, class_label: int | None) -> torch.Tensor:
    """Class of each particle: all classes in turn (``None``) or one class for all."""
    if n_classes < 1:
        raise ValueError("guidance needs a model or classifier with classes")
    if class_label is None:
        return torch.arange(int(n)) % int(n_classes)
    k = int(class_label)
    if not 0 <= k < n_classes:
        raise ValueError(f"class_label must be in [0, {n_classes}), got {class_label}")
    return torch.full((int(n),), k, dtype=torch.long)


def _path_straightness(traj: np.ndarray) -> float:
    """``mean_i E ||(x_N - x_0) - (x_{i+1} - x_i)/dt||^2`` of a discrete path on a uniform grid.

    For an Euler solve the step slopes are the model's velocities, so this *is*
    :func:`engines.flow_matching.straightness` on the same points and steps (left Riemann
    sum); for Heun it uses the averaged slope each step actually took.
    """
    x = np.asarray(traj, dtype=np.float64)
    steps = x.shape[0] - 1
    disp = x[-1] - x[0]
    slopes = np.diff(x, axis=0) * steps
    good = np.isfinite(x).all(axis=(0, 2))
    if not good.any():
        return float("nan")
    dev = ((slopes[:, good] - disp[None, good]) ** 2).sum(-1)
    return float(dev.mean())


def _sample_straightness(model, x0: torch.Tensor, labels: torch.Tensor | None,
                         traj: np.ndarray | None) -> float:
    """Straightness of an RF sampling run, 0 for straight paths (Liu et al. 2022).

    From the run's own trajectory when it took at least :data:`STRAIGHTNESS_MIN_STEPS`
    steps (free), else one extra Euler solve of that many steps on at most 1000 of the
    same start points, so NFE 1 does not report a meaningless 0.
    """
    if traj is not None and traj.shape[0] - 1 >= STRAIGHTNESS_MIN_STEPS:
        return _path_straightness(traj)
    from engines.flow_matching import straightness

    m = min(1000, x0.shape[0])
    lab = None if labels is None else labels[:m]
    return float(straightness(model, x0[:m], STRAIGHTNESS_MIN_STEPS, lab))


def _warm_start_net(config: dict, state: dict):
    """A trainable *unconditional* copy of a velocity net (reflow's starting point).

    A conditional net's null-class embedding row only ever adds to the first layer's
    pre-activation, so folding it into that layer's bias gives a net without class input
    that computes exactly the old unconditional field: reflow pairs are drawn from that
    field, and the new net starts from it rather than from scratch (Liu et al. 2022 warm-start
    each k-rectified flow from the previous one).
    """
    from engines.nets import TimeMLP

    cfg = {**config, "n_classes": 0}
    sd = {k: torch.from_numpy(np.array(v)) for k, v in state.items() if k != "class_emb.weight"}
    if int(config.get("n_classes", 0)) > 0 and "class_emb.weight" in state:
        null_row = np.asarray(state["class_emb.weight"])[int(config["n_classes"])]
        sd["inp.bias"] = sd["inp.bias"] + torch.from_numpy(np.array(null_row))
    net = TimeMLP(**cfg)
    net.load_state_dict(sd)
    return net


def reflow_job(
    params: ParamBox,
    *,
    config: dict,
    state: dict,
    target: np.ndarray,
    source: str | np.ndarray = "gaussian",
    round_index: int = 1,
    n_pairs: int = 4096,
    ode_steps: int = 100,
    seed: int = 0,
    quality_n: int = 1000,
    quality_every_s: float = 0.5,
    max_steps: int | None = None,
    device: torch.device | str | None = None,
) -> Iterator[LabTrainSnapshot]:
    """Reflow (Liu et al. 2022): train the next rectified flow on the current one's own pairs.

    ``n_pairs`` start points ``x0`` from ``source`` (:func:`draw_source`, seeded by ``seed``
    and ``round_index`` so each round draws new ones) are carried by ``ode_steps`` Euler steps
    of the velocity net ``(config, state)`` (a conditional net: its unconditional field) to
    ``x1``. That deterministic coupling has no crossing paths, so the flow trained on it is
    straighter: fewer Euler steps suffice. The new net is warm-started from ``state`` and
    trained by :func:`lab_train_job` on the fixed pairs (live ``lr``/``batch_size``), so its
    snapshots are the rf ones (loss, sliced W2 to ``target``, ``straightness`` of the
    previews) with ``reflow_round = round_index``. Runs until stopped unless ``max_steps``.
    """
    from engines.flow_matching import net_velocity_model, ode_sample

    init = (config, state)
    net = _warm_start_net(*init)
    x0 = draw_source(source, n_pairs, seed + 7919 * int(round_index))
    x1 = ode_sample(net_velocity_model(net), x0, int(ode_steps)).samples
    pairs = (x0.numpy(), np.asarray(x1, np.float32))
    yield from lab_train_job(
        "rf", params, data=pairs[1], target=target, width=int(config["width"]),
        depth=int(config["depth"]), seed=seed, device=device, quality_every_s=quality_every_s,
        quality_n=quality_n, max_steps=max_steps, pairs=pairs, init=init,
        reflow_round=int(round_index),
    )


@dataclass(frozen=True)
class ClassifierSnapshot:
    """One frame of training a noise-aware classifier for classifier guidance.

    ``accuracy``: on a fixed held-out batch of noised points with ``t ~ U(0, accuracy_t_max)``
    (see :func:`classifier_train_job`); ``bayes_accuracy``: the best any classifier can do on
    that same batch (the exact posterior), ``None`` unless the data is a Gaussian mixture.
    ``state`` (numpy weights) rebuilds the net with :func:`engines.nets.net_from_state`.
    """

    step: int
    total_steps: int
    loss: float
    accuracy: float
    config: dict
    state: dict
    steps_per_s: float
    done: bool
    bayes_accuracy: float | None = None


def classifier_train_job(
    params: ParamBox,
    data: str | np.ndarray,
    labels: np.ndarray | None = None,
    *,
    schedule: str = "linear",
    width: int = 64,
    depth: int = 3,
    steps: int = 1500,
    seed: int = 0,
    accuracy_t_max: float = 0.3,
    accuracy_n: int = 2000,
    chunk_s: float = 0.05,
    device: torch.device | str | None = None,
) -> Iterator[ClassifierSnapshot]:
    """Train ``p(y | x_t, t)`` on the VP forward process of ``schedule``, yielding every ~50 ms.

    Live ``params``: ``lr`` (default 2e-3, decayed by a cosine to a tenth over ``steps``, as
    :func:`engines.diffusion.train_classifier`) and ``batch_size`` (default 256). Training
    times cover all of (0, 1]; the reported accuracy is on ``accuracy_n`` held-out points
    noised at ``t ~ U(0, accuracy_t_max)``: at larger t the classes overlap so much that even
    the exact posterior is near chance, so a full-range figure would hide whether the net has
    learned (8gaussians, linear schedule: Bayes accuracy 0.95 up to t = 0.2, 0.87 up to 0.3,
    0.70 up to 0.5). Labels: a named data set's own classes, or ``labels`` for a point array
    (at least two classes).
    """
    from engines import toy_data
    from engines.diffusion import DataSource, classifier_batches, make_classifier
    from engines.nets import ChunkedTrainer, state_to_numpy

    sched = vp_schedule(schedule)
    rng = np.random.default_rng(seed)
    src = DataSource(data, labels, rng)
    torch.manual_seed(seed)
    clf = make_classifier(src.n_classes, width, depth)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    clf = clf.to(dev)
    trainer = ChunkedTrainer(clf, classifier_batches(clf, src, sched), loss="ce")

    # Held-out batch, drawn from its own generator so training draws are unaffected.
    hold = DataSource(data, labels, np.random.default_rng([seed, 1]))
    x0, y = hold.draw(int(accuracy_n))
    t_acc = hold.rng.uniform(0.0, float(accuracy_t_max), size=len(y))
    ab = sched.alpha_bar(t_acc)[:, None]
    xt = np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * hold.rng.standard_normal(x0.shape)
    feats = clf.input_features(torch.from_numpy(xt.astype(np.float32)).to(dev),
                               torch.from_numpy(t_acc.astype(np.float32)).to(dev))
    bayes = None
    gmm = toy_data.mixture(data) if isinstance(data, str) else None
    if gmm is not None:
        from engines.gmm import posterior_terms

        w = posterior_terms(gmm, torch.from_numpy(xt), torch.from_numpy(np.sqrt(ab[:, 0])),
                            torch.from_numpy(np.sqrt(1.0 - ab[:, 0])))[0]
        bayes = float((w.argmax(1).numpy() == y).mean())

    total = int(steps)
    step_time = 1e-3
    while trainer.steps_done < total:
        p = params.get()
        lr0 = float(p.get("lr", 2e-3))
        batch = max(1, int(p.get("batch_size", 256)))
        done_steps = trainer.steps_done
        k = int(np.clip(chunk_s / max(step_time, 1e-6), 1, 2000))
        k = min(k, total - done_steps)
        frac = (done_steps + 0.5 * k) / max(total, 1)
        lr = lr0 * (0.1 + 0.45 * (1.0 + math.cos(math.pi * frac)))
        t0 = time.perf_counter()
        losses = trainer.run(k, batch, lr)
        dt = time.perf_counter() - t0
        step_time = 0.5 * step_time + 0.5 * dt / k
        with torch.inference_mode():
            pred = clf.forward_features(feats).argmax(1).cpu().numpy()
        yield ClassifierSnapshot(
            step=trainer.steps_done, total_steps=total, loss=float(losses.mean()),
            accuracy=float((pred == y).mean()), config=clf.config(), state=state_to_numpy(clf),
            steps_per_s=k / dt if dt > 0 else float("inf"), done=trainer.steps_done >= total,
            bayes_accuracy=bayes,
        )


@dataclass(frozen=True)
class LabComparison:
    """Two sampling runs from the same starting noise, side by side.

    ``mean_distance``: the mean Euclidean distance between particle i of the left run and
    particle i of the right one. Meaningful because both start from the same points: for two
    deterministic samplers it is how far their answers to the same ODE drift apart.
    """

    left: LabSampleSnapshot
    right: LabSampleSnapshot
    mean_distance: float


def compare_job(fam: str, left: dict, right: dict, **common) -> Iterator[LabComparison]:
    """``lab_sample(fam, **common, **left)`` next to ``lab_sample(fam, **common, **right)``.

    The settings in ``common`` (seed above all, so the starting noise) are shared; ``left``
    and ``right`` override them per side (sampler, NFE, exact vs learned, guidance...).
    One snapshot, when both runs are done.
    """
    a = lab_sample(fam, **{**common, **left})
    b = lab_sample(fam, **{**common, **right})
    m = min(len(a.samples), len(b.samples))
    d = np.linalg.norm(a.samples[:m].astype(np.float64) - b.samples[:m].astype(np.float64), axis=1)
    d = d[np.isfinite(d)]
    yield LabComparison(a, b, float(d.mean()) if d.size else float("nan"))


ERROR_NFES: tuple[int, ...] = (4, 6, 10, 16, 20, 30, 40, 60, 100, 160)


@dataclass(frozen=True)
class ErrorCurve:
    """ODE discretisation error against NFE, per sampler (grows one point per snapshot).

    ``error[s][j]``: RMS distance of sampler ``s``'s samples at ``nfe[s][j]`` evaluations to
    a fine-step Heun solution from the same starting points.
    """

    nfe: dict[str, np.ndarray]
    error: dict[str, np.ndarray]
    done: bool


def error_curve_job(
    fam: str,
    *,
    config: dict | None,
    state: dict | None,
    gmm: GaussianMixture | None,
    exact: bool,
    nfes: Sequence[int] = ERROR_NFES,
    samplers: Sequence[str] = ("euler", "heun"),
    n: int = 1000,
    seed: int = 0,
    schedule: str = "linear",
    reference_steps: int = 400,
    spacing: str = "uniform",
    source: str | np.ndarray = "gaussian",
) -> Iterator[ErrorCurve]:
    """Euler vs Heun (or any deterministic sampler): where does second order start to pay?

    The error of a sampler is its RMS distance to a ``reference_steps``-step Heun solution
    of the same ODE from the same ``n`` start points, so it is the discretisation error
    alone (on the exact model, the only error there is). Diffusion: the PF-ODE on ``spacing``
    (default uniform, the grid :func:`lab_sample` samples on) via
    :func:`engines.samplers.ode_error_at` (Heun's NFE is ``2 steps - 1``); RF: ``dx/dt = v``
    from ``source`` (Heun's NFE is ``2 steps``). Measured on exact 8gaussians, VP linear,
    uniform grid, 1000 points: Euler is ahead at 20 NFE (0.087 vs 0.124), they cross at
    ~40 NFE (0.045 vs 0.043), Heun wins beyond (60: 0.030 vs 0.022; 160: 0.012 vs 0.004).
    """
    from engines import samplers as smp
    from engines.flow_matching import ode_sample

    if fam not in ("diffusion", "rf"):
        raise ValueError(f"error curves apply to diffusion and RF, not {fam!r}")
    allowed = ("euler", "heun", "dpmpp2m", "ddim") if fam == "diffusion" else RF_SAMPLERS
    for s in samplers:
        if s not in allowed:
            raise ValueError(f"{s!r} is not a deterministic {fam} sampler; choose from {allowed}")
    model = _model_fn(fam, config, state, gmm, exact, schedule)
    sched = vp_schedule(schedule)
    if fam == "diffusion":
        x = torch.randn(int(n), 2, generator=torch.Generator().manual_seed(int(seed)))
        ref = smp.ode_reference(model, x, sched, spacing=spacing, reference_steps=reference_steps)
    else:
        x = draw_source(source, int(n), seed)
        ref = ode_sample(model, x, int(reference_steps), method="heun").samples

    def point(method: str, k: int) -> tuple[int, float]:
        if fam == "diffusion":
            return smp.ode_error_at(method, k, model, x, sched, ref, spacing=spacing)
        steps = max(1, k // 2) if method == "heun" else max(1, k)
        res = ode_sample(model, x, steps, method=method)
        return int(res.nfe), float(np.sqrt(np.mean(np.sum((res.samples - ref) ** 2, axis=1))))

    used: dict[str, list[int]] = {s: [] for s in samplers}
    errs: dict[str, list[float]] = {s: [] for s in samplers}
    todo = [(s, int(k)) for s in samplers for k in nfes]
    for i, (s, k) in enumerate(todo):
        nfe_used, err = point(s, k)
        used[s].append(nfe_used)
        errs[s].append(err)
        yield ErrorCurve({m: np.asarray(v, np.int64) for m, v in used.items()},
                         {m: np.asarray(v, np.float64) for m, v in errs.items()},
                         i == len(todo) - 1)
