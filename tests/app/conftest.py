"""A factory fixture for the main window (napari's ``make_napari_viewer`` habit)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from PySide6 import QtCore

from playground.window import MainWindow


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def make_window(qtbot, settings_path: Path) -> Iterator[Callable[..., MainWindow]]:
    made: list[MainWindow] = []

    def make(show: bool = True, restore: bool = True) -> MainWindow:
        settings = QtCore.QSettings(str(settings_path), QtCore.QSettings.Format.IniFormat)
        win = MainWindow(torch.device("cpu"), settings, restore=restore)
        qtbot.addWidget(win)
        if show:
            win.show()
            qtbot.waitExposed(win)
            win.activateWindow()
            qtbot.waitUntil(win.isActiveWindow, timeout=2000)
        made.append(win)
        return win

    yield make
    for win in made:
        win.shutdown_panels()
        win.close()
        win.deleteLater()
    # Delete the windows now, so each test starts without the previous one's widgets.
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
    made.clear()
    gc.collect()
    leaked = [t for t in threading.enumerate() if t.name == "playground-job"]
    for t in leaked:
        t.join(2.0)
    assert not any(t.is_alive() for t in leaked), "a job thread outlived its window"
