"""Image files for the Image panel, without Qt: safe loading, PNG parameter metadata, strips.

Why a module of its own: a user drops any file on the sketch canvas (a photo, a 30-megapixel
scan, a text file renamed ``.png``, a decompression bomb), and every case must end in either
an image small enough to work with or one clear sentence, never a frozen window or a
traceback. Generated images carry their parameters as PNG text chunks (as A1111 and ComfyUI
do), so a PNG alone is enough to reproduce it; every write is atomic.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from engines.fileio import ExportError, atomic_write

__all__ = [
    "MAX_PIXELS",
    "load_image",
    "looks_dark_on_light",
    "read_png_metadata",
    "save_png_with_metadata",
    "strip_frames",
    "to_gray",
]

#: Refuse to decode more pixels than this (≈ 16k × 6k): beyond it a file is a bomb, not a sketch.
MAX_PIXELS = 100_000_000


def load_image(path: str | Path, max_side: int = 2048) -> tuple[np.ndarray, str]:
    """Read PNG/JPEG/WebP/… as (H, W, 3) uint8 RGB; return it with a notice ("" if none).

    An image larger than ``max_side`` on its longest side is downscaled (aspect kept) and
    the notice says so; a file that is not an image, is truncated, or would decode to more
    than :data:`MAX_PIXELS` raises ``ValueError`` with a message meant for the user.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"Cannot open {p.name}: the file does not exist.")
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) past its own bomb limit; we decide with MAX_PIXELS.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ValueError(
                        f"Cannot open {p.name}: {w}×{h} pixels is too large "
                        f"(more than {MAX_PIXELS // 1_000_000} megapixels)."
                    )
                notice = ""
                if max(w, h) > max_side:
                    im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced size, cheaply
                    rgb = _flatten(im)
                    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                    notice = (f"{p.name} is {w}×{h}; downscaled to {rgb.width}×{rgb.height} "
                              f"(at most {max_side} pixels a side).")
                else:
                    rgb = _flatten(im)
                arr = np.asarray(rgb, dtype=np.uint8)
    except ValueError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"Cannot open {p.name}: it is not an image Pillow can read ({exc}).") from exc
    except (OSError, SyntaxError) as exc:  # truncated / corrupt data surfaces as OSError
        raise ValueError(f"Cannot open {p.name}: the image is damaged or unreadable ({exc}).") from exc
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise ValueError(f"Cannot open {p.name}: unexpected image layout {arr.shape}.")
    return np.ascontiguousarray(arr), notice


def _flatten(im: Image.Image) -> Image.Image:
    """RGB, with transparency composited on white (a transparent PNG sketch is lines on white)."""
    im.load()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 luminance (ITU-R 601, as Pillow's ``L``) of a gray or RGB(A) uint8 image."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.astype(np.uint8, copy=False)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[..., :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    raise ValueError(f"Expected an (H, W) or (H, W, 3) image, got shape {arr.shape}.")


def looks_dark_on_light(image: np.ndarray) -> bool:
    """True when an image reads as dark lines on a light background (a pen sketch, a scan).

    The median decides: lines are thin, so the background dominates it whatever the lines.
    """
    gray = to_gray(image)
    return bool(np.median(gray) >= 128)


def save_png_with_metadata(path: str | Path, image: np.ndarray, metadata: Mapping[str, str]) -> Path:
    """Write ``image`` as PNG with each ``metadata`` item as a text chunk, atomically.

    Raises :class:`engines.fileio.ExportError` (with a user-facing message) on failure; an
    existing file at ``path`` is left untouched then.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ExportError(f"Cannot write {Path(path).name}: expected a uint8 image, "
                          f"got {arr.dtype} {arr.shape}.")
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_itxt(str(key), str(value))  # iTXt: UTF-8, so any prompt survives
    pil = Image.fromarray(np.ascontiguousarray(arr))

    def write(tmp: Path) -> None:
        pil.save(tmp, format="PNG", pnginfo=info)

    return atomic_write(path, write)


def read_png_metadata(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG as a dict; ``ValueError`` if the file is not a readable PNG."""
    p = Path(path)
    try:
        with Image.open(p) as im:
            if im.format != "PNG":
                raise ValueError(f"{p.name} is not a PNG file (it is {im.format or 'unknown'}).")
            im.load()  # text chunks after the image data are only seen once it is read
            text = dict(getattr(im, "text", {}) or {})
    except ValueError:
        raise
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"Cannot read {p.name}: {exc}") from exc
    return {str(k): str(v) for k, v in text.items()}


def strip_frames(frames: Sequence[np.ndarray], gap: int = 2, max_frames: int = 12) -> np.ndarray:
    """Frames side by side, left to right, as one (H, W_total, 3) uint8 image.

    Used for the "denoising sequence" export: a long run is thinned to ``max_frames``
    evenly spaced frames (always keeping the last) so the strip stays readable. Frames of
    shape (B, H, W, 3) contribute their first image; gray frames are made RGB.
    """
    if not frames:
        raise ValueError("No frames to put in a strip: generate an image first.")
    picked = list(frames)
    if len(picked) > max_frames:
        idx = np.unique(np.linspace(0, len(picked) - 1, max_frames).round().astype(int))
        picked = [picked[i] for i in idx]
    rgb: list[np.ndarray] = []
    for f in picked:
        a = np.asarray(f)
        if a.ndim == 4:
            a = a[0]
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ValueError(f"A strip frame must be an image, got shape {a.shape}.")
        rgb.append(a[..., :3].astype(np.uint8, copy=False))
    h = max(a.shape[0] for a in rgb)
    width = sum(a.shape[1] for a in rgb) + gap * (len(rgb) - 1)
    out = np.full((h, width, 3), 255, dtype=np.uint8)
    x = 0
    for a in rgb:
        out[: a.shape[0], x : x + a.shape[1]] = a
        x += a.shape[1] + gap
    return out
