"""The sketch canvas driven with the mouse, keyboard and wheel, as a user would."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from widgets.sketch_canvas import UNDO_LEVELS, SketchCanvas

LEFT = QtCore.Qt.MouseButton.LeftButton
NONE = QtCore.Qt.KeyboardModifier.NoModifier
SHIFT = QtCore.Qt.KeyboardModifier.ShiftModifier
CTRL = QtCore.Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def canvas(qtbot) -> SketchCanvas:
    c = SketchCanvas(size=(200, 200))
    qtbot.addWidget(c)
    c.resize(200, 200)  # one widget pixel = one image pixel
    c.show()
    qtbot.waitExposed(c)
    return c


def stroke(qtbot, canvas: SketchCanvas, points: list[tuple[int, int]], modifier=NONE) -> None:
    qtbot.mousePress(canvas, LEFT, modifier, QtCore.QPoint(*points[0]))
    for p in points[1:]:
        qtbot.mouseMove(canvas, QtCore.QPoint(*p))
    qtbot.mouseRelease(canvas, LEFT, modifier, QtCore.QPoint(*points[-1]))


def test_a_stroke_draws_ink_and_signals(canvas, qtbot) -> None:
    assert canvas.is_empty()
    with qtbot.waitSignal(canvas.changed, timeout=1000):
        stroke(qtbot, canvas, [(20, 100), (60, 100), (100, 100), (150, 100)])
    img = canvas.image()
    assert img.shape == (200, 200) and img.dtype == np.uint8
    assert img[100, 20:150].max() < 60  # the line is dark all along
    assert img[20, 20] == 255 and not canvas.is_empty()


def test_undo_redo_and_clear(canvas, qtbot) -> None:
    stroke(qtbot, canvas, [(20, 50), (180, 50)])
    first = canvas.image()
    stroke(qtbot, canvas, [(20, 150), (180, 150)])
    assert canvas.image()[150, 100] < 60
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Z, CTRL)
    assert np.array_equal(canvas.image(), first)
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Z, CTRL | SHIFT)
    assert canvas.image()[150, 100] < 60
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Delete)
    assert canvas.is_empty()
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Z, CTRL)  # clearing is undoable
    assert canvas.image()[150, 100] < 60 and canvas.image()[50, 100] < 60


def test_at_least_fifty_undo_levels(canvas, qtbot) -> None:
    assert UNDO_LEVELS >= 50
    for i in range(55):
        stroke(qtbot, canvas, [(10 + 3 * i, 10), (10 + 3 * i, 190)])
    for _ in range(50):
        canvas.undo()
    assert canvas.can_undo()
    img = canvas.image()
    assert img[100, 10 + 3 * 4] < 60 and img[100, 10 + 3 * 5] > 200


def test_shift_drag_draws_a_straight_line(canvas, qtbot) -> None:
    stroke(qtbot, canvas, [(20, 20), (60, 150), (120, 150), (180, 20)], modifier=SHIFT)
    img = canvas.image()
    assert img[20, 30:170].max() < 60  # the straight line from press to release
    assert img[150, 60:120].min() > 200  # the detour the mouse took is not drawn


def test_wheel_changes_brush_size_and_eraser_erases(canvas, qtbot) -> None:
    before = canvas.brush_size
    pos = QtCore.QPointF(100, 100)
    up = QtGui.QWheelEvent(pos, canvas.mapToGlobal(pos), QtCore.QPoint(), QtCore.QPoint(0, 120),
                           QtCore.Qt.MouseButton.NoButton, NONE, QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(canvas, up)
    assert canvas.brush_size > before
    canvas.set_brush_size(20)
    stroke(qtbot, canvas, [(20, 100), (180, 100)])
    assert canvas.image()[108, 100] < 60  # a 20 px brush reaches 8 px off the line
    canvas.set_eraser(True)
    stroke(qtbot, canvas, [(20, 100), (180, 100)])
    assert canvas.image()[100, 60:140].min() > 200


def test_set_image_takes_gray_or_rgb(canvas) -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    canvas.set_image(rgb)
    assert canvas.image().shape == (40, 60) and canvas.image().max() == 0
    canvas.undo()
    assert canvas.image().shape == (200, 200)
    with pytest.raises(ValueError):
        canvas.set_image(np.zeros((3,), np.uint8))


def test_pen_pressure_draws_thinner_lines(canvas) -> None:
    canvas.set_brush_size(20)
    device = QtGui.QPointingDevice.primaryPointingDevice()

    def tablet(kind: QtCore.QEvent.Type, x: float, y: float, pressure: float) -> None:
        pos = QtCore.QPointF(x, y)
        event = QtGui.QTabletEvent(kind, device, pos, canvas.mapToGlobal(pos), pressure, 0.0, 0.0, 0.0, 0.0,
                                   0.0, NONE, LEFT, LEFT)
        QtWidgets.QApplication.sendEvent(canvas, event)

    tablet(QtCore.QEvent.Type.TabletPress, 20, 60, 0.1)
    tablet(QtCore.QEvent.Type.TabletMove, 180, 60, 0.1)
    tablet(QtCore.QEvent.Type.TabletRelease, 180, 60, 0.1)
    light = (canvas.image()[:, 100] < 128).sum()
    tablet(QtCore.QEvent.Type.TabletPress, 20, 140, 1.0)
    tablet(QtCore.QEvent.Type.TabletMove, 180, 140, 1.0)
    tablet(QtCore.QEvent.Type.TabletRelease, 180, 140, 1.0)
    heavy = (canvas.image()[100:, 100] < 128).sum()
    assert 0 < light < heavy
    canvas.undo()
    assert (canvas.image()[100:, 100] < 128).sum() == 0
