"""Exact 2-D Gaussian mixtures and their exact diffusion / flow oracles.

Why this module exists: a Gaussian mixture is the one non-trivial data distribution whose
noised marginals stay Gaussian mixtures, so the *true* score of a VP diffusion and the *true*
marginal velocity of rectified flow are known in closed form (see ``/work/shared/reference.md``).
The 2D Lab uses these oracles as ground truth: to draw the exact vector field next to a learned
one, to sample with a perfect model (so any error left is the sampler's), and to give
class-conditional exact scores for guidance demos.

Conventions:

* A mixture is ``sum_k pi_k N(mu_k, Sigma_k)`` in 2-D, stored as float64 numpy arrays.
* VP diffusion: ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps`` with ``ab`` = alpha-bar in [0, 1].
* Rectified flow: ``x_t = (1 - t) x0 + t x1`` with ``x0 ~ N(0, I)`` (noise) at ``t = 0`` and
  ``x1 ~`` mixture (data) at ``t = 1``.
* Density arrays for drawing are image-oriented: row 0 is the *top* edge (``y = ymax``) and
  column 0 the left edge (``x = xmin``), the same as :mod:`engines.toy_data`'s image densities.

This module is pure numpy/torch: it never imports Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import logsumexp

__all__ = [
    "GaussianMixture",
    "posterior_terms",
    "rf_velocity",
    "vp_eps",
    "vp_score",
    "vp_x0",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _to_torch(arr: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Copy a (read-only) parameter array to torch; a copy, since torch rejects read-only views."""
    return torch.from_numpy(np.array(arr)).to(device=device, dtype=dtype)


def _inv_det_2x2(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of a stack of 2x2 matrices in closed form (no LAPACK call)."""
    a, b, c, d = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 0], cov[..., 1, 1]
    det = a * d - b * c
    inv = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / det[..., None, None]
    return inv, det


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A 2-D Gaussian mixture ``sum_k weights[k] * N(means[k], covs[k])``.

    Frozen and with read-only arrays, because one instance is shared between the GUI thread
    (drawing) and worker threads (oracles); nobody may mutate it under the other's feet.
    Weights are renormalised to sum to 1 on construction, so counts may be passed directly.
    ``eq=False``: equality is identity, since element-wise array equality has no truth value.
    """

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, 2)
    covs: np.ndarray  # (K, 2, 2)
    # Derived once: every training step samples and every redraw evaluates the density.
    _chol: np.ndarray = field(init=False, repr=False, compare=False)
    _inv: np.ndarray = field(init=False, repr=False, compare=False)
    _logdet: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        w = np.array(self.weights, dtype=np.float64).reshape(-1)
        mu = np.array(self.means, dtype=np.float64)
        cov = np.array(self.covs, dtype=np.float64)
        k = w.shape[0]
        if k == 0:
            raise ValueError("a GaussianMixture needs at least one component")
        if mu.shape != (k, 2):
            raise ValueError(f"means must have shape ({k}, 2), got {mu.shape}")
        if cov.shape != (k, 2, 2):
            raise ValueError(f"covs must have shape ({k}, 2, 2), got {cov.shape}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(mu)) and np.all(np.isfinite(cov))):
            raise ValueError("weights, means and covs must be finite")
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-10, atol=1e-12):
            raise ValueError("every covariance must be symmetric")
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as exc:
            raise ValueError("every covariance must be positive definite") from exc
        w = w / w.sum()
        inv, det = _inv_det_2x2(cov)
        derived = (("_chol", chol), ("_inv", inv), ("_logdet", np.log(det)))
        for name, arr in (("weights", w), ("means", mu), ("covs", cov), *derived):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def isotropic(
        cls, means: np.ndarray, std: float | np.ndarray, weights: np.ndarray | None = None
    ) -> GaussianMixture:
        """Mixture of round Gaussians ``N(means[k], std[k]^2 I)``; equal weights by default."""
        mu = np.asarray(means, dtype=np.float64).reshape(-1, 2)
        k = mu.shape[0]
        s = np.broadcast_to(np.asarray(std, dtype=np.float64), (k,))
        covs = (s**2)[:, None, None] * np.eye(2)[None]
        w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64)
        return cls(w, mu, covs)

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    # ------------------------------------------------------------------ densities
    def component_log_prob(self, x: np.ndarray) -> np.ndarray:
        """``log pi_k + log N(x; mu_k, Sigma_k)`` for every point and component, shape (n, K)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, 2)
        d = x[:, None, :] - self.means[None]  # (n, K, 2)
        maha = np.einsum("nki,kij,nkj->nk", d, self._inv, d)
        return np.log(self.weights)[None] - 0.5 * (maha + self._logdet[None]) - _LOG_2PI

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log-density at points ``x`` (n, 2), float64 (n,); stable via logsumexp."""
        return logsumexp(self.component_log_prob(x), axis=1)

    def log_prob_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable log-density of ``x`` (N, 2) in ``x``'s dtype and device, shape (N,).

        Used to check the closed-form oracles against autograd, and by likelihood demos.
        """
        dt, dev = x.dtype, x.device
        w = _to_torch(self.weights, dt, dev)
        mu = _to_torch(self.means, dt, dev)
        inv = _to_torch(self._inv, dt, dev)
        logdet = _to_torch(self._logdet, dt, dev)
        d = x[:, None, :] - mu[None]
        maha = torch.einsum("nki,kij,nkj->nk", d, inv, d)
        comp = torch.log(w)[None] - 0.5 * (maha + logdet[None]) - _LOG_2PI
        return torch.logsumexp(comp, dim=1)

    def grid_density(
        self,
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        res: int | tuple[int, int],
    ) -> np.ndarray:
        """Density at pixel centres of a ``res`` grid (int, or (H, W)), float64 (H, W).

        Image-oriented (row 0 is ``y = ylim[1]``), so it matches the arrays that
        :func:`engines.toy_data.sample_from_density` takes; flip rows to draw with y up.
        """
        h, w = (res, res) if isinstance(res, int) else (int(res[0]), int(res[1]))
        xs = xlim[0] + (np.arange(w) + 0.5) * (xlim[1] - xlim[0]) / w
        ys = ylim[1] - (np.arange(h) + 0.5) * (ylim[1] - ylim[0]) / h
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        return np.exp(self.log_prob(pts)).reshape(h, w)

    # ------------------------------------------------------------------ sampling
    def _sample64(
        self, n: int, rng: np.random.Generator, equal_counts: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        k = self.n_components
        if equal_counts:
            # Largest-remainder rounding of n * weights: the counts per component are as
            # close to the weights as integers allow, which removes the multinomial noise
            # that dominates two-sample distances on well-separated modes.
            raw = n * self.weights
            counts = np.floor(raw).astype(np.int64)
            short = n - int(counts.sum())
            if short > 0:
                order = np.argsort(-(raw - counts), kind="stable")
                counts[order[:short]] += 1
            labels = rng.permutation(np.repeat(np.arange(k, dtype=np.int64), counts))
        else:
            labels = rng.choice(k, size=n, p=self.weights).astype(np.int64)
        z = rng.standard_normal((n, 2))
        pts = self.means[labels] + np.einsum("nij,nj->ni", self._chol[labels], z)
        return pts, labels

    def sample(
        self, n: int, rng: np.random.Generator, equal_counts: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` points: (n, 2) float32 and their component labels (n,) int64.

        ``equal_counts=True`` fixes the number of points per component to ``n * weights``
        (rounded) and shuffles, which halves the two-sample noise floor of metrics.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        pts, labels = self._sample64(n, rng, equal_counts)
        return pts.astype(np.float32), labels

    def entropy_mc(self, n: int = 200_000, rng: np.random.Generator | None = None) -> float:
        """Monte Carlo differential entropy ``-E[log p(x)]`` in nats.

        There is no closed form for a mixture's entropy; this is the NLL floor that a
        density model (a flow) can reach. ``rng=None`` uses a fixed seed so the figure shown
        in the GUI does not flicker between calls. Standard error is ``std(log p)/sqrt(n)``.
        """
        rng = np.random.default_rng(0) if rng is None else rng
        pts, _ = self._sample64(int(n), rng)
        return float(-self.log_prob(pts).mean())

    # ------------------------------------------------------------------ derived mixtures
    def subset(self, labels: Sequence[int]) -> GaussianMixture:
        """The mixture restricted to the given components, weights renormalised.

        This is ``p(x | label in labels)``: the class-conditional oracle for guidance demos.
        """
        idx = np.asarray(list(labels), dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("subset needs at least one label")
        if np.any(idx < 0) or np.any(idx >= self.n_components):
            raise ValueError(f"labels must be in [0, {self.n_components}), got {idx.tolist()}")
        idx = np.unique(idx)
        return GaussianMixture(self.weights[idx], self.means[idx], self.covs[idx])

    def noised_vp(self, alpha_bar: float) -> GaussianMixture:
        """Marginal of ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps``: components ``N(sqrt(ab) mu, C)``
        with ``C = ab Sigma + (1 - ab) I``."""
        ab = float(alpha_bar)
        if not 0.0 <= ab <= 1.0:
            raise ValueError(f"alpha_bar must be in [0, 1], got {ab}")
        covs = ab * self.covs + (1.0 - ab) * np.eye(2)[None]
        return GaussianMixture(self.weights, math.sqrt(ab) * self.means, covs)

    def interpolated_rf(self, t: float) -> GaussianMixture:
        """Marginal of ``x_t = (1 - t) x0 + t x1``, ``x0 ~ N(0, I)``: components
        ``N(t mu, (1 - t)^2 I + t^2 Sigma)``."""
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must be in [0, 1], got {t}")
        covs = t * t * self.covs + (1.0 - t) ** 2 * np.eye(2)[None]
        return GaussianMixture(self.weights, t * self.means, covs)


# ====================================================================== torch oracles


def _compute_dtype(device: torch.device) -> torch.dtype:
    # float64 keeps the 2x2 inverses and the logsumexp accurate for very sharp modes
    # (25gaussians has std 0.018); MPS has no float64, so it falls back to float32.
    return torch.float32 if device.type == "mps" else torch.float64


def _per_sample(
    value: torch.Tensor | float, n: int, device: torch.device, dtype: torch.dtype, name: str
) -> torch.Tensor:
    """Broadcast a float, 0-d, (N,) or (N, 1) time/noise level to shape (N,)."""
    if isinstance(value, torch.Tensor):
        v = value.to(device=device, dtype=dtype).reshape(-1)
    else:  # straight to float64: a float32 detour would cost 1e-7 relative accuracy
        v = torch.as_tensor(np.asarray(value, dtype=np.float64), device=device).to(dtype)
        v = v.reshape(-1)
    if v.numel() == 1:
        return v.expand(n)
    if v.numel() != n:
        raise ValueError(f"{name} must be a float or have N={n} entries, got {v.numel()}")
    return v


def posterior_terms(
    gmm: GaussianMixture,
    x: torch.Tensor,
    scale: torch.Tensor | float,
    sigma: torch.Tensor | float,
    labels: torch.Tensor | int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shared algebra of every oracle for ``x = scale * x_data + sigma * noise``.

    Component k of the marginal is ``N(scale mu_k, C_k)``, ``C_k = scale^2 Sigma_k + sigma^2 I``.
    Returns, in float64 (float32 on MPS):

    * ``w`` (N, K): posterior component responsibilities ``p(k | x)`` (softmax of logits, so
      stable far from every mode);
    * ``cinv_d`` (N, K, 2): ``C_k^{-1} (x - scale mu_k)``; the score is ``-sum_k w cinv_d``;
    * ``mu`` (K, 2) and ``cov`` (K, 2, 2): the data mixture's parameters in the same dtype.

    ``labels`` (int or (N,) int tensor) conditions sample i on component ``labels[i]``; a
    negative label means "unconditional" for that sample (the null class of classifier-free
    guidance).
    """
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2), got {tuple(x.shape)}")
    dev = x.device
    dt = _compute_dtype(dev)
    n, k = x.shape[0], gmm.n_components
    xd = x.to(dt)
    s = _per_sample(scale, n, dev, dt, "scale")
    sg = _per_sample(sigma, n, dev, dt, "sigma")
    mu = _to_torch(gmm.means, dt, dev)
    cov = _to_torch(gmm.covs, dt, dev)
    logw = _to_torch(np.log(gmm.weights), dt, dev)

    # Entries of the symmetric C (N, K) and its closed-form 2x2 inverse; no (N, K, 2, 2)
    # tensor, since this runs for every particle at every sampler step.
    s2, sg2 = (s * s)[:, None], (sg * sg)[:, None]
    a = s2 * cov[None, :, 0, 0] + sg2
    b = s2 * cov[None, :, 0, 1]
    d_ = s2 * cov[None, :, 1, 1] + sg2
    det = a * d_ - b * b
    diff = xd[:, None, :] - s[:, None, None] * mu[None]  # (N, K, 2)
    dx, dy = diff[..., 0], diff[..., 1]
    cinv_d = torch.stack([d_ * dx - b * dy, a * dy - b * dx], dim=-1) / det[..., None]
    maha = (diff * cinv_d).sum(-1)
    logits = logw[None] - 0.5 * (maha + torch.log(det))
    if labels is not None:
        lab = torch.as_tensor(labels, device=dev).to(torch.int64).reshape(-1)
        if lab.numel() == 1:
            lab = lab.expand(n)
        if lab.numel() != n:
            raise ValueError(f"labels must be an int or have N={n} entries, got {lab.numel()}")
        if bool((lab >= k).any()):
            raise ValueError(f"labels must be < {k} (negative means unconditional)")
        keep = (lab[:, None] < 0) | (lab[:, None] == torch.arange(k, device=dev)[None])
        logits = logits.masked_fill(~keep, float("-inf"))
    w = torch.softmax(logits, dim=1)
    return w, cinv_d, mu, cov


def _finish(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return out.to(x.dtype)


def vp_score(
    gmm: GaussianMixture,
    x: torch.Tensor,
    alpha_bar: torch.Tensor | float,
    labels: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Exact score ``grad log p_t(x)`` of the VP-noised mixture, (N, 2) in ``x``'s dtype.

    ``alpha_bar``: float or (N,) tensor, each in (0, 1]. ``labels``: see :func:`posterior_terms`.
    """
    n = x.shape[0]
    ab = _per_sample(alpha_bar, n, x.device, _compute_dtype(x.device), "alpha_bar")
    w, cinv_d, _, _ = posterior_terms(gmm, x, ab.sqrt(), (1.0 - ab).clamp_min(0).sqrt(), labels)
    return _finish(-(w[..., None] * cinv_d).sum(1), x)


def vp_eps(
    gmm: GaussianMixture,
    x: torch.Tensor,
    alpha_bar: torch.Tensor | float,
    labels: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Exact noise prediction ``E[eps | x_t] = -sqrt(1 - ab) * score``, (N, 2)."""
    n = x.shape[0]
    dt = _compute_dtype(x.device)
    ab = _per_sample(alpha_bar, n, x.device, dt, "alpha_bar")
    sig = (1.0 - ab).clamp_min(0).sqrt()
    w, cinv_d, _, _ = posterior_terms(gmm, x, ab.sqrt(), sig, labels)
    return _finish(sig[:, None] * (w[..., None] * cinv_d).sum(1), x)


def vp_x0(
    gmm: GaussianMixture,
    x: torch.Tensor,
    alpha_bar: torch.Tensor | float,
    labels: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Exact posterior mean ``E[x0 | x_t]``, (N, 2).

    Equal to Tweedie's ``(x + (1 - ab) score) / sqrt(ab)``, but computed per component as
    ``mu_k + sqrt(ab) Sigma_k C_k^{-1} (x - sqrt(ab) mu_k)`` so it stays finite at ``ab = 0``
    (where it is the mixture mean) instead of dividing by ``sqrt(ab)``.
    """
    n = x.shape[0]
    ab = _per_sample(alpha_bar, n, x.device, _compute_dtype(x.device), "alpha_bar")
    s = ab.sqrt()
    w, cinv_d, mu, cov = posterior_terms(gmm, x, s, (1.0 - ab).clamp_min(0).sqrt(), labels)
    wc = w[..., None] * cinv_d  # (N, K, 2)
    post = w @ mu + s[:, None] * torch.einsum("kij,nkj->ni", cov, wc)
    return _finish(post, x)


def rf_velocity(
    gmm: GaussianMixture,
    x: torch.Tensor,
    t: torch.Tensor | float,
    labels: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Exact marginal rectified-flow velocity ``E[x1 - x0 | x_t = x]``, (N, 2).

    Noise ``N(0, I)`` at ``t = 0``, the mixture at ``t = 1``:
    ``v = sum_k w_k [mu_k + (t Sigma_k - (1 - t) I) C_k^{-1} (x - t mu_k)]`` with
    ``C_k = (1 - t)^2 I + t^2 Sigma_k``. Integrating ``dx/dt = v`` from noise transports
    ``N(0, I)`` exactly onto the mixture (the ODE sampler of a perfect model).
    """
    n = x.shape[0]
    tt = _per_sample(t, n, x.device, _compute_dtype(x.device), "t")
    w, cinv_d, mu, cov = posterior_terms(gmm, x, tt, 1.0 - tt, labels)
    wc = w[..., None] * cinv_d  # (N, K, 2)
    v = (
        w @ mu
        + tt[:, None] * torch.einsum("kij,nkj->ni", cov, wc)
        - (1.0 - tt)[:, None] * wc.sum(1)
    )
    return _finish(v, x)
