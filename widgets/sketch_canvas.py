"""A grayscale sketch canvas: the drawing a ControlNet follows.

Why it looks like this: the content is one ``QImage`` (8-bit grayscale, black ink on white
paper, like a pen sketch) at its own resolution, shown scaled to fit the widget; strokes are
painted into the image, not the screen, so what you see is exactly what ``image()`` returns.
Undo keeps whole-image copies (a 512×512 canvas is 256 KB a level): simpler and sturdier than
replaying strokes, and 64 levels stay far below the memory of one model.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

INK = 0
PAPER = 255
DEFAULT_SIZE = 512
UNDO_LEVELS = 64
MIN_BRUSH, MAX_BRUSH = 1, 64


def array_to_qimage(gray: np.ndarray) -> QtGui.QImage:
    """A deep-copied Grayscale8 QImage of an (H, W) uint8 array."""
    arr = np.ascontiguousarray(gray, dtype=np.uint8)
    h, w = arr.shape
    return QtGui.QImage(arr.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()


def qimage_to_gray(image: QtGui.QImage) -> np.ndarray:
    """An (H, W) uint8 copy of a QImage, converted to grayscale."""
    img = image.convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    return buf.reshape(h, img.bytesPerLine())[:, :w].copy()


class SketchCanvas(QtWidgets.QWidget):
    """Draw with mouse or pen; Shift-drag for a straight line; wheel for the brush size.

    Keys (while the canvas has focus): Ctrl+Z undo, Ctrl+Shift+Z / Ctrl+Y redo, Delete clear.
    ``changed`` fires once per finished edit (stroke end, undo, redo, clear, load), not on
    every mouse move, so listeners (the edge-map preview) recompute at human pace.
    """

    changed = QtCore.Signal()
    brush_size_changed = QtCore.Signal(int)
    eraser_changed = QtCore.Signal(bool)

    def __init__(self, size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        w, h = size
        self._image = QtGui.QImage(w, h, QtGui.QImage.Format.Format_Grayscale8)
        self._image.fill(PAPER)
        self._undo: deque[QtGui.QImage] = deque(maxlen=UNDO_LEVELS)
        self._redo: list[QtGui.QImage] = []
        self._brush = 6
        self._eraser = False
        self._before: QtGui.QImage | None = None  # the image when the stroke began
        self._anchor: QtCore.QPointF | None = None  # stroke start (image coordinates)
        self._last: QtCore.QPointF | None = None
        self._straight = False
        self._hover: QtCore.QPointF | None = None
        self._tablet_restore = False  # the tool to go back to after a stylus' eraser end
        self.setMinimumSize(160, 160)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)  # to draw the brush outline under the cursor
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TabletTracking, True)
        self.setCursor(QtCore.Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw here (mouse or pen). Shift-drag: straight line. Wheel: brush size. "
                        "Ctrl+Z / Ctrl+Shift+Z: undo / redo. Delete: clear.")

    # ------------------------------------------------------------------ content
    def image(self) -> np.ndarray:
        """The sketch as (H, W) uint8 grayscale (ink 0 on paper 255)."""
        return qimage_to_gray(self._image)

    def set_image(self, arr: np.ndarray) -> None:
        """Replace the content (undoable); RGB is converted to gray, the canvas takes its size."""
        a = np.asarray(arr)
        if a.ndim == 3:
            a = (a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
            a = np.clip(np.rint(a), 0, 255)
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"A sketch must be an (H, W) or (H, W, 3) image, got shape {a.shape}.")
        self._push_undo()
        self._image = array_to_qimage(a.astype(np.uint8))
        self._finish_edit()

    def is_empty(self) -> bool:
        """True when the canvas is one flat colour (nothing drawn, or everything erased)."""
        a = self.image()
        return bool(a.min() == a.max())

    def image_size(self) -> tuple[int, int]:
        return self._image.width(), self._image.height()

    def clear(self) -> None:
        """Blank paper, undoable (Delete)."""
        if self.is_empty() and self.image()[0, 0] == PAPER:
            return
        self._push_undo()
        self._image.fill(PAPER)
        self._finish_edit()

    # ------------------------------------------------------------------ history
    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        if not self._undo:
            return
        self._redo.append(self._image.copy())
        self._image = self._undo.pop()
        self._finish_edit()

    def redo(self) -> None:
        if not self._redo:
            return
        self._undo.append(self._image.copy())
        self._image = self._redo.pop()
        self._finish_edit()

    def _push_undo(self) -> None:
        self._undo.append(self._image.copy())
        self._redo.clear()

    def _finish_edit(self) -> None:
        self.update()
        self.changed.emit()

    # -------------------------------------------------------------------- tools
    @property
    def brush_size(self) -> int:
        return self._brush

    def set_brush_size(self, size: int) -> None:
        size = int(min(max(size, MIN_BRUSH), MAX_BRUSH))
        if size != self._brush:
            self._brush = size
            self.update()
            self.brush_size_changed.emit(size)

    @property
    def eraser(self) -> bool:
        return self._eraser

    def set_eraser(self, on: bool) -> None:
        if bool(on) != self._eraser:
            self._eraser = bool(on)
            self.eraser_changed.emit(self._eraser)

    # ---------------------------------------------------------------- geometry
    def _target_rect(self) -> QtCore.QRectF:
        """Where the image is drawn: fitted into the widget, aspect kept, centred."""
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QtCore.QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def _to_image(self, pos: QtCore.QPointF) -> QtCore.QPointF:
        r = self._target_rect()
        s = self._image.width() / max(r.width(), 1e-9)
        return QtCore.QPointF((pos.x() - r.x()) * s, (pos.y() - r.y()) * s)

    # ----------------------------------------------------------------- strokes
    def _pen(self, pressure: float = 1.0) -> QtGui.QPen:
        width = max(1.0, self._brush * (0.25 + 0.75 * pressure) if pressure < 1.0 else self._brush)
        color = QtGui.QColor(PAPER, PAPER, PAPER) if self._eraser else QtGui.QColor(INK, INK, INK)
        return QtGui.QPen(color, width, QtCore.Qt.PenStyle.SolidLine, QtCore.Qt.PenCapStyle.RoundCap,
                          QtCore.Qt.PenJoinStyle.RoundJoin)

    def _paint_segment(self, a: QtCore.QPointF, b: QtCore.QPointF, pressure: float = 1.0) -> None:
        painter = QtGui.QPainter(self._image)
        try:
            painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
            painter.setPen(self._pen(pressure))
            if a == b:
                painter.drawPoint(a)
            else:
                painter.drawLine(a, b)
        finally:
            painter.end()

    def begin_stroke(self, pos: QtCore.QPointF, straight: bool = False, pressure: float = 1.0) -> None:
        """Start a stroke at ``pos`` (widget coordinates)."""
        self._push_undo()
        self._before = self._image.copy()
        p = self._to_image(pos)
        self._anchor = self._last = p
        self._straight = straight
        self._paint_segment(p, p, pressure)
        self.update()

    def continue_stroke(self, pos: QtCore.QPointF, straight: bool = False, pressure: float = 1.0) -> None:
        if self._anchor is None or self._before is None or self._last is None:
            return
        p = self._to_image(pos)
        if straight or self._straight:
            # Rubber band: the line from the anchor to here replaces what this stroke drew.
            self._straight = True
            self._image = self._before.copy()
            self._paint_segment(self._anchor, p, pressure)
        else:
            self._paint_segment(self._last, p, pressure)
        self._last = p
        self.update()

    def end_stroke(self, pos: QtCore.QPointF | None = None, straight: bool = False,
                   pressure: float = 1.0) -> None:
        if self._anchor is None:
            return
        if pos is not None:
            self.continue_stroke(pos, straight, pressure)
        self._anchor = self._last = None
        self._before = None
        self._straight = False
        self.changed.emit()

    @staticmethod
    def _shift(event: QtGui.QInputEvent) -> bool:
        return bool(event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)

    # ------------------------------------------------------------------ events
    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.setFocus(QtCore.Qt.FocusReason.MouseFocusReason)
            self.begin_stroke(event.position(), self._shift(event))
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        self._hover = event.position()
        if self._anchor is not None:
            self.continue_stroke(event.position(), self._shift(event))
        else:
            self.update()
        event.accept()

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton and self._anchor is not None:
            self.end_stroke(event.position(), self._shift(event))
            event.accept()
        else:
            super().mouseReleaseEvent(event)

    def tabletEvent(self, event: QtGui.QTabletEvent) -> None:
        """A pen: pressure thins the line; the eraser end of a stylus erases."""
        kind = event.type()
        pressure = float(event.pressure()) if event.pressure() > 0 else 1.0
        pointer_eraser = event.pointerType() == QtGui.QPointingDevice.PointerType.Eraser
        if kind == QtCore.QEvent.Type.TabletPress:
            self._tablet_restore = self._eraser
            if pointer_eraser:
                self._eraser = True
            self.begin_stroke(event.position(), self._shift(event), pressure)
        elif kind == QtCore.QEvent.Type.TabletMove:
            self._hover = event.position()
            self.continue_stroke(event.position(), self._shift(event), pressure)
        elif kind == QtCore.QEvent.Type.TabletRelease:
            self.end_stroke(event.position(), self._shift(event), pressure)
            self._eraser = self._tablet_restore
        event.accept()  # no synthesized mouse events: the stroke would be drawn twice

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            factor = 1.25 ** steps  # proportional: fine control for thin brushes, fast for thick
            new = round(self._brush * factor)
            if new == self._brush:
                new += 1 if steps > 0 else -1
            self.set_brush_size(new)
        event.accept()

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if event.matches(QtGui.QKeySequence.StandardKey.Undo):
            self.undo()
        elif event.matches(QtGui.QKeySequence.StandardKey.Redo) or (
            event.key() == QtCore.Qt.Key.Key_Z
            and event.modifiers() == (QtCore.Qt.KeyboardModifier.ControlModifier
                                      | QtCore.Qt.KeyboardModifier.ShiftModifier)):
            self.redo()
        elif event.key() in (QtCore.Qt.Key.Key_Delete, QtCore.Qt.Key.Key_Backspace):
            self.clear()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def leaveEvent(self, event: QtCore.QEvent) -> None:
        self._hover = None
        self.update()
        super().leaveEvent(event)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        try:
            painter.fillRect(self.rect(), self.palette().color(QtGui.QPalette.ColorRole.Mid))
            rect = self._target_rect()
            painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(rect, self._image)
            if self._hover is not None and rect.contains(self._hover):
                scale = rect.width() / self._image.width()
                r = self._brush * scale / 2
                painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
                painter.setPen(QtGui.QPen(QtGui.QColor(255, 80, 80) if self._eraser
                                          else QtGui.QColor(80, 140, 255), 1))
                painter.drawEllipse(self._hover, r, r)
        finally:
            painter.end()
