"""The Lab's sampling tools driven as a user would: compare two samplers from the same noise,
the Euler/Heun error curve, classifier guidance, the VP schedule, rectified-flow reflow and the
GAN's own controls.

The exact (oracle) model needs no training, so most of these run in well under a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from engines import lab_views as lv
from widgets.lab_panel import DRAW, LabPanel
from widgets.runner import JobState


def choose(panel: LabPanel, model: str) -> None:
    panel.model.setCurrentIndex(list(lv.MODELS).index(model))


def pick(combo, key) -> None:
    i = combo.findData(key)
    assert i >= 0, key
    combo.setCurrentIndex(i)


def test_compare_two_samplers_from_the_same_noise(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "ddpm")
    c = panel.ctl
    c.exact.setChecked(True)  # the oracle: what is left is the samplers' own error
    pick(c.sampler, "euler")
    c.nfe.setValue(10)
    pick(c.sampler_b, "heun")
    c.exact_b.setChecked(True)
    c.compare.setChecked(True)
    assert panel.compare_plot.isVisible()
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabComparison), timeout=10000)
    view = panel._view
    assert view.left.sampler == "euler" and view.right.sampler == "heun"
    # Same initial noise: the paths start at the same points.
    np.testing.assert_allclose(view.left.trajectories[0], view.right.trajectories[0])
    assert len(panel.compare_cloud.points()) == panel.particles.value()
    assert view.mean_distance > 0 and "mean distance" in c.sample_info.text()
    pick(c.sampler_b, "euler")  # the same sampler on both sides: identical particles
    qtbot.waitUntil(lambda: panel._view.right.sampler == "euler", timeout=10000)
    assert panel._view.mean_distance == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(panel.cloud.points(), panel.compare_cloud.points(), atol=1e-6)
    c.compare.setChecked(False)
    assert not panel.compare_plot.isVisible() and len(panel.compare_cloud.points()) == 0


def test_euler_heun_error_curve(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "ddpm")
    panel.ctl.exact.setChecked(True)
    panel.ctl.error_button.click()
    qtbot.waitUntil(lambda: not panel.curve_runner.is_active, timeout=60000)
    n_euler, n_heun = panel.curves.error_points("euler"), panel.curves.error_points("heun")
    assert n_euler >= 5 and n_heun >= 5
    e = panel.curves.error_curves
    # At the finest budget the second-order solver is ahead.
    assert e["heun"].yData[-1] < e["euler"].yData[-1]
    assert not panel.banner.text


def test_classifier_guidance_pushes_to_the_class_core(make_lab, qtbot):
    panel = make_lab()  # 8gaussians
    choose(panel, "ddpm")
    c = panel.ctl
    c.exact.setChecked(True)
    pick(c.guidance_kind, "classifier")
    pick(c.sampler, "ddim")
    c.nfe.setValue(50)
    assert c.class_label.count() == 1 + 8 and c.guidance.isEnabled()
    pick(c.class_label, 2)
    mean = panel.mixture.means[2]

    def samples_at(w10: int) -> np.ndarray:
        c.guidance.setValue(w10)
        qtbot.waitUntil(lambda: c.guidance_label.text() == f"{w10 / 10:.1f}", timeout=2000)
        qtbot.wait(60)  # the drag's coalescing timer fires, the worker re-samples
        qtbot.waitUntil(lambda: not panel.sample_runner.is_active, timeout=10000)
        return panel.cloud.points().copy()

    one, eight = samples_at(10), samples_at(80)
    nearest = np.argmin(((one[:, None, :] - panel.mixture.means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == 2) > 0.95  # w = 1: the exact posterior, component 2's samples
    spread = [float(np.mean(np.linalg.norm(p - p.mean(0), axis=1))) for p in (one, eight)]
    assert spread[1] < 0.5 * spread[0]  # w = 8: pushed into a tight core ...
    # ... and off the data: tilted away from the other classes, past the component's mean
    assert np.linalg.norm(eight.mean(0)) > np.linalg.norm(mean) + 0.3


def test_learned_classifier_trains_in_a_worker(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "ddpm")
    c = panel.ctl
    pick(c.guidance_kind, "classifier")
    assert c.train_classifier.isEnabled()
    c.train_classifier.click()
    assert not c.train_classifier.isEnabled()
    qtbot.waitUntil(lambda: panel._current_classifier() is not None, timeout=60000)
    assert "accuracy" in c.classifier_info.text() and "best possible" in c.classifier_info.text()
    panel.seed.setValue(5)  # other data: that classifier no longer applies
    assert panel._current_classifier() is None


def test_schedule_changes_the_exact_forward_view(make_lab):
    panel = make_lab()
    panel.t_slider.setValue(300)
    linear = np.cov(panel.cloud.points().T)
    pick(panel.schedule, "cosine")
    cosine = np.cov(panel.cloud.points().T)
    # at t = 0.3 the linear schedule has destroyed more of the signal than the cosine one
    ab_lin, ab_cos = lv.alpha_bar(0.3, "linear"), lv.alpha_bar(0.3, "cosine")
    assert ab_lin < ab_cos
    assert np.trace(linear) < np.trace(cosine)  # 8gaussians: signal variance 4 > noise 1


def test_reflow_straightens_and_one_step(make_lab, qtbot, monkeypatch):
    panel = make_lab()
    choose(panel, "rf")
    c = panel.ctl
    monkeypatch.setattr(panel, "confirm_reset", lambda text: True)
    pick(c.coupling, "ot")
    pick(c.t_sampling, "logit_normal")
    c.width.setValue(64)
    panel.play_pause()
    qtbot.waitUntil(lambda: panel._train is not None and panel._train.step >= 600
                    and panel._train.straightness is not None, timeout=60000)
    panel.play_pause()
    first = panel._train
    assert "1-RF" in c.straightness.text()
    c.show_field.setChecked(True)  # OT pairs learn another field than the oracle's: no diff map
    qtbot.waitUntil(lambda: panel.field_item.n_arrows == 21 * 21, timeout=10000)
    assert not panel.heat_item.has_data and "No |learned − exact|" in c.sample_info.text()
    c.show_field.setChecked(False)
    c.reflow.click()
    qtbot.waitUntil(lambda: panel._train is not None and panel._train.reflow_round == 1
                    and panel._train.step >= 400 and panel._train.straightness is not None,
                    timeout=60000)
    assert "2-RF" in c.straightness.text()
    assert panel._train.straightness < first.straightness
    panel.play_pause()
    c.one_step.click()
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabSampleSnapshot) and panel._view.nfe == 1,
                    timeout=10000)
    assert c.nfe.value() == 1 and c.sampler.currentData() == "euler"


def test_gan_controls_reach_training(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "gan")
    c = panel.ctl
    assert c.lr_g.isVisibleTo(panel) and not c.lr.isVisibleTo(panel)
    pick(c.gan_loss, "minimax")
    c.lr_g.setValue(2e-4)
    c.lr_d.setValue(8e-4)
    c.n_critic.setValue(2)
    panel.play_pause()
    qtbot.waitUntil(lambda: panel._train is not None and panel._train.step > 20, timeout=15000)
    p = panel.train_params.get()
    assert (p["gan_loss"], p["lr_g"], p["lr_d"], p["n_critic"]) == ("minimax", 2e-4, 8e-4, 2)
    # minimax: G minimises log(1 - D(G(z))) < 0; non-saturating -log D(G(z)) > 0
    assert panel._train.loss[-1] < 0
    choose(panel, "wgan-gp")
    assert not c.gan_loss.isEnabled() and c.n_critic.value() == lv.gan_defaults("wgan-gp")["n_critic"]


@pytest.mark.parametrize("model", ["realnvp", "gan"])
def test_flows_and_gans_train_on_a_drawing(make_lab, qtbot, model):
    panel = make_lab()
    panel.dataset.setCurrentText(DRAW)
    panel.add_stroke(np.array([[-2.0, 1.0], [2.0, 1.0]]))
    choose(panel, model)
    assert panel.play_button.isEnabled()
    panel.play_pause()
    qtbot.waitUntil(lambda: panel._train is not None and len(panel._train.samples) > 0
                    and panel._train.step > 100, timeout=30000)
    assert not panel.banner.text and np.isfinite(panel._train.samples).all()


def test_prediction_target_is_a_training_choice(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "ddpm")
    c = panel.ctl
    assert c.prediction.isVisibleTo(panel)
    pick(c.prediction, "v")
    c.width.setValue(32)
    panel.play_pause()
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabSampleSnapshot), timeout=20000)
    assert panel._train.config["prediction"] == "v"
    assert "v-prediction" in panel.curves.loss_plot.getPlotItem().titleLabel.text
    assert np.isfinite(panel.cloud.points()).all()
    choose(panel, "rf")
    assert not c.prediction.isVisibleTo(panel)  # a velocity net has one target


@pytest.mark.parametrize("model,noise_t", [("ddpm", 1.0), ("rf", 0.0)])
def test_t_slider_scrubs_the_reverse_process(make_lab, qtbot, model, noise_t):
    panel = make_lab()
    choose(panel, model)
    assert panel.t_row.isVisible()
    panel.ctl.exact.setChecked(True)  # a perfect model: no training needed
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabSampleSnapshot), timeout=10000)
    final = panel.cloud.points().copy()
    np.testing.assert_allclose(final, panel._view.samples)  # the slider starts at the data end
    panel.t_slider.setValue(round(noise_t * 1000))  # back to where the sampler started
    start = panel.cloud.points()
    np.testing.assert_allclose(np.cov(start.T), np.eye(2), atol=0.12)
    np.testing.assert_allclose(start[:64], panel._view.trajectories[0], atol=1e-6)
    panel.t_slider.setValue(500)
    mid = panel.cloud.points()
    assert not np.allclose(mid, start) and not np.allclose(mid, final)
    assert "t = 0.50" in panel.t_value.text()


def test_sampling_animation_gif(make_lab, qtbot, tmp_path):
    from PIL import Image

    from widgets.export import save_gif

    panel = make_lab()
    choose(panel, "rf")
    panel.ctl.exact.setChecked(True)
    panel.ctl.nfe.setValue(12)
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabSampleSnapshot) and panel._view.nfe == 12,
                    timeout=10000)
    assert panel.has_animation() and not panel.history  # no training: the sampling run it is
    keep = panel.t_slider.value()
    frames = panel.animation_frames(size=(320, 240))
    assert len(frames) == 13 and panel.t_slider.value() == keep  # noise, 12 steps; slider back
    path = save_gif(frames, tmp_path / "sampling.gif")
    with Image.open(path) as im:
        assert im.n_frames >= 10  # identical consecutive frames may merge, moving ones do not


def test_diverging_training_says_what_to_do(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "realnvp")
    panel.ctl.lr.setMaximum(1e5)  # beyond what the spin box allows: a sure divergence
    panel.ctl.lr.setValue(1e4)
    panel.play_pause()
    qtbot.waitUntil(lambda: bool(panel.banner.text), timeout=15000)
    assert "Training diverged" in panel.banner.text and "learning rate" in panel.banner.text
    assert panel.runner.state == JobState.FAILED and panel.play_button.text() == "▶ Train"
    assert np.isfinite(panel.cloud.points()).all()


def test_save_and_load_a_model(make_lab, qtbot, tmp_path):
    panel = make_lab()
    choose(panel, "rf")
    panel.ctl.width.setValue(32)
    pick(panel.ctl.coupling, "ot")
    panel.play_pause()
    qtbot.waitUntil(lambda: panel._train is not None and panel._train.step >= 200
                    and isinstance(panel._view, lv.LabSampleSnapshot), timeout=20000)
    panel.play_pause()
    qtbot.waitUntil(lambda: not panel.sample_runner.is_active, timeout=5000)
    panel.request_view()
    qtbot.waitUntil(lambda: not panel.sample_runner.is_active, timeout=5000)
    before, step = panel.cloud.points().copy(), panel._train.step
    path = panel.save_model(tmp_path / "my flow")
    assert path is not None and path.name == "my flow.safetensors" and path.stat().st_size > 0

    other = make_lab()  # a fresh window: the exact model, other defaults
    assert other.model_key == "exact"
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 100)
    assert not other.load_model(tmp_path / "junk.safetensors")
    assert "Could not load the model" in other.banner.text and other.model_key == "exact"
    assert other.load_model(path)
    assert other.model_key == "rf" and other.ctl.width.value() == 32
    assert other.ctl.coupling.currentData() == "ot" and not other.banner.text
    qtbot.waitUntil(lambda: isinstance(other._view, lv.LabSampleSnapshot), timeout=10000)
    np.testing.assert_allclose(other.cloud.points(), before, atol=1e-5)  # same model, same noise
    other.play_pause()  # Train carries on from the loaded weights and step
    qtbot.waitUntil(lambda: other._train is not None and other._train.loss.size > 0, timeout=10000)
    assert other._train.step > step and other._train.loss_steps[0] > step


def test_exact_rf_needs_a_gaussian_source(make_lab, monkeypatch):
    panel = make_lab()
    choose(panel, "rf")
    c = panel.ctl
    assert c.exact.isEnabled()
    pick(c.source, "moons")  # the oracle velocity is from N(0, I): no exact model to offer
    assert not c.exact.isEnabled() and not c.exact_b.isEnabled()
    c.exact.setChecked(True)
    assert panel._sampling_kwargs() is None  # nothing trained, and no oracle to fall back on
    pick(c.source, "gaussian")
    assert c.exact.isEnabled() and panel._sampling_kwargs()["exact"]


def test_compare_before_training_asks_for_a_model(make_lab, qtbot):
    panel = make_lab()
    choose(panel, "ddpm")
    c = panel.ctl
    c.exact.setChecked(True)  # A: the oracle; B: the learned model, which does not exist yet
    c.compare.setChecked(True)
    qtbot.wait(100)
    qtbot.waitUntil(lambda: not panel.sample_runner.is_active, timeout=5000)
    assert not panel.banner.text and "train it first" in c.sample_info.text()
    c.exact_b.setChecked(True)
    qtbot.waitUntil(lambda: isinstance(panel._view, lv.LabComparison), timeout=10000)
