"""The Random Walk panel driven as a user would, checked against exact laws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6 import QtCore

from engines import walk_theory as th
from widgets.walk_panel import WalkPanel


@pytest.fixture
def panel(qtbot):
    p = WalkPanel(device=torch.device("cpu"))
    qtbot.addWidget(p)
    p.resize(1100, 700)
    p.show()
    p.walkers.setCurrentIndex(1)  # 10,000 walkers
    p.steps.setValue(200)
    yield p
    p.shutdown()


def run_to_end(panel: WalkPanel, qtbot) -> None:
    with qtbot.waitSignal(panel.runner.finished, timeout=20_000):
        qtbot.mouseClick(panel.play_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.latest is not None and panel.latest.done, timeout=5000)


def test_histogram_matches_binomial_law(panel, qtbot):
    panel.tabs.setCurrentIndex(1)
    run_to_end(panel, qtbot)
    snap = panel.latest
    assert snap.n == 200
    x, y = panel.hist_bars.getData()
    ex, ey = panel.hist_exact.getData()
    assert len(ex) > 10
    # Chi-square of the drawn histogram against the exact binomial law the panel drew.
    centres = (x[:-1] + x[1:]) / 2 if len(x) == len(y) + 1 else x
    counts = np.asarray(snap.hist_counts)
    expected = th.binomial_pmf(200, np.round(centres).astype(int)) * counts.sum()
    ok = expected > 5
    chi2 = float((((counts[ok] - expected[ok]) ** 2) / expected[ok]).sum())
    from scipy import stats

    assert stats.chi2.sf(chi2, ok.sum() - 1) > 1e-4
    assert np.allclose(ey, th.binomial_pmf(200, np.round(ex).astype(int)))


def test_time_slider_changes_the_drawn_paths(panel, qtbot):
    run_to_end(panel, qtbot)
    _, y_end = panel.path_curve.getData()
    end_points = np.isfinite(y_end).sum()
    panel.time_slider.setValue(50)
    assert panel.time_label.text().startswith("n = 50")
    x_back, _ = panel.path_curve.getData()
    assert np.nanmax(x_back) <= 50
    assert np.isfinite(x_back).sum() < end_points
    assert panel.time_line.value() == 50
    # The histogram now shows the drawn walkers at n = 50, against the law at n = 50.
    panel.tabs.setCurrentIndex(1)
    assert "n = 50" in panel.hist_plot.plotItem.titleLabel.text
    ex, ey = panel.hist_exact.getData()
    assert np.allclose(ey, th.binomial_pmf(50, np.round(ex).astype(int)))
    panel.time_slider.setValue(panel.time_slider.maximum())
    assert "/" not in panel.time_label.text()  # following the simulation again


def test_dimension_switch_restarts_with_2d_statistics(panel, qtbot):
    panel.steps.setValue(100)
    panel.play_pause()
    qtbot.waitUntil(lambda: panel.latest is not None, timeout=5000)
    panel.dim.setCurrentIndex(1)  # 2-D, live: the job restarts at its next step
    qtbot.waitUntil(lambda: panel.latest.config.dim == 2 and panel.latest.done, timeout=20_000)
    snap = panel.latest
    assert snap.display_paths.shape[2] == 2
    assert snap.occupancy is not None
    assert not panel.p.isEnabled() and not panel.barrier.isEnabled()
    panel.tabs.setCurrentIndex(3)
    _, ret = panel.ret_curve.getData()
    _, exact = panel.ret_exact.getData()
    assert abs(ret[-1] - exact[-1]) < 0.03  # P(return by 100) in 2-D, 10^4 walkers
    assert panel.polya_line.value() == 1.0
    panel.dim.setCurrentIndex(2)  # after a finished run, a new setting re-runs
    qtbot.waitUntil(lambda: panel.latest.config.dim == 3 and panel.latest.done, timeout=20_000)
    panel.tabs.setCurrentIndex(4)
    panel.tabs.setCurrentIndex(3)
    assert panel.polya_line.value() == pytest.approx(0.3405373296, abs=1e-9)


def test_gamblers_ruin_readout(panel, qtbot):
    panel.barrier.setCurrentIndex(1)
    panel.upper.setValue(10)
    panel.start_i.setValue(3)
    panel.steps.setValue(2000)
    panel.tabs.setCurrentIndex(5)
    run_to_end(panel, qtbot)
    x, y = panel.ruin_point.getData()
    assert x[0] == 3
    assert y[0] == pytest.approx(0.3, abs=0.02)  # i/N with 10^4 walkers
    assert "exact 0.3000" in panel.readout.text()


def test_settings_round_trip(panel, qtbot):
    panel.dim.setCurrentIndex(2)
    panel.seed.setValue(42)
    state = panel.save_state()
    other = WalkPanel(device=torch.device("cpu"))
    qtbot.addWidget(other)
    other.restore_state(state)
    assert other.dim.currentIndex() == 2 and other.seed.value() == 42
