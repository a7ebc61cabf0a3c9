"""The 2D Lab, headless: train one model on one toy data set, sample it, and score it.

This is the Qt-free logic behind ``playground lab`` (``playground/commands/lab.py`` only
parses arguments, writes files and prints). It glues the engines together the way the Lab
panel does, so a figure printed here is the figure the panel would show:

* ``ddpm`` trains a VP denoiser (:mod:`engines.diffusion`) and samples it with one of the
  hand-written samplers (:mod:`engines.samplers`); ``rf`` trains a rectified-flow velocity
  net (:mod:`engines.flow_matching`) and integrates its ODE, optionally with reflow rounds;
  ``nice``/``realnvp``/``glow``/``nsf`` are maximum-likelihood flows (:mod:`engines.flows`);
  ``gan``/``wgan``/``wgan-gp`` are the GANs of :mod:`engines.gans`.
* ``oracle=True`` replaces the trained diffusion / RF model by the exact Gaussian-mixture
  oracle (:func:`engines.gmm.vp_eps`, :func:`engines.gmm.rf_velocity`), so what is left
  is the sampler's own error.
* ``points`` (``--data-in``) trains any model on a user's (n, 2) point set instead of a named
  toy set: batches and the scoring draws are its rows resampled with replacement
  (:class:`engines.toy_data.DataSource`), as in the Lab panel. The scores then compare the
  model with the point set itself (there is no density to draw fresh samples from).

Why one shared initial noise: every model starts from ``N(0, I)`` draws of a torch generator
seeded with ``seed`` alone (the diffusion / RF sampler's ``x_T`` / ``x_0``, the flow's latent,
the GAN's latent code). The same ``seed`` therefore gives every sampler -- and every model --
the *same* starting points, so two runs can be compared trajectory by trajectory. Training
data, the stochastic samplers' per-step noise and the fresh evaluation data come from other
streams derived from ``seed``, so changing the sampler never changes the starting noise.

Scores: sliced W2 (:func:`engines.metrics.sliced_wasserstein`) between the samples and as
many *fresh* target samples, next to the same distance between two fresh target draws (the
two-sample floor: the best any model can score at this sample size).

Pure numpy/torch: never imports Qt.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engines import toy_data
from engines.metrics import sliced_wasserstein
from engines.nets import state_to_numpy

__all__ = [
    "DIFFUSION_SAMPLERS",
    "FLOW_MODELS",
    "GAN_MODELS",
    "GAN_VANILLA_LOSSES",
    "MODELS",
    "RF_SAMPLERS",
    "LabConfig",
    "LabInputError",
    "LabResult",
    "initial_noise",
    "noise_digest",
    "resolve",
    "run_lab",
]

MODELS: tuple[str, ...] = ("ddpm", "rf", "nice", "realnvp", "glow", "nsf", "gan", "wgan", "wgan-gp")
FLOW_MODELS: tuple[str, ...] = ("nice", "realnvp", "glow", "nsf")
GAN_MODELS: tuple[str, ...] = ("gan", "wgan", "wgan-gp")
#: CLI sampler names -> :data:`engines.samplers.SAMPLERS` names.
DIFFUSION_SAMPLERS: dict[str, str] = {
    "ddpm": "ddpm", "ddim": "ddim", "sde": "sde", "euler": "euler", "heun": "heun", "dpm++": "dpmpp2m",
}
#: Rectified flow integrates an ODE: Euler (1 evaluation per step) or Heun (2 per step).
RF_SAMPLERS: tuple[str, ...] = ("euler", "heun")
#: CLI GAN names -> the default loss of :mod:`engines.gans` (``gan``: non-saturating, or
#: minimax with ``gan_loss``; the WGANs' loss is what makes them WGANs, so it is fixed).
_GAN_LOSS: dict[str, str] = {"gan": "nonsaturating", "wgan": "wgan", "wgan-gp": "wgan-gp"}
#: The generator losses ``--gan-loss`` may pick for ``--model gan``.
GAN_VANILLA_LOSSES: tuple[str, ...] = ("nonsaturating", "minimax")
#: What ``loss`` measures, per model family: losses of different objectives are not comparable
#: (a v-prediction MSE on 8gaussians sits near 2.7 even for a good model).
_LOSS_KIND: dict[str, str] = {
    "ddpm": "v-prediction MSE", "rf": "velocity MSE", "flow": "NLL of training batches (nats)",
    "gan": "generator loss",
}

DEFAULT_NFE = 50
# Reflow: pairs (x0, ODE(x0)) are generated with this many Euler steps (the 1-RF's own
# fine solve), and straightness is measured on this many Euler steps, independent of --nfe,
# so straightness figures of different runs are comparable.
REFLOW_PAIRS = 8192
REFLOW_ODE_STEPS = 100
STRAIGHTNESS_STEPS = 100
STRAIGHTNESS_POINTS = 2000
# The final loss is averaged over the last steps: a single minibatch loss is too noisy to
# compare runs with.
LOSS_TAIL = 50


class LabInputError(ValueError):
    """A bad combination of options: the CLI prints the message and exits with status 2."""


@dataclass
class LabConfig:
    """One ``playground lab`` run. ``None`` means "the model's default" (see :func:`resolve`).

    The training data is either ``data`` (a toy data set name) or ``points`` (a user's (n, 2)
    point set; ``data_in`` names where it came from, for the report). GAN settings
    (``gan_loss``, ``lr_g``, ``lr_d``, ``n_critic``, ``latent_dim``) apply to GAN models only;
    :func:`resolve` fills them from :data:`engines.gans.GAN_PRESETS` (``gan_loss`` resolves
    to the engine loss actually used, e.g. ``"wgan-gp"`` for ``--model wgan-gp``).
    """

    model: str
    data: str | None = None
    train_steps: int | None = None
    sampler: str | None = None
    nfe: int | None = None
    eta: float | None = None
    guidance: float | None = None
    reflow: int = 0
    oracle: bool = False
    samples: int = 2000
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    width: int = 64
    depth: int = 3
    batch_size: int = 256
    points: np.ndarray | None = None
    data_in: str | None = None
    gan_loss: str | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    n_critic: int | None = None
    latent_dim: int | None = None


@dataclass
class LabResult:
    """The run's report (JSON-ready dict), the generated samples (N, 2), the fresh target
    samples they were scored against (N, 2), the shared initial noise (N, 2) and, when
    asked for, the sampler's trajectory (steps + 1, N, 2) whose entry 0 is that noise."""

    report: dict[str, Any]
    samples: np.ndarray
    data: np.ndarray
    x_init: np.ndarray
    trajectory: np.ndarray | None = None
    #: the trained network as ``(config, state)`` for :func:`engines.lab_models.save_lab_model`
    #: (``None`` for the oracle), so a headless run can be opened in the app
    trained: tuple[dict, dict] | None = None


# ====================================================================== validation


def resolve(cfg: LabConfig) -> LabConfig:
    """Check the option combination and fill in defaults; raises :class:`LabInputError`.

    Errors are refused up front, before any training, so a typo costs no waiting.
    """
    if cfg.model not in MODELS:
        raise LabInputError(f"unknown model {cfg.model!r}; choose one of {', '.join(MODELS)}")
    if cfg.points is not None:
        if cfg.data is not None:
            raise LabInputError("give --data NAME or --data-in FILE, not both")
        pts = np.asarray(cfg.points)
        if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0 or not np.all(np.isfinite(pts)):
            raise LabInputError(f"--data-in needs a non-empty, finite (n, 2) point set, got {pts.shape}")
        for flag, given in (("--oracle", cfg.oracle), ("--guidance", cfg.guidance is not None)):
            if given:
                raise LabInputError(f"{flag} needs a named data set ({flag[2:]} uses its "
                                    "mixture/classes); a --data-in point set has neither")
    elif cfg.data is None:
        raise LabInputError("give --data NAME (a toy data set) or --data-in FILE (a point set)")
    elif cfg.data not in toy_data.DATASETS:
        raise LabInputError(f"unknown data set {cfg.data!r}; choose one of {', '.join(toy_data.DATASETS)}")
    if cfg.seed < 0:
        raise LabInputError(f"--seed must be >= 0, got {cfg.seed}")
    if cfg.samples < 1:
        raise LabInputError(f"--samples must be >= 1, got {cfg.samples}")
    if cfg.nfe is not None and cfg.nfe < 1:
        raise LabInputError(f"--nfe must be >= 1, got {cfg.nfe}")
    if cfg.reflow < 0:
        raise LabInputError(f"--reflow must be >= 0, got {cfg.reflow}")
    sampled = cfg.model in ("ddpm", "rf")
    if not sampled:
        for flag, given in (("--sampler", cfg.sampler is not None), ("--nfe", cfg.nfe is not None),
                            ("--eta", cfg.eta is not None), ("--guidance", cfg.guidance is not None),
                            ("--oracle", cfg.oracle)):
            if given:
                raise LabInputError(f"{flag} applies to --model ddpm or rf only (a {cfg.model} "
                                    "generates in one network pass)")
    if cfg.reflow and cfg.model != "rf":
        raise LabInputError("--reflow applies to --model rf only")
    _check_gan_options(cfg)
    if cfg.oracle:
        assert cfg.data is not None
        if toy_data.mixture(cfg.data) is None:
            raise LabInputError(f"--oracle needs a Gaussian-mixture data set (8gaussians, 25gaussians), "
                                f"not {cfg.data!r}: only those have an exact score")
        if cfg.reflow:
            raise LabInputError("--reflow retrains a model: it cannot be combined with --oracle")
    elif cfg.train_steps is None:
        raise LabInputError("--train-steps is required (unless --oracle)")
    if cfg.train_steps is not None and cfg.train_steps < 0:
        raise LabInputError(f"--train-steps must be >= 0, got {cfg.train_steps}")
    if cfg.guidance is not None:
        if not math.isfinite(cfg.guidance) or cfg.guidance < 0:
            raise LabInputError(f"--guidance must be a finite number >= 0, got {cfg.guidance}")
        if cfg.reflow:
            raise LabInputError("--reflow trains an unconditional flow: drop --guidance")
    out = copy.copy(cfg)
    if cfg.model == "ddpm":
        out.sampler = cfg.sampler or "ddim"
        if out.sampler not in DIFFUSION_SAMPLERS:
            raise LabInputError(f"unknown diffusion sampler {out.sampler!r}; choose one of "
                                f"{', '.join(DIFFUSION_SAMPLERS)}")
    elif cfg.model == "rf":
        out.sampler = cfg.sampler or "euler"
        if out.sampler not in RF_SAMPLERS:
            raise LabInputError(f"sampler {out.sampler!r} does not apply to rf (an ODE); choose one of "
                                f"{', '.join(RF_SAMPLERS)}")
    if cfg.eta is not None:
        if out.sampler != "ddim":
            raise LabInputError("--eta applies to --sampler ddim only")
        if not 0.0 <= cfg.eta <= 1.0:
            raise LabInputError(f"--eta must be in [0, 1], got {cfg.eta}")
    if sampled:
        out.nfe = cfg.nfe if cfg.nfe is not None else DEFAULT_NFE
        if out.sampler == "heun" and out.nfe < 2 and cfg.model == "rf":
            raise LabInputError("rf's Heun sampler needs --nfe >= 2 (two evaluations per step)")
    out.train_steps = 0 if cfg.oracle else cfg.train_steps
    if cfg.model in GAN_MODELS:
        from engines.gans import GAN_PRESETS

        out.gan_loss = cfg.gan_loss or _GAN_LOSS[cfg.model]
        preset = GAN_PRESETS[out.gan_loss]
        out.lr_g = float(cfg.lr_g if cfg.lr_g is not None else preset["lr_g"])
        out.lr_d = float(cfg.lr_d if cfg.lr_d is not None else preset["lr_d"])
        out.n_critic = int(cfg.n_critic if cfg.n_critic is not None else preset["n_critic"])
        out.latent_dim = int(cfg.latent_dim if cfg.latent_dim is not None else 2)
    return out


def _check_gan_options(cfg: LabConfig) -> None:
    """GAN flags: GAN models only, ``--gan-loss`` for ``--model gan`` only, sane values."""
    flags = (("--gan-loss", cfg.gan_loss), ("--lr-g", cfg.lr_g), ("--lr-d", cfg.lr_d),
             ("--n-critic", cfg.n_critic), ("--latent-dim", cfg.latent_dim))
    if cfg.model not in GAN_MODELS:
        for flag, value in flags:
            if value is not None:
                raise LabInputError(f"{flag} applies to the GAN models ({', '.join(GAN_MODELS)}) only")
        return
    if cfg.gan_loss is not None:
        if cfg.model != "gan":
            raise LabInputError(f"--gan-loss applies to --model gan only ({cfg.model} has its own "
                                "loss, which is what makes it a WGAN)")
        if cfg.gan_loss not in GAN_VANILLA_LOSSES:
            raise LabInputError(f"unknown --gan-loss {cfg.gan_loss!r}; choose one of "
                                f"{', '.join(GAN_VANILLA_LOSSES)}")
    for flag, lr in (("--lr-g", cfg.lr_g), ("--lr-d", cfg.lr_d)):
        if lr is not None and not (math.isfinite(lr) and lr > 0):
            raise LabInputError(f"{flag} must be a finite number > 0, got {lr}")
    if cfg.n_critic is not None and cfg.n_critic < 1:
        raise LabInputError(f"--n-critic must be >= 1, got {cfg.n_critic}")
    if cfg.latent_dim is not None and cfg.latent_dim < 1:
        raise LabInputError(f"--latent-dim must be >= 1, got {cfg.latent_dim}")


def _train_data(cfg: LabConfig) -> str | np.ndarray:
    """What the engines train on: the named set, or the user's points."""
    if cfg.points is not None:
        return np.asarray(cfg.points, dtype=np.float32)
    assert cfg.data is not None
    return cfg.data


def _n_classes(cfg: LabConfig) -> int:
    """Classes of the named data set (guidance; :func:`resolve` refuses it for point sets)."""
    assert cfg.data is not None
    return toy_data.n_classes(cfg.data)


# ====================================================================== shared helpers


def initial_noise(seed: int, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The run's starting points: ``n`` x 2 standard normals from a generator seeded with
    ``seed`` only (drawn on the CPU, so the same on every device), then moved to ``device``."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(int(n), 2, generator=gen).to(device)


def noise_digest(x: np.ndarray | torch.Tensor) -> str:
    """SHA-256 (first 16 hex digits) of the float32 bytes of ``x``: a short fingerprint that
    shows in a report whether two runs started from bit-identical noise."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float32).tobytes()).hexdigest()[:16]


_TRAINED = "__trained__"  # where the _run_* functions leave (config, state); popped by run_lab


def _keep(rep: dict[str, Any], config: dict, state: dict) -> None:
    rep[_TRAINED] = (dict(config), state)


def _tail_mean(losses: np.ndarray) -> float | None:
    if losses.size == 0:
        return None
    return _finite(float(np.mean(losses[-LOSS_TAIL:])))


def _finite(v: float) -> float | None:
    """``None`` for NaN/inf, so a diverged run still prints valid JSON (``null``)."""
    return v if math.isfinite(v) else None


def _swd(a: np.ndarray, b: np.ndarray) -> float | None:
    if not np.all(np.isfinite(a)):
        return None  # a diverged model: no distance to report
    return sliced_wasserstein(a, b)


def _balanced_labels(n: int, k: int, seed: int, device: torch.device) -> torch.Tensor:
    """Class labels for guided sampling: equal counts per class, shuffled by a generator of
    its own (so asking for guidance leaves the initial noise unchanged)."""
    gen = torch.Generator().manual_seed(int(seed) + 7)
    lab = (torch.arange(n) % k)[torch.randperm(n, generator=gen)]
    return lab.to(device)


def _seeded_init(seed: int, build: Callable[[], Any]) -> Any:
    """Build a network with torch's global RNG seeded, without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


# ====================================================================== the models


def _run_diffusion(cfg: LabConfig, x_init: torch.Tensor, labels: torch.Tensor | None,
                   want_traj: bool, rep: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    from engines import samplers
    from engines.diffusion import (
        DataSource,
        VPSchedule,
        make_denoiser,
        net_eps_model,
        oracle_eps_model,
        train_diffusion,
    )

    sched = VPSchedule()
    if cfg.oracle:
        assert cfg.data is not None
        mix = toy_data.mixture(cfg.data)
        assert mix is not None
        model = oracle_eps_model(mix, sched)
    else:
        # v-prediction, lr 5e-3 -> 2.5e-4: the recipe measured in train_diffusion's docstring
        # (best sliced W2 per second of the parameterisations on toy data).
        n_cls = _n_classes(cfg) if cfg.guidance is not None else 0
        net = _seeded_init(cfg.seed, lambda: make_denoiser("v", cfg.width, cfg.depth, 32, n_cls))
        net = net.to(cfg.device)
        src = DataSource(_train_data(cfg), rng=np.random.default_rng([cfg.seed, 1]))
        t0 = time.perf_counter()
        losses = train_diffusion(net, src, int(cfg.train_steps or 0), schedule=sched,
                                 batch_size=cfg.batch_size, lr=5e-3, final_lr=2.5e-4)
        rep["train_seconds"] = time.perf_counter() - t0
        rep["loss"] = _tail_mean(losses)
        model = net_eps_model(net, sched)
        _keep(rep, net.config(), state_to_numpy(net))
    if cfg.guidance is not None:
        model = samplers.cfg_model(model, cfg.guidance)
    gen = torch.Generator().manual_seed(int(cfg.seed) + 1)  # per-step noise of ddpm/ddim/sde
    assert cfg.sampler is not None and cfg.nfe is not None
    t0 = time.perf_counter()
    res = samplers.sample(DIFFUSION_SAMPLERS[cfg.sampler], model, x_init, sched, nfe=cfg.nfe,
                          eta=cfg.eta or 0.0, labels=labels, generator=gen,
                          return_trajectory=want_traj)
    rep["sample_seconds"] = time.perf_counter() - t0
    rep["nfe"] = res.nfe
    return res.samples, res.trajectory


def _run_rf(cfg: LabConfig, x_init: torch.Tensor, labels: torch.Tensor | None,
            want_traj: bool, rep: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    from engines.flow_matching import (
        PairSource,
        make_velocity_net,
        net_velocity_model,
        ode_sample,
        oracle_velocity_model,
        straightness,
        train_flow_matching,
    )
    from engines.samplers import cfg_model

    x_s = x_init[:STRAIGHTNESS_POINTS]
    lab_s = None if labels is None else labels[:STRAIGHTNESS_POINTS]
    if cfg.oracle:
        assert cfg.data is not None
        mix = toy_data.mixture(cfg.data)
        assert mix is not None
        model = oracle_velocity_model(mix)
    else:
        n_cls = _n_classes(cfg) if cfg.guidance is not None else 0
        net = _seeded_init(cfg.seed, lambda: make_velocity_net(cfg.width, cfg.depth, 32, n_cls))
        net = net.to(cfg.device)
        steps = int(cfg.train_steps or 0)
        t0 = time.perf_counter()
        pairs = PairSource(_train_data(cfg), rng=np.random.default_rng([cfg.seed, 1]))
        # The diffusion recipe's lr (5e-3 -> 2.5e-4) also suits velocity nets: measured on
        # 8gaussians, 300 steps reach sliced W2 0.22 against 0.62 at lr 2e-3 (3x64, batch 256).
        losses = train_flow_matching(net, pairs, steps, batch_size=cfg.batch_size, lr=5e-3,
                                     final_lr=2.5e-4)
        rep["train_seconds"] = time.perf_counter() - t0
        rep["loss"] = _tail_mean(losses)
        model = net_velocity_model(net)
        if cfg.reflow:
            # Liu et al. 2022: the k-rectified flow is trained on pairs (x0, ODE_{k-1}(x0)) of
            # the previous flow, warm-started from its weights; paths of a deterministic
            # coupling cannot cross, so each round is straighter.
            s_hist = [straightness(model, x_s, STRAIGHTNESS_STEPS)]
            loss_hist = [rep["loss"]]
            t1 = time.perf_counter()
            for r in range(cfg.reflow):
                rng = np.random.default_rng([cfg.seed, 100 + r])
                x0 = torch.from_numpy(rng.standard_normal((REFLOW_PAIRS, 2)).astype(np.float32))
                x1 = ode_sample(model, x0.to(cfg.device), REFLOW_ODE_STEPS).samples
                net = copy.deepcopy(net)
                src = PairSource(pairs=(x0.numpy(), x1), rng=np.random.default_rng([cfg.seed, 200 + r]))
                losses = train_flow_matching(net, src, steps, batch_size=cfg.batch_size, lr=5e-3,
                                             final_lr=2.5e-4)
                model = net_velocity_model(net)
                s_hist.append(straightness(model, x_s, STRAIGHTNESS_STEPS))
                loss_hist.append(_tail_mean(losses))
            rep["reflow_seconds"] = time.perf_counter() - t1
            rep["train_seconds"] += rep["reflow_seconds"]
            rep["loss"] = loss_hist[-1]
            rep["loss_by_round"] = loss_hist
            rep["straightness_by_round"] = [_finite(s) for s in s_hist]
    if not cfg.oracle:
        _keep(rep, net.config(), state_to_numpy(net))  # after reflow: the last round's net
    if cfg.guidance is not None:
        model = cfg_model(model, cfg.guidance)
    assert cfg.nfe is not None
    rep["straightness"] = _finite(straightness(model, x_s, STRAIGHTNESS_STEPS, lab_s))
    rep["straightness_steps"] = STRAIGHTNESS_STEPS
    steps = cfg.nfe // 2 if cfg.sampler == "heun" else cfg.nfe
    t0 = time.perf_counter()
    res = ode_sample(model, x_init, steps, method=cfg.sampler or "euler", labels=labels,
                     return_trajectory=want_traj)
    rep["sample_seconds"] = time.perf_counter() - t0
    rep["nfe"] = res.nfe
    return res.samples, res.trajectory


def _run_flow(cfg: LabConfig, x_init: torch.Tensor, target: np.ndarray,
              rep: dict[str, Any]) -> np.ndarray:
    from engines.flows import ActNorm, build_flow, fast_adam, target_entropy

    flow = build_flow(cfg.model, seed=cfg.seed).to(cfg.device)  # type: ignore[arg-type]
    src = toy_data.DataSource(_train_data(cfg), rng=np.random.default_rng([cfg.seed, 1]))
    if any(isinstance(m, ActNorm) for m in flow.modules()):
        flow.data_init(src.draw(max(cfg.batch_size, 512))[0])
    opt = fast_adam(flow.parameters(), lr=1e-3)
    steps = int(cfg.train_steps or 0)
    losses = torch.zeros(steps)
    t0 = time.perf_counter()
    for i in range(steps):
        batch = torch.from_numpy(src.draw(cfg.batch_size)[0])
        loss = -flow.log_prob(batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[i] = loss.detach()
    rep["train_seconds"] = time.perf_counter() - t0
    rep["loss"] = _tail_mean(losses.numpy().astype(np.float64))
    t0 = time.perf_counter()
    with torch.inference_mode():
        x, _ = flow(x_init)
        samples = x.float().cpu().numpy()
        # NLL on fresh target points: an honest estimate of KL(data || model) + H(data).
        nll = -float(flow.log_prob(target).mean())
    rep["sample_seconds"] = time.perf_counter() - t0
    rep["nfe"] = 1
    rep["nll"] = _finite(nll)
    entropy = target_entropy(cfg.data) if cfg.data is not None else None  # points: no known floor
    rep["entropy"] = entropy
    rep["nll_gap"] = None if entropy is None or rep["nll"] is None else rep["nll"] - entropy
    _keep(rep, dict(flow.config), flow.state_numpy())
    return samples


def _run_gan(cfg: LabConfig, x_init: torch.Tensor, rep: dict[str, Any]) -> np.ndarray:
    """Train a GAN with the resolved settings (``cfg.gan_loss``, ``lr_g``, ``lr_d``,
    ``n_critic``, ``latent_dim``) and record them in the report.

    The latent codes come from the same seeded generator as the shared noise, so with the
    default ``latent_dim`` 2 they *are* ``x_init``; other sizes draw ``(n, latent_dim)`` from
    that generator (still reproducible, no longer comparable with the other models)."""
    from engines.gans import GAN, GAN_PRESETS, GanTrainer, gan_state_numpy

    assert cfg.gan_loss is not None and cfg.lr_g is not None and cfg.lr_d is not None
    assert cfg.n_critic is not None and cfg.latent_dim is not None
    latent = cfg.latent_dim
    gan = _seeded_init(cfg.seed, lambda: GAN(latent, 64, 2)).to(cfg.device)
    p = {**GAN_PRESETS[cfg.gan_loss], "loss": cfg.gan_loss, "batch_size": cfg.batch_size,
         "lr_g": cfg.lr_g, "lr_d": cfg.lr_d, "n_critic": cfg.n_critic}
    rep.update(gan_loss=cfg.gan_loss, lr_g=cfg.lr_g, lr_d=cfg.lr_d, n_critic=cfg.n_critic,
               latent_dim=latent)
    if latent != 2:
        gen = torch.Generator().manual_seed(int(cfg.seed))
        x_init = torch.randn(x_init.shape[0], latent, generator=gen).to(cfg.device)
    trainer = GanTrainer(gan, _train_data(cfg), seed=int(cfg.seed) + 1)
    steps = int(cfg.train_steps or 0)
    hist = np.zeros((steps, 2))
    t0 = time.perf_counter()
    for i in range(steps):
        hist[i] = trainer.step(p)
    rep["train_seconds"] = time.perf_counter() - t0
    rep["loss"] = _tail_mean(hist[:, 0])  # the generator's loss
    rep["loss_d"] = _tail_mean(hist[:, 1])
    t0 = time.perf_counter()
    with torch.no_grad():
        samples = gan.G(x_init).cpu().numpy()
    rep["sample_seconds"] = time.perf_counter() - t0
    rep["nfe"] = 1
    _keep(rep, dict(gan.config), gan_state_numpy(gan))
    return samples


# ====================================================================== entry point


def run_lab(config: LabConfig, *, return_trajectory: bool = False) -> LabResult:
    """Train (or take the oracle), sample ``config.samples`` points and score them.

    Raises :class:`LabInputError` for a bad option combination (before any work). The
    report holds ``model, data, train_steps, train_seconds, loss, sampler, nfe, swd,
    swd_floor`` and, by model, ``straightness`` (rf), ``nll``/``entropy`` (flows),
    ``modes_covered``/``high_quality`` (mixture targets), ``init_noise`` (fingerprint),
    ``gan_loss``/``lr_g``/``lr_d``/``n_critic``/``latent_dim`` (GANs: the settings used) and,
    for a point set, ``data_in`` and ``n_points`` (``data`` is then ``data_in``'s name).
    """
    cfg = resolve(config)
    n = int(cfg.samples)
    x_init = initial_noise(cfg.seed, n, cfg.device)
    # Two independent target draws: one to score against, one for the noise floor. For a
    # point set these are resampled rows, so the floor is the resampling noise of the set.
    eval_src = toy_data.DataSource(_train_data(cfg), rng=np.random.default_rng([cfg.seed, 2]))
    target = eval_src.draw(n)[0]
    second = eval_src.draw(n)[0]
    named = cfg.points is None
    rep: dict[str, Any] = {
        "model": cfg.model, "data": cfg.data if named else (cfg.data_in or "points"),
        "oracle": cfg.oracle,
        "train_steps": int(cfg.train_steps or 0), "train_seconds": 0.0, "loss": None,
        "sampler": cfg.sampler, "nfe": None, "eta": cfg.eta, "guidance": cfg.guidance,
        "reflow": cfg.reflow, "samples": n, "seed": cfg.seed, "device": str(cfg.device),
        "init_noise": noise_digest(x_init),
        "loss_kind": None if cfg.oracle else _LOSS_KIND.get(
            "flow" if cfg.model in FLOW_MODELS else "gan" if cfg.model in GAN_MODELS else cfg.model),
    }
    if not named:
        rep["data_in"] = cfg.data_in
        rep["n_points"] = int(np.asarray(cfg.points).shape[0])
    labels = None
    if cfg.guidance is not None:
        labels = _balanced_labels(n, _n_classes(cfg), cfg.seed, cfg.device)
    traj = None
    if cfg.model == "ddpm":
        samples, traj = _run_diffusion(cfg, x_init, labels, return_trajectory, rep)
    elif cfg.model == "rf":
        samples, traj = _run_rf(cfg, x_init, labels, return_trajectory, rep)
    elif cfg.model in FLOW_MODELS:
        samples = _run_flow(cfg, x_init, target, rep)
    else:
        samples = _run_gan(cfg, x_init, rep)
    samples = np.asarray(samples, dtype=np.float32).reshape(n, 2)
    rep["swd"] = _swd(samples, target)
    rep["swd_floor"] = sliced_wasserstein(second, target)
    mix = toy_data.mixture(cfg.data) if cfg.data is not None else None
    if mix is not None and np.all(np.isfinite(samples)):
        from engines.gans import mode_coverage

        cov = mode_coverage(samples, mix)
        rep["modes_covered"] = cov.modes_hit
        rep["n_modes"] = cov.n_modes
        rep["high_quality"] = cov.high_quality
    trained = rep.pop(_TRAINED, None)
    return LabResult(rep, samples, target, x_init.cpu().numpy(), traj, trained)
