"""The main window driven as a user would: tabs, keys, menus, export, close, settings."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore, QtWidgets

from widgets.runner import JobState


def test_three_panels_and_switching(make_window, qtbot):
    win = make_window()
    titles = [win.tabs.tabText(i) for i in range(win.tabs.count())]
    assert titles == ["2D Lab", "Image", "Random Walk"]
    qtbot.keyClick(win, QtCore.Qt.Key.Key_3, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert win.current_panel().key == "walk"
    win.tabs.tabBar().setCurrentIndex(1)
    assert win.current_panel().key == "image"
    assert win.device_label.text().startswith("CPU")
    menus = [a.text() for a in win.menuBar().actions()]
    assert {"&File", "&View", "&Help"} <= set(menus)


def wait_settled(panel, qtbot, quiet_ms: int = 150) -> None:
    """After a pause: let a step that was in flight finish and its snapshot be delivered.

    A step cannot be interrupted, and on a loaded machine one may take longer than a frame.
    """
    for _ in range(20):
        steps = panel.runner.steps
        qtbot.wait(quiet_ms)
        if panel.runner.steps == steps:
            break
    qtbot.wait(50)


def test_space_plays_right_steps_r_resets(make_window, qtbot):
    win = make_window()
    win.set_current_panel("lab")
    panel = win.current_panel()
    panel.speed.setValue(1)  # the Lab's ODE trip then takes ~20 s: no race with its end
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(panel.history) > 3, timeout=3000)
    assert panel.job_state == JobState.RUNNING
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    assert panel.job_state == JobState.PAUSED
    wait_settled(panel, qtbot)  # a step that was in flight when we paused may still complete
    steps = panel.runner.steps
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: panel.runner.steps == steps + 1, timeout=2000)
    first = panel.latest.points.copy()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: panel.runner.steps == steps + 2, timeout=2000)
    qtbot.waitUntil(lambda: not np.array_equal(panel.latest.points, first), timeout=2000)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_R)
    assert panel.job_state == JobState.CANCELLED
    assert not panel.history


def test_status_bar_shows_state_rate_and_fps(make_window, qtbot):
    win = make_window()
    panel = win.panel("lab")
    panel.speed.setValue(1)  # a long ODE trip, so it is still running when we look
    panel.play_pause()
    qtbot.waitUntil(lambda: "running" in win.state_label.text(), timeout=2000)
    qtbot.waitUntil(lambda: not win.rate_label.text().startswith("0.0"), timeout=3000)
    qtbot.waitUntil(lambda: not win.fps_label.text().startswith("0 "), timeout=3000)


def test_slider_change_reaches_running_demo(make_window, qtbot):
    win = make_window()
    panel = win.panel("lab")
    # The Lab's job is a finite ODE trip (120 frames at speed 1.0): start slow (0.1) so it
    # is still running, with seconds to spare, at every check below.
    panel.speed.setValue(1)
    panel.play_pause()
    qtbot.waitUntil(lambda: len(panel.history) > 2, timeout=2000)
    panel.speed.setValue(10)
    assert panel.params["speed"] == pytest.approx(1.0)
    qtbot.waitUntil(lambda: panel.latest.speed == pytest.approx(1.0), timeout=2000)
    assert panel.job_state == JobState.RUNNING  # the change reached the job while it ran
    panel.runner.pause()
    wait_settled(panel, qtbot)
    panel.speed.setValue(40)
    assert panel.params["speed"] == pytest.approx(4.0)
    before = panel.latest
    panel.runner.step_once()
    qtbot.waitUntil(lambda: panel.latest.step == before.step + 1, timeout=2000)
    after = panel.latest
    assert after.speed == pytest.approx(4.0)
    # One step now moves t by 4/120 of the trip (unless it reaches the data end).
    near_end = min(before.t, after.t) < 4 / 120 or max(before.t, after.t) > 1 - 4 / 120
    assert abs(after.t - before.t) == pytest.approx(4.0 / 120, abs=1e-6) or near_end


def test_job_exception_shows_banner_and_app_survives(make_window, qtbot):
    win = make_window()
    panel = win.panel("lab")

    def broken():
        yield from ()
        raise FloatingPointError("training diverged (NaN loss)")

    panel.make_job = broken  # type: ignore[method-assign]
    panel.play_pause()
    qtbot.waitUntil(lambda: "NaN loss" in panel.banner.text, timeout=3000)
    assert panel.job_state == JobState.FAILED
    assert win.isVisible()
    del panel.make_job
    panel.play_pause()
    qtbot.waitUntil(lambda: len(panel.history) > 2, timeout=3000)


def test_close_while_running_returns_fast(make_window, qtbot):
    win = make_window()
    panel = win.panel("lab")

    def slow():
        while True:
            time.sleep(0.2)  # a long step: close must still return promptly
            yield None

    panel.make_job = slow  # type: ignore[method-assign]
    panel.play_pause()
    qtbot.wait(50)
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 2.0
    assert not any(t.name == "playground-job" and t.is_alive() for t in threading.enumerate())


def test_export_png_at_size_and_gif(make_window, qtbot, tmp_path: Path):
    win = make_window()
    panel = win.panel("lab")
    panel.play_pause()
    qtbot.waitUntil(lambda: len(panel.history) > 5, timeout=3000)
    out = win.export_view(tmp_path / "view.png", size=(640, 480))
    assert out is not None
    with Image.open(out) as im:
        assert im.size == (640, 480)
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 5  # not blank
    gif = win.export_animation(tmp_path / "anim.gif")
    assert gif is not None
    with Image.open(gif) as im:
        assert im.n_frames == len(panel.history) or im.n_frames >= 5


def test_export_through_menu_with_file_dialog(make_window, qtbot, tmp_path: Path, monkeypatch):
    win = make_window()
    target = tmp_path / "picked.svg"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(target), "")))
    qtbot.keyClick(win, QtCore.Qt.Key.Key_E, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert target.exists()
    assert "<svg" in target.read_text()[:2000]
    assert win.settings.value("export/folder") == str(tmp_path.resolve())


def test_export_to_unwritable_path_keeps_old_file(make_window, qtbot, tmp_path: Path, monkeypatch):
    win = make_window()
    folder = tmp_path / "locked"
    folder.mkdir()
    old = folder / "view.png"
    old.write_bytes(b"old contents")
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores the mode bits: refuse the write as the OS would
        import tempfile

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        assert win.export_view(old) is None
    finally:
        folder.chmod(0o700)
    assert old.read_bytes() == b"old contents"
    assert "Cannot write" in win.last_error and "Permission denied" in win.last_error
    box = win._message_box
    assert box is not None and box.isVisible() and "Permission denied" in box.text()


def test_export_into_missing_folder_or_failing_writer_keeps_old_file(make_window, qtbot, tmp_path: Path,
                                                                     monkeypatch):
    win = make_window()
    assert win.export_view(tmp_path / "no" / "such" / "dir" / "x.png") is None
    assert "does not exist" in win.last_error
    old = tmp_path / "view.png"
    old.write_bytes(b"old contents")
    # A full disk: the encoder fails half-way; the old file must survive.
    from PySide6 import QtGui

    monkeypatch.setattr(QtGui.QImage, "save", lambda self, *a, **k: False)
    assert win.export_view(old) is None
    assert old.read_bytes() == b"old contents"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".view-")]


def test_settings_survive_recreating_the_window(make_window, qtbot):
    win = make_window()
    win.resize(700, 500)
    win.set_current_panel("walk")
    win._set_export_size((1920, 1200))
    lab = win.panel("lab")
    lab.speed.setValue(33)
    win.close()
    again = make_window()
    assert again.current_panel().key == "walk"
    assert again.size() == QtCore.QSize(700, 500)
    assert again.panel("lab").speed.value() == 33
    assert again.export_size == (1920, 1200)


def test_about_names_versions_and_device(make_window):
    win = make_window()
    text = win.about_text()
    import torch

    assert torch.__version__ in text and "Qt" in text and "CPU" in text


def test_device_choice_is_applied_and_saved(make_window):
    win = make_window()
    win.device_actions["cpu"].trigger()
    assert win.settings.value("device") == "cpu"
    assert all(p.device.type == "cpu" for p in win.panels.values())
    assert win.device_label.text().startswith("CPU")
    import torch

    if not torch.cuda.is_available():
        assert not win.device_actions["cuda"].isEnabled()
