"""The Image panel driven as a user would, against a small fake generator.

The fake satisfies the ``engines.image_gen.Generator`` protocol with deterministic numpy
images derived from the seed and the control map, so these tests check the panel (threads,
previews, gallery, files) without depending on a trained model.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6 import QtCore, QtWidgets

from engines import image_io
from engines.image_gen import GenerationParams, GenerationStep
from widgets.image_panel import UNCONDITIONED, ImagePanel, params_from_metadata

LEFT = QtCore.Qt.MouseButton.LeftButton
NONE = QtCore.Qt.KeyboardModifier.NoModifier


class FakeGenerator:
    """Deterministic stand-in: the image is the control map tinted by a seed-derived colour."""

    name = "fake-16"
    resolution = 16

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[np.ndarray | None, GenerationParams]] = []

    def vocabulary(self) -> tuple[str, ...]:
        return ("a", "red", "blue", "house", "tree")

    def unknown_words(self, prompt: str) -> list[str]:
        return [w for w in prompt.replace(",", " ").split() if w.lower() not in self.vocabulary()]

    def generate(self, control: np.ndarray | None, params: GenerationParams) -> Iterator[GenerationStep]:
        self.calls.append((None if control is None else control.copy(), params))
        rng = np.random.default_rng(params.seed)
        colour = rng.integers(0, 256, 3).astype(np.float32)
        r = self.resolution
        lines = np.zeros((r, r), np.float32) if control is None else control.astype(np.float32) / 255
        target = np.broadcast_to(colour * (0.3 + 0.7 * lines[..., None]), (params.batch_size, r, r, 3))
        noise = rng.normal(128, 60, (params.batch_size, r, r, 3))
        t0 = time.perf_counter()
        for i in range(1, params.steps + 1):
            if self.delay:
                time.sleep(self.delay)
            a = i / params.steps
            xt = np.clip((1 - a) * noise + a * target, 0, 255).astype(np.uint8)
            x0 = np.clip(target, 0, 255).astype(np.uint8)
            done = i == params.steps
            yield GenerationStep(i, params.steps, xt, x0, x0.copy() if done else None, done,
                                 time.perf_counter() - t0)


@pytest.fixture
def fake() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture
def panel(qtbot, fake):
    p = ImagePanel(device=torch.device("cpu"), generator=fake)
    qtbot.addWidget(p)
    p.resize(1280, 760)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()


def draw_line(qtbot, panel: ImagePanel, a: tuple[int, int], b: tuple[int, int]) -> None:
    c = panel.canvas
    qtbot.mousePress(c, LEFT, NONE, QtCore.QPoint(*a))
    for t in np.linspace(0, 1, 6)[1:]:
        qtbot.mouseMove(c, QtCore.QPoint(round(a[0] + t * (b[0] - a[0])), round(a[1] + t * (b[1] - a[1]))))
    qtbot.mouseRelease(c, LEFT, NONE, QtCore.QPoint(*b))


def sketch_something(qtbot, panel: ImagePanel) -> None:
    panel.canvas.set_brush_size(12)
    w, h = panel.canvas.width(), panel.canvas.height()
    draw_line(qtbot, panel, (w // 4, h // 4), (3 * w // 4, h // 4))
    draw_line(qtbot, panel, (3 * w // 4, h // 4), (w // 2, 3 * h // 4))
    draw_line(qtbot, panel, (w // 2, 3 * h // 4), (w // 4, h // 4))


def generate(panel: ImagePanel, qtbot, timeout: int = 10_000) -> None:
    with qtbot.waitSignal(panel.runner.finished, timeout=timeout):
        qtbot.mouseClick(panel.generate_button, LEFT)
    qtbot.waitUntil(lambda: not panel.runner.is_active, timeout=2000)


def test_drawing_updates_the_exact_control_map(panel, qtbot, fake) -> None:
    assert panel.canvas.is_empty()
    sketch_something(qtbot, panel)
    assert not panel.canvas.is_empty()
    assert panel.control_map is not None and panel.control_map.shape == (16, 16)
    assert panel.preview.array is not None and np.array_equal(panel.preview.array, panel.control_map)
    generate(panel, qtbot)
    sent, _params = fake.calls[-1]
    assert np.array_equal(sent, panel.control_map)  # the preview is what the model received


def test_canny_thresholds_change_the_preview(panel, qtbot) -> None:
    gray = np.tile(np.linspace(0, 255, 256, dtype=np.float32), (256, 1))
    gray[64:192, 64:192] = 255 - gray[64:192, 64:192] * 0.3  # strong and weak edges
    panel.canvas.set_image(gray.astype(np.uint8))
    panel.resize_mode.setCurrentIndex(0)
    panel.low.setValue(5)
    panel.high.setValue(20)
    many = int((panel.preview.array > 0).sum())
    panel.low.setValue(200)
    panel.high.setValue(250)
    few = int((panel.preview.array > 0).sum())
    assert many > few
    assert panel.low_label.text() == "200"


def test_invert_toggle_flips_a_scribble(panel, qtbot) -> None:
    sketch_something(qtbot, panel)
    panel.preprocessor.setCurrentIndex(panel.preprocessor.findData("scribble"))
    assert panel.invert.isEnabled()
    assert "black lines on white" in panel.polarity.text() and "inverted" in panel.polarity.text()
    normal = panel.preview.array.copy()
    assert 0 < (normal > 0).mean() < 0.5  # white lines on black, as the model wants
    qtbot.mouseClick(panel.invert, LEFT)
    assert panel.invert.isChecked()
    flipped = panel.preview.array
    assert (flipped > 0).mean() > 0.5  # now the paper is the "line": mostly white
    assert "used as is" in panel.polarity.text()
    qtbot.mouseClick(panel.invert, LEFT)
    assert np.array_equal(panel.preview.array, normal)


def test_empty_sketch_generates_unconditioned_and_says_so(panel, qtbot, fake) -> None:
    generate(panel, qtbot)
    assert fake.calls[-1][0] is None
    assert UNCONDITIONED.split(":")[0] in panel.notice.text() or "unconditioned" in panel.notice.text()
    assert "Empty sketch" in panel.preview_caption.text()


def test_generate_shows_previews_and_adds_history(panel, qtbot, fake) -> None:
    sketch_something(qtbot, panel)
    panel.prompt.setText("a red castle")
    assert "castle" in panel.unknown.text()
    panel.random_seed.setChecked(False)
    panel.seed.setValue(1234)
    panel.steps.setValue(8)
    panel.batch.setValue(2)
    generate(panel, qtbot)
    assert panel.xt_view.array is not None and panel.x0_view.array is not None
    assert panel.xt_view.array.shape == (16, 16, 3)
    assert panel.gallery.count() == 1
    assert panel.progress.value() == panel.progress.maximum() == 8
    result = panel.results[0]
    assert result.params.seed == 1234 and result.images.shape == (2, 16, 16, 3)
    assert len(result.trail_xt) == 8
    assert panel.generate_button.isEnabled()  # ready again


def test_clicking_a_history_item_restores_its_parameters(panel, qtbot) -> None:
    panel.random_seed.setChecked(False)
    panel.prompt.setText("a blue house")
    panel.seed.setValue(7)
    panel.steps.setValue(5)
    panel.cfg.setValue(3.5)
    generate(panel, qtbot)
    first_image = panel.result_view.array.copy()
    panel.prompt.setText("a red tree")
    panel.seed.setValue(99)
    panel.steps.setValue(6)
    panel.cfg.setValue(7.0)
    panel.scheduler.setCurrentIndex(panel.scheduler.findData("euler"))
    generate(panel, qtbot)
    assert panel.gallery.count() == 2
    first = panel.gallery.item(0)
    rect = panel.gallery.visualItemRect(first)
    qtbot.mouseClick(panel.gallery.viewport(), LEFT, NONE, rect.center())
    assert panel.prompt.text() == "a blue house"
    assert panel.seed.value() == 7 and panel.steps.value() == 5 and panel.cfg.value() == 3.5
    assert panel.scheduler.currentData() == "ddim"
    assert np.array_equal(panel.result_view.array, first_image)


def test_cancel_mid_run_leaves_the_panel_ready(panel, qtbot, fake) -> None:
    fake.delay = 0.05
    panel.steps.setValue(200)
    qtbot.mouseClick(panel.generate_button, LEFT)
    qtbot.waitUntil(lambda: panel.progress.value() >= 2, timeout=5000)
    assert panel.cancel_button.isEnabled() and not panel.generate_button.isEnabled()
    qtbot.mouseClick(panel.cancel_button, LEFT)
    assert not panel.runner.is_active
    assert panel.generate_button.isEnabled() and "Cancelled" in panel.notice.text()
    assert panel.gallery.count() == 0
    fake.delay = 0.0
    panel.steps.setValue(4)
    generate(panel, qtbot)
    assert panel.gallery.count() == 1


def test_export_png_metadata_and_load_parameters_back(panel, qtbot, tmp_path: Path) -> None:
    sketch_something(qtbot, panel)
    panel.random_seed.setChecked(False)
    panel.prompt.setText("a red house")
    panel.negative.setText("tree")
    panel.seed.setValue(42)
    panel.steps.setValue(6)
    panel.control_scale.setValue(0.75)
    panel.control_end.setValue(0.8)
    panel.control_mode.setCurrentIndex(panel.control_mode.findData("controlnet"))
    generate(panel, qtbot)
    params = panel.results[-1].params
    out = panel.export_image(tmp_path / "result.png")
    assert out is not None and out.exists()
    meta = image_io.read_png_metadata(out)
    assert params_from_metadata(meta) == params
    assert meta["model"] == "fake-16"
    assert {"a red house", "42", "0.75", "controlnet"} <= set(meta.values())  # readable as plain text
    assert np.asarray(Image.open(out)).shape == (16, 16, 3)
    # Change everything, then restore from the file.
    panel.prompt.setText("something else")
    panel.seed.setValue(1)
    panel.control_mode.setCurrentIndex(0)
    assert panel.load_parameters(out) == params
    assert panel.params() == params
    strip = panel.export_denoising(tmp_path / "strip.png")
    assert strip is not None and Image.open(strip).size[0] > Image.open(strip).size[1]
    gif = panel.export_denoising(tmp_path / "steps.gif")
    assert gif is not None and Image.open(gif).n_frames == 6


def test_load_parameters_from_a_png_without_them(panel, tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert panel.load_parameters(tmp_path / "plain.png") is None
    assert "no generation parameters" in panel.banner.text


def test_unwritable_export_path_is_an_error_and_keeps_the_sketch(panel, qtbot, tmp_path: Path) -> None:
    sketch_something(qtbot, panel)
    before = panel.canvas.image()
    assert panel.export_image(tmp_path / "x.png") is None  # nothing generated yet
    assert "Generate first" in panel.banner.text
    generate(panel, qtbot)
    assert panel.export_image(tmp_path / "missing-folder" / "x.png") is None
    assert "does not exist" in panel.banner.text
    assert panel.export_denoising(tmp_path / "missing-folder" / "x.gif") is None
    assert np.array_equal(panel.canvas.image(), before)


def test_corrupt_image_load_keeps_the_sketch(panel, qtbot, tmp_path: Path) -> None:
    sketch_something(qtbot, panel)
    before = panel.canvas.image()
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    assert not panel.load_sketch_image(bad)
    assert "photo.jpg" in panel.banner.text and "kept" in panel.banner.text
    assert np.array_equal(panel.canvas.image(), before)


def test_huge_image_is_downscaled_with_a_notice(panel, tmp_path: Path) -> None:
    big = np.full((1500, 3000, 3), 255, np.uint8)
    big[700:800, :] = 0
    Image.fromarray(big).save(tmp_path / "wide.png")
    assert panel.load_sketch_image(tmp_path / "wide.png")
    assert panel.canvas.image_size() == (1024, 512)
    assert "downscaled" in panel.sketch_notice.text()
    assert panel.control_map is not None and panel.control_map.shape == (16, 16)
    panel.canvas.undo()  # loading is undoable
    assert panel.canvas.is_empty()


def test_state_round_trip_keeps_sketch_and_settings(panel, qtbot, fake) -> None:
    sketch_something(qtbot, panel)
    panel.prompt.setText("a red house")
    panel.random_seed.setChecked(False)
    panel.seed.setValue(5)
    panel.high.setValue(180)
    panel.resize_mode.setCurrentIndex(panel.resize_mode.findData("crop_and_resize"))
    import json

    state = json.loads(json.dumps(panel.save_state()))  # must be plain JSON
    assert len(json.dumps(state)) < 100_000
    other = ImagePanel(device=torch.device("cpu"), generator=FakeGenerator())
    qtbot.addWidget(other)
    other.restore_state(state)
    assert np.array_equal(other.canvas.image(), panel.canvas.image())
    assert other.params() == panel.params()
    assert other.control_settings() == panel.control_settings()
    other.restore_state({"params": {"steps": "oops"}, "sketch_png": "!!", "model": 3})  # ignored, no crash
    other.shutdown()


def test_missing_model_keeps_the_panel_usable(qtbot, monkeypatch, tmp_path: Path) -> None:
    import widgets.image_panel as ip

    def missing(choice, device):
        raise FileNotFoundError("assets/image/unet.safetensors is missing")

    monkeypatch.setattr(ip, "_load_generator", missing)
    monkeypatch.setattr(ip.GeneratorLoader, "_ready", {})  # a model another test loaded
    monkeypatch.setattr(ip.GeneratorLoader, "_loads", {})  # or is loading
    p = ImagePanel(device=torch.device("cpu"))
    qtbot.addWidget(p)
    p.resize(1000, 700)
    p.show()  # the lazy load starts when the panel is first shown
    qtbot.waitUntil(lambda: "unet.safetensors" in p.banner.text, timeout=5000)
    assert "Sketching" in p.banner.text
    qtbot.waitUntil(lambda: not p.runner.is_active, timeout=2000)
    sketch_something(qtbot, p)
    assert p.control_map is not None and p.control_map.shape == (32, 32)
    p.shutdown()


def test_stable_diffusion_failure_keeps_the_previous_generator(panel, qtbot, fake, tmp_path) -> None:
    import widgets.image_panel as ip

    def refuse(choice, device):
        raise ValueError(f"{choice[1]} has no model_index.json")

    ip_load = ip._load_generator
    try:
        ip._load_generator = refuse
        panel.choose_stable_diffusion(str(tmp_path / "sd"), str(tmp_path / "cn"))
        qtbot.waitUntil(lambda: "model_index.json" in panel.banner.text, timeout=5000)
    finally:
        ip._load_generator = ip_load
    assert panel.generator is fake
    assert panel.model.currentData() == "bundled"
    qtbot.waitUntil(lambda: not panel.runner.is_active, timeout=2000)
    generate(panel, qtbot)
    assert panel.gallery.count() == 1


def test_real_bundled_generator_smoke(qtbot) -> None:
    image_gen = pytest.importorskip("engines.image_gen")
    root = Path(__file__).resolve().parents[2] / "assets" / "image"
    if not root.is_dir() or not any(root.iterdir()):
        pytest.skip("assets/image is missing")
    try:
        gen = image_gen.BundledGenerator.load()
    except FileNotFoundError as exc:  # weights not trained / not shipped in this checkout
        pytest.skip(f"bundled weights missing: {exc}")
    p = ImagePanel(device=torch.device("cpu"), generator=gen)
    qtbot.addWidget(p)
    p.steps.setValue(4)
    with qtbot.waitSignal(p.runner.finished, timeout=60_000):
        p.generate()
    assert p.gallery.count() == 1 and p.results[0].images.shape[1:] == (gen.resolution, gen.resolution, 3)
    p.shutdown()


def test_invalid_settings_are_refused_before_any_thread(panel, fake) -> None:
    panel.control_start.setValue(0.8)
    panel.control_end.setValue(0.2)
    panel.generate()
    assert not panel.runner.is_active and fake.calls == []
    assert "start and end" in panel.banner.text


def test_a_slow_load_is_cancellable_and_loaded_once(qtbot, monkeypatch) -> None:
    import threading

    import widgets.image_panel as ip

    release = threading.Event()
    calls: list[tuple[str, ...]] = []

    def slow(choice, device):
        calls.append(choice)
        release.wait(5)
        return FakeGenerator()

    monkeypatch.setattr(ip, "_load_generator", slow)
    monkeypatch.setattr(ip.GeneratorLoader, "_ready", {})
    monkeypatch.setattr(ip.GeneratorLoader, "_loads", {})
    p = ImagePanel(device=torch.device("cpu"))
    qtbot.addWidget(p)
    p.steps.setValue(3)
    p.generate()
    qtbot.waitUntil(lambda: calls == [("bundled",)], timeout=2000)
    assert "Loading" in p.notice.text()
    p.cancel()  # while the weights are still loading: instant
    assert not p.runner.is_active and p.generate_button.isEnabled()
    p.generate()  # waits for the same load instead of starting another
    release.set()
    qtbot.waitUntil(lambda: p.gallery.count() == 1, timeout=5000)
    assert calls == [("bundled",)] and p.generator is not None and p.generator.name == "fake-16"
    p.shutdown()


def test_vocabulary_words_and_dice(panel, qtbot) -> None:
    assert "house" in panel.vocab.text()
    panel.prompt.setText("a red")
    panel.vocab.linkActivated.emit("house")  # what clicking the word does
    assert panel.prompt.text() == "a red house" and panel.unknown.text() == ""
    panel.seed.setValue(3)
    dice = next(b for b in panel.findChildren(QtWidgets.QToolButton) if "Roll" in b.text())
    qtbot.mouseClick(dice, LEFT)
    assert panel.seed.value() != 3 and not panel.random_seed.isChecked()


def test_real_stable_diffusion_check_names_what_is_missing(panel, qtbot, fake, tmp_path: Path) -> None:
    pytest.importorskip("engines.image_gen")
    (tmp_path / "sd").mkdir()
    (tmp_path / "cn").mkdir()
    panel.choose_stable_diffusion(str(tmp_path / "sd"), str(tmp_path / "cn"))
    qtbot.waitUntil(lambda: "Stable Diffusion" in panel.banner.text, timeout=10_000)
    assert "sd" in panel.banner.text  # the folder at fault is named
    assert panel.generator is fake and panel.model.currentData() == "bundled"
