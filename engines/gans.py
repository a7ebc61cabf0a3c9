"""GANs on 2-D toy data: vanilla (minimax / non-saturating), WGAN (weight clipping), WGAN-GP.

What the lesson shows, and why each helper exists:

* the discriminator / critic as a heat map over the plane (:func:`critic_grid`): a vanilla
  discriminator saturates to 0/1 away from the data, a WGAN critic stays a smooth slope;
* where the generator is pushed (:func:`generator_push`): the negative gradient of the
  generator loss with respect to each generated point. With the *minimax* loss those arrows
  all but vanish wherever the discriminator is confident (the saturation problem that the
  non-saturating loss fixes, Goodfellow et al. 2014, sec. 3);
* the generator manifold (:func:`generator_manifold`): a grid in latent space mapped to the
  plane; a 2-D latent shows a warped sheet, which makes mode collapse and the thin "bridges"
  between modes visible;
* mode coverage for mixture targets (:func:`mode_coverage`): modes hit and the fraction of
  high-quality samples (the 8-/25-gaussians readout of Unrolled GAN / VEEGAN / PacGAN).

Losses, with ``a = D(x)`` a logit (vanilla) or a critic value (WGAN)::

    vanilla D:      softplus(-a_real) + softplus(a_fake)       (= -log s(a_r) - log(1 - s(a_f)))
    minimax G:      -softplus(a_fake)                           (= log(1 - s(a_f)), minimised)
    non-saturating: softplus(-a_fake)                           (= -log s(a_f))
    WGAN critic:    a_fake - a_real  (+ lambda * (||grad a(x_hat)|| - 1)^2 for WGAN-GP)
    WGAN G:         -a_fake

Pure torch/numpy: no Qt (see ``engines/jobs.py`` for the job protocol).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engines import toy_data
from engines.flows import fast_adam, grid_points
from engines.gmm import GaussianMixture
from engines.jobs import ParamBox

GanLoss = Literal["minimax", "nonsaturating", "wgan", "wgan-gp"]
GAN_LOSSES: tuple[str, ...] = ("minimax", "nonsaturating", "wgan", "wgan-gp")

#: Defaults of the live parameters read by :func:`gan_train_job` (``params`` may omit any).
GAN_DEFAULTS: dict[str, float | int | str] = {
    "loss": "nonsaturating",
    "lr_g": 1e-3,
    "lr_d": 1e-3,
    "n_critic": 1,
    "batch_size": 256,
    "clip": 0.05,
    "gp_weight": 0.1,
}

#: Settings per loss that train the default 2 x 64 MLPs on 8 gaussians within ~600 generator
#: steps (measured, see tests/engines/test_gans.py). Apply with ``params.update(**preset)``
#: when the user switches loss. WGAN's clip of 0.05 (the paper: 0.01 for image critics)
#: because a 64-wide critic clipped to 0.01 is too weak to separate toy modes in that time;
#: WGAN-GP's penalty weight 0.1 is what the authors' own toy script (gan_toy.py) uses for
#: 2-D data, where the paper's 10 over-smooths the critic.
GAN_PRESETS: dict[str, dict[str, float | int]] = {
    "minimax": {"lr_g": 1e-3, "lr_d": 1e-3, "n_critic": 1},
    "nonsaturating": {"lr_g": 1e-3, "lr_d": 1e-3, "n_critic": 1},
    "wgan": {"lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 5, "clip": 0.05},
    "wgan-gp": {"lr_g": 1e-3, "lr_d": 1e-3, "n_critic": 5, "gp_weight": 0.1},
}


def _mlp(n_in: int, n_out: int, hidden: int, depth: int, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(max(depth, 1)):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class _LeakyReLU(nn.LeakyReLU):
    """LeakyReLU(0.2), the usual discriminator non-linearity (keeps gradients alive for G)."""

    def __init__(self) -> None:
        super().__init__(0.2)


def gan_state_numpy(gan: GAN) -> dict[str, np.ndarray]:
    """A numpy copy of every weight (G and D): what snapshots carry and model files hold."""
    return {k: v.detach().cpu().numpy().copy() for k, v in gan.state_dict().items()}


def gan_from_state(config: dict, state: dict[str, np.ndarray]) -> GAN:
    """Rebuild a GAN from its ``config`` and :func:`gan_state_numpy` output."""
    gan = GAN(**config)
    gan.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return gan


class GAN(nn.Module):
    """A generator ``G: R^latent_dim -> R^2`` and a discriminator/critic ``D: R^2 -> R``.

    Plain MLPs (ReLU in G, LeakyReLU(0.2) in D) with no batch norm, because WGAN-GP's
    per-sample gradient penalty is not defined for batch-coupled critics. ``D`` returns one
    raw value per point, shape ``(N,)``: a logit for the vanilla losses, a score for WGAN.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: int = 64,
        depth: int = 2,
        d_hidden: int | None = None,
        d_depth: int | None = None,
        dim: int = 2,
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.dim = int(dim)
        self.config = {"latent_dim": self.latent_dim, "hidden": int(hidden), "depth": int(depth),
                       "d_hidden": d_hidden, "d_depth": d_depth, "dim": self.dim}
        self.G = _mlp(self.latent_dim, dim, hidden, depth, nn.ReLU)
        self.D_net = _mlp(dim, 1, d_hidden or hidden, d_depth or depth, _LeakyReLU)

    def D(self, x: Tensor) -> Tensor:
        """Discriminator logit / critic value per point, shape ``(N,)``."""
        return self.D_net(x).squeeze(-1)

    def latent(self, n: int, rng: np.random.Generator) -> Tensor:
        """``n`` standard-normal latent codes (float32 tensor on G's device)."""
        z = rng.standard_normal((n, self.latent_dim)).astype(np.float32)
        return torch.from_numpy(z).to(next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` generated points, float32 ``(n, 2)``."""
        return self.G(self.latent(n, rng)).cpu().numpy()


# ---------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------


def _check_loss(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; expected one of {GAN_LOSSES}")


def discriminator_loss(kind: str, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Per-batch D loss *without* the gradient penalty (see module docstring)."""
    _check_loss(kind)
    if kind in ("wgan", "wgan-gp"):
        return d_fake.mean() - d_real.mean()
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def generator_loss_per_sample(kind: str, d_fake: Tensor) -> Tensor:
    """Per-sample generator loss, shape ``(N,)``; the batch loss is its mean."""
    _check_loss(kind)
    if kind == "minimax":
        return -F.softplus(d_fake)  # log(1 - sigmoid(a)): flat where D is sure it is fake
    if kind == "nonsaturating":
        return F.softplus(-d_fake)  # -log sigmoid(a): steep exactly there
    return -d_fake


def gradient_penalty(
    critic: nn.Module | object,
    real: Tensor,
    fake: Tensor,
    alpha: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty ``mean_i (||grad_x D(x_hat_i)|| - 1)^2`` (Gulrajani et al., 2017).

    ``x_hat = alpha * real + (1 - alpha) * fake`` with ``alpha ~ U(0, 1)`` per pair (pass
    ``alpha`` (N, 1) to fix it, e.g. in tests). One batched ``autograd.grad`` of
    ``sum(D(x_hat))`` gives every per-sample gradient at once because D treats rows
    independently (no batch norm). ``create_graph=True`` so the penalty itself can be
    back-propagated into D's weights. ``critic`` is any callable ``(N, 2) -> (N,)``.
    """
    if alpha is None:
        # drawn on the CPU (where ``generator`` lives), then moved: reproducible on any device
        alpha = torch.rand(real.shape[0], 1, generator=generator).to(real.device, real.dtype)
    x_hat = (alpha * real + (1.0 - alpha) * fake).detach().requires_grad_(True)
    out = critic(x_hat)  # type: ignore[operator]
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.norm(dim=1) - 1.0).pow(2).mean()


# ---------------------------------------------------------------------------------------
# snapshot helpers for the visuals
# ---------------------------------------------------------------------------------------


@torch.inference_mode()
def critic_grid(
    gan: GAN,
    kind: str,
    xlim: tuple[float, float] = (-4.0, 4.0),
    ylim: tuple[float, float] = (-4.0, 4.0),
    res: int = 100,
) -> np.ndarray:
    """D over the plane, float32 ``(res, res)``, image-oriented (row 0 = top).

    Vanilla losses: ``sigmoid(D)`` = the probability "real" (0..1, so the saturation is
    visible). WGAN: the raw critic value (only differences matter; the GUI should use a
    symmetric colour scale around the median).
    """
    _check_loss(kind)
    dev = next(gan.parameters()).device
    _, _, pts = grid_points(xlim, ylim, res)  # image-oriented pixel centres, as everywhere
    out = gan.D(torch.from_numpy(pts).to(dev))
    if kind in ("minimax", "nonsaturating"):
        out = torch.sigmoid(out)
    return out.float().cpu().numpy().reshape(res, res)


def generator_push(gan: GAN, kind: str, z: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Generated points and the direction the generator loss pushes each of them.

    Returns ``(x, push)``, both float32 ``(N, 2)``, with ``push = -d loss_G(x_i) / d x_i``
    (per-sample loss, so arrow lengths are comparable between batch sizes). G's weights
    move so that its outputs follow these arrows (chain rule through ``dx/dtheta``), which
    is why they are the clearest picture of "what D is teaching G".
    """
    with torch.no_grad():
        x = gan.G(z)
    x = x.detach().requires_grad_(True)
    loss = generator_loss_per_sample(kind, gan.D(x)).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return x.detach().cpu().numpy(), (-grad).cpu().numpy()


@torch.no_grad()
def generator_manifold(gan: GAN, n: int = 21, span: float = 2.5) -> np.ndarray:
    """A latent grid mapped through G: float32 ``(rows, n, 2)``.

    Latent values run over ``[-span, span]`` (``span = 2.5`` std covers ~99% of a 1-D
    Gaussian). ``latent_dim == 1``: one line, ``rows = 1``. ``latent_dim >= 2``: an
    ``n x n`` grid over the first two latent axes with the others held at 0 (for exactly 2
    the whole latent space, a warped sheet; draw the rows and columns as polylines).
    """
    u = np.linspace(-span, span, n, dtype=np.float32)
    if gan.latent_dim == 1:
        z = u[:, None]
        rows = 1
    else:
        gu, gv = np.meshgrid(u, u)
        z = np.zeros((n * n, gan.latent_dim), dtype=np.float32)
        z[:, 0], z[:, 1] = gu.ravel(), gv.ravel()
        rows = n
    x = gan.G(torch.from_numpy(z).to(next(gan.parameters()).device))
    return x.cpu().numpy().reshape(rows, n, gan.dim)


@dataclass(frozen=True)
class ModeCoverage:
    """Mode-coverage readout for a Gaussian-mixture target.

    A sample is *high quality* when it lies within ``n_std`` standard deviations
    (Mahalanobis distance) of its nearest mode; a mode is *hit* when at least
    ``min_fraction`` of all samples are high-quality samples of that mode.
    """

    modes_hit: int
    n_modes: int
    high_quality: float  # fraction of samples within n_std of some mode
    counts: np.ndarray  # (K,) high-quality samples per mode
    min_fraction: float
    n_std: float


def mode_coverage(
    samples: np.ndarray,
    mixture: GaussianMixture,
    n_std: float = 3.0,
    min_fraction: float | None = None,
) -> ModeCoverage:
    """Count modes hit and the high-quality fraction (see :class:`ModeCoverage`).

    ``min_fraction`` defaults to a quarter of a mode's fair share, ``0.25 / K`` (3.1% for 8
    modes): strict enough that a handful of stragglers on a "bridge" between modes do not
    count as covering a mode, loose enough that uneven but real coverage does.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    k = mixture.n_components
    frac = 0.25 / k if min_fraction is None else float(min_fraction)
    inv = np.linalg.inv(mixture.covs)  # (K, 2, 2)
    d = x[:, None, :] - mixture.means[None]  # (n, K, 2)
    maha = np.sqrt(np.einsum("nki,kij,nkj->nk", d, inv, d))
    nearest = maha.argmin(axis=1)
    good = maha[np.arange(len(x)), nearest] <= n_std
    counts = np.bincount(nearest[good], minlength=k)
    n = max(len(x), 1)
    return ModeCoverage(
        modes_hit=int((counts >= frac * n).sum()) if len(x) else 0,
        n_modes=k,
        high_quality=float(good.mean()) if len(x) else 0.0,
        counts=counts,
        min_fraction=frac,
        n_std=float(n_std),
    )


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------


def _optimizers(gan: GAN, kind: str, lr_g: float, lr_d: float) -> tuple[
    torch.optim.Optimizer, torch.optim.Optimizer
]:
    """Adam(0.5, 0.9) as in WGAN-GP; RMSprop for weight-clipped WGAN, whose paper reports
    that momentum makes the clipped critic unstable (Arjovsky et al., 2017, sec. 3)."""
    if kind == "wgan":
        return (torch.optim.RMSprop(gan.G.parameters(), lr=lr_g),
                torch.optim.RMSprop(gan.D_net.parameters(), lr=lr_d))
    return (fast_adam(gan.G.parameters(), lr_g, betas=(0.5, 0.9)),
            fast_adam(gan.D_net.parameters(), lr_d, betas=(0.5, 0.9)))


class GanTrainer:
    """One generator step at a time, with ``n_critic`` discriminator steps before it.

    Separate from the job so tests and benchmarks can drive training without snapshots.
    Live settings come in through :meth:`step`'s ``p`` dict (keys of :data:`GAN_DEFAULTS`).
    Optimizers are rebuilt when the loss changes (a new objective: old Adam moments would
    point the wrong way, and clipped WGAN wants RMSprop); learning-rate changes are written
    into the existing optimizers so they keep their moments.

    ``dataset`` is a toy data set name or a user's (n, 2) point set, whose rows are resampled
    for every real batch (:class:`engines.toy_data.DataSource`).
    """

    def __init__(self, gan: GAN, dataset: str | np.ndarray = "8gaussians", seed: int = 0) -> None:
        self.gan = gan
        self.dataset = dataset
        self.rng = np.random.default_rng(seed)
        # shares self.rng (real batches and latents interleave as before: same seed, same run)
        self.source = toy_data.DataSource(dataset, rng=self.rng)
        self.torch_gen = torch.Generator().manual_seed(seed)
        self.kind: str | None = None
        self.opt_g: torch.optim.Optimizer | None = None
        self.opt_d: torch.optim.Optimizer | None = None
        self.step_count = 0
        self.last_gp = 0.0

    def _real(self, n: int) -> Tensor:
        dev = next(self.gan.parameters()).device
        return torch.from_numpy(self.source.draw(n)[0]).to(dev)

    def step(self, p: dict) -> tuple[float, float]:
        """One generator update; returns ``(loss_g, loss_d)`` (loss_d of the last D step,
        penalty included)."""
        q = {**GAN_DEFAULTS, **p}
        kind = str(q["loss"])
        _check_loss(kind)
        lr_g, lr_d = float(q["lr_g"]), float(q["lr_d"])
        if self.opt_g is None or self.opt_d is None or self.kind != kind:
            self.opt_g, self.opt_d = _optimizers(self.gan, kind, lr_g, lr_d)
            self.kind = kind
        for g in self.opt_g.param_groups:
            g["lr"] = lr_g
        for g in self.opt_d.param_groups:
            g["lr"] = lr_d
        bs = int(q["batch_size"])
        gan = self.gan
        if kind != "wgan-gp":
            self.last_gp = 0.0
        loss_d = torch.zeros(())
        for _ in range(max(int(q["n_critic"]), 1)):
            real = self._real(bs)
            with torch.no_grad():
                fake = gan.G(gan.latent(bs, self.rng))
            d_out = gan.D(torch.cat([real, fake]))  # one pass: D has no batch coupling
            loss_d = discriminator_loss(kind, d_out[:bs], d_out[bs:])
            if kind == "wgan-gp":
                gp = gradient_penalty(gan.D, real, fake, generator=self.torch_gen)
                self.last_gp = float(gp.detach())
                loss_d = loss_d + float(q["gp_weight"]) * gp
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            if kind == "wgan":
                c = float(q["clip"])
                with torch.no_grad():
                    for w in gan.D_net.parameters():
                        w.clamp_(-c, c)
        d_params = list(gan.D_net.parameters())
        for w in d_params:  # G's step needs grads through D, not for D's weights
            w.requires_grad_(False)
        try:
            fake = gan.G(gan.latent(bs, self.rng))
            loss_g = generator_loss_per_sample(kind, gan.D(fake)).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            for w in d_params:
                w.requires_grad_(True)
        self.opt_g.step()
        self.step_count += 1
        return float(loss_g.detach()), float(loss_d.detach())


@dataclass(frozen=True)
class GanSnapshot:
    """One frame of GAN training (numbers and fresh numpy arrays only).

    ``history`` rows are ``(step, loss_g, loss_d)``. Visual fields are filled on the first
    and every ``visual_every``-th snapshot, else ``None``; ``coverage`` only for mixture
    targets (8gaussians, 25gaussians).
    """

    step: int
    loss_g: float
    loss_d: float
    gradient_penalty: float
    history: np.ndarray
    steps_per_s: float
    loss: str
    samples: np.ndarray | None = None  # (n, 2) generated
    heatmap: np.ndarray | None = None  # critic_grid, (res, res) image-oriented
    push_points: np.ndarray | None = None  # (m, 2)
    push: np.ndarray | None = None  # (m, 2), -dLoss_G/dx
    manifold: np.ndarray | None = None  # (rows, n, 2)
    coverage: ModeCoverage | None = None
    extent: tuple[tuple[float, float], tuple[float, float]] | None = None
    config: dict | None = None  # GAN(**config) rebuilds the architecture
    state: dict[str, np.ndarray] | None = None  # numpy copy of G and D (visual frames only)


def gan_train_job(
    params: ParamBox,
    gan: GAN | None = None,
    *,
    dataset: str | np.ndarray = "8gaussians",
    latent_dim: int = 2,
    hidden: int = 64,
    depth: int = 2,
    seed: int = 0,
    max_steps: int | None = None,
    chunk_s: float = 0.03,
    history_len: int = 2000,
    visual_every: int = 3,
    n_vis_samples: int = 2000,
    n_arrows: int = 200,
    extent: tuple[tuple[float, float], tuple[float, float]] = ((-4.0, 4.0), (-4.0, 4.0)),
    grid_res: int = 100,
    device: torch.device | str = "cpu",
) -> Iterator[GanSnapshot]:
    """GAN training generator: each ``next()`` runs generator steps for about ``chunk_s``.

    Live parameters (read before every generator step, defaults in :data:`GAN_DEFAULTS`):
    ``loss`` (minimax | nonsaturating | wgan | wgan-gp), ``lr_g``, ``lr_d``, ``n_critic``
    (D steps per G step), ``batch_size``, ``clip`` (WGAN), ``gp_weight`` (WGAN-GP).
    Architecture (``latent_dim``, ``hidden``, ``depth``) is fixed for the run; a new GAN
    is built on ``device`` unless ``gan`` is passed (then trained in place on its own).
    ``step`` counts generator steps; stops after ``max_steps`` if given.

    ``dataset``: a toy data set name or a user's (n, 2) point set (rows resampled). Mode
    coverage is reported only for the named mixtures (8gaussians, 25gaussians), the only
    targets whose modes are known exactly.
    """
    if gan is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gan = GAN(latent_dim, hidden, depth).to(device)
    trainer = GanTrainer(gan, dataset, seed)
    mix = toy_data.mixture(dataset) if isinstance(dataset, str) else None
    vis_rng = np.random.default_rng([seed, 1])
    z_vis = gan.latent(n_vis_samples, vis_rng)  # fixed codes: samples move, not flicker
    hist: deque[tuple[float, float, float]] = deque(maxlen=history_len)
    n_snap = 0
    while max_steps is None or trainer.step_count < max_steps:
        t0 = time.perf_counter()
        n_done = 0
        loss_g = loss_d = 0.0
        kind = str(GAN_DEFAULTS["loss"])
        while True:
            p = params.get()
            kind = str(p.get("loss", GAN_DEFAULTS["loss"]))
            loss_g, loss_d = trainer.step(p)
            n_done += 1
            hist.append((trainer.step_count, loss_g, loss_d))
            elapsed = time.perf_counter() - t0
            if elapsed >= chunk_s or (max_steps is not None and trainer.step_count >= max_steps):
                break
        visual = n_snap % max(visual_every, 1) == 0
        n_snap += 1
        samples = pts = push = manifold = heat = cov = None
        if visual:
            with torch.no_grad():
                samples = gan.G(z_vis).cpu().numpy()
            pts, push = generator_push(gan, kind, z_vis[:n_arrows])
            manifold = generator_manifold(gan)
            heat = critic_grid(gan, kind, extent[0], extent[1], grid_res)
            cov = mode_coverage(samples, mix) if mix is not None else None
        yield GanSnapshot(
            step=trainer.step_count,
            loss_g=loss_g,
            loss_d=loss_d,
            gradient_penalty=trainer.last_gp,
            history=np.asarray(hist, dtype=np.float64).reshape(-1, 3),
            steps_per_s=n_done / max(elapsed, 1e-9),
            loss=kind,
            samples=samples,
            heatmap=heat,
            push_points=pts,
            push=push,
            manifold=manifold,
            coverage=cov,
            extent=extent,
            config=dict(gan.config),
            state=gan_state_numpy(gan) if visual else None,
        )
