"""The Random Walk panel driven as a user would, checked against exact laws."""

from __future__ import annotations

import itertools

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


def show_tab(panel: WalkPanel, name: str) -> None:
    names = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
    panel.tabs.setCurrentIndex(names.index(name))


def run_to_end(panel: WalkPanel, qtbot) -> None:
    with qtbot.waitSignal(panel.runner.finished, timeout=20_000):
        qtbot.mouseClick(panel.play_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.latest is not None and panel.latest.done, timeout=5000)


def test_histogram_matches_binomial_law(panel, qtbot):
    show_tab(panel, "Histogram")
    run_to_end(panel, qtbot)
    snap = panel.latest
    assert snap.n == 200
    x, y = panel.hist_bars.getData()
    ex, ey = panel.hist_exact.getData()
    assert len(ex) > 10
    centres = (x[:-1] + x[1:]) / 2
    assert np.all(np.round(centres) % 2 == 0)  # S_200 is even: only reachable sites are drawn
    assert y.sum() == pytest.approx(1.0)
    # Chi-square of the drawn histogram against the binomial law.
    counts = y * snap.config.walkers
    expected = th.binomial_pmf(200, np.round(centres).astype(int)) * snap.config.walkers
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
    show_tab(panel, "Histogram")
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
    show_tab(panel, "Returns")
    _, ret = panel.ret_curve.getData()
    _, exact = panel.ret_exact.getData()
    assert abs(ret[-1] - exact[-1]) < 0.03  # P(return by 100) in 2-D, 10^4 walkers
    assert panel.polya_line.value() == 1.0
    panel.dim.setCurrentIndex(2)  # after a finished run, a new setting re-runs
    qtbot.waitUntil(lambda: panel.latest.config.dim == 3 and panel.latest.done, timeout=20_000)
    show_tab(panel, "Arcsine")
    show_tab(panel, "Returns")
    assert panel.polya_line.value() == pytest.approx(0.3405373296, abs=1e-9)
    # Pólya's picture: the 2-D and 3-D runs are both kept, each beside its exact curve.
    for d in (2, 3):
        k, sim = panel.polya_runs[d].getData()
        _kx, exact = panel.polya_exact[d].getData()
        assert len(k) == 101
        assert abs(sim[-1] - exact[100]) < 0.03
    x1, _ = panel.polya_runs[1].getData()
    assert x1 is None or len(x1) == 0  # no 1-D run in this session


def test_gamblers_ruin_readout(panel, qtbot):
    panel.barrier.setCurrentIndex(1)
    panel.upper.setValue(10)
    panel.start_i.setValue(3)
    panel.steps.setValue(2000)
    show_tab(panel, "Occupancy")
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


def test_returns_passage_and_statistics_export(panel, qtbot, tmp_path):
    panel.walkers.setCurrentIndex(1)
    panel.steps.setValue(400)
    panel.level.setValue(4)
    show_tab(panel, "Returns")
    run_to_end(panel, qtbot)
    u = panel.u_curve.yData  # raw data: getData() returns log10 values in log mode
    ke, ue = panel.u_exact.xData, panel.u_exact.yData
    # P(S_2n = 0) at 2n = 2, 4, 6 against C(2n, n)/4^n (log-mode plots keep the raw data).
    assert np.allclose(ke[:3], [2, 4, 6])
    assert np.allclose(ue[:3], [0.5, 0.375, 0.3125])
    assert np.allclose(u[:3], ue[:3], atol=0.02)
    show_tab(panel, "Passage")
    kp, fp = panel.pass_curve.xData, panel.pass_curve.yData
    fx = panel.pass_exact.yData
    assert np.all(kp % 2 == 0)  # T_4 is even
    assert abs(fp.sum() - fx.sum()) < 0.03  # P(T_4 <= 400) ≈ 0.84 with 10^4 walkers
    assert "a = 4" in panel.pass_plot.plotItem.titleLabel.text
    target = tmp_path / "stats.csv"
    assert panel.export_statistics(str(target))
    table = np.genfromtxt(target, delimiter=",", names=True, skip_header=1)
    assert len(table) == 401
    assert np.allclose(table["p_at_start_at_n_exact"][:5], [1, 0, 0.5, 0, 0.375])
    assert abs(table["var_axis1"][-1] - 400) < 25
    assert not panel.export_statistics(str(tmp_path / "missing" / "x.csv"))
    assert "does not exist" in panel.banner.text


def test_path_animation_exports_as_gif(panel, qtbot, tmp_path):
    from PIL import Image

    from widgets.export import save_gif

    panel.steps.setValue(20_000)
    panel.speed.setValue(1)  # ~1 ms of work per snapshot: far more snapshots than we take
    panel.start(paused=True)
    for k in range(1, 6):  # five single steps: five snapshots, whatever the machine's speed
        panel.runner.step_once()
        qtbot.waitUntil(lambda k=k: len(panel.history) >= k, timeout=10_000)
    while panel.latest.n == panel.history[0].n:  # mid-sweep re-sends: step until the walk moved
        seen = len(panel.history)
        panel.runner.step_once()
        qtbot.waitUntil(lambda seen=seen: len(panel.history) > seen, timeout=10_000)
    assert len(panel.history) <= WalkPanel.history_length
    frames = panel.animation_frames(size=(400, 300))
    path = save_gif(frames, tmp_path / "paths.gif")
    from widgets.export import qimage_to_array

    arrays = [qimage_to_array(f) for f in frames]
    # Pillow merges a frame identical to the one before it (a chunk that did not finish re-sends
    # the last snapshot), so count the distinct consecutive frames.
    distinct = 1 + sum(not np.array_equal(a, b) for a, b in itertools.pairwise(arrays))
    assert distinct >= 2
    with Image.open(path) as im:
        assert im.size == (400, 300)
        assert im.n_frames == distinct
