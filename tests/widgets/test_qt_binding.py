"""Guards against a Qt binding that corrupts the interpreter (seen with PySide6 6.12.0)."""

from __future__ import annotations

import gc
import sys

from PySide6 import QtWidgets


def test_slot_calls_do_not_release_none(qtbot):
    """Each Python slot call must leave ``None``'s reference count as it was.

    PySide6 6.12.0 released ``None`` once per call; on Python 3.11 (where ``None`` is not
    immortal) a long session then aborts with "none_dealloc: deallocating None".
    """
    slider = QtWidgets.QSlider()
    qtbot.addWidget(slider)
    slider.valueChanged.connect(lambda _v: None)
    gc.collect()
    before = sys.getrefcount(None)
    for i in range(500):
        slider.setValue(i % 50)
    gc.collect()
    assert sys.getrefcount(None) - before > -50
