"""Streaming random-walk engine: millions of walkers, per-step statistics, bounded memory.

Why it is built this way
------------------------
* **Streaming.** ``10^6`` walkers x ``10^4`` steps is ``10^10`` positions (9.3 GiB even as
  int8), so no ``walkers x steps`` array ever exists. Time advances in *sweeps* of ``C`` steps;
  each sweep visits the walkers in *blocks* of ``B`` columns, builds one ``(C, B)`` block of
  partial sums, folds it into per-walker state (current position, first return, last visit,
  ...) and into per-step aggregate curves (length ``n``), then throws the block away. Memory is
  ``O(walkers + steps)`` plus one block.
* **Two paths.** Per-step statistics need every partial sum. The *per-step path* builds the
  ``(C, B)`` block with a row loop (``D[k] += D[k-1]`` on whole rows of walkers: numpy's own
  ``cumsum`` along axis 0 is ~30x slower here). The *fast path*, for the unbiased 1-D ±1 walk,
  never looks at single steps: one random ``uint64`` word is 64 steps and
  ``S_64 = 2 popcount(word) - 64``, so final positions / histograms at sweep checkpoints cost
  about one random word per 64 walker-steps. Walkers ``[0, per_step_walkers)`` take the
  per-step path (all statistics), the rest take the fast path (positions only); both are the
  same random walk, so the final-position histogram covers every walker.
* **Backends.** numpy on CPU is the default. ``device="cuda"`` (or ``backend="torch"``) runs
  the identical algorithm on torch tensors; results come back as numpy arrays.

Conventions: positions are integers for lattice walks; "return" means returning to the
starting point; in 1-D a step counts as positive when ``S_{k-1} > 0`` or ``S_k > 0``
(Chung–Feller, so the count follows the discrete arcsine law exactly); for Gaussian steps the
count is ``#{k : S_k > 0}`` (Sparre Andersen's law). Lattice steps in ``d`` dimensions move
±1 along one axis; Gaussian steps are ``N(0, I/d)`` so ``E|step|^2 = 1`` either way.
"""

from __future__ import annotations

import math
import os
import time
import tracemalloc
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from engines.jobs import ParamBox

__all__ = [
    "Barrier",
    "WalkConfig",
    "WalkResult",
    "WalkSimulation",
    "WalkSnapshot",
    "WalkStats",
    "bench_walk",
    "fast_displacement",
    "naive_displacement",
    "simulate",
    "walk_job",
]

Array = Any  # numpy.ndarray or torch.Tensor, depending on the backend
StepKind = Literal["lattice", "gaussian"]

_INT16_SAFE = 16_000  # |D_{k-1} + D_k| must fit int16 for the Chung–Feller test
_FAST_CHECKPOINT = 1024  # fast-path checkpoint spacing in steps (16 random words)


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Barrier:
    """1-D barriers. ``absorbing``: a walker that reaches ``lower`` or ``upper`` stays there
    (gambler's ruin with ``lower=0, upper=N`` and ``start=i``). ``reflecting``: mirror
    reflection, ``x -> 2*lower - x`` below ``lower`` (so a lattice walker at ``lower`` always
    moves to ``lower + 1``) and likewise at ``upper``. Either bound may be ``None``.
    """

    kind: Literal["absorbing", "reflecting"]
    lower: int | None = 0
    upper: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("absorbing", "reflecting"):
            raise ValueError(f"barrier kind must be 'absorbing' or 'reflecting', not {self.kind}")
        if self.lower is None and self.upper is None:
            raise ValueError("a barrier needs a lower or an upper bound")
        if self.lower is not None and self.upper is not None and self.upper - self.lower < 2:
            raise ValueError("upper - lower must be >= 2")

    @classmethod
    def coerce(cls, value: Barrier | Mapping[str, Any] | None) -> Barrier | None:
        """Accept a Barrier, a plain dict (from JSON / the CLI / a ParamBox) or None."""
        if value is None or isinstance(value, Barrier):
            return value
        return cls(**dict(value))


@dataclass(frozen=True)
class WalkConfig:
    """Everything that defines a run. Frozen so a running job can compare old vs new.

    ``per_step_walkers`` splits the population: walkers ``[0, per_step_walkers)`` carry every
    per-step statistic; the rest only carry positions (popcount fast path for the unbiased
    1-D lattice walk, plain summed steps otherwise), which is how 10^6 x 10^4 fits in seconds
    while the histogram still covers all walkers. Barrier walks always track every walker.
    """

    dim: int = 1
    walkers: int = 10_000
    steps: int = 1_000
    p: float = 0.5  # 1-D only: P(step = +1)
    step_kind: StepKind = "lattice"
    direction_probs: tuple[float, ...] | None = None  # 2-D/3-D: (+x, -x, +y, -y[, +z, -z])
    barrier: Barrier | None = None  # 1-D only
    start: int = 0  # 1-D only; statistics are about the displacement from it
    level: int = 10  # first-passage level a > 0 (relative to start, 1-D)
    seed: int = 0
    per_step_walkers: int | None = None  # None: all; rest use the fast / positions-only path
    display_walkers: int = 200
    display_points: int = 2048  # per displayed path; older points are thinned 2:1 when full
    occupancy_radius: int | None = None  # 2-D visit counts on [-R, R]^2; None: 32 in 2-D
    chunk_steps: int = 64  # C, steps per sweep for simulate(); the job adapts it
    block_elems: int | None = None  # C*B per block; None: 2^18 (CPU cache), 2^24 on CUDA
    backend: Literal["numpy", "torch"] = "numpy"
    device: str | None = None  # "cuda", "cuda:1", ... selects torch

    def __post_init__(self) -> None:
        if self.dim not in (1, 2, 3):
            raise ValueError(f"dim must be 1, 2 or 3, got {self.dim}")
        if self.walkers < 1 or self.steps < 0:
            raise ValueError("need walkers >= 1 and steps >= 0")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p}")
        if self.step_kind not in ("lattice", "gaussian"):
            raise ValueError(f"step_kind must be 'lattice' or 'gaussian', not {self.step_kind}")
        if self.dim > 1 and self.p != 0.5:
            raise ValueError("bias p is 1-D only; use direction_probs in 2-D/3-D")
        if self.step_kind == "gaussian" and (self.p != 0.5 or self.direction_probs is not None):
            raise ValueError("Gaussian steps take no p / direction_probs")
        if self.direction_probs is not None:
            probs = np.asarray(self.direction_probs, dtype=np.float64)
            if self.dim == 1 or probs.shape != (2 * self.dim,):
                raise ValueError("direction_probs needs 2*dim entries and dim >= 2")
            if np.any(probs < 0) or not math.isclose(float(probs.sum()), 1.0, abs_tol=1e-9):
                raise ValueError("direction_probs must be >= 0 and sum to 1")
        barrier = Barrier.coerce(self.barrier)
        object.__setattr__(self, "barrier", barrier)
        if self.direction_probs is not None:
            object.__setattr__(self, "direction_probs", tuple(float(x) for x in self.direction_probs))
        if (barrier is not None or self.start != 0) and self.dim != 1:
            raise ValueError("barriers and start are 1-D only")
        if barrier is not None:
            lo, hi = barrier.lower, barrier.upper
            strict = barrier.kind == "absorbing"
            if lo is not None and (self.start < lo or (strict and self.start == lo)):
                raise ValueError("start must lie above the lower barrier")
            if hi is not None and (self.start > hi or (strict and self.start == hi)):
                raise ValueError("start must lie below the upper barrier")
        if self.level < 1:
            raise ValueError("level must be >= 1")
        if self.per_step_walkers is not None and not 0 <= self.per_step_walkers <= self.walkers:
            raise ValueError("per_step_walkers must be in [0, walkers]")
        if self.occupancy_radius is not None and not 0 <= self.occupancy_radius <= 1000:
            raise ValueError("occupancy_radius must be in [0, 1000]")
        if self.display_walkers < 0 or self.display_points < 2:
            raise ValueError("display_walkers >= 0 and display_points >= 2 required")
        if self.chunk_steps < 1 or (self.block_elems is not None and self.block_elems < 64):
            raise ValueError("chunk_steps >= 1 and block_elems >= 64 required")
        if self.backend not in ("numpy", "torch"):
            raise ValueError("backend must be 'numpy' or 'torch'")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> WalkConfig:
        """Build from a dict / ParamBox contents, ignoring keys that are not config fields
        (the GUI keeps display-only settings in the same box)."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        if kwargs.get("direction_probs") is not None:
            kwargs["direction_probs"] = tuple(kwargs["direction_probs"])
        return cls(**kwargs)

    @property
    def uses_torch(self) -> bool:
        return self.backend == "torch" or (self.device is not None and self.device != "cpu")

    @property
    def fast_eligible(self) -> bool:
        """The popcount path is exact only for the unbiased, unconstrained ±1 walk in 1-D."""
        return self.dim == 1 and self.step_kind == "lattice" and self.p == 0.5 and self.barrier is None

    @property
    def n_per_step(self) -> int:
        """Walkers with full per-step statistics (barrier walks always track everyone)."""
        if self.per_step_walkers is None or self.barrier is not None:
            return self.walkers
        return self.per_step_walkers

    @property
    def block_size(self) -> int:
        """Elements per ``(C, B)`` block: cache-sized on CPU, large enough to fill a GPU."""
        if self.block_elems is not None:
            return self.block_elems
        on_gpu = self.uses_torch and self.device is not None and self.device != "cpu"
        return 1 << 24 if on_gpu else 1 << 18

    @property
    def radius(self) -> int:
        if self.dim != 2:
            return 0
        return 32 if self.occupancy_radius is None else max(0, int(self.occupancy_radius))

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["direction_probs"] = list(self.direction_probs) if self.direction_probs else None
        return out


# --------------------------------------------------------------------------------------
# Backends: the few array operations whose spelling differs between numpy and torch
# --------------------------------------------------------------------------------------


def _popcount_u64(words: NDArray[np.uint64]) -> NDArray[np.uint8]:
    """Population count; ``np.bitwise_count`` (numpy >= 2.0) or a SWAR fallback."""
    bitwise_count = getattr(np, "bitwise_count", None)
    if bitwise_count is not None:
        return bitwise_count(words)
    x = words - ((words >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.uint8)


class _NumpyOps:
    """numpy backend (default on CPU)."""

    name = "numpy"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._bitgen = self.rng.bit_generator

    # -- construction / conversion
    def zeros(self, shape: int | tuple[int, ...], dtype: str) -> Array:
        return np.zeros(shape, dtype=dtype)

    def col(self, values: NDArray[Any], dtype: str) -> Array:
        return np.asarray(values, dtype=dtype)[:, None]

    def cast(self, x: Array, dtype: str) -> Array:
        return x.astype(dtype)

    def numpy(self, x: Array) -> NDArray[Any]:
        return np.asarray(x)

    # -- elementwise / reductions
    def where(self, cond: Array, a: Any, b: Any) -> Array:
        return np.where(cond, a, b)

    def abs(self, x: Array) -> Array:
        return np.abs(x)

    def minimum(self, a: Array, b: Array) -> Array:
        return np.minimum(a, b)

    def remainder(self, x: Array, m: Any) -> Array:
        return np.mod(x, m)

    def amax0(self, x: Array) -> Array:
        return x.max(axis=0)

    def count0(self, mask: Array) -> Array:
        return mask.sum(axis=0, dtype=np.int32)

    def count1(self, mask: Array) -> Array:
        return mask.sum(axis=1, dtype=np.int64).astype(np.float64)

    def sum0(self, x: Array, dtype: str) -> Array:
        return x.sum(axis=0, dtype=dtype)

    def moments1(self, x: Array) -> tuple[Array, Array]:
        """Per-row (per-step) sum and sum of squares over walkers.

        Integer blocks: the sum is exact (int64); the sum of squares goes through float32,
        which is twice as fast as float64 here and only ~1e-6 relative off, far below the
        statistical noise of any curve it feeds."""
        if x.dtype.kind == "f":
            return x.sum(axis=1), np.einsum("cb,cb->c", x, x)
        xf = x.astype(np.float32)
        s2 = np.einsum("cb,cb->c", xf, xf).astype(np.float64)
        return x.sum(axis=1, dtype=np.int64).astype(np.float64), s2

    def gather0(self, x: Array, idx: Array) -> Array:
        return np.take_along_axis(x, idx[None, :].astype(np.intp), axis=0)[0]

    def nonzero(self, mask: Array) -> Array:
        return np.flatnonzero(mask)

    def bincount(self, x: Array, minlength: int) -> NDArray[np.int64]:
        return np.bincount(np.asarray(x, dtype=np.intp), minlength=minlength).astype(np.int64)

    # -- random numbers
    def bits(self, c: int, b: int) -> Array:
        """``(c, b)`` fair bits as int8 0/1: 64 per random word, unpacked along rows."""
        words = self._bitgen.random_raw((c, (b + 63) // 64))
        return np.unpackbits(words.view(np.uint8), axis=1, count=b).view(np.int8)

    def uniform(self, c: int, b: int) -> Array:
        return self.rng.random((c, b), dtype=np.float32)

    def normal(self, c: int, b: int) -> Array:
        return self.rng.standard_normal((c, b))

    def integers(self, c: int, b: int, high: int) -> Array:
        return self.rng.integers(0, high, size=(c, b), dtype=np.int8)

    def popcount_displacement(self, steps: int, b: int) -> Array:
        """Displacement after ``steps`` fair ±1 steps for ``b`` walkers, 64 steps per word."""
        nwords, rem = divmod(steps, 64)
        total = np.zeros(b, dtype=np.int32)
        if nwords:
            words = self._bitgen.random_raw((nwords, b))
            total += _popcount_u64(words).sum(axis=0, dtype=np.int32)
        if rem:
            last = self._bitgen.random_raw(b) & np.uint64((1 << rem) - 1)
            total += _popcount_u64(last)
        return 2 * total - steps

    # -- partial sums
    def cumsum0(self, inc: Array, d0: Array, dtype: str) -> Array:
        """``D[k] = d0 + inc[0] + ... + inc[k]``; adding whole rows keeps the walker axis
        contiguous, which is where numpy's vector loops are fast."""
        out = inc.astype(dtype)
        out[0] += d0.astype(dtype)
        for k in range(1, out.shape[0]):
            np.add(out[k], out[k - 1], out=out[k])
        return out


class _TorchOps:
    """torch backend for CUDA (or CPU torch, for testing); imported only when asked for."""

    name = "torch"

    def __init__(self, seed: int, device: str | None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device or "cpu")
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)

    def _dt(self, dtype: str) -> Any:
        return getattr(self.torch, dtype)

    def zeros(self, shape: int | tuple[int, ...], dtype: str) -> Array:
        return self.torch.zeros(shape, dtype=self._dt(dtype), device=self.device)

    def col(self, values: NDArray[Any], dtype: str) -> Array:
        return self.torch.as_tensor(np.asarray(values), device=self.device).to(self._dt(dtype))[:, None]

    def cast(self, x: Array, dtype: str) -> Array:
        return x.to(self._dt(dtype))

    def numpy(self, x: Array) -> NDArray[Any]:
        return x.detach().cpu().numpy()

    def where(self, cond: Array, a: Any, b: Any) -> Array:
        t = self.torch
        if not isinstance(a, t.Tensor):
            a = t.as_tensor(a, device=self.device)
        if not isinstance(b, t.Tensor):
            b = t.as_tensor(b, device=self.device)
        dtype = t.promote_types(a.dtype, b.dtype)
        return t.where(cond, a.to(dtype), b.to(dtype))

    def abs(self, x: Array) -> Array:
        return self.torch.abs(x)

    def minimum(self, a: Array, b: Array) -> Array:
        return self.torch.minimum(a, b)

    def remainder(self, x: Array, m: Any) -> Array:
        return self.torch.remainder(x, m)

    def amax0(self, x: Array) -> Array:
        return self.torch.amax(x, dim=0)

    def count0(self, mask: Array) -> Array:
        return mask.sum(dim=0, dtype=self.torch.int32)

    def count1(self, mask: Array) -> Array:
        return mask.sum(dim=1, dtype=self.torch.int64).to(self.torch.float64)

    def sum0(self, x: Array, dtype: str) -> Array:
        return x.sum(dim=0, dtype=self._dt(dtype))

    def moments1(self, x: Array) -> tuple[Array, Array]:
        xf = x.to(self.torch.float64)
        return xf.sum(dim=1), (xf * xf).sum(dim=1)

    def gather0(self, x: Array, idx: Array) -> Array:
        return self.torch.gather(x, 0, idx.to(self.torch.int64)[None, :])[0]

    def nonzero(self, mask: Array) -> Array:
        return self.torch.nonzero(mask).flatten()

    def bincount(self, x: Array, minlength: int) -> NDArray[np.int64]:
        x = self.torch.as_tensor(x, device=self.device).to(self.torch.int64)
        return self.numpy(self.torch.bincount(x, minlength=minlength)).astype(np.int64)

    def bits(self, c: int, b: int) -> Array:
        return self.torch.randint(0, 2, (c, b), generator=self.gen, device=self.device, dtype=self.torch.int8)

    def uniform(self, c: int, b: int) -> Array:
        return self.torch.rand((c, b), generator=self.gen, device=self.device)

    def normal(self, c: int, b: int) -> Array:
        return self.torch.randn((c, b), generator=self.gen, device=self.device, dtype=self.torch.float64)

    def integers(self, c: int, b: int, high: int) -> Array:
        return self.torch.randint(
            0, high, (c, b), generator=self.gen, device=self.device, dtype=self.torch.int8
        )

    def popcount_displacement(self, steps: int, b: int) -> Array:
        """torch has no popcount: 32 random bits per int64 word, SWAR bit counting."""
        t = self.torch
        nwords, rem = divmod(steps, 32)
        total = t.zeros(b, dtype=t.int32, device=self.device)

        def count(w: Array) -> Array:
            w = w - ((w >> 1) & 0x55555555)
            w = (w & 0x33333333) + ((w >> 2) & 0x33333333)
            w = (w + (w >> 4)) & 0x0F0F0F0F
            return ((w * 0x01010101) >> 24) & 0xFF

        if nwords:
            words = t.randint(0, 1 << 32, (nwords, b), generator=self.gen, device=self.device, dtype=t.int64)
            total += count(words).sum(dim=0, dtype=t.int32)
        if rem:
            last = t.randint(0, 1 << rem, (b,), generator=self.gen, device=self.device, dtype=t.int64)
            total += count(last).to(t.int32)
        return 2 * total - steps

    def cumsum0(self, inc: Array, d0: Array, dtype: str) -> Array:
        dt = self._dt(dtype)
        return self.torch.cumsum(inc.to(dt), dim=0) + d0.to(dt)[None, :]


def _make_ops(cfg: WalkConfig) -> _NumpyOps | _TorchOps:
    if cfg.uses_torch:
        return _TorchOps(cfg.seed, cfg.device)
    return _NumpyOps(cfg.seed)


# --------------------------------------------------------------------------------------
# Small bounded containers
# --------------------------------------------------------------------------------------


class _Growable:
    """Append-only float64 rows with capacity doubling (the O(steps) aggregate curves)."""

    def __init__(self, width: int) -> None:
        self._data = np.zeros((64, width), dtype=np.float64)
        self._len = 0

    def append(self, rows: NDArray[np.float64]) -> None:
        need = self._len + rows.shape[0]
        if need > self._data.shape[0]:
            cap = max(need, 2 * self._data.shape[0])
            grown = np.zeros((cap, self._data.shape[1]), dtype=np.float64)
            grown[: self._len] = self._data[: self._len]
            self._data = grown
        self._data[self._len : need] = rows
        self._len = need

    def view(self) -> NDArray[np.float64]:
        return self._data[: self._len]


class _PathBuffer:
    """Display paths of the first ``P`` walkers with at most ``max_points`` time points.

    Keeps times that are multiples of a power-of-two ``stride``; when full it drops every
    other point and doubles the stride, so memory is bounded whatever the horizon while the
    path still spans all of it. Storage is preallocated (``2 * max_points``) so appending a
    chunk never copies the whole history.
    """

    def __init__(self, n_paths: int, dim: int, max_points: int, origin: NDArray[Any]) -> None:
        self.stride = 1
        self.max_points = max_points
        cap = 2 * max_points
        self._t = np.zeros(cap, dtype=np.int64)
        self._x = np.zeros((n_paths, cap, dim), dtype=origin.dtype)
        self._x[:, 0] = origin
        self._len = 1

    @property
    def t(self) -> NDArray[np.int64]:
        return self._t[: self._len]

    @property
    def x(self) -> NDArray[Any]:
        """``(P, T, d)`` view; copy before handing it to another thread."""
        return self._x[:, : self._len]

    def append(self, t: NDArray[np.int64], x: NDArray[Any]) -> None:
        """``t``: times ``(C,)``, increasing; ``x``: positions ``(C, P, d)``."""
        while t.size:
            keep = t % self.stride == 0
            t, x = t[keep], x[keep]
            take = min(t.size, self._t.size - self._len)
            end = self._len + take
            self._t[self._len : end] = t[:take]
            self._x[:, self._len : end] = np.transpose(x[:take], (1, 0, 2))
            self._len = end
            t, x = t[take:], x[take:]
            while self._len > self.max_points:
                self.stride *= 2
                sel = np.flatnonzero(self._t[: self._len] % self.stride == 0)
                self._t[: sel.size] = self._t[sel]
                self._x[:, : sel.size] = self._x[:, sel]
                self._len = sel.size


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkStats:
    """Statistics shared by GUI snapshots and CLI results (numpy arrays, never live state).

    Per-step quantities (curves, first return, ...) come from the ``per_step_walkers`` that
    took the per-step path; the position histogram covers every walker. Arrays indexed by
    time have length ``n + 1`` (index = step). ``None`` marks a statistic that does not apply
    (e.g. time positive in 2-D, returns for Gaussian steps).
    """

    config: WalkConfig
    n: int  # steps done
    per_step_walkers: int
    hist_edges: NDArray[np.float64]  # current positions, axis 0 (bin edges)
    hist_counts: NDArray[np.int64]
    mean: NDArray[np.float64] | None  # (n+1, dim) mean position
    var: NDArray[np.float64] | None  # (n+1, dim) per-axis variance
    msd: NDArray[np.float64] | None  # (n+1,) mean squared displacement
    first_return_counts: NDArray[np.int64] | None  # walkers whose first return is at step k
    return_by: NDArray[np.float64] | None  # P(returned by step k)
    last_zero_counts: NDArray[np.int64] | None  # last visit to start at step k (0: never left)
    at_start_counts: NDArray[np.int64] | None  # walkers at the start at step k: P(S_k = 0) estimate
    positive_counts: NDArray[np.int64] | None  # walkers with k positive steps (1-D)
    first_passage_counts: NDArray[np.int64] | None  # T_level = k (1-D)
    occupancy: NDArray[np.int64] | None  # (2R+1, 2R+1) visits, [x+R, y+R] (2-D)
    absorbed_lower: int
    absorbed_upper: int
    absorption_time_counts: NDArray[np.int64] | None
    display_t: NDArray[np.int64]  # (T,) times of the stored path points
    display_paths: NDArray[Any]  # (P, T, dim) positions of the first P walkers
    walker_steps_per_s: float
    elapsed_s: float
    backend: str


@dataclass(frozen=True)
class WalkSnapshot(WalkStats):
    """What :func:`walk_job` yields. ``restarts`` counts parameter-driven restarts, so the GUI
    can clear plots when it changes; ``done`` is True on the last snapshot."""

    done: bool = False
    restarts: int = 0


@dataclass(frozen=True)
class WalkResult(WalkStats):
    """What :func:`simulate` returns: the statistics plus every walker's final position."""

    positions: NDArray[Any] | None = None  # (walkers, dim), int64 for lattice walks

    def positive_fraction_hist(self, bins: int = 20) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Histogram of the fraction of time positive on ``bins`` equal bins of [0, 1]."""
        if self.positive_counts is None or self.n == 0:
            raise ValueError("time positive is tracked for 1-D walks with n > 0 only")
        frac = np.arange(self.n + 1) / self.n
        edges = np.linspace(0.0, 1.0, bins + 1)
        idx = np.minimum(np.searchsorted(edges, frac, side="right") - 1, bins - 1)
        counts = np.bincount(idx, weights=self.positive_counts, minlength=bins)
        return edges, counts.astype(np.int64)

    def to_json_dict(self, include_positions: bool = True, include_paths: bool = False) -> dict[str, Any]:
        """Plain ``dict``/``list``/``int``/``float``/``None`` data (``json.dumps``-ready).

        Positions are ``walkers x dim`` numbers (~7 MB of JSON for 10^6 walkers), hence the
        switch; display paths are off by default for the same reason."""

        def conv(x: Any) -> Any:
            if x is None:
                return None
            if isinstance(x, np.ndarray):
                return x.tolist()
            if isinstance(x, np.generic):
                return x.item()
            return x

        out: dict[str, Any] = {
            "config": self.config.to_json_dict(),
            "n": self.n,
            "per_step_walkers": self.per_step_walkers,
            "walker_steps_per_s": float(self.walker_steps_per_s),
            "elapsed_s": float(self.elapsed_s),
            "backend": self.backend,
            "final_hist": {"edges": conv(self.hist_edges), "counts": conv(self.hist_counts)},
            "mean": conv(self.mean),
            "var": conv(self.var),
            "msd": conv(self.msd),
            "first_return_counts": conv(self.first_return_counts),
            "return_by": conv(self.return_by),
            "last_zero_counts": conv(self.last_zero_counts),
            "at_start_counts": conv(self.at_start_counts),
            "positive_counts": conv(self.positive_counts),
            "first_passage_counts": conv(self.first_passage_counts),
            "occupancy": conv(self.occupancy),
            "absorbed_lower": int(self.absorbed_lower),
            "absorbed_upper": int(self.absorbed_upper),
            "absorption_time_counts": conv(self.absorption_time_counts),
        }
        if self.positive_counts is not None and self.n > 0:
            edges, counts = self.positive_fraction_hist()
            out["positive_fraction_hist"] = {"edges": conv(edges), "counts": conv(counts)}
        if include_positions:
            out["positions"] = conv(self.positions)
        if include_paths:
            out["display_t"] = conv(self.display_t)
            out["display_paths"] = conv(self.display_paths)
        return out


# --------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------


class WalkSimulation:
    """Stateful streaming simulation; advance it with :meth:`sweep` / :meth:`run`.

    State per per-step walker: displacement, first return time, last visit to start,
    positive-step count, first passage time, absorption time/side (int32 each). State per
    fast walker: displacement only. Plus O(steps) curves and one block of scratch.
    """

    def __init__(self, config: WalkConfig) -> None:
        cfg = config
        self.cfg = cfg
        self.ops = _make_ops(cfg)
        ops = self.ops
        self.dim = cfg.dim
        self.lattice = cfg.step_kind == "lattice"
        self.m = cfg.n_per_step
        self.f = cfg.walkers - self.m
        self.n = 0
        self._fast_pending = 0  # steps the fast walkers still owe (see _flush_fast)
        self.elapsed = 0.0
        # seconds per walker-step, measured (None until the first sweep / flush), for sizing
        # the job's sweeps
        self._t_per_step_walker: float | None = None
        self._t_fast_walker: float | None = None

        if self.lattice:
            bound = cfg.steps + abs(cfg.start) + 2
            self.block_dtype = "int16" if bound < _INT16_SAFE else "int32"
            state_dtype = "int32"
        else:
            self.block_dtype = state_dtype = "float64"
        self.state_dtype = state_dtype
        self.disp = [ops.zeros(self.m, state_dtype) for _ in range(self.dim)]
        self.fast = [ops.zeros(self.f, state_dtype) for _ in range(self.dim)]

        self.track_returns = self.lattice and self.m > 0
        self.track_1d = self.dim == 1 and self.m > 0
        if self.track_returns:
            self.first_ret = ops.zeros(self.m, "int32")
            self.last_zero = ops.zeros(self.m, "int32")
        if self.track_1d:
            self.pos_steps = ops.zeros(self.m, "int32")
            self.first_pass = ops.zeros(self.m, "int32")
        barrier = cfg.barrier
        self.barrier = barrier
        if barrier is not None:
            self.absorbed_at = ops.zeros(self.m, "int32")
            self.absorbed_side = ops.zeros(self.m, "int8")
            self.b_lo = None if barrier.lower is None else barrier.lower - cfg.start
            self.b_hi = None if barrier.upper is None else barrier.upper - cfg.start
        self.radius = cfg.radius if self.m > 0 else 0
        if self.radius:
            side = 2 * self.radius + 1
            self.occupancy = np.zeros(side * side, dtype=np.int64)
            self.occupancy[self.radius * side + self.radius] = self.m  # everyone starts at 0

        self.s1 = _Growable(self.dim)
        self.s2 = _Growable(self.dim)
        self.s1.append(np.zeros((1, self.dim)))
        self.s2.append(np.zeros((1, self.dim)))
        self.at_start = _Growable(1)  # walkers back at the start at each step: u_k = P(S_k = 0)
        self.at_start.append(np.full((1, 1), float(self.m)))

        origin = np.zeros(self.dim, dtype=np.int64 if self.lattice else np.float64)
        origin[0] = cfg.start
        self.origin = origin
        self.n_display = min(cfg.display_walkers, self.m)
        self.paths = _PathBuffer(self.n_display, self.dim, cfg.display_points, origin)

        if self.dim > 1 and self.lattice:
            probs = np.asarray(
                cfg.direction_probs or [1.0 / (2 * self.dim)] * (2 * self.dim), dtype=np.float64
            )
            self.uniform_dirs = bool(np.allclose(probs, probs[0], rtol=0, atol=1e-15))
            self.cum_probs = np.cumsum(probs)[:-1].astype(np.float32)

    # -- steps -----------------------------------------------------------------------

    def _increments(self, c: int, b: int) -> list[Array]:
        """Per-axis step blocks ``(c, b)``: int8 ±1/0 for lattice walks, float64 otherwise."""
        ops, cfg = self.ops, self.cfg
        if not self.lattice:
            scale = 1.0 / math.sqrt(self.dim)
            return [ops.normal(c, b) * scale for _ in range(self.dim)]
        if self.dim == 1:
            up = ops.bits(c, b) if cfg.p == 0.5 else ops.cast(ops.uniform(c, b) < cfg.p, "int8")
            return [up * 2 - 1]
        if self.dim == 2 and self.uniform_dirs:
            axis_y = ops.bits(c, b)
            sign = ops.bits(c, b) * 2 - 1
            return [sign * (1 - axis_y), sign * axis_y]
        if self.uniform_dirs:
            dirs = ops.integers(c, b, 2 * self.dim)
        else:
            u = ops.uniform(c, b)
            dirs = ops.zeros((c, b), "int8")
            for threshold in self.cum_probs:
                dirs += ops.cast(u >= float(threshold), "int8")
        return [
            ops.cast(dirs == 2 * a, "int8") - ops.cast(dirs == 2 * a + 1, "int8") for a in range(self.dim)
        ]

    def _fold(self, row: Array) -> Array:
        """Mirror a row of positions back inside the reflecting barrier(s)."""
        ops, lo, hi = self.ops, self.b_lo, self.b_hi
        if lo is not None and hi is not None:
            period = 2 * (hi - lo)
            r = ops.remainder(row - lo, period)
            return lo + ops.minimum(r, period - r)
        if lo is not None:
            return lo + ops.abs(row - lo)
        return hi - ops.abs(hi - row)

    # -- one block of per-step walkers ------------------------------------------------

    def _step_block(self, lo: int, hi: int, c: int, n0: int, acc: list[Array]) -> None:
        """Advance per-step walkers ``[lo, hi)`` from step ``n0`` by ``c`` steps.

        Builds the ``(c, hi - lo)`` block of displacements once and reads every statistic
        off it with whole-block reductions, then keeps only the last row."""
        ops = self.ops
        b = hi - lo
        dt = self.block_dtype
        incs = self._increments(c, b)
        barrier = self.barrier
        absorbing = barrier is not None and barrier.kind == "absorbing"
        if absorbing:
            alive = self.absorbed_at[lo:hi] == 0
            incs[0] = incs[0] * alive  # absorbed walkers stop moving
        if barrier is not None and barrier.kind == "reflecting":
            d = ops.cast(incs[0], dt)
            prev = ops.cast(self.disp[0][lo:hi], dt)
            for k in range(c):
                d[k] = self._fold(prev + d[k])
                prev = d[k]
            blocks = [d]
        else:
            blocks = [ops.cumsum0(inc, self.disp[a][lo:hi], dt) for a, inc in enumerate(incs)]
        del incs
        kk1 = ops.col(np.arange(1, c + 1), "int32" if c > 32000 else "int16")  # k + 1
        rk = ops.col(np.arange(c, 0, -1), "int32" if c > 32000 else "int16")  # c - k

        if absorbing:
            self._absorb(blocks[0], lo, hi, c, n0, rk, kk1)

        d0 = blocks[0]
        if self.track_returns:
            z = blocks[0] == 0
            for other in blocks[1:]:
                z &= other == 0
            fr = self.first_ret[lo:hi]
            self._first_times(fr, ops.nonzero(fr == 0), z, rk, n0 + c + 1)
            last = ops.cast(ops.amax0(z * kk1), "int32")  # index + 1, 0 if none
            has = last > 0
            self.last_zero[lo:hi][has] = n0 + last[has]
            acc[2] += ops.count1(z)
            del z
        if self.track_1d:
            prev0 = self.disp[0][lo:hi]
            if self.lattice:
                pos = ops.count0((d0[1:] + d0[:-1]) > 0)
                pos += ops.cast((ops.cast(prev0, dt) + d0[0]) > 0, "int32")
            else:
                pos = ops.count0(d0 > 0)
            self.pos_steps[lo:hi] += pos
            fp = self.first_pass[lo:hi]
            cand = ops.nonzero((fp == 0) & (ops.amax0(d0) >= self.cfg.level))
            if len(cand):
                self._first_times(fp, cand, d0[:, cand] >= self.cfg.level, rk, n0 + c + 1, True)
        for a, blk in enumerate(blocks):
            s1, s2 = ops.moments1(blk)
            acc[0][:, a] += s1
            acc[1][:, a] += s2
        if self.radius:
            self._occupy(blocks)
        if lo == 0 and self.n_display:
            rows = np.stack([ops.numpy(blk[:, : self.n_display]) for blk in blocks], axis=-1)
            self.paths.append(np.arange(n0 + 1, n0 + c + 1), rows + self.origin)
        for a, blk in enumerate(blocks):
            self.disp[a][lo:hi] = blk[-1]

    def _first_times(
        self, out: Array, cols: Array, mask: Array, rk: Array, end: int, subset: bool = False
    ) -> None:
        """``out[cols] = time of the first True row`` for columns that have one.

        ``mask * rk`` turns the first True of a column into its column maximum (a vector
        reduction; argmax along axis 0 is ~10x slower). Only the still-undecided columns
        are gathered, which after a few dozen steps is a small minority."""
        if len(cols) == 0:
            return
        if subset:
            sub = mask
        elif 4 * len(cols) >= mask.shape[1]:  # gathering most columns costs more than it saves
            first = self.ops.cast(self.ops.amax0(mask * rk), "int32")
            new = (first > 0) & (out == 0)
            out[new] = end - first[new]
            return
        else:
            sub = mask[:, cols]
        first = self.ops.cast(self.ops.amax0(sub * rk), "int32")  # c - index, 0: none
        hit = first > 0
        out[cols[hit]] = end - first[hit]

    def _absorb(self, d: Array, lo: int, hi: int, c: int, n0: int, rk: Array, kk1: Array) -> None:
        """Freeze walkers at the barrier from the step they first reach it."""
        ops, blo, bhi = self.ops, self.b_lo, self.b_hi
        hit = None
        if blo is not None:
            hit = d <= blo
        if bhi is not None:
            hit = (d >= bhi) if hit is None else (hit | (d >= bhi))
        first = ops.cast(ops.amax0(hit * rk), "int32")
        new = (first > 0) & (self.absorbed_at[lo:hi] == 0)
        if not bool(new.any()):
            return
        idx = ops.cast(ops.where(new, c - first, 0), "int32")  # block row of the first hit
        val = ops.gather0(d, idx)
        upper = (val >= bhi) if bhi is not None else (val != val)  # no upper bound: all False
        bval = ops.where(upper, bhi if bhi is not None else 0, blo if blo is not None else 0)
        freeze = (kk1 > idx[None, :]) & new[None, :]
        d[...] = ops.where(freeze, bval[None, :], d)
        self.absorbed_at[lo:hi][new] = n0 + 1 + idx[new]
        side = ops.where(upper, 1, -1)
        self.absorbed_side[lo:hi][new] = ops.cast(side[new], "int8")

    def _occupy(self, blocks: list[Array]) -> None:
        """Add this block's visits to the 2-D grid.

        Out-of-grid entries get the sentinel index ``side^2`` instead of being masked out:
        boolean gathers cost ~5x more than a ``where``, and a small grid keeps the flat index
        in int16 (products of out-of-grid entries may wrap; they are discarded anyway)."""
        ops, r = self.ops, self.radius
        side = 2 * r + 1
        dt = "int16" if side * side < 32_000 and self.block_dtype == "int16" else "int32"
        ix, iy = ops.cast(blocks[0], dt) + r, ops.cast(blocks[1], dt) + r
        inside = (ix >= 0) & (ix < side) & (iy >= 0) & (iy < side)
        idx = ops.where(inside, ix * side + iy, side * side)
        self.occupancy += ops.bincount(idx.reshape(-1), side * side + 1)[:-1]

    def block_walkers(self, c: int) -> int:
        """Per-step block width: ``block_elems / c`` rounded to 64, at least the display set."""
        b = max(64, (self.cfg.block_size // max(c, 1)) // 64 * 64)
        return max(b, self.n_display)

    def sweep(self, c: int) -> Iterator[None]:
        """Advance every walker by ``c`` steps, yielding after each block.

        The simulation is consistent again only once the iterator is exhausted; the job uses
        the intermediate yields to stay responsive on huge walker counts."""
        if c < 1:
            raise ValueError("c must be >= 1")
        ops, n0 = self.ops, self.n
        acc = [ops.zeros((c, self.dim), "float64"), ops.zeros((c, self.dim), "float64"),
               ops.zeros(c, "float64")]
        t0 = time.perf_counter()
        b = self.block_walkers(c)
        for lo in range(0, self.m, b):
            self._step_block(lo, min(self.m, lo + b), c, n0, acc)
            yield
        t1 = time.perf_counter()
        self.s1.append(ops.numpy(acc[0]))
        self.s2.append(ops.numpy(acc[1]))
        self.at_start.append(ops.numpy(acc[2])[:, None])
        self.n += c
        self.elapsed += t1 - t0
        if self.m:
            rate = (t1 - t0) / (self.m * c)
            old = self._t_per_step_walker
            self._t_per_step_walker = rate if old is None else 0.5 * (old + rate)
        self._fast_pending += c
        if self._fast_pending >= (_FAST_CHECKPOINT if self.cfg.fast_eligible else 1):
            yield from self._flush_fast()

    def _flush_fast(self) -> Iterator[None]:
        """Bring the fast / positions-only walkers up to step ``n``.

        The popcount path is cheapest on many words at once, so it runs at coarse
        checkpoints (every ``_FAST_CHECKPOINT`` steps, or when positions are read) rather
        than every sweep; the positions-only path keeps pace with every sweep."""
        c, self._fast_pending = self._fast_pending, 0
        if not self.f or not c:
            return
        ops = self.ops
        t0 = time.perf_counter()
        if self.cfg.fast_eligible:
            words = (c + 63) // 64
            bf = max(64, (1 << 20) // words)  # ~8 MB of random words per block
        else:
            bf = max(64, self.cfg.block_size // c)
        for lo in range(0, self.f, bf):
            hi = min(self.f, lo + bf)
            if self.cfg.fast_eligible:
                self.fast[0][lo:hi] += ops.popcount_displacement(c, hi - lo)
            else:
                for a, inc in enumerate(self._increments(c, hi - lo)):
                    self.fast[a][lo:hi] += ops.sum0(inc, self.state_dtype)
            yield
        dt = time.perf_counter() - t0
        self.elapsed += dt
        rate = dt / (self.f * c)
        old = self._t_fast_walker
        self._t_fast_walker = rate if old is None else 0.5 * (old + rate)

    def run(self, steps: int | None = None) -> None:
        """Advance to ``steps`` (default: the configured horizon) in sweeps of chunk_steps."""
        target = self.cfg.steps if steps is None else steps
        while self.n < target:
            for _ in self.sweep(min(self.cfg.chunk_steps, target - self.n)):
                pass

    def can_extend_to(self, new: WalkConfig) -> bool:
        """True if ``new`` differs only by a horizon this run can still reach."""
        if replace(new, steps=self.cfg.steps) != self.cfg or new.steps < self.n:
            return False
        return (
            not self.lattice or self.block_dtype == "int32" or (new.steps + abs(new.start) + 2 < _INT16_SAFE)
        )

    def steps_for_budget(self, seconds: float) -> int:
        """Sweep length that should take about ``seconds`` given the measured speeds."""
        if self.m and self._t_per_step_walker is None:
            return 1  # measure first: a guessed speed can be off by 10x between walk kinds
        per_step = self.m * (self._t_per_step_walker or 0.0) + self.f * (
            self._t_fast_walker if self._t_fast_walker is not None else 1e-10
        )
        c = int(seconds / max(per_step, 1e-12))
        if self.f and self.cfg.fast_eligible and c >= 64:
            c = c // 64 * 64  # whole random words on the fast path
        return int(min(max(c, 1), 4096))

    # -- read-out ----------------------------------------------------------------------

    def _axis(self, a: int) -> NDArray[Any]:
        """Current absolute coordinate ``a`` of every walker (per-step walkers first)."""
        for _ in self._flush_fast():
            pass
        ops = self.ops
        col = np.concatenate([ops.numpy(self.disp[a]), ops.numpy(self.fast[a])])
        col = col.astype(np.int64) if self.lattice else col.astype(np.float64)
        return col + self.origin[a]

    def positions(self) -> NDArray[Any]:
        """``(walkers, dim)`` current absolute positions (per-step walkers first)."""
        return np.stack([self._axis(a) for a in range(self.dim)], axis=1)

    def _counts(self, x: Array, valid: Array | None = None) -> NDArray[np.int64]:
        """Histogram over time 0..n of a per-walker time array (0 entries are skipped when
        ``valid`` is None, i.e. 0 means "has not happened")."""
        ops = self.ops
        v = x[x > 0] if valid is None else x[valid]
        return ops.bincount(v, self.n + 1)[: self.n + 1]

    def _hist(self, x0: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        if self.lattice:
            lo, hi = int(x0.min()), int(x0.max())
            counts = np.bincount(x0 - lo, minlength=hi - lo + 1).astype(np.int64)
            return np.arange(lo, hi + 2, dtype=np.float64) - 0.5, counts
        counts, edges = np.histogram(x0, bins=min(101, max(10, int(math.sqrt(x0.size)))))
        return edges, counts.astype(np.int64)

    def stats_kwargs(self, positions: NDArray[Any] | None = None) -> dict[str, Any]:
        """Fresh numpy copies of everything :class:`WalkStats` holds."""
        ops, m = self.ops, self.m
        edges, counts = self._hist(self._axis(0) if positions is None else positions[:, 0])
        mean = var = msd = None
        if m:
            s1 = self.s1.view() / m
            s2 = self.s2.view() / m
            mean = s1.copy()
            var = np.maximum(s2 - s1 * s1, 0.0)
            msd = s2.sum(axis=1)
        first_ret = ret_by = last_zero = at_start = None
        if self.track_returns:
            at_start = np.rint(self.at_start.view()[:, 0]).astype(np.int64)
            first_ret = self._counts(self.first_ret)
            ret_by = np.cumsum(first_ret) / m
            last_zero = ops.bincount(self.last_zero, self.n + 1)[: self.n + 1]
        positive = passage = None
        if self.track_1d:
            positive = ops.bincount(self.pos_steps, self.n + 1)[: self.n + 1]
            passage = self._counts(self.first_pass)
        absorbed_lower = absorbed_upper = 0
        absorption = None
        if self.barrier is not None and self.barrier.kind == "absorbing":
            side = ops.numpy(self.absorbed_side)
            absorbed_lower = int((side < 0).sum())
            absorbed_upper = int((side > 0).sum())
            absorption = self._counts(self.absorbed_at)
        occupancy = None
        if self.radius:
            side_len = 2 * self.radius + 1
            occupancy = self.occupancy.reshape(side_len, side_len).copy()
        t, x = self.paths.t, self.paths.x
        if self.n_display and t[-1] != self.n:
            last = np.stack([ops.numpy(self.disp[a][: self.n_display]) for a in range(self.dim)], 1)
            t = np.append(t, self.n)
            x = np.concatenate([x, (last + self.origin)[:, None, :]], axis=1)
        total = self.cfg.walkers * self.n
        return {
            "config": self.cfg,
            "n": self.n,
            "per_step_walkers": m,
            "hist_edges": edges,
            "hist_counts": counts,
            "mean": mean,
            "var": var,
            "msd": msd,
            "first_return_counts": first_ret,
            "at_start_counts": at_start,
            "return_by": ret_by,
            "last_zero_counts": last_zero,
            "positive_counts": positive,
            "first_passage_counts": passage,
            "occupancy": occupancy,
            "absorbed_lower": absorbed_lower,
            "absorbed_upper": absorbed_upper,
            "absorption_time_counts": absorption,
            "display_t": t.copy(),
            "display_paths": x.copy(),
            "walker_steps_per_s": total / self.elapsed if self.elapsed > 0 else 0.0,
            "elapsed_s": self.elapsed,
            "backend": self.ops.name,
        }

    def snapshot(self, done: bool = False, restarts: int = 0) -> WalkSnapshot:
        return WalkSnapshot(**self.stats_kwargs(), done=done, restarts=restarts)

    def result(self) -> WalkResult:
        pos = self.positions()
        return WalkResult(**self.stats_kwargs(pos), positions=pos)


# --------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------


def simulate(
    dim: int,
    walkers: int,
    steps: int,
    p: float = 0.5,
    barrier: Barrier | Mapping[str, Any] | None = None,
    seed: int = 0,
    **options: Any,
) -> WalkResult:
    """Run a whole simulation for the CLI; ``options`` are any other :class:`WalkConfig`
    fields (``start``, ``step_kind``, ``direction_probs``, ``level``, ``per_step_walkers``,
    ``device``, ...). Deterministic for a given seed, chunk_steps and backend."""
    cfg = WalkConfig(
        dim=dim,
        walkers=walkers,
        steps=steps,
        p=p,
        barrier=Barrier.coerce(barrier),
        seed=seed,
        **options,
    )
    sim = WalkSimulation(cfg)
    sim.run()
    return sim.result()


def walk_job(params: ParamBox | Mapping[str, Any], *, target_ms: float = 30.0) -> Iterator[WalkSnapshot]:
    """Generator job for the GUI runner (see :mod:`engines.jobs`).

    Reads the params between sweeps. A change of any :class:`WalkConfig` field other than
    ``steps`` restarts the run (a new law means new plots; ``restarts`` increments); a larger
    ``steps`` just moves the finish line. Each ``next()`` does about ``target_ms`` of work:
    sweep lengths come from the measured speed, and a sweep that still overruns (10^7
    walkers need tens of ms for a single step) re-yields the last complete snapshot between
    blocks, so cancel and pause stay instant. Yields a snapshot at n = 0 first and one with
    ``done=True`` last.
    """
    box = params if isinstance(params, ParamBox) else ParamBox(**dict(params))
    budget = target_ms / 1000.0
    restarts = 0
    version = box.version
    cfg = WalkConfig.from_mapping(box.get())
    sim = WalkSimulation(cfg)
    snap = sim.snapshot(restarts=restarts)
    yield snap
    while True:
        if box.version != version:
            version = box.version
            new_cfg = WalkConfig.from_mapping(box.get())
            if sim.can_extend_to(new_cfg):
                sim.cfg = cfg = new_cfg
            else:
                restarts += 1
                cfg = new_cfg
                sim = WalkSimulation(cfg)
                snap = sim.snapshot(restarts=restarts)
                yield snap
        if sim.n >= cfg.steps:
            yield sim.snapshot(done=True, restarts=restarts)
            return
        c = min(sim.steps_for_budget(budget), cfg.steps - sim.n)
        t0 = time.perf_counter()
        for _ in sim.sweep(c):
            if time.perf_counter() - t0 > budget:
                yield snap  # mid-sweep: the state is torn, so show the last consistent one
                t0 = time.perf_counter()
        snap = sim.snapshot(done=sim.n >= cfg.steps, restarts=restarts)
        yield snap
        if snap.done:
            return


# --------------------------------------------------------------------------------------
# Reference implementations and benchmark
# --------------------------------------------------------------------------------------


def fast_displacement(walkers: int, steps: int, seed: int = 0, block: int = 1 << 16) -> NDArray[np.int32]:
    """``S_steps`` of ``walkers`` unbiased ±1 walks by popcount (the engine's fast path)."""
    ops = _NumpyOps(seed)
    out = np.zeros(walkers, dtype=np.int32)
    chunk = 4096  # steps per pass, so the word block stays ~ block * 64 words
    for lo in range(0, walkers, block):
        hi = min(walkers, lo + block)
        done = 0
        while done < steps:
            c = min(chunk, steps - done)
            out[lo:hi] += ops.popcount_displacement(c, hi - lo)
            done += c
    return out


def naive_displacement(walkers: int, steps: int, seed: int = 0) -> NDArray[np.int64]:
    """Reference: one ``integers`` draw and one add per step (the textbook numpy loop)."""
    rng = np.random.default_rng(seed)
    pos = np.zeros(walkers, dtype=np.int64)
    for _ in range(steps):
        pos += 2 * rng.integers(0, 2, walkers) - 1
    return pos


def _device_label() -> str:
    return f"cpu ({os.cpu_count()} cores, numpy {np.__version__})"


def bench_walk(
    walkers: int = 1_000_000,
    fast_steps: int = 8192,
    naive_steps: int = 64,
    mem_walkers: int = 1_000_000,
    mem_steps: int = 10_000,
    mem_per_step_walkers: int = 20_000,
    repeats: int = 3,
) -> list[dict[str, Any]]:
    """Benchmarks for the report: fast-path speed and streaming peak memory.

    ``walk.fast_path``: best of ``repeats`` walker-steps/s of :func:`fast_displacement` vs
    the naive loop measured in the same run. ``walk.peak_memory_1e6x1e4``: tracemalloc peak
    (numpy allocations are traced) of :func:`simulate` on ``mem_walkers x mem_steps`` with
    ``mem_per_step_walkers`` on the per-step path, vs the ``walkers x steps`` int8 array a
    non-streaming simulation would need. Shrink the arguments for a quick run.
    """
    best_fast = 0.0
    best_naive = 0.0
    for r in range(repeats):
        t = time.perf_counter()
        fast_displacement(walkers, fast_steps, seed=r)
        best_fast = max(best_fast, walkers * fast_steps / (time.perf_counter() - t))
        t = time.perf_counter()
        naive_displacement(walkers, naive_steps, seed=r)
        best_naive = max(best_naive, walkers * naive_steps / (time.perf_counter() - t))

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    simulate(1, mem_walkers, mem_steps, per_step_walkers=min(mem_per_step_walkers, mem_walkers))
    _, peak = tracemalloc.get_traced_memory()
    if not was_tracing:
        tracemalloc.stop()
    peak_mib = (peak - base) / 2**20
    naive_mib = mem_walkers * mem_steps / 2**20
    device = _device_label()
    return [
        {
            "name": "walk.fast_path",
            "value": best_fast,
            "unit": "walker-steps/s",
            "baseline": best_naive,
            "ratio": best_fast / best_naive,
            "device": device,
        },
        {
            "name": "walk.peak_memory_1e6x1e4",
            "value": peak_mib,
            "unit": "MiB",
            "baseline": naive_mib,
            "ratio": peak_mib / naive_mib,
            "device": device,
        },
    ]
