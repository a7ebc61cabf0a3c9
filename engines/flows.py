"""Normalizing flows for 2-D toy data, written out by hand so every layer can be inspected.

A flow is an invertible map ``x = f(z)`` from a standard Gaussian latent ``z`` to data
``x``. Change of variables gives the exact density the lesson is about::

    log p(x) = log N(f^{-1}(x); 0, I) + log |det d f^{-1}(x) / dx|

Each layer is its own small module with ``forward(x) -> (y, logdet)`` and
``inverse(y) -> (x, logdet)``. **Direction convention:** ``forward`` is the *generative*
direction (latent side -> data side), because that is what the "push the latent grid
through the first k layers" view animates; ``logdet`` is always ``log |det dy/dx|`` of the
map just applied, per sample, shape ``(N,)``. So ``inverse`` returns the log-determinant
of the inverse map (minus the forward one at the same point). ``Flow.layers`` is stored
in generative order; the papers describe the normalizing direction (data -> latent), so
:func:`build_flow` assembles each architecture in the paper's order and reverses it.

Layers (all dimension-agnostic, but alternating masks make sense for the 2-D lab):

* :class:`AdditiveCoupling` -- NICE (Dinh et al., 2014): ``y_b = x_b + m(x_a)``, volume
  preserving, which is why NICE needs :class:`DiagonalScaling` to change volume at all.
* :class:`AffineCoupling` -- RealNVP (Dinh et al., 2016): ``y_b = x_b * exp(s) + t`` with a
  tanh-bounded log-scale so one bad step cannot blow up ``exp(s)``.
* :class:`ActNorm` -- Glow (Kingma & Dhariwal, 2018): per-dimension affine map with a
  data-dependent initialisation (the first batch comes out zero-mean, unit-variance).
* :class:`InvertibleLinearLU` -- Glow's invertible 1x1 convolution; for 2-D points that is
  a learned 2x2 mixing matrix, LU-parametrised so the log-determinant is ``sum(log|s|)``.
* :class:`RQSplineCoupling` -- neural spline flow (Durkan et al., 2019): monotone
  rational-quadratic splines on ``[-B, B]`` with identity (linear) tails outside.

Everything here is pure torch/numpy: no Qt (see ``engines/jobs.py`` for the job protocol).
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from engines import toy_data
from engines.jobs import ParamBox

FlowKind = Literal["nice", "realnvp", "glow", "nsf"]
FLOW_KINDS: tuple[str, ...] = ("nice", "realnvp", "glow", "nsf")
_LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------


def mlp(n_in: int, n_out: int, hidden: int, depth: int, zero_last: bool = True) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with SiLU.

    SiLU rather than ReLU because the model density is drawn as a heat map: a ReLU
    conditioner makes it piecewise-smooth with visible creases. The last layer starts at
    zero so every coupling starts as the identity and an untrained flow *is* the base
    Gaussian, a sensible first picture in the lesson.
    """
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(max(depth, 1)):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    last = nn.Linear(width, n_out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


def alternating_mask(dim: int, parity: int) -> Tensor:
    """Boolean mask of the coordinates a coupling *conditions on* (``True`` = kept).

    For 2-D, parity 0 keeps ``x`` and transforms ``y``; parity 1 the other way round, so
    two consecutive couplings together touch both coordinates.
    """
    return torch.arange(dim) % 2 == parity % 2


class FlowLayer(nn.Module):
    """An invertible layer: ``forward(x) -> (y, log|det dy/dx|)``, ``inverse`` the reverse.

    Subclasses must make ``inverse(forward(x)[0])`` return ``x`` and the two log-determinants
    sum to zero; ``tests/engines/test_flows.py`` checks both against autograd Jacobians.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Short human-readable name for layer-by-layer views."""
        return type(self).__name__


class _Coupling(FlowLayer):
    """Shared plumbing for coupling layers: split by mask, transform one half given the other.

    The kept half ``x_a`` passes through unchanged and parametrises an elementwise,
    invertible map of the other half ``x_b``. The Jacobian is triangular, so its
    log-determinant is the sum of the elementwise log-derivatives -- that one line is the
    whole trick of coupling flows.
    """

    def __init__(self, dim: int, parity: int, params_per_dim: int, hidden: int, depth: int):
        super().__init__()
        mask = alternating_mask(dim, parity)
        cond = torch.nonzero(mask).flatten()
        trans = torch.nonzero(~mask).flatten()
        order = torch.cat([cond, trans])
        self.register_buffer("cond_idx", cond, persistent=False)
        self.register_buffer("trans_idx", trans, persistent=False)
        # (x_a, x_b) concatenated -> original coordinate order
        self.register_buffer("unperm", torch.argsort(order), persistent=False)
        self.dim = dim
        self.parity = parity
        self.n_trans = int(trans.numel())
        self.params_per_dim = params_per_dim
        self.net = mlp(int(cond.numel()), self.n_trans * params_per_dim, hidden, depth)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.dim == 2:  # the lab's case: slices are views, no gather kernels
            xa, xb = x[:, self.parity : self.parity + 1], x[:, 1 - self.parity : 2 - self.parity]
        else:
            xa, xb = x.index_select(1, self.cond_idx), x.index_select(1, self.trans_idx)
        return xa, xb, self.net(xa)

    def _param(self, h: Tensor, k: int) -> Tensor:
        """Parameter ``k`` for every transformed coordinate, ``(N, n_trans)`` (a slice: the
        net's output is laid out parameter-major, which keeps the hot path free of copies)."""
        return h[:, k * self.n_trans : (k + 1) * self.n_trans]

    def _merge(self, xa: Tensor, yb: Tensor) -> Tensor:
        if self.dim == 2:
            return torch.cat([xa, yb] if self.parity == 0 else [yb, xa], dim=1)
        return torch.cat([xa, yb], dim=1).index_select(1, self.unperm)

    def _axes(self) -> str:
        def pick(idx: Tensor) -> str:
            return ",".join("xyzw"[i] if i < 4 else f"x{i}" for i in idx.tolist())

        return f"{pick(self.trans_idx)} | {pick(self.cond_idx)}"


class AdditiveCoupling(_Coupling):
    """NICE coupling ``y_b = x_b + m(x_a)``: unit Jacobian determinant (volume preserving)."""

    def __init__(self, dim: int = 2, parity: int = 0, hidden: int = 32, depth: int = 2):
        super().__init__(dim, parity, 1, hidden, depth)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb, h = self._split(x)
        return self._merge(xa, xb + self._param(h, 0)), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        ya, yb, h = self._split(y)
        return self._merge(ya, yb - self._param(h, 0)), y.new_zeros(y.shape[0])

    @property
    def label(self) -> str:
        return f"additive coupling ({self._axes()})"


class DiagonalScaling(FlowLayer):
    """NICE's final layer ``y = x * exp(s)``: the only place a NICE flow can change volume."""

    def __init__(self, dim: int = 2):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.exp(), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y * (-self.log_scale).exp(), (-self.log_scale.sum()).expand(y.shape[0])

    @property
    def label(self) -> str:
        return "diagonal scaling"


class AffineCoupling(_Coupling):
    """RealNVP coupling ``y_b = x_b * exp(s(x_a)) + t(x_a)``, ``log|det| = sum(s)``.

    The raw log-scale goes through a soft clamp ``s = B * tanh(raw / B)`` (``B = scale_bound``):
    near zero it is the identity, far out it saturates, so a single large gradient step can
    not produce ``exp(50)`` and a NaN loss -- the classic RealNVP instability.
    """

    def __init__(
        self,
        dim: int = 2,
        parity: int = 0,
        hidden: int = 32,
        depth: int = 2,
        scale_bound: float = 2.0,
    ):
        super().__init__(dim, parity, 2, hidden, depth)
        self.scale_bound = float(scale_bound)

    def _st(self, h: Tensor) -> tuple[Tensor, Tensor]:
        s = self.scale_bound * torch.tanh(self._param(h, 0) / self.scale_bound)
        return s, self._param(h, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb, h = self._split(x)
        s, t = self._st(h)
        return self._merge(xa, xb * s.exp() + t), s.sum(dim=1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        ya, yb, h = self._split(y)
        s, t = self._st(h)
        return self._merge(ya, (yb - t) * (-s).exp()), -s.sum(dim=1)

    @property
    def label(self) -> str:
        return f"affine coupling ({self._axes()})"


class ActNorm(FlowLayer):
    """Glow's activation normalisation ``y = x * exp(log_scale) + loc``.

    Data-dependent initialisation: :meth:`initialize` (called through
    :meth:`Flow.data_init` before training) sets ``loc``/``log_scale`` so that the data
    arriving at this layer (in the normalizing direction) comes out with zero mean and unit
    variance. It is explicit rather than "on the first call" because the first call is
    often a density-grid evaluation over a uniform grid, which would be the wrong data.
    """

    def __init__(self, dim: int = 2):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, y: Tensor) -> None:
        """Fit to a batch ``y`` seen on this layer's data side (needs at least 2 rows)."""
        if y.shape[0] < 2:
            raise ValueError("ActNorm data-dependent init needs a batch of at least 2 points")
        self.loc.copy_(y.mean(dim=0))
        self.log_scale.copy_(torch.log(y.std(dim=0) + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.exp() + self.loc, self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = (y - self.loc) * (-self.log_scale).exp()
        return x, (-self.log_scale.sum()).expand(y.shape[0])

    @property
    def label(self) -> str:
        return "actnorm"


class InvertibleLinearLU(FlowLayer):
    """Glow's invertible 1x1 convolution; on 2-D points it is a learned 2x2 mixing matrix.

    ``W = P L (U + diag(sign * exp(log_s)))`` with a fixed permutation ``P``, unit lower
    triangular ``L`` and strictly upper ``U``: ``log|det W| = sum(log_s)`` costs O(D) and
    ``W`` can never become singular. It replaces the fixed swap between couplings by a
    learned rotation/shear. Initialised, as in Glow, from a random rotation.
    """

    def __init__(self, dim: int = 2, generator: torch.Generator | None = None):
        super().__init__()
        w0 = torch.linalg.qr(torch.randn(dim, dim, generator=generator))[0]
        p, lower, upper = torch.linalg.lu(w0)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.register_buffer("eye", torch.eye(dim))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    def weight(self) -> Tensor:
        """The current mixing matrix ``W`` (shape ``(D, D)``); ``y = W x``."""
        lower = self.lower * self.lower_mask + self.eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x @ self.weight().T, self.log_s.sum().expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        w_inv = torch.linalg.inv(self.weight())
        return y @ w_inv.T, (-self.log_s.sum()).expand(y.shape[0])

    @property
    def label(self) -> str:
        return "invertible 2x2 mix (LU)"


# --------------------------------------------------------------------- spline coupling


def _knots(logits: Tensor, bound: float, min_bin: float) -> Tensor:
    """Knot positions ``-bound = k_0 < ... < k_K ~= bound`` from unnormalised bin sizes.

    Softmax written out (``exp / sum`` after subtracting the max): torch's fused CPU
    softmax over a last dimension of 8 is ~4x slower, and this runs 40,000 rows per layer
    for every density-grid frame. Every bin keeps at least ``min_bin`` of the interval so
    the spline's inverse stays well conditioned.
    """
    e = (logits - logits.amax(dim=-1, keepdim=True)).exp()
    k = logits.shape[-1]
    frac = min_bin + (1.0 - min_bin * k) * e / e.sum(dim=-1, keepdim=True)
    cum = F.pad(torch.cumsum(frac, dim=-1), (1, 0), value=0.0)
    return (2.0 * bound) * cum - bound


def rational_quadratic_spline(
    x: Tensor,
    widths: Tensor,
    heights: Tensor,
    derivatives: Tensor,
    *,
    inverse: bool = False,
    bound: float = 4.0,
    min_bin: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Monotone rational-quadratic spline with identity tails (Durkan et al., 2019, eq. 4-8).

    ``widths``/``heights`` are unnormalised bin sizes ``(..., K)``; ``derivatives`` are the
    unconstrained *interior* knot derivatives ``(..., K-1)``. The end knots get derivative 1
    so the spline joins the identity tails outside ``[-bound, bound]`` with a continuous
    slope. Returns ``(y, log|dy/dx|)`` elementwise (for ``inverse=True``: ``(x, log|dx/dy|)``).

    Points outside the interval are clamped before the spline maths and then replaced by
    the identity with ``torch.where``, so no NaN reaches the unused branch (a NaN there
    would still poison the gradient).
    """
    k = widths.shape[-1]
    # (the last knot equals `bound` up to float rounding, harmless: slopes match there)
    cw = _knots(widths, bound, min_bin)  # (..., K+1) x-positions of the knots
    ch = _knots(heights, bound, min_bin)  # (..., K+1) y-positions of the knots
    d = F.pad(min_derivative + F.softplus(derivatives), (1, 1), value=1.0)  # (..., K+1)

    inside = (x >= -bound) & (x <= bound)
    xc = x.clamp(-bound, bound)
    knots = ch if inverse else cw
    idx = torch.searchsorted(knots[..., 1:-1].contiguous(), xc[..., None].contiguous())
    idx = idx.clamp(0, k - 1)

    idx2 = torch.cat([idx, idx + 1], dim=-1)  # left and right knot of the bin

    def gather(t: Tensor) -> tuple[Tensor, Tensor]:
        g = t.gather(-1, idx2)
        return g[..., 0], g[..., 1]

    (x_k, x_k1), (y_k, y_k1), (d_k, d_k1) = gather(cw), gather(ch), gather(d)
    w_k, h_k = x_k1 - x_k, y_k1 - y_k
    s_k = h_k / w_k
    two_s = d_k1 + d_k - 2.0 * s_k

    if inverse:
        # solve the bin's rational quadratic for theta; this root form (eq. 29-32 of the
        # paper's appendix) avoids cancellation when a ~ 0
        dy = xc - y_k
        a = h_k * (s_k - d_k) + dy * two_s
        b = h_k * d_k - dy * two_s
        c = -s_k * dy
        disc = (b.pow(2) - 4.0 * a * c).clamp(min=0.0)
        theta = (2.0 * c) / (-b - disc.sqrt())
        out = theta * w_k + x_k
        tt = theta * (1.0 - theta)
        denom = s_k + two_s * tt
    else:
        theta = (xc - x_k) / w_k
        tt = theta * (1.0 - theta)
        denom = s_k + two_s * tt
        out = y_k + h_k * (s_k * theta.pow(2) + d_k * tt) / denom
    dnum = s_k.pow(2) * (d_k1 * theta.pow(2) + 2.0 * s_k * tt + d_k * (1.0 - theta).pow(2))
    logdet = torch.log(dnum) - 2.0 * torch.log(denom)
    if inverse:
        logdet = -logdet
    out = torch.where(inside, out, x)
    logdet = torch.where(inside, logdet, torch.zeros_like(logdet))
    return out, logdet


class RQSplineCoupling(_Coupling):
    """Neural-spline coupling: ``x_b`` goes through a monotone rational-quadratic spline whose
    ``K`` bins (widths, heights, knot slopes) are predicted from ``x_a``.

    Far more flexible per layer than an affine map (it can split one Gaussian bump into
    several), which is why a few spline layers fit 8 gaussians better than many affine
    ones. Outside ``[-bound, bound]`` it is the identity.
    """

    def __init__(
        self,
        dim: int = 2,
        parity: int = 0,
        hidden: int = 32,
        depth: int = 2,
        n_bins: int = 8,
        bound: float = 4.0,
    ):
        super().__init__(dim, parity, 3 * n_bins - 1, hidden, depth)
        self.n_bins = n_bins
        self.bound = float(bound)
        # zero network output -> uniform bins and slope 1 everywhere: an exact identity
        self._d_offset = math.log(math.expm1(1.0 - 1e-3))

    def _spline(self, xb: Tensor, h: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        k = self.n_bins
        h = h.view(h.shape[0], self.n_trans, 3 * k - 1)  # per coordinate: K, K, K-1 numbers
        # contiguous copies: torch's CPU kernels over a short, strided last dimension
        # (softplus, amax, sum) run ~10x slower than the copy costs (measured 3.4 -> 1.6 ms
        # per 8192-point spline call)
        w, hh = h[..., :k].contiguous(), h[..., k : 2 * k].contiguous()
        d = h[..., 2 * k :] + self._d_offset  # the add makes it contiguous
        y, ld = rational_quadratic_spline(xb, w, hh, d, inverse=inverse, bound=self.bound)
        return y, ld.sum(dim=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb, h = self._split(x)
        yb, ld = self._spline(xb, h, inverse=False)
        return self._merge(xa, yb), ld

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        ya, yb, h = self._split(y)
        xb, ld = self._spline(yb, h, inverse=True)
        return self._merge(ya, xb), ld

    @property
    def label(self) -> str:
        return f"spline coupling ({self._axes()})"


# ---------------------------------------------------------------------------------------
# the flow
# ---------------------------------------------------------------------------------------


def grid_points(
    xlim: tuple[float, float], ylim: tuple[float, float], res: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, pts)`` of a ``res x res`` image grid, the project's density convention
    (same as ``GaussianMixture.grid_density``): pixel *centres*, row 0 is the top edge
    (``ys`` descends from near ``ylim[1]``), column 0 the left edge. ``pts`` is
    ``(res*res, 2)`` float32 in row-major order, so ``values.reshape(res, res)`` is the image.
    """
    xs = xlim[0] + (np.arange(res) + 0.5) * (xlim[1] - xlim[0]) / res
    ys = ylim[1] - (np.arange(res) + 0.5) * (ylim[1] - ylim[0]) / res
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


class Flow(nn.Module):
    """A stack of :class:`FlowLayer` s over a standard Gaussian base, in generative order.

    ``layers[0]`` touches the latent ``z`` first; ``layers[-1]`` produces data.
    """

    def __init__(self, layers: Sequence[FlowLayer], dim: int = 2, config: dict | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dim = dim
        #: arguments of :func:`build_flow`, so a snapshot's ``state`` can be rebuilt elsewhere
        self.config: dict = dict(config or {})
        #: rows per batched pass in :meth:`density_grid` (cache-sized; see there)
        self.grid_chunk = 8192

    # ------------------------------------------------------------------ core maps
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent -> data; returns ``(x, log|det dx/dz|)``."""
        logdet = z.new_zeros(z.shape[0])
        for layer in self.layers:
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent; returns ``(z, log|det dz/dx|)``."""
        logdet = x.new_zeros(x.shape[0])
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x)
            logdet = logdet + ld
        return x, logdet

    def log_prob(self, x: Tensor | np.ndarray) -> Tensor:
        """Exact ``log p(x)`` in nats, shape ``(N,)``; differentiable when grad is on."""
        xt = self._as_tensor(x)
        z, logdet = self.inverse(xt)
        base = -0.5 * (z.pow(2).sum(dim=1) + self.dim * _LOG_2PI)
        return base + logdet

    # ------------------------------------------------------------------ helpers
    def _as_tensor(self, x: Tensor | np.ndarray) -> Tensor:
        """Numpy or tensor input -> a tensor on the flow's device and dtype."""
        p = next(self.parameters())
        if isinstance(x, Tensor):
            return x.to(device=p.device, dtype=p.dtype)
        return torch.as_tensor(np.asarray(x), dtype=p.dtype, device=p.device)

    @torch.no_grad()
    def data_init(self, x: Tensor | np.ndarray) -> None:
        """Data-dependent initialisation of every :class:`ActNorm` (Glow).

        Walks the batch from data to latent; each ActNorm is fitted to exactly what arrives
        at it, so after this call each one outputs a zero-mean, unit-variance batch.
        """
        h = self._as_tensor(x)
        for layer in reversed(self.layers):
            if isinstance(layer, ActNorm):
                layer.initialize(h)
            h, _ = layer.inverse(h)

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """``n`` samples as float32 ``(n, D)``; the base std is multiplied by ``temperature``.

        ``temperature < 1`` is Glow's trick: samples concentrate on the high-density core of
        each mode (sharper, less diverse); ``> 1`` shows the tails.
        """
        rng = rng if rng is not None else np.random.default_rng()
        z = rng.standard_normal((n, self.dim)) * float(temperature)
        x, _ = self.forward(self._as_tensor(z))
        return x.float().cpu().numpy()

    @torch.no_grad()
    def forward_layers(self, z: Tensor | np.ndarray, k: int | None = None) -> list[np.ndarray]:
        """Push latent points through the first ``k`` layers (all if ``None``).

        Returns ``k + 1`` float32 arrays: the input, then the points after each layer --
        the frames of the "watch the Gaussian get bent" animation (pass a grid's points to
        see the grid warp).
        """
        h = self._as_tensor(z)
        k = len(self.layers) if k is None else max(0, min(int(k), len(self.layers)))
        out = [h.float().cpu().numpy().copy()]
        for layer in list(self.layers)[:k]:
            h, _ = layer(h)
            out.append(h.float().cpu().numpy().copy())
        return out

    @torch.no_grad()
    def inverse_layers(self, x: Tensor | np.ndarray) -> list[np.ndarray]:
        """Data back to the latent, one layer at a time: ``len(layers) + 1`` float32 arrays,
        from the data to ``z`` (for a good fit the last one looks like ``N(0, I)``)."""
        h = self._as_tensor(x)
        out = [h.float().cpu().numpy().copy()]
        for layer in reversed(self.layers):
            h, _ = layer.inverse(h)
            out.append(h.float().cpu().numpy().copy())
        return out

    def layer_labels(self) -> list[str]:
        """Human-readable label per layer, generative order."""
        return [layer.label for layer in self.layers]

    @torch.inference_mode()
    def density_grid(
        self,
        xlim: tuple[float, float] = (-4.0, 4.0),
        ylim: tuple[float, float] = (-4.0, 4.0),
        res: int = 200,
        log: bool = False,
    ) -> np.ndarray:
        """Exact model density on a ``res x res`` grid, float32 ``(res, res)``.

        Image-oriented like every density in the project (see :func:`grid_points`: pixel
        centres, row 0 = top edge ``y = ylim[1]``); flip rows to draw with y up. One
        batched inference-mode pass: 200x200 points is 40,000 rows through each layer,
        which is far cheaper than a Python loop over rows (see ``engines/bench_flows.py``).
        """
        _, _, pts = grid_points(xlim, ylim, res)
        x = self._as_tensor(pts)
        # Chunks of ~8k rows keep each (rows x hidden) activation inside the CPU cache:
        # measured 2x faster than one 40,000-row pass, and still one Python call per chunk.
        lp = torch.cat([self.log_prob(c) for c in x.split(self.grid_chunk)])
        out = lp if log else lp.exp()
        return out.float().cpu().numpy().reshape(res, res)

    def state_numpy(self) -> dict[str, np.ndarray]:
        """Copy of all parameters and buffers as numpy (safe to hand to another thread)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.state_dict().items()}

    def load_state_numpy(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state_numpy`."""
        self.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})


def build_flow(
    kind: FlowKind = "realnvp",
    n_layers: int = 8,
    hidden: int = 32,
    depth: int = 2,
    *,
    dim: int = 2,
    seed: int = 0,
    n_bins: int = 8,
    bound: float = 4.0,
) -> Flow:
    """Build one of the four lesson flows; ``n_layers`` couplings (Glow: steps), masks alternate.

    * ``"nice"``: additive couplings, then a diagonal scaling at the latent end.
    * ``"realnvp"``: affine couplings.
    * ``"glow"``: steps of ActNorm -> invertible 2x2 (LU) -> affine coupling.
    * ``"nsf"``: rational-quadratic spline couplings (``n_bins`` bins on
      ``[-bound, bound]``), each followed by an invertible 2x2 (LU), as in Durkan et al.

    ``hidden``/``depth`` size each coupling's MLP. The default width 32 is deliberate: in
    2-D each conditioner is a function of a single scalar, and width 32, 48 and 64 reached
    the same NLL on 8 gaussians (RealNVP, 1000 steps: 3.17, 3.18, 3.16 nats; NSF, 300
    steps: within 0.02) while width 32 costs a quarter of the FLOPs -- which is what keeps
    the 200 x 200 density heat map inside its 50 ms budget. Initialisation is seeded
    (``seed``) without touching torch's global RNG. Every coupling starts as the identity.
    """
    if kind not in FLOW_KINDS:
        raise ValueError(f"unknown flow kind {kind!r}; expected one of {FLOW_KINDS}")
    if n_layers < 1 or hidden < 1 or depth < 1:
        raise ValueError(f"need n_layers, hidden, depth >= 1; got {n_layers}, {hidden}, {depth}")
    config = dict(kind=kind, n_layers=n_layers, hidden=hidden, depth=depth, dim=dim,
                  seed=seed, n_bins=n_bins, bound=bound)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        norm: list[FlowLayer] = []  # normalizing order: data -> latent, as in the papers
        for i in range(n_layers):
            if kind == "nice":
                norm.append(AdditiveCoupling(dim, i % 2, hidden, depth))
            elif kind == "realnvp":
                norm.append(AffineCoupling(dim, i % 2, hidden, depth))
            elif kind == "glow":
                norm += [ActNorm(dim), InvertibleLinearLU(dim, gen),
                         AffineCoupling(dim, i % 2, hidden, depth)]
            else:
                norm += [RQSplineCoupling(dim, i % 2, hidden, depth, n_bins, bound),
                         InvertibleLinearLU(dim, gen)]
        if kind == "nice":
            norm.append(DiagonalScaling(dim))
        if kind == "nsf" and norm:
            norm.pop()  # the trailing mix would only rotate the Gaussian latent
    return Flow(list(reversed(norm)), dim=dim, config=config)


# ---------------------------------------------------------------------------------------
# training job
# ---------------------------------------------------------------------------------------


def fast_adam(
    params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch/device has one, else the default.

    These models have dozens of small tensors, so the per-tensor loop of the default Adam
    is a large share of a training step: fused is ~1.3x more steps/s for the 8-layer
    RealNVP on a 2-core CPU (``engines/bench_flows.py``). Same maths, same state.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch / unsupported device
        return torch.optim.Adam(params, lr=lr, betas=betas)


@dataclass(frozen=True)
class FlowSnapshot:
    """One frame of a flow training run (plain numbers and fresh numpy arrays only).

    ``nll`` is the mean negative log-likelihood in nats on *fresh* target samples, so it is
    an honest estimate of ``KL(p_data || p_model) + H(p_data)``; ``entropy`` is ``H(p_data)``
    when known (the floor no model can beat) and ``gap = nll - entropy`` the KL part.
    """

    step: int
    nll: float
    train_nll: float
    entropy: float | None
    gap: float | None
    history: np.ndarray  # (m, 2): step, nll -- the tail
    steps_per_s: float
    lr: float
    batch_size: int
    samples: np.ndarray | None = None  # (n, 2) model samples at params["temperature"]
    density: np.ndarray | None = None  # (res, res) [iy, ix] on ``extent``
    extent: tuple[tuple[float, float], tuple[float, float]] | None = None
    state: dict[str, np.ndarray] | None = None  # Flow.state_numpy(), rebuild via config
    config: dict | None = None


@functools.cache
def target_entropy(dataset: str) -> float | None:
    """Entropy of the target in nats (the NLL floor), or ``None`` if unknown.

    Gaussian-mixture targets use a Monte Carlo estimate from the mixture itself (same scale
    as the samples by construction); others fall back to the tabulated quadrature value.
    Cached: the estimate (200,000 points, ~0.5 s) is fixed-seed, so it never changes.
    """
    mix = toy_data.mixture(dataset)
    if mix is not None:
        return float(mix.entropy_mc())
    h = toy_data.true_entropy(dataset)
    return None if h is None else float(h)


def flow_train_job(
    params: ParamBox,
    flow: Flow | None = None,
    *,
    dataset: str | np.ndarray = "8gaussians",
    kind: FlowKind = "realnvp",
    n_layers: int = 8,
    hidden: int = 32,
    depth: int = 2,
    seed: int = 0,
    max_steps: int | None = None,
    chunk_s: float = 0.03,
    eval_samples: int = 2048,
    history_len: int = 1000,
    visual_every: int = 5,
    n_vis_samples: int = 1000,
    extent: tuple[tuple[float, float], tuple[float, float]] = ((-4.0, 4.0), (-4.0, 4.0)),
    grid_res: int = 100,
    device: torch.device | str = "cpu",
) -> Iterator[FlowSnapshot]:
    """Maximum-likelihood training generator: each ``next()`` trains for about ``chunk_s``.

    Live parameters, read from ``params`` before every optimizer step: ``lr`` (default
    1e-3), ``batch_size`` (256), ``temperature`` (1.0, for the snapshot's samples). Every
    step draws a fresh batch (infinite data, so no overfitting to explain away). After each
    chunk the NLL is measured on ``eval_samples`` fresh target points; every
    ``visual_every``-th snapshot (and the first) also carries model samples, the density on
    ``extent`` at ``grid_res`` and a numpy copy of the weights. Stops after ``max_steps``.

    ``flow`` is trained in place, on its own device, when given (its ActNorms get
    data-initialised if needed); otherwise one is built from ``kind``/``n_layers``/
    ``hidden``/``depth``/``seed`` on ``device`` (chosen by the caller, see
    ``engines/device.py``). Numpy data go to the flow's device inside ``log_prob``.

    ``dataset`` is a toy data set name or a user's (n, 2) point set (drawn or imported):
    batches, the ActNorm initialisation batch and the evaluation points are then rows of it
    resampled with replacement (:class:`engines.toy_data.DataSource`). The NLL of a point set
    is measured on its own rows -- the only data there is -- so it is a training-set figure,
    and ``entropy`` is ``None`` (an empirical set has no known density floor).
    """
    rng = np.random.default_rng(seed)  # training batches only: chunking can't change them
    eval_rng = np.random.default_rng([seed, 1])  # evaluation and snapshot samples
    # Named sets draw exactly as toy_data.sample(dataset, n, rng) did: same seed, same run.
    train_src = toy_data.DataSource(dataset, rng=rng)
    eval_src = toy_data.DataSource(dataset, rng=eval_rng)
    if flow is None:
        flow = build_flow(kind, n_layers, hidden, depth, seed=seed).to(device)
    p0 = params.get()
    init_batch = train_src.draw(max(int(p0.get("batch_size", 256)), 512))[0]
    if any(isinstance(m, ActNorm) and not bool(m.initialized) for m in flow.modules()):
        flow.data_init(init_batch)
    opt = fast_adam(flow.parameters(), lr=float(p0.get("lr", 1e-3)))
    dev = next(flow.parameters()).device
    entropy = target_entropy(dataset) if isinstance(dataset, str) else None
    hist: deque[tuple[float, float]] = deque(maxlen=history_len)
    step, n_snap = 0, 0
    while max_steps is None or step < max_steps:
        t0 = time.perf_counter()
        # summed as a tensor on the flow's device: no device sync per step
        loss_sum, n_steps = torch.zeros((), device=dev), 0
        p: dict = {}
        while True:
            p = params.get()
            lr = float(p.get("lr", 1e-3))
            for g in opt.param_groups:
                g["lr"] = lr
            batch = torch.from_numpy(train_src.draw(int(p.get("batch_size", 256)))[0])
            loss = -flow.log_prob(batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum = loss_sum + loss.detach()
            n_steps += 1
            step += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= chunk_s or (max_steps is not None and step >= max_steps):
                break
        with torch.inference_mode():
            fresh = eval_src.draw(eval_samples)[0]
            nll = -float(flow.log_prob(torch.from_numpy(fresh)).mean())
        hist.append((step, nll))
        visual = n_snap % max(visual_every, 1) == 0
        n_snap += 1
        yield FlowSnapshot(
            step=step,
            nll=nll,
            train_nll=float(loss_sum) / n_steps,
            entropy=entropy,
            gap=None if entropy is None else nll - entropy,
            history=np.asarray(hist, dtype=np.float64).reshape(-1, 2),
            steps_per_s=n_steps / max(elapsed, 1e-9),
            lr=lr,
            batch_size=int(p.get("batch_size", 256)),
            samples=flow.sample(n_vis_samples, float(p.get("temperature", 1.0)), eval_rng)
            if visual else None,
            density=flow.density_grid(extent[0], extent[1], grid_res) if visual else None,
            extent=extent,
            state=flow.state_numpy() if visual else None,
            config=dict(flow.config),
        )
