"""The 2D Lab's learned models driven as a user would: pick a model, train, sample, inspect.

Kept small (narrow nets, a few hundred steps, one torch thread): the machine is shared.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engines import lab_views as lv
from widgets.lab_panel import LabPanel
from widgets.runner import JobState


def choose(panel: LabPanel, model: str) -> None:
    panel.model.setCurrentIndex(list(lv.MODELS).index(model))


def trained_to(panel: LabPanel, qtbot, steps: int, timeout: int = 20000) -> lv.LabTrainSnapshot:
    qtbot.waitUntil(lambda: panel._train is not None and panel._train.step >= steps, timeout=timeout)
    return panel._train


def test_diffusion_trains_and_lr_is_live(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "ddpm")
    assert panel.curves.isVisible() and panel.t_row.isVisible()  # t scrubs the reverse process
    panel.ctl.width.setValue(64)  # no model yet: no question asked
    panel.play_button.click()
    assert panel.runner.state == JobState.RUNNING and "Pause" in panel.play_button.text()
    snap = trained_to(panel, qtbot, 300)
    assert panel.curves.n_loss_points >= 3
    k = max(2, len(snap.loss) // 4)
    assert snap.loss[-k:].mean() < snap.loss[:k].mean()  # it learns
    assert len(snap.quality) >= 1 and snap.state is not None
    panel.ctl.lr.setValue(5e-4)
    qtbot.waitUntil(lambda: panel._train.lr == pytest.approx(5e-4), timeout=5000)
    assert panel.runner.state == JobState.RUNNING  # the change reached the running job
    panel.play_pause()
    assert panel.runner.state == JobState.PAUSED and "Resume" in panel.play_button.text()
    frames = panel.animation_frames(max_frames=3)  # GIF export re-draws training frames
    assert len(frames) == 3 and not panel.banner.text


def test_switching_model_mid_training(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "rf")
    panel.ctl.width.setValue(32)
    panel.play_pause()
    trained_to(panel, qtbot, 50)
    old_threads = [t for t in threading.enumerate() if t.name == "playground-job"]
    choose(panel, "gan")
    assert panel.runner.state == JobState.RUNNING  # the new model trains at once
    assert panel._train is None or panel._train.model == "gan"
    qtbot.waitUntil(lambda: panel._train is not None and panel._train.model == "gan"
                    and panel._train.step > 20, timeout=15000)
    assert panel._train.loss_d is not None and len(panel._train.loss_d) == len(panel._train.loss)
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in old_threads
                                    if t is not panel.runner._run.thread), timeout=5000)
    # The GAN's views: heat map, gradient arrows, manifold, mode-coverage readout.
    qtbot.waitUntil(lambda: "Modes hit" in panel.ctl.coverage.text(), timeout=10000)
    assert "/8" in panel.ctl.coverage.text()
    assert panel.heat_item.has_data and panel.push_item.n_arrows > 0 and panel.grid_item.n_lines > 0
    panel.ctl.show_heat.setChecked(False)
    assert not panel.heat_item.has_data
    panel.ctl.show_heat.setChecked(True)
    assert panel.heat_item.has_data


def test_nfe_slider_resamples(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "ddpm")
    panel.ctl.width.setValue(64)
    panel.play_pause()
    trained_to(panel, qtbot, 200)
    panel.play_pause()  # pause: the weights stay put while we compare samplers
    qtbot.waitUntil(lambda: not panel.sample_runner.is_active, timeout=5000)
    panel.ctl.nfe.setValue(1)
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabSampleSnapshot) and panel._view.nfe == 1,
                    timeout=5000)
    one = panel.cloud.points().copy()
    assert panel.traj_item.n_paths == 64
    for v in (3, 10, 30, 50):  # a drag: only the last request has to be drawn
        panel.ctl.nfe.setValue(v)
    qtbot.waitUntil(lambda: panel._view.nfe == 50, timeout=5000)
    fifty = panel.cloud.points().copy()
    assert one.shape == fifty.shape and not np.allclose(one, fifty)
    assert "NFE 50" in panel.ctl.sample_info.text() and not panel.banner.text
    panel.ctl.bf16.setChecked(True)  # the fast preview: a re-sample, nearly the same points
    qtbot.waitUntil(lambda: not np.array_equal(panel.cloud.points(), fifty), timeout=5000)
    assert np.abs(panel.cloud.points() - fifty).mean() < 0.1
    panel.ctl.bf16.setChecked(False)
    # learned <-> exact: the oracle through the same sampler
    panel.ctl.exact.setChecked(True)
    qtbot.waitUntil(lambda: panel._view.exact, timeout=5000)
    assert "exact model" in panel.ctl.sample_info.text()
    panel.ctl.exact.setChecked(False)
    # the learned field against the exact one: arrows plus |learned - exact| as a heat map
    panel.ctl.show_field.setChecked(True)
    qtbot.waitUntil(lambda: panel.heat_item.has_data and panel.field_item.n_arrows == 21 * 21,
                    timeout=5000)
    panel.ctl.show_field.setChecked(False)
    assert not panel.heat_item.has_data and panel.field_item.n_arrows == 0
    panel.ctl.nfe_button.click()
    qtbot.waitUntil(lambda: panel.curves.n_nfe_points == len(lv.NFE_GRID),
                    timeout=20000)


def test_flow_layer_slider_and_heatmap(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "realnvp")
    assert panel.ctl.layer.maximum() == 8 and panel.ctl.flow_box.isVisible()
    panel.play_pause()
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.FlowLayerView), timeout=15000)
    assert panel.heat_item.has_data
    assert panel.curves.floor_line.isVisible()  # NLL floor: the data's entropy
    panel.play_pause()
    qtbot.waitUntil(lambda: not panel.sample_runner.is_active, timeout=5000)
    full = panel.grid_item.getData()[0].copy()
    panel.ctl.layer.setValue(0)
    qtbot.waitUntil(lambda: panel._view.k == 0, timeout=5000)
    latent = panel.grid_item.getData()[0]
    assert panel.grid_item.n_lines == 30
    np.testing.assert_allclose(latent, lv.latent_grid()[..., 0].ravel(), atol=1e-5)
    assert not np.allclose(full, latent)
    panel.ctl.show_heat.setChecked(False)
    assert not panel.heat_item.has_data
    spread = np.std(panel.cloud.points())
    panel.ctl.temperature.setValue(30)  # Glow's trick, for every flow here: a colder base
    qtbot.waitUntil(lambda: panel.ctl.temperature_label.text() == "0.30" and panel._view.k == 0
                    and np.std(panel.cloud.points()) < 0.5 * spread, timeout=5000)
    model = panel._train
    panel.particles.setValue(500)
    panel.particles.editingFinished.emit()  # sampling only: the trained model is kept
    qtbot.waitUntil(lambda: len(panel.cloud.points()) == 500, timeout=5000)
    assert panel._train is model


def test_architecture_change_asks(make_lab, qtbot, monkeypatch):
    panel = make_lab()
    choose(panel, "rf")
    assert panel.ctl.sampler.currentData() == "euler"  # RF: ODE solvers only
    assert not panel.ctl.sampler.model().item(0).isEnabled() and not panel.ctl.eta.isEnabled()
    panel.ctl.width.setValue(32)
    panel.play_pause()
    trained_to(panel, qtbot, 30)
    asked: list[str] = []
    monkeypatch.setattr(panel, "confirm_reset", lambda text: asked.append(text) or False)
    panel.ctl.depth.setValue(4)
    assert asked and panel.ctl.depth.value() == 2 + 1  # "No": reverted to the model's 3
    assert panel._train is not None and panel.runner.is_active  # the model is kept
    monkeypatch.setattr(panel, "confirm_reset", lambda text: True)
    panel.ctl.depth.setValue(2)
    assert panel._arch[1] == 2
    qtbot.waitUntil(lambda: panel._train is not None and panel._train.config is not None
                    and panel._train.config["depth"] == 2, timeout=10000)


def test_state_round_trip_with_model(make_lab):
    panel = make_lab()
    choose(panel, "glow")
    panel.ctl.temperature.setValue(70)
    panel.ctl.show_heat.setChecked(False)
    state = panel.save_state()
    assert state["model"] == "glow"
    other = make_lab()
    other.restore_state(state)
    assert other.save_state() == state
    assert other.ctl.flow_box.isVisibleTo(other) and other.ctl.layer.maximum() == 24


def test_learned_models_on_a_drawing(make_lab, qtbot):
    from widgets.lab_panel import DRAW

    panel = make_lab()
    panel.dataset.setCurrentText(DRAW)
    panel.add_stroke(np.array([[-2.0, 1.0], [2.0, 1.0]]))
    choose(panel, "realnvp")  # every family trains on drawn points
    assert panel.play_button.isEnabled()
    choose(panel, "rf")
    assert panel.play_button.isEnabled() and not panel.ctl.conditional.isEnabled()
    panel.ctl.width.setValue(32)
    panel.play_pause()
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabSampleSnapshot), timeout=15000)
    assert len(panel._train.quality) >= 1 and not panel.banner.text
    panel.add_stroke(np.array([[-2.0, -1.0], [2.0, -1.0]]))  # the drawing moves on: said so
    assert "learned the earlier drawing" in panel.source_label.text()
    panel.reset()  # R: the model and its curves are gone, Play trains afresh
    assert panel._train is None and panel.curves.n_loss_points == 0
    assert panel.play_button.text() == "▶ Train" and len(panel.cloud.points()) == 0
