"""The 2D Lab driven as a user would: scrub t, toggle layers, play the ODE, draw, import."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from engines import lab_views as lv
from engines import toy_data
from engines.metrics import sliced_wasserstein
from widgets.lab_panel import DRAW, IMPORT
from widgets.runner import JobState


def test_t_slider_scrubs_exact_marginal(make_lab):
    panel = make_lab()
    assert panel.process.currentText() == "Diffusion (VP)"
    panel.t_slider.setValue(0)
    at_data = panel.cloud.points().copy()
    np.testing.assert_allclose(at_data, panel.data_points, atol=1e-6)
    panel.t_slider.setValue(1000)  # VP t = 1: pure N(0, I)
    noise = panel.cloud.points().copy()
    assert not np.allclose(noise, at_data)
    np.testing.assert_allclose(np.cov(noise.T), np.eye(2), atol=0.1)
    np.testing.assert_allclose(noise.mean(0), 0.0, atol=0.1)
    panel.t_slider.setValue(500)  # and back: covariance of the exact mixture p_t
    mid = panel.cloud.points()
    exact = panel.mixture.noised_vp(lv.alpha_bar(0.5))
    mean = exact.weights @ exact.means
    cov = np.einsum("k,kij->ij", exact.weights, exact.covs + np.einsum("ki,kj->kij", exact.means,
                                                                          exact.means)) - np.outer(mean, mean)
    np.testing.assert_allclose(np.cov(mid.T), cov, atol=0.15)
    panel.t_slider.setValue(0)
    np.testing.assert_allclose(panel.cloud.points(), at_data, atol=1e-6)
    assert panel.t_value.text() == "t = 0.00"


def test_toggles_show_and_hide_layers(make_lab, qtbot):
    panel = make_lab()
    panel.show_field.setChecked(True)
    assert panel.field_item.isVisible() and panel.field_item.n_arrows == 21 * 21
    panel.show_field.setChecked(False)
    assert not panel.field_item.isVisible() and panel.field_item.n_arrows == 0
    panel.show_density.setChecked(False)
    assert not panel.density_item.isVisible()
    panel.show_density.setChecked(True)
    assert panel.density_item.isVisible() and panel.density_item.image is not None
    panel.params.update(speed=4.0)
    panel.start()
    qtbot.waitUntil(lambda: panel.runner.state == JobState.FINISHED, timeout=5000)
    assert panel.traj_item.isVisible() and panel.traj_item.n_paths == 64
    panel.show_traj.setChecked(False)
    assert panel.traj_item.n_paths == 0


def test_play_runs_exact_ode_to_target(make_lab, qtbot):
    panel = make_lab()
    panel.speed.setValue(30)
    panel.play_button.click()
    assert panel.runner.is_active
    qtbot.waitUntil(lambda: panel.runner.state == JobState.FINISHED, timeout=8000)
    final = panel.latest
    assert final.done and final.t == pytest.approx(0.0)
    assert panel.t_slider.value() == 0
    target = toy_data.sample("8gaussians", 2000, np.random.default_rng(11), equal_counts=True)
    floor = sliced_wasserstein(toy_data.sample("8gaussians", 2000, np.random.default_rng(12),
                                               equal_counts=True), target)
    assert sliced_wasserstein(final.points, target) < 3 * floor + 0.05
    # Rectified flow too; t now runs 0 -> 1.
    panel.process.setCurrentText("Rectified flow")
    panel.play_pause()
    qtbot.waitUntil(lambda: panel.runner.state == JobState.FINISHED, timeout=8000)
    assert panel.latest.t == pytest.approx(1.0)
    assert sliced_wasserstein(panel.latest.points, target) < 3 * floor + 0.05


def test_scrubbing_stops_the_ode_and_dataset_switch_redraws(make_lab, qtbot):
    panel = make_lab()
    panel.play_pause()
    qtbot.waitUntil(lambda: panel.latest.step > 1, timeout=3000)
    panel.t_slider.setValue(0)
    assert panel.runner.state == JobState.CANCELLED
    before = panel.cloud.points().copy()
    panel.dataset.setCurrentText("moons")
    after = panel.cloud.points()
    assert not np.array_equal(before, after)
    assert panel.mixture is None and not panel.play_button.isEnabled()
    assert "only for Gaussian mixtures" in panel.note.text()
    panel.show_field.setChecked(True)
    assert panel.field_item.n_arrows == 0  # no oracle, no arrows
    assert panel.make_job() is None


def test_brush_stroke_puts_samples_on_the_stroke(make_lab, qtbot):
    panel = make_lab()
    panel.dataset.setCurrentText(DRAW)
    assert panel.brush.isChecked() and len(panel.data_points) == 0
    vb = panel.plot.getPlotItem().vb
    viewport = panel.plot.viewport()

    def to_widget(x: float, y: float) -> QtCore.QPoint:
        return panel.plot.mapFromScene(vb.mapViewToScene(QtCore.QPointF(x, y)))

    xs = np.linspace(-2.0, 2.0, 12)
    qtbot.mousePress(viewport, QtCore.Qt.MouseButton.LeftButton, pos=to_widget(xs[0], 1.0))
    for x in xs[1:]:
        qtbot.mouseMove(viewport, pos=to_widget(x, 1.0))
    qtbot.mouseRelease(viewport, QtCore.Qt.MouseButton.LeftButton, pos=to_widget(xs[-1], 1.0))
    pts = panel.data_points
    assert len(pts) == panel.particles.value()
    assert np.mean(np.abs(pts[:, 1] - 1.0) < 0.6) > 0.95
    assert pts[:, 0].min() > -2.7 and pts[:, 0].max() < 2.7 and np.ptp(pts[:, 0]) > 3.0
    drawn = pts.copy()
    panel.clear_button.click()
    assert len(panel.data_points) == 0 and len(panel.cloud.points()) == 0
    panel.activateWindow()
    qtbot.waitUntil(panel.isActiveWindow, timeout=2000)
    panel.plot.setFocus()
    qtbot.keyClick(panel.plot, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_allclose(panel.data_points, drawn)  # Clear undone: the drawing is back
    panel.undo_button.click()  # before the stroke: nothing
    assert len(panel.data_points) == 0 and not panel.undo_button.isEnabled()
    panel.redo_button.click()
    np.testing.assert_allclose(panel.data_points, drawn)
    state = panel.save_state()  # the drawing survives a restart
    other = make_lab()
    other.restore_state(state)
    assert other.dataset.currentText() == DRAW
    np.testing.assert_allclose(other.data_points, drawn)


def test_import_points_and_bad_file_keeps_old(make_lab, tmp_path: Path):
    panel = make_lab()
    good = tmp_path / "pts.csv"
    rows = np.random.default_rng(0).normal(loc=(5.0, -1.0), scale=0.2, size=(300, 2))
    good.write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in rows))
    assert panel.import_points(good)
    assert panel.dataset.currentText() == IMPORT and len(panel.data_points) == 300
    np.testing.assert_allclose(panel.cloud.points(), rows, atol=1e-5)  # t = 0 is the data for VP
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,oops\n")
    assert not panel.import_points(bad)
    assert "bad.csv, line 3" in panel.banner.text
    np.testing.assert_allclose(panel.data_points, rows, atol=1e-5)
    assert len(panel.cloud.points()) == 300


def test_export_samples_round_trip(make_lab, tmp_path: Path):
    panel = make_lab()
    panel.t_slider.setValue(300)
    for name in ("s.csv", "s.npy"):
        assert panel.export_samples(tmp_path / name)
        np.testing.assert_allclose(toy_data.load_points(tmp_path / name), panel.latest.points, atol=1e-6)
    assert not panel.export_samples(tmp_path / "s.xyz")
    assert "unsupported file type" in panel.banner.text


def test_state_round_trip(make_lab):
    panel = make_lab()
    panel.dataset.setCurrentText("25gaussians")
    panel.process.setCurrentText("Rectified flow")
    panel.particles.setValue(1500)
    panel.seed.setValue(7)
    panel.show_field.setChecked(True)
    panel.show_traj.setChecked(False)
    state = panel.save_state()
    other = make_lab()
    other.restore_state(state)
    assert other.save_state() == state
    assert len(other.data_points) == 1500 and other.mixture is not None
    other.restore_state({"dataset": 3, "particles": "many", "field": "yes"})  # ignored, no crash


def test_bad_saved_drawing_is_skipped(make_lab):
    panel = make_lab()
    good = [[-1.0, 0.0], [1.0, 0.0]]
    panel.restore_state({"dataset": DRAW, "strokes": ["x", [[1.0]], [[0.0, float("nan")]], good, 7]})
    assert panel.dataset.currentText() == DRAW
    assert len(panel._strokes) == 1 and len(panel.data_points) == panel.particles.value()
    assert np.mean(np.abs(panel.data_points[:, 1]) < 0.6) > 0.95  # samples on the one good stroke
