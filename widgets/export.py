"""Export helpers: a view to PNG or SVG at a chosen size, snapshots to an animated GIF.

Every write goes through :func:`engines.fileio.atomic_write`, so a failed export (an
unwritable folder, a full disk) raises :class:`ExportError` with a message for the user
and leaves any existing file untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets

from engines.fileio import ExportError, atomic_write

__all__ = [
    "EXPORT_SIZES",
    "ExportError",
    "qimage_to_array",
    "render_widget",
    "save_gif",
    "save_view",
]

#: Offered in the export dialog; "current" keeps the on-screen size.
EXPORT_SIZES: tuple[tuple[int, int], ...] = ((1280, 800), (1920, 1200), (2560, 1600), (3840, 2400))


def _render(widget: QtWidgets.QWidget, painter: QtGui.QPainter) -> None:
    # QWidget.render, called explicitly: pyqtgraph's views override ``render`` with
    # QGraphicsView's signature, which paints the scene but not the axes around it.
    QtWidgets.QWidget.render(widget, painter, QtCore.QPoint(0, 0), QtGui.QRegion(),
                             QtWidgets.QWidget.RenderFlag.DrawChildren)


def render_widget(widget: QtWidgets.QWidget, size: tuple[int, int] | None = None,
                  background: QtGui.QColor | None = None) -> QtGui.QImage:
    """Render ``widget`` into an image of exactly ``size``, scaled to fit, aspect kept.

    The widget paints itself through a scaled ``QPainter`` (not a resized bitmap), so
    plot lines and text stay sharp at export sizes larger than the screen.
    """
    src = widget.size()
    if src.width() <= 0 or src.height() <= 0:
        widget.adjustSize()
        src = widget.size()
    w, h = size if size is not None else (src.width(), src.height())
    if w <= 0 or h <= 0 or w * h > 100_000_000:
        raise ExportError(f"Export size {w}×{h} is not sensible; choose between 1×1 and 10,000×10,000.")
    image = QtGui.QImage(w, h, QtGui.QImage.Format.Format_ARGB32)
    bg = background or widget.palette().color(QtGui.QPalette.ColorRole.Window)
    image.fill(bg)
    scale = min(w / src.width(), h / src.height())
    painter = QtGui.QPainter(image)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.translate((w - src.width() * scale) / 2, (h - src.height() * scale) / 2)
        painter.scale(scale, scale)
        _render(widget, painter)
    finally:
        painter.end()
    return image


def _save_svg(widget: QtWidgets.QWidget, path: Path, size: tuple[int, int] | None) -> None:
    from PySide6.QtSvg import QSvgGenerator

    src = widget.size()
    w, h = size if size is not None else (src.width(), src.height())
    gen = QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QtCore.QSize(w, h))
    gen.setViewBox(QtCore.QRect(0, 0, w, h))
    gen.setTitle(widget.windowTitle() or "Generative Playground view")
    painter = QtGui.QPainter(gen)
    try:
        scale = min(w / max(src.width(), 1), h / max(src.height(), 1))
        painter.scale(scale, scale)
        _render(widget, painter)
    finally:
        painter.end()


def save_view(widget: QtWidgets.QWidget, path: str | Path, size: tuple[int, int] | None = None) -> Path:
    """Write ``widget`` as PNG (or JPEG) or SVG, chosen by the file's suffix."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".svg":
        return atomic_write(target, lambda tmp: _save_svg(widget, tmp, size))
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise ExportError(f"Cannot export to {target.name}: use a .png, .jpg or .svg file name.")
    image = render_widget(widget, size)

    def write(tmp: Path) -> None:
        fmt = "PNG" if suffix == ".png" else "JPEG"
        if not image.save(str(tmp), fmt):
            raise ExportError(f"Cannot write {target}: Qt could not encode the image.")

    return atomic_write(target, write)


def qimage_to_array(image: QtGui.QImage) -> np.ndarray:
    """An (H, W, 4) uint8 RGBA copy of a QImage."""
    img = image.convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    return buf.reshape(h, img.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def save_gif(frames: Sequence[QtGui.QImage | np.ndarray | Image.Image], path: str | Path,
             fps: float = 20.0, loop: int = 0) -> Path:
    """Write frames as an animated GIF (Pillow), atomically."""
    if not frames:
        raise ExportError("Nothing to export yet: run or play the panel first, then export the animation.")
    pil: list[Image.Image] = []
    for frame in frames:
        if isinstance(frame, QtGui.QImage):
            frame = qimage_to_array(frame)
        if isinstance(frame, np.ndarray):
            frame = Image.fromarray(frame)
        pil.append(frame.convert("RGB").quantize(colors=255, method=Image.Quantize.MEDIANCUT))
    duration = max(20, round(1000.0 / max(fps, 0.1)))

    def write(tmp: Path) -> None:
        pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:], duration=duration,
                    loop=loop, disposal=1)

    return atomic_write(path, write)
