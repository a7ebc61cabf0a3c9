"""Variance-preserving (DDPM) diffusion on 2-D data: schedules, denoisers, training, guidance.

The forward process is ``x_t = sqrt(ab(t)) x0 + sqrt(1 - ab(t)) eps`` with continuous
``t in [0, 1]`` (``ab`` = alpha-bar, ``ab(0) = 1`` is data, ``ab(1) ~ 0`` is noise). Why
continuous time: every sampler in :mod:`engines.samplers` then works on any time grid (10 or
1000 steps, uniform or Karras), and the classic discrete DDPM table is just one particular
``ab(t)`` (``VPSchedule(T=1000)``), which is how the samplers are cross-checked against
diffusers' schedulers step for step.

Networks predict ``eps``, ``x0`` or ``v = sqrt(ab) eps - sqrt(1 - ab) x0`` (selectable, with
exact conversions), so the GUI can show that the three parameterisations are the same model
with different loss weightings. Samplers only ever see an *eps model function*
``(x, t, labels) -> eps``; :func:`net_eps_model` and :func:`oracle_eps_model` build one from a
trained net or from the exact Gaussian-mixture oracle.

Guidance: classifier-free (label dropout to a null class during training, see
:func:`engines.samplers.cfg_model`) and classifier guidance with a noise-aware classifier
trained on the same forward process (:func:`train_classifier`, :func:`classifier_grad`).

Pure numpy/torch: never imports Qt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from engines.gmm import GaussianMixture, vp_eps, vp_score
from engines.jobs import ParamBox
from engines.nets import (
    ChunkedTrainer,
    FastMLP,
    TimeMLP,
    TrainSnapshot,
    dropped_labels,
    run_train_job,
)
from engines.toy_data import DataSource  # re-exported: it lived here first

__all__ = [
    "PREDICTIONS",
    "DataSource",
    "EpsModel",
    "GradFn",
    "Prediction",
    "VPSchedule",
    "classifier_batches",
    "classifier_grad",
    "convert_prediction",
    "diffusion_batches",
    "diffusion_train_job",
    "make_classifier",
    "make_denoiser",
    "net_eps_model",
    "oracle_classifier_grad",
    "oracle_eps_model",
    "train_classifier",
    "train_diffusion",
]

Prediction = Literal["eps", "x0", "v"]
PREDICTIONS: tuple[str, ...] = ("eps", "x0", "v")
ScheduleKind = Literal["linear", "cosine"]

# (x (N, 2) float32, t in [0, 1], labels (N,) int64 or None) -> eps prediction (N, 2).
# The returned tensor may be a buffer that the next call overwrites (see FastMLP).
EpsModel = Callable[[torch.Tensor, float, "torch.Tensor | None"], torch.Tensor]
# (x, t, labels) -> grad_x log p(labels | x_t), (N, 2)
GradFn = Callable[[torch.Tensor, float, "torch.Tensor | None"], torch.Tensor]


# ====================================================================== schedules


@dataclass(frozen=True)
class VPSchedule:
    """``t -> alpha_bar(t)`` for the VP forward process.

    * ``kind="linear"``: continuous ``beta(t) = beta_min + t (beta_max - beta_min)`` (Song et
      al. 2021), ``ab(t) = exp(-beta_min t - (beta_max - beta_min) t^2 / 2)``. With the
      defaults (0.1, 20) this is the continuous limit of DDPM's table ``beta_k`` linear from
      1e-4 to 0.02 over T = 1000 steps; ``ab(1) = 4.3e-5``.
    * ``kind="cosine"``: Nichol & Dhariwal, ``ab(t) = f(t)/f(0)``, ``f = cos^2(pi/2 (t+s)/(1+s))``,
      floored at ``ab_min`` (``f(1) = 0`` would make the noise scale infinite).
    * ``T`` set: the *discrete* DDPM table of T steps (diffusers' ``linear`` /
      ``squaredcos_cap_v2`` betas), read as a continuous schedule by log-linear interpolation
      with ``ab(k/T) = prod_{j<k} (1 - beta_j)``. diffusers' integer timestep ``tau`` is then
      ``t = (tau + 1) / T`` and its "final alpha = 1" is ``t = 0``.
    """

    kind: ScheduleKind = "linear"
    beta_min: float = 0.1
    beta_max: float = 20.0
    cosine_s: float = 0.008
    ab_min: float = 1e-5
    T: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "cosine"):
            raise ValueError(f"schedule kind must be 'linear' or 'cosine', got {self.kind!r}")
        if self.T is not None and self.T < 1:
            raise ValueError(f"T must be >= 1, got {self.T}")

    # ------------------------------------------------------------------ discrete tables
    def betas(self, T: int | None = None) -> np.ndarray:
        """DDPM's discrete betas (T,) float64, as diffusers builds them."""
        n = int(T if T is not None else (self.T or 1000))
        if self.kind == "linear":
            return np.linspace(self.beta_min / n, self.beta_max / n, n, dtype=np.float64)
        i = np.arange(n, dtype=np.float64)
        f0 = self._cos_f(i / n)
        f1 = self._cos_f((i + 1) / n)
        return np.minimum(1.0 - f1 / f0, 0.999)

    def alphas_cumprod(self, T: int | None = None) -> np.ndarray:
        """Discrete ``ab_k = prod_{j<=k} (1 - beta_j)``, (T,) float64 (diffusers' table)."""
        return np.cumprod(1.0 - self.betas(T))

    def _knots(self) -> np.ndarray:
        """-log ab at t = k/T, k = 0..T (strictly increasing; 0 at t = 0)."""
        assert self.T is not None
        return np.concatenate([[0.0], -np.log(self.alphas_cumprod(self.T))])

    def _cos_f(self, t: np.ndarray | float) -> np.ndarray:
        s = self.cosine_s
        return np.cos((np.asarray(t, dtype=np.float64) + s) / (1.0 + s) * math.pi / 2.0) ** 2

    # ------------------------------------------------------------------ continuous map
    def neg_log_alpha_bar(self, t: np.ndarray | float) -> np.ndarray:
        """``-log ab(t)`` (float64): the integrated beta, the natural clock of the VP SDE."""
        tt = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
        if self.T is not None:
            knots = self._knots()
            return np.interp(tt * self.T, np.arange(self.T + 1, dtype=np.float64), knots)
        if self.kind == "linear":
            return self.beta_min * tt + 0.5 * (self.beta_max - self.beta_min) * tt * tt
        ab = self._cos_f(tt) / self._cos_f(0.0)
        return -np.log(np.clip(ab, self.ab_min, 1.0))

    def alpha_bar(self, t: np.ndarray | float) -> np.ndarray:
        """``ab(t)`` (float64, same shape as ``t``)."""
        return np.exp(-self.neg_log_alpha_bar(t))

    def alpha_bar_torch(self, t: torch.Tensor) -> torch.Tensor:
        """``ab(t)`` for a tensor of times (training), in ``t``'s dtype and device."""
        ab = self.alpha_bar(t.detach().to("cpu", torch.float64).numpy())
        return torch.from_numpy(np.asarray(ab)).to(device=t.device, dtype=t.dtype)

    def sigma_tilde(self, t: np.ndarray | float) -> np.ndarray:
        """EDM noise level ``sqrt((1 - ab)/ab)``: ``x_t / sqrt(ab) = x0 + sigma_tilde eps``."""
        nl = self.neg_log_alpha_bar(t)
        return np.sqrt(np.expm1(nl))

    def t_from_neg_log_alpha_bar(self, nl: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`neg_log_alpha_bar` (float64), for sigma-spaced time grids."""
        v = np.asarray(nl, dtype=np.float64)
        if self.T is not None:
            knots = self._knots()
            return np.interp(v, knots, np.arange(self.T + 1, dtype=np.float64)) / self.T
        if self.kind == "linear":
            a = 0.5 * (self.beta_max - self.beta_min)
            b = self.beta_min
            if a == 0:
                return np.clip(v / b, 0.0, 1.0)
            # Stable root of a t^2 + b t - v = 0.
            return np.clip(2.0 * v / (b + np.sqrt(b * b + 4.0 * a * v)), 0.0, 1.0)
        s = self.cosine_s
        ab = np.clip(np.exp(-v), 0.0, 1.0) * self._cos_f(0.0)
        t = np.arccos(np.sqrt(ab)) * 2.0 / math.pi * (1.0 + s) - s
        return np.clip(t, 0.0, 1.0)

    def t_from_sigma_tilde(self, sigma: np.ndarray | float) -> np.ndarray:
        """Time at which ``sigma_tilde(t) = sigma``."""
        sg = np.asarray(sigma, dtype=np.float64)
        return self.t_from_neg_log_alpha_bar(np.log1p(sg * sg))

    def time_grid(
        self,
        steps: int,
        spacing: str = "uniform",
        t_max: float = 1.0,
        sigma_min: float = 0.002,
        rho: float = 7.0,
    ) -> np.ndarray:
        """Descending times (steps + 1,) from ``t_max`` to exactly 0 (data).

        * ``uniform``: equal steps in t (DDPM/DDIM's classic choice);
        * ``karras``: EDM's ``sigma_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``
          down to ``sigma_min``, then 0: dense where the ODE curves (small noise);
        * ``logsnr``: equal steps in ``log sigma_tilde`` down to ``sigma_min``, then 0
          (DPM-Solver's natural variable).
        """
        n = int(steps)
        if n < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if spacing == "uniform":
            return np.linspace(float(t_max), 0.0, n + 1)
        if spacing not in ("karras", "logsnr"):
            raise ValueError(f"spacing must be 'uniform', 'karras' or 'logsnr', got {spacing!r}")
        if n == 1:
            return np.array([float(t_max), 0.0])
        s_max = float(self.sigma_tilde(t_max))
        s_min = min(float(sigma_min), 0.5 * s_max)
        if spacing == "karras":
            ramp = np.linspace(0.0, 1.0, n)
            sig = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        else:
            sig = np.exp(np.linspace(math.log(s_max), math.log(s_min), n))
        ts = self.t_from_sigma_tilde(sig)
        ts[0] = float(t_max)
        return np.concatenate([ts, [0.0]])


# ====================================================================== parameterisations


def _col(ab: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    if isinstance(ab, torch.Tensor):
        return ab.to(like.dtype).reshape(-1, 1) if ab.ndim > 0 else float(ab)
    return float(ab)


def convert_prediction(
    pred: torch.Tensor,
    src: str,
    dst: str,
    x_t: torch.Tensor,
    alpha_bar: torch.Tensor | float,
) -> torch.Tensor:
    """Convert a denoiser output between ``eps``, ``x0`` and ``v`` at noise level ``alpha_bar``.

    With ``a = sqrt(ab)``, ``s = sqrt(1 - ab)`` and ``x_t = a x0 + s eps`` (so ``a^2 + s^2 = 1``):
    ``x0 = (x_t - s eps)/a``, ``eps = (x_t - a x0)/s``, ``v = a eps - s x0``,
    ``eps = s x_t + a v``, ``x0 = a x_t - s v``. ``alpha_bar``: float or (N,) tensor.
    Conversions that divide blow up at their end of the schedule (x0 from eps at ab -> 0,
    eps from x0 at ab -> 1): that is why v-prediction exists.
    """
    if src not in PREDICTIONS or dst not in PREDICTIONS:
        raise ValueError(f"predictions must be among {PREDICTIONS}, got {src!r} -> {dst!r}")
    if src == dst:
        return pred
    abc = _col(alpha_bar, x_t)
    if isinstance(abc, torch.Tensor):
        a, s = abc.sqrt(), (1.0 - abc).clamp_min(0.0).sqrt()
    else:
        a, s = math.sqrt(abc), math.sqrt(max(1.0 - abc, 0.0))
    # to eps first, then from eps
    if src == "x0":
        eps = (x_t - a * pred) / s
    elif src == "v":
        eps = s * x_t + a * pred
    else:
        eps = pred
    if dst == "eps":
        return eps
    if dst == "x0":
        if src == "v":  # direct, stays finite at ab -> 0
            return a * x_t - s * pred
        return (x_t - s * eps) / a
    # dst == "v"
    if src == "x0":
        return a * eps - s * pred
    x0 = (x_t - s * eps) / a
    return a * eps - s * x0


# ====================================================================== model functions


def oracle_eps_model(gmm: GaussianMixture, schedule: VPSchedule) -> EpsModel:
    """The exact eps-predictor ``-sqrt(1 - ab) grad log p_t`` of a Gaussian mixture.

    Sampling with it leaves only the sampler's own error: the reference for every
    sampler test and for the "perfect model" toggle in the GUI. Labels: class-conditional
    (negative = unconditional), as :func:`engines.gmm.vp_eps`.
    """

    def model(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        return vp_eps(gmm, x, float(schedule.alpha_bar(t)), labels)

    return model


def oracle_classifier_grad(gmm: GaussianMixture, schedule: VPSchedule) -> GradFn:
    """Exact ``grad_x log p(y | x_t) = grad log p_t(x | y) - grad log p_t(x)`` (Bayes)."""

    def grad(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return torch.zeros_like(x)
        ab = float(schedule.alpha_bar(t))
        return vp_score(gmm, x, ab, labels) - vp_score(gmm, x, ab, None)

    return grad


def net_eps_model(
    net: TimeMLP,
    schedule: VPSchedule,
    *,
    fast: bool = True,
    dtype: torch.dtype = torch.float32,
) -> EpsModel:
    """Wrap a trained denoiser as an eps model function (converting x0/v outputs to eps).

    ``fast=True`` snapshots the weights into a :class:`engines.nets.FastMLP` (time embedding
    folded into a bias, preallocated buffers); ``dtype=torch.bfloat16`` additionally runs the
    hidden layers in bfloat16 (preview quality). Labels ``None`` or negative: the null class.
    """
    kind = net.prediction
    if kind not in PREDICTIONS:
        raise ValueError(f"net.prediction must be one of {PREDICTIONS}, got {kind!r}")
    fm: FastMLP | None = FastMLP(net, dtype=dtype) if fast else None

    def model(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        if fm is not None:
            out = fm(x, t, labels)
        else:
            with torch.no_grad():
                out = net(x, t, labels)
        if kind == "eps":
            return out
        return convert_prediction(out, kind, "eps", x, float(schedule.alpha_bar(t)))

    return model


# ====================================================================== training


def make_denoiser(
    prediction: Prediction = "eps",
    width: int = 128,
    depth: int = 3,
    time_dim: int = 32,
    n_classes: int = 0,
) -> TimeMLP:
    """A time- (and optionally class-) conditioned MLP that predicts eps, x0 or v."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return TimeMLP(
        dim=2, width=width, depth=depth, time_dim=time_dim, n_classes=n_classes,
        prediction=prediction,
    )


def diffusion_batches(
    net: TimeMLP,
    source: DataSource,
    schedule: VPSchedule,
    p_uncond: float = 0.1,
    t_min: float = 1e-3,
) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Batch builder for :class:`engines.nets.ChunkedTrainer`: noised data and targets.

    Draws x0 and labels, ``t ~ U(t_min, 1)``, ``eps ~ N(0, I)``, forms ``x_t`` and the target of
    ``net.prediction``. For a conditional net, each label is replaced by the null class with
    probability ``p_uncond`` (classifier-free guidance needs one network that knows both
    p(x) and p(x | y)). ``t_min`` avoids ``ab = 1`` exactly, where eps is unidentifiable.
    """
    kind = net.prediction
    dev = net.inp.weight.device
    rng = source.rng

    def make(k: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n = k * b
        x0_np, lab_np = source.draw(n)
        t_np = rng.uniform(t_min, 1.0, size=n)
        ab = schedule.alpha_bar(t_np)[:, None]
        eps_np = rng.standard_normal((n, 2))
        a, s = np.sqrt(ab), np.sqrt(1.0 - ab)
        xt_np = a * x0_np + s * eps_np
        if kind == "eps":
            tgt_np = eps_np
        elif kind == "x0":
            tgt_np = x0_np
        else:
            tgt_np = a * eps_np - s * x0_np
        xt = torch.from_numpy(xt_np.astype(np.float32)).to(dev)
        tt = torch.from_numpy(t_np.astype(np.float32)).to(dev)
        feats = net.input_features(xt, tt).reshape(k, b, -1)
        tgt = torch.from_numpy(np.asarray(tgt_np, dtype=np.float32)).to(dev).reshape(k, b, 2)
        return feats, tgt, dropped_labels(net, lab_np, rng, p_uncond, k, b)

    return make


def train_diffusion(
    net: TimeMLP,
    data: str | np.ndarray | DataSource,
    steps: int,
    *,
    schedule: VPSchedule | None = None,
    batch_size: int = 256,
    lr: float = 2e-3,
    final_lr: float | None = None,
    p_uncond: float = 0.1,
    ema: float = 0.0,
    seed: int = 0,
    chunk: int = 100,
) -> np.ndarray:
    """Train ``net`` in place for ``steps`` AdamW steps; returns the per-step losses.

    ``ema > 0``: average the weights (see :class:`engines.nets.ChunkedTrainer`) and leave the
    *averaged* weights in ``net`` at the end (the ones to sample from).

    ``final_lr`` (default ``lr / 10``) decays the learning rate by a cosine over the run:
    on toy data most of the sample quality comes from the low-lr tail (less noise in the
    learned eps near t = 0). Measured on the 2-core CPU (one thread): a 3x64 v-prediction net,
    batch 256, lr 5e-3 -> 2.5e-4, 4000 steps in 4-9 s (idle / busy machine) reaches sliced W2
    0.085-0.125 (3 seeds) on 8gaussians with DDIM-50 and 4000 samples, where two fresh
    4000-point draws of the data differ by 0.06-0.07 (500 steps: 0.16-0.21). See
    ``tests/engines/test_diffusion.py``.
    """
    sched = schedule or VPSchedule()
    src = data if isinstance(data, DataSource) else DataSource(data, rng=np.random.default_rng(seed))
    trainer = ChunkedTrainer(net, diffusion_batches(net, src, sched, p_uncond), lr=lr, ema=ema)
    losses = _run_cosine(trainer, steps, batch_size, lr, final_lr, chunk)
    if trainer.ema_net is not None:
        net.load_state_dict(trainer.ema_net.state_dict())
    return losses


def _run_cosine(
    trainer: ChunkedTrainer,
    steps: int,
    batch_size: int,
    lr: float,
    final_lr: float | None,
    chunk: int,
) -> np.ndarray:
    lo = lr / 10.0 if final_lr is None else float(final_lr)
    out = []
    done = 0
    while done < steps:
        k = min(chunk, steps - done)
        frac = (done + 0.5 * k) / max(steps, 1)
        cur = lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * frac))
        out.append(trainer.run(k, batch_size, cur))
        done += k
    return np.concatenate(out) if out else np.zeros(0)


# ====================================================================== classifier guidance


def make_classifier(n_classes: int, width: int = 128, depth: int = 3, time_dim: int = 32) -> TimeMLP:
    """A noise-aware classifier ``(x_t, t) -> logits`` over ``n_classes`` (no class input)."""
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    return TimeMLP(
        dim=2, width=width, depth=depth, time_dim=time_dim, n_classes=0, out_dim=n_classes,
        prediction="logits",
    )


def train_classifier(
    clf: TimeMLP,
    data: str | np.ndarray | DataSource,
    steps: int,
    *,
    schedule: VPSchedule | None = None,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    chunk: int = 100,
) -> np.ndarray:
    """Train ``clf`` on ``(x_t, t) -> y`` under the same forward process; returns the losses.

    The classifier must see noisy inputs: classifier guidance evaluates its gradient at
    every ``x_t`` along the reverse process, not only at clean data.
    """
    sched = schedule or VPSchedule()
    src = data if isinstance(data, DataSource) else DataSource(data, rng=np.random.default_rng(seed))
    trainer = ChunkedTrainer(clf, classifier_batches(clf, src, sched), lr=lr, loss="ce")
    return _run_cosine(trainer, steps, batch_size, lr, None, chunk)


def classifier_batches(
    clf: TimeMLP, source: DataSource, schedule: VPSchedule, t_min: float = 1e-3
) -> Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Batch builder for a noise-aware classifier: ``(feats(x_t, t), class ids)``.

    ``t ~ U(t_min, 1)`` over the whole forward process, like the denoiser's batches, since
    guidance asks for ``grad log p(y | x_t)`` at every noise level the sampler visits.
    """
    dev = clf.inp.weight.device

    def make(k: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n = k * b
        x0, lab = source.draw(n)
        t = source.rng.uniform(t_min, 1.0, size=n)
        ab = schedule.alpha_bar(t)[:, None]
        xt = np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * source.rng.standard_normal((n, 2))
        feats = clf.input_features(
            torch.from_numpy(xt.astype(np.float32)).to(dev),
            torch.from_numpy(t.astype(np.float32)).to(dev),
        )
        return feats.reshape(k, b, -1), torch.from_numpy(lab).to(dev).reshape(k, b), None

    return make


def classifier_grad(clf: TimeMLP) -> GradFn:
    """``grad_x log p(y | x_t)`` of a trained noise-aware classifier, by autograd.

    Works inside the samplers' ``torch.inference_mode`` (it leaves inference mode locally).
    """

    def grad(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return torch.zeros_like(x)
        with torch.inference_mode(False), torch.enable_grad():
            xx = x.detach().clone().requires_grad_(True)
            logits = clf(xx, float(t))
            lab = torch.as_tensor(labels, device=x.device).to(torch.long).reshape(-1)
            if lab.numel() == 1:
                lab = lab.expand(x.shape[0])
            logp = torch.log_softmax(logits, dim=1).gather(1, lab.clamp_min(0)[:, None])[:, 0]
            logp = torch.where(lab >= 0, logp, torch.zeros_like(logp))  # -1: unguided
            (g,) = torch.autograd.grad(logp.sum(), xx)
        return g.detach()

    return grad


# ====================================================================== GUI job


def diffusion_train_job(
    params: ParamBox,
    data: str | np.ndarray = "8gaussians",
    *,
    labels: np.ndarray | None = None,
    net: TimeMLP | None = None,
    schedule: VPSchedule | None = None,
    prediction: Prediction = "eps",
    width: int = 128,
    depth: int = 3,
    time_dim: int = 32,
    conditional: bool = False,
    p_uncond: float = 0.1,
    ema: float = 0.0,
    max_steps: int | None = None,
    preview_every: int = 500,
    preview_n: int = 1000,
    preview_steps: int = 25,
    chunk_s: float = 0.03,
    seed: int = 0,
    device: torch.device | None = None,
) -> Iterator[TrainSnapshot]:
    """Train a denoiser as a GUI job: yields a :class:`~engines.nets.TrainSnapshot` per ~30 ms.

    Live parameters read from ``params`` at every chunk: ``lr`` (default 1e-3),
    ``batch_size`` (default 256), optionally ``max_steps``, ``preview_every``. Previews are
    ``preview_n`` DDIM samples (``preview_steps`` steps, from a fixed noise so successive
    previews show the model changing, not the noise), with a numpy weight snapshot (of the
    EMA weights when ``ema > 0``).
    """
    from engines import samplers  # local: samplers imports this module

    sched = schedule or VPSchedule()
    rng = np.random.default_rng(seed)
    src = DataSource(data, labels, rng)
    if net is None:
        torch.manual_seed(seed)
        net = make_denoiser(prediction, width, depth, time_dim, src.n_classes if conditional else 0)
    if device is not None:
        net = net.to(device)
    dev = net.inp.weight.device
    trainer = ChunkedTrainer(net, diffusion_batches(net, src, sched, p_uncond), ema=ema)
    gen = torch.Generator().manual_seed(seed + 1)
    noise = torch.randn(preview_n, 2, generator=gen).to(dev)

    def preview() -> tuple[np.ndarray, dict[str, float]]:
        model = net_eps_model(trainer.sampling_net, sched)
        return samplers.ddim(model, noise, sched, sched.time_grid(preview_steps)).samples, {}

    return run_train_job(
        params,
        trainer,
        preview,
        max_steps=max_steps,
        preview_every=preview_every,
        chunk_s=chunk_s,
    )
