"""2-D toy data sets, draw-your-own densities, and point-set import/export.

Why these exact definitions: the scales follow FFJORD's ``lib/toy_data.py`` (the de-facto
standard), so the reference entropies in ``/work/shared/reference.md`` are the NLL floors of
*these* data and published toy figures are comparable. Three deliberate departures from the
widely copied code, all invisible in distribution but important for a teaching tool:

* every draw uses the passed ``np.random.Generator`` (FFJORD's 2spirals and checkerboard use the
  global ``np.random``, so "same seed, same data" silently fails);
* rings and moons use i.i.d. uniform angles, not evenly spaced ones per batch (those are not
  i.i.d. samples and make two-sample metrics look too good);
* class proportions are drawn i.i.d. (or fixed with ``equal_counts=True``) instead of
  ``n // k`` per class, so ``n`` points are always returned.

Every data set is a union of equally likely classes (mixture component, moon, ring, spiral arm,
checkerboard square, pinwheel arm, third of the swiss roll), so ``sample_labelled`` gives labels
for class-conditional models and guidance demos.

Image densities (``(H, W)`` arrays) are image-oriented everywhere in this package: row 0 is the
top edge ``y = ymax``, column 0 the left edge ``x = xmin``.

Pure numpy/scipy/PIL: never imports Qt.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from engines.fileio import atomic_write
from engines.gmm import GaussianMixture

__all__ = [
    "DATASETS",
    "DataSource",
    "bounds",
    "density_from_image",
    "density_from_strokes",
    "describe",
    "load_points",
    "mixture",
    "n_classes",
    "sample",
    "sample_from_density",
    "sample_labelled",
    "save_points",
    "true_entropy",
]

DATASETS: tuple[str, ...] = (
    "8gaussians",
    "25gaussians",
    "moons",
    "rings",
    "swissroll",
    "2spirals",
    "checkerboard",
    "pinwheel",
)

Extent = tuple[float, float, float, float]

# 25gaussians: the WGAN-GP / VEEGAN convention. Centres 2*{-2..2}^2 and std 0.05, all divided
# by 2.828, so each coordinate has variance ~1 and the modes are sharp dots (std 0.0177,
# spacing 0.707): the classic mode-coverage test.
_GRID25_DIV = 2.828
_GRID25_STD = 0.05 / _GRID25_DIV

_8G_SCALE = 4.0
_8G_STD = 0.5
_8G_DIV = 1.414


# ---------------------------------------------------------------------- exact mixtures
def _mixture_8gaussians() -> GaussianMixture:
    # FFJORD's centre order (E, W, N, S, NE, SE, NW, SW); labels index this order.
    r = 1.0 / math.sqrt(2.0)
    centres = np.array(
        [(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r), (-r, -r)], dtype=np.float64
    )
    return GaussianMixture.isotropic(centres * _8G_SCALE / _8G_DIV, _8G_STD / _8G_DIV)


def _mixture_25gaussians() -> GaussianMixture:
    # Label k is grid cell (i, j) = (k // 5, k % 5), centre 2 * (i - 2, j - 2) / 2.828.
    ij = np.array([(i, j) for i in range(-2, 3) for j in range(-2, 3)], dtype=np.float64)
    return GaussianMixture.isotropic(2.0 * ij / _GRID25_DIV, _GRID25_STD)


_MIXTURES: dict[str, Callable[[], GaussianMixture]] = {
    "8gaussians": _mixture_8gaussians,
    "25gaussians": _mixture_25gaussians,
}


@cache
def _cached_mixture(name: str) -> GaussianMixture:
    return _MIXTURES[name]()


# ---------------------------------------------------------------------- class generators
# Each takes labels (n,) int64 and the rng and returns float64 (n, 2) points of those classes.


def _gen_moons(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # sklearn.make_moons(noise=0.1) geometry, then FFJORD's  * 2 + (-1, -0.2).
    theta = rng.uniform(0.0, math.pi, size=labels.shape[0])
    outer = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    inner = np.stack([1.0 - np.cos(theta), 1.0 - np.sin(theta) - 0.5], axis=1)
    pts = np.where((labels == 0)[:, None], outer, inner)
    pts = pts + rng.normal(scale=0.1, size=pts.shape)
    return pts * 2.0 + np.array([-1.0, -0.2])


def _gen_rings(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Radii 3 * {0.25, 0.5, 0.75, 1} (label 0 innermost), noise std 0.08.
    radius = 3.0 * (labels + 1) / 4.0
    theta = rng.uniform(0.0, 2.0 * math.pi, size=labels.shape[0])
    pts = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return pts + rng.normal(scale=0.08, size=pts.shape)


def _gen_swissroll(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # sklearn.make_swiss_roll(noise=1.0) columns (x, z): t = 1.5 pi (1 + 2u), point
    # (t cos t, t sin t) + N(0, 1), all / 5. Class = which third of u (inner/middle/outer turn).
    u = (labels + rng.uniform(size=labels.shape[0])) / 3.0
    t = 1.5 * math.pi * (1.0 + 2.0 * u)
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    pts = pts + rng.normal(scale=1.0, size=pts.shape)
    return pts / 5.0


def _gen_2spirals(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # FFJORD: n = sqrt(u) * 540 deg; arm (-cos(n) n + U/2, sin(n) n + U/2); arm 1 is its mirror
    # through the origin; / 3, then N(0, 0.1^2).
    m = labels.shape[0]
    n = np.sqrt(rng.uniform(size=m)) * 540.0 * (2.0 * math.pi) / 360.0
    d = np.stack(
        [-np.cos(n) * n + rng.uniform(size=m) * 0.5, np.sin(n) * n + rng.uniform(size=m) * 0.5],
        axis=1,
    )
    d = np.where((labels == 0)[:, None], d, -d) / 3.0
    return d + rng.normal(scale=0.1, size=d.shape)


def _gen_checkerboard(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # FFJORD: 8 filled unit squares of a 4x4 board on [-2, 2]^2, then * 2 (so [-4, 4]^2, the
    # density is 1/32 on its support and the entropy is ln 32). Label k: column c = k // 2 - 2
    # (floor of x), row bottom = (-2 if k % 2 else 0) + (c mod 2).
    col = labels // 2 - 2
    bottom = np.where(labels % 2 == 1, -2, 0) + np.mod(col, 2)
    u = rng.uniform(size=(labels.shape[0], 2))
    return np.stack([col + u[:, 0], bottom + u[:, 1]], axis=1) * 2.0


def _gen_pinwheel(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # FFJORD (after Johnson et al.): radial std 0.3, tangential std 0.1, 5 arms, rate 0.25, * 2.
    feats = rng.standard_normal((labels.shape[0], 2)) * np.array([0.3, 0.1])
    feats[:, 0] += 1.0
    rads = np.linspace(0.0, 2.0 * math.pi, 5, endpoint=False)
    angles = rads[labels] + 0.25 * np.exp(feats[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    # feats @ [[c, -s], [s, c]] exactly as FFJORD's einsum, so the arms curl the same way.
    pts = np.stack([feats[:, 0] * c + feats[:, 1] * s, -feats[:, 0] * s + feats[:, 1] * c], 1)
    return 2.0 * pts


_GENERATORS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "moons": _gen_moons,
    "rings": _gen_rings,
    "swissroll": _gen_swissroll,
    "2spirals": _gen_2spirals,
    "checkerboard": _gen_checkerboard,
    "pinwheel": _gen_pinwheel,
}

_N_CLASSES: dict[str, int] = {
    "8gaussians": 8,
    "25gaussians": 25,
    "moons": 2,
    "rings": 4,
    "swissroll": 3,
    "2spirals": 2,
    "checkerboard": 8,
    "pinwheel": 5,
}

# Plot windows: contain all but a negligible fraction of the mass (checked by the tests).
_BOUNDS: dict[str, Extent] = {
    "8gaussians": (-4.5, 4.5, -4.5, 4.5),
    "25gaussians": (-2.0, 2.0, -2.0, 2.0),
    "moons": (-4.0, 4.0, -2.5, 3.0),
    "rings": (-3.6, 3.6, -3.6, 3.6),
    "swissroll": (-3.5, 3.5, -3.5, 3.5),
    "2spirals": (-4.0, 4.0, -4.0, 4.0),
    "checkerboard": (-4.5, 4.5, -4.5, 4.5),
    "pinwheel": (-4.5, 4.5, -4.5, 4.5),
}

_DESCRIPTIONS: dict[str, str] = {
    "8gaussians": "8 Gaussians at radius 4/1.414 = 2.83 on the compass directions, "
    "std 0.5/1.414 = 0.354 (FFJORD).",
    "25gaussians": "5x5 grid of Gaussians at {-4,-2,0,2,4}/2.828, std 0.05/2.828 = 0.018 "
    "(WGAN-GP); sharp modes, unit variance per axis.",
    "moons": "Two interleaved half-circles of radius 2, noise std 0.2, shifted by (-1, -0.2) "
    "(FFJORD / sklearn make_moons x2).",
    "rings": "4 concentric rings of radius 0.75, 1.5, 2.25, 3, noise std 0.08, uniform angles (FFJORD).",
    "swissroll": "Swiss roll t(cos t, sin t)/5 for t in [1.5pi, 4.5pi], noise std 0.2 "
    "(FFJORD / sklearn); classes are its three turns.",
    "2spirals": "Two interleaved spiral arms of 1.5 turns, radius up to 3.1, noise std 0.1 (FFJORD).",
    "checkerboard": "Uniform on 8 squares of side 2 of a 4x4 board on [-4, 4]^2; entropy ln 32 (FFJORD).",
    "pinwheel": "5 curled arms, radial std 0.6, tangential std 0.2, rate 0.25 (FFJORD).",
}

# Reference entropies (nats) from /work/shared/reference.md, computed by quadrature.
_ENTROPY: dict[str, float] = {
    "8gaussians": 2.8319,
    "moons": 2.3946,
    "rings": 2.6232,
    "swissroll": 2.6699,
    "2spirals": 2.6454,
    "checkerboard": math.log(32.0),
    "pinwheel": 2.32,
}


def _check_name(name: str) -> None:
    if name not in _N_CLASSES:
        raise ValueError(f"unknown toy data set {name!r}; choose one of {', '.join(DATASETS)}")


# ---------------------------------------------------------------------- public data API
def n_classes(name: str) -> int:
    """Number of (equally likely) classes that ``sample_labelled`` labels points with."""
    _check_name(name)
    return _N_CLASSES[name]


def mixture(name: str) -> GaussianMixture | None:
    """The exact Gaussian mixture behind ``name`` (8gaussians, 25gaussians), else ``None``.

    Component k is class k of :func:`sample_labelled`, so ``mixture(name).subset([k])`` is
    the exact class-conditional density.
    """
    _check_name(name)
    return _cached_mixture(name) if name in _MIXTURES else None


def _draw_labels(k: int, n: int, rng: np.random.Generator, equal_counts: bool) -> np.ndarray:
    if equal_counts:
        return rng.permutation(np.arange(n, dtype=np.int64) % k)
    return rng.integers(0, k, size=n, dtype=np.int64)


def sample_labelled(
    name: str, n: int, rng: np.random.Generator, *, equal_counts: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` points (n, 2) float32 and their class labels (n,) int64 in [0, n_classes).

    Only ``rng`` is used, so the same seed gives the same points. ``equal_counts=True`` puts
    ``n // K`` or ``n // K + 1`` points in every class (then shuffles), which lowers the
    two-sample noise of metrics such as sliced Wasserstein.
    """
    _check_name(name)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if name in _MIXTURES:
        return _cached_mixture(name).sample(n, rng, equal_counts=equal_counts)
    labels = _draw_labels(_N_CLASSES[name], n, rng, equal_counts)
    pts = _GENERATORS[name](labels, rng)
    return pts.astype(np.float32), labels


def sample(name: str, n: int, rng: np.random.Generator, *, equal_counts: bool = False) -> np.ndarray:
    """Draw ``n`` points (n, 2) float32 from toy data set ``name`` (see :data:`DATASETS`)."""
    return sample_labelled(name, n, rng, equal_counts=equal_counts)[0]


def bounds(name: str) -> Extent:
    """Plot window ``(xmin, xmax, ymin, ymax)`` holding essentially all of the data."""
    _check_name(name)
    return _BOUNDS[name]


def describe(name: str) -> str:
    """One-line description with the exact scale, for tooltips and the docs panel."""
    _check_name(name)
    return _DESCRIPTIONS[name]


def true_entropy(name: str) -> float | None:
    """Differential entropy of the data in nats (the NLL floor of a flow), or ``None``.

    Reference figures from quadrature (reference.md); 25gaussians is ``ln 25`` plus one
    Gaussian's entropy, exact to far below 1e-6 because its modes are 40 std apart.
    Bits per dimension: ``H / (2 ln 2)``.
    """
    _check_name(name)
    if name == "25gaussians":
        return math.log(25.0) + 1.0 + math.log(2.0 * math.pi * _GRID25_STD**2)
    return _ENTROPY.get(name)


# ---------------------------------------------------------------------- image densities
def _validate_extent(extent: Sequence[float]) -> Extent:
    if len(extent) != 4:
        raise ValueError(f"extent must be (xmin, xmax, ymin, ymax), got {extent!r}")
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    if not (xmin < xmax and ymin < ymax) or not all(math.isfinite(v) for v in (xmin, xmax, ymin, ymax)):
        raise ValueError(f"extent needs finite xmin < xmax and ymin < ymax, got {extent!r}")
    return xmin, xmax, ymin, ymax


def sample_from_density(
    density: np.ndarray,
    extent: Sequence[float],
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``n`` points (n, 2) float32 from a pixel density (H, W) >= 0 over ``extent``.

    Pixels are chosen with probability proportional to their value, then each point is placed
    uniformly inside its pixel, so the result is an exact sample of the piecewise-constant
    density (no grid artefacts in the scatter). Image orientation: row 0 is ``y = ymax``.
    """
    d = np.asarray(density, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"density must be a non-empty (H, W) array, got shape {d.shape}")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("density must be finite and non-negative")
    total = d.sum()
    if total <= 0:
        raise ValueError("density is zero everywhere: draw or load something first")
    xmin, xmax, ymin, ymax = _validate_extent(extent)
    h, w = d.shape
    idx = rng.choice(d.size, size=int(n), p=(d / total).ravel())
    row, col = np.divmod(idx, w)
    u = rng.uniform(size=(int(n), 2))
    x = xmin + (col + u[:, 0]) * (xmax - xmin) / w
    y = ymax - (row + u[:, 1]) * (ymax - ymin) / h
    return np.stack([x, y], axis=1).astype(np.float32)


def density_from_image(img: Any, invert_dark: bool = True) -> np.ndarray:
    """Turn an image (PIL image or array: (H, W), (H, W, 3) or (H, W, 4)) into a density.

    With ``invert_dark`` (the default) dark ink on light paper becomes mass, the natural
    reading of a drawing or a photo of handwriting; otherwise bright pixels carry the mass.
    Transparent pixels carry none. Integer images are scaled by their dtype's maximum, float
    images are taken as [0, 1]. Returns float64 (H, W) in [0, 1], unnormalised.
    """
    arr = np.asarray(img)
    if arr.dtype == bool:
        gray_src = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.integer):
        gray_src = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif np.issubdtype(arr.dtype, np.floating):
        gray_src = np.clip(arr.astype(np.float64), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported image dtype {arr.dtype}")
    alpha = None
    if gray_src.ndim == 3:
        channels = gray_src.shape[2]
        if channels in (2, 4):
            alpha = gray_src[..., -1]
            gray_src = gray_src[..., :-1]
            channels -= 1
        if channels == 3:
            # ITU-R 601 luma, as PIL's convert("L").
            gray = gray_src @ np.array([0.299, 0.587, 0.114])
        elif channels == 1:
            gray = gray_src[..., 0]
        else:
            raise ValueError(f"unsupported number of image channels: {gray_src.shape[2]}")
    elif gray_src.ndim == 2:
        gray = gray_src
    else:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {arr.shape}")
    if gray.size == 0:
        raise ValueError("image is empty")
    dens = 1.0 - gray if invert_dark else gray
    if alpha is not None:
        dens = dens * alpha
    return np.clip(dens, 0.0, None)


def density_from_strokes(
    strokes: Sequence[np.ndarray],
    extent: Sequence[float],
    res: int | tuple[int, int],
    brush_sigma: float,
) -> np.ndarray:
    """Rasterise brush strokes (each (m, 2) in data coordinates) into a density (H, W).

    Each stroke is resampled finer than a quarter brush width and half a pixel; each resample carries
    the length of path it stands for, so the ink per unit length is the same however fast the
    mouse moved (mouse events arrive unevenly). The ink is then blurred by a Gaussian brush of
    std ``brush_sigma`` (data units). A single-point stroke (a click) gets the ink of a path
    one ``brush_sigma`` long. Ink outside ``extent`` is dropped. ``res``: int or (H, W).
    Returns float64 (H, W), image-oriented (row 0 is ``y = ymax``), unnormalised.
    """
    from scipy.ndimage import gaussian_filter

    xmin, xmax, ymin, ymax = _validate_extent(extent)
    h, w = (int(res), int(res)) if isinstance(res, (int, np.integer)) else map(int, res)
    if h <= 0 or w <= 0:
        raise ValueError(f"res must be positive, got {res!r}")
    sigma = float(brush_sigma)
    if not sigma > 0:
        raise ValueError(f"brush_sigma must be > 0, got {brush_sigma!r}")
    # Resample finer than both the brush and the pixels, so the splats merge into a line.
    step = min(sigma / 4.0, 0.5 * (xmax - xmin) / w, 0.5 * (ymax - ymin) / h)
    pts_all: list[np.ndarray] = []
    mass_all: list[np.ndarray] = []
    for stroke in strokes:
        s = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        s = s[np.all(np.isfinite(s), axis=1)]
        if s.shape[0] == 0:
            continue
        if s.shape[0] == 1:
            pts_all.append(s)
            mass_all.append(np.array([sigma]))
            continue
        seg = np.diff(s, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        if not np.any(seg_len > 0):  # a stroke that never moved is a click
            pts_all.append(s[:1])
            mass_all.append(np.array([sigma]))
            continue
        # m[i] resamples at the midpoints of m[i] equal pieces of segment i (0 if it is empty),
        # vectorised because a freehand stroke has thousands of mouse events.
        m = np.where(seg_len > 0, np.maximum(1, np.ceil(seg_len / step)), 0).astype(np.int64)
        which = np.repeat(np.arange(seg.shape[0]), m)
        j = np.arange(which.shape[0]) - np.repeat(np.cumsum(m) - m, m)
        frac = (j + 0.5) / m[which]
        pts_all.append(s[:-1][which] + frac[:, None] * seg[which])
        mass_all.append((seg_len / np.maximum(m, 1))[which])
    dens = np.zeros((h, w), dtype=np.float64)
    if not pts_all:
        return dens
    pts = np.concatenate(pts_all)
    mass = np.concatenate(mass_all)
    # Bilinear splat onto pixel centres: nearest-pixel binning would alias the resampled
    # path into a beat pattern of a few percent along straight strokes.
    u = (pts[:, 0] - xmin) / (xmax - xmin) * w - 0.5
    v = (ymax - pts[:, 1]) / (ymax - ymin) * h - 0.5
    c0, r0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - c0, v - r0
    for dr, wr in ((0, 1.0 - fv), (1, fv)):
        for dc, wc in ((0, 1.0 - fu), (1, fu)):
            r, c = r0 + dr, c0 + dc
            ok = (c >= 0) & (c < w) & (r >= 0) & (r < h)
            np.add.at(dens, (r[ok], c[ok]), (mass * wr * wc)[ok])
    sig_px = (sigma * h / (ymax - ymin), sigma * w / (xmax - xmin))
    return np.clip(gaussian_filter(dens, sigma=sig_px, mode="constant", truncate=4.0), 0.0, None)


# ---------------------------------------------------------------------- training data
class DataSource:
    """Training data: a toy data set name, or a fixed point set (drawn/imported by the user).

    Every 2D Lab engine (diffusion, flow matching, flows, GANs) draws its batches through this
    one class, so a user's point set trains every model the same way: rows resampled with
    replacement (the empirical distribution stands in for the unknown density).

    ``draw(n)`` returns float32 points (n, 2) and int64 labels (n,) (all zeros when a point
    set came without labels), from the source's own numpy generator so runs are reproducible.
    """

    def __init__(
        self,
        data: str | np.ndarray,
        labels: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.rng = rng if rng is not None else np.random.default_rng(0)
        if isinstance(data, str):
            n_classes(data)  # validates the name
            self.name: str | None = data
            self.points: np.ndarray | None = None
            self.labels: np.ndarray | None = None
            self.n_classes = n_classes(data)
        else:
            pts = np.asarray(data, dtype=np.float32)
            if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
                raise ValueError(f"point data must be a non-empty (n, 2) array, got {pts.shape}")
            if not np.all(np.isfinite(pts)):  # one NaN row would poison every batch it lands in
                raise ValueError("point data must be finite")
            self.name = None
            self.points = pts
            lab = np.zeros(pts.shape[0], np.int64) if labels is None else np.asarray(labels)
            self.labels = lab.astype(np.int64)
            self.n_classes = int(self.labels.max()) + 1

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points and labels: fresh samples of a named set, or rows of the point set
        resampled with replacement (so any batch size works, even above the set's size)."""
        if self.name is not None:
            return sample_labelled(self.name, n, self.rng)
        assert self.points is not None and self.labels is not None
        idx = self.rng.integers(0, self.points.shape[0], size=n)
        return self.points[idx], self.labels[idx]


# ---------------------------------------------------------------------- point-set files
_TEXT_SUFFIXES = (".csv", ".txt", ".tsv")


def _validate_points(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{where}: expected points of shape (n, 2), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: contains no points")
    bad = ~np.all(np.isfinite(arr), axis=1)
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: non-finite value in point {first} ({arr[first].tolist()})")
    return arr


def _split_row(line: str) -> list[str]:
    for sep in (",", ";", "\t"):
        if sep in line:
            return [f.strip() for f in line.split(sep)]
    return line.split()


def load_points(path: str | os.PathLike[str]) -> np.ndarray:
    """Load a point set: ``.npy`` (an (n, 2) numeric array) or text (``.csv``/``.txt``/``.tsv``).

    Text: two numbers per line separated by a comma, semicolon, tab or spaces; blank lines and
    ``#`` comments are skipped; the first data line may be a header (e.g. ``x,y``). Returns
    float32 (n, 2), the dtype the whole 2D Lab trains in. Raises ``ValueError`` naming the file
    (and line) for anything else, so the GUI can show the message as is.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{p.name}: not a readable .npy array ({exc})") from exc
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
            raise ValueError(f"{p.name}: expected a real numeric array, got dtype {arr.dtype}")
        return _validate_points(arr.astype(np.float64), p.name).astype(np.float32)
    if suffix not in _TEXT_SUFFIXES:
        raise ValueError(f"{p.name}: unsupported file type {suffix!r}; use .csv, .txt or .npy")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p.name}: not a UTF-8 text file") from exc
    except OSError as exc:
        raise ValueError(f"{p.name}: cannot be read ({exc.strerror or exc})") from exc
    rows: list[tuple[float, float]] = []
    seen_data_line = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = _split_row(line)
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if not seen_data_line:  # a header line
                seen_data_line = True
                continue
            raise ValueError(f"{p.name}, line {lineno}: not two numbers: {raw.strip()!r}") from None
        seen_data_line = True
        if len(values) != 2:
            raise ValueError(f"{p.name}, line {lineno}: expected 2 columns (x, y), got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{p.name}, line {lineno}: non-finite value {raw.strip()!r}")
        rows.append((values[0], values[1]))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 2)
    return _validate_points(arr, p.name).astype(np.float32)


def save_points(path: str | os.PathLike[str], points: np.ndarray) -> None:
    """Save (n, 2) points as ``.npy`` or text (``.csv``/``.txt``/``.tsv``, header ``x,y``).

    Atomic via :func:`engines.fileio.atomic_write` (temporary file in the same folder, then
    ``os.replace``), so a crash or a full disk never leaves a half-written file and never
    destroys the old one. Invalid points raise ``ValueError`` before anything is written; a
    failed write raises :class:`engines.fileio.ExportError` (an ``OSError``) with a message for
    the user. Text uses 9 significant digits, enough to read float32 back bit-exactly.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix != ".npy" and suffix not in _TEXT_SUFFIXES:
        raise ValueError(f"{p.name}: unsupported file type {suffix!r}; use .csv, .txt or .npy")
    arr = _validate_points(np.asarray(points), "points")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            if suffix == ".npy":
                np.save(fh, arr)
            else:
                sep = "\t" if suffix == ".tsv" else ","
                np.savetxt(fh, arr, fmt="%.9g", delimiter=sep, header=f"x{sep}y", comments="")
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(p, write)
