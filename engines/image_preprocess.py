"""Control-map preprocessing for the Image panel: Canny edges, scribbles, and resizing.

A ControlNet only ever sees a single-channel map of white lines on black at the model's
resolution. These functions turn whatever the user gives (a photo, a drawn sketch in
either polarity) into exactly that map, and :func:`resize_control` produces *the* array the
model receives, so the panel can show it to the user instead of a look-alike.

The training data (:mod:`engines.image_data`) goes through the same functions, which is what
makes a hand-drawn sketch look like something the bundled model has seen.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

ResizeMode = Literal["just_resize", "crop_and_resize", "resize_and_fill"]
RESIZE_MODES: tuple[str, ...] = ("just_resize", "crop_and_resize", "resize_and_fill")


def to_gray(img: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3|4) uint8 → (H, W) uint8 luminance (RGB order, alpha ignored)."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {arr.dtype}")
    if arr.ndim == 2:
        return np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.ascontiguousarray(arr[..., 0])
    raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {arr.shape}")


def canny(img: np.ndarray, low: float = 100.0, high: float = 200.0) -> np.ndarray:
    """Canny edges as white (255) on black (0), (H, W) uint8.

    The 5×5 σ=1 blur and the L2 gradient match what the ControlNet paper's annotator (and
    kornia's default) do, so thresholds mean the same thing here as there. ``low``/``high``
    are gradient thresholds in 0..255 units; ``low > high`` is swapped rather than refused.
    """
    gray = to_gray(img)
    lo, hi = sorted((float(low), float(high)))
    edges = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 1), lo, hi, L2gradient=True)
    return edges.astype(np.uint8)


def scribble(img: np.ndarray, invert: bool | None = None, threshold: int = 128) -> np.ndarray:
    """Use a drawing as is: white lines on black, (H, W) uint8 in {0, 255}.

    People draw black on white; the model wants white on black. With ``invert=None`` the
    polarity is detected from the border (a sketch's border is background) falling back to
    the median: a light background means the lines are dark and the image is inverted.
    ``invert=True/False`` forces it.
    """
    gray = to_gray(img)
    if invert is None:
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        background = float(np.median(border)) if border.size else float(np.median(gray))
        if abs(background - 127.5) < 16:  # an ambiguous border: trust the whole image
            background = float(np.median(gray))
        invert = background >= 127.5
    lines = gray < threshold if invert else gray >= threshold
    return np.where(lines, 255, 0).astype(np.uint8)


def _is_binary(arr: np.ndarray) -> bool:
    values = np.unique(arr[:: max(1, arr.shape[0] // 64), :: max(1, arr.shape[1] // 64)])
    return bool(np.all((values == 0) | (values == 255)))


def _resize(arr: np.ndarray, width: int, height: int, binary: bool) -> np.ndarray:
    """Resize; a binary line map keeps thin lines when shrunk.

    Area averaging would fade a 1-px line shrunk 8× to 1/8 grey, which the model reads as
    "almost no line". For line maps the coverage threshold is scaled with the shrink factor
    so a line crossing a cell survives as a full-strength 1-px line.
    """
    h, w = arr.shape[:2]
    if (w, h) == (width, height):
        return arr.copy()
    shrink = max(w / width, h / height)
    interp = cv2.INTER_AREA if shrink > 1 else cv2.INTER_LINEAR
    out = cv2.resize(arr, (width, height), interpolation=interp)
    if binary:
        thr = 0.35 * 255.0 / max(shrink, 1.0) if shrink > 1 else 127.5
        out = np.where(out > thr, 255, 0).astype(np.uint8)
    return out


def resize_control(img: np.ndarray, size: int, mode: str = "just_resize") -> np.ndarray:
    """The exact (size, size) map the model receives.

    * ``just_resize``: stretch to a square (aspect ratio not kept);
    * ``crop_and_resize``: scale so the short side fits, centre-crop the long side;
    * ``resize_and_fill``: scale so the long side fits, pad the rest with black (no line).

    A binary {0, 255} map stays binary (see :func:`_resize`); other images are area-resized.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {arr.dtype}")
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {arr.shape}")
    size = int(size)
    binary = _is_binary(arr)
    h, w = arr.shape[:2]
    if mode == "just_resize":
        return _resize(arr, size, size, binary)
    if mode == "crop_and_resize":
        scale = size / min(h, w)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        big = _resize(arr, nw, nh, binary)
        top, left = (nh - size) // 2, (nw - size) // 2
        return np.ascontiguousarray(big[top : top + size, left : left + size])
    scale = size / max(h, w)
    nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    small = _resize(arr, nw, nh, binary)
    out = np.zeros((size, size, *arr.shape[2:]), dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = small
    return out


def is_blank(control: np.ndarray | None, min_fraction: float = 0.002) -> bool:
    """True when a control map carries no lines (empty canvas, all-black or all-white).

    A uniform map (every pixel alike) is blank whatever its value: a white canvas means "no
    sketch", not "lines everywhere". Otherwise it is blank when fewer than ``min_fraction``
    of the pixels are lit.
    """
    if control is None:
        return True
    arr = np.asarray(control)
    if arr.size == 0:
        return True
    gray = to_gray(arr) if arr.dtype == np.uint8 else arr
    if int(gray.max()) == int(gray.min()):
        return True
    return float(np.mean(gray > 127)) < min_fraction
