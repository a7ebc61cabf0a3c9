"""The Image panel: draw a sketch, see the control map, and watch a ControlNet follow it.

What the user does here: sketch (or load a picture), pick how it becomes a control map
(Canny edges or the lines as drawn) and see *the exact map the model receives*, type a
prompt, press Generate and watch every denoising step (the noisy x_t beside the model's
current guess of x₀). Results collect in a gallery that remembers their parameters; a PNG
export carries them as text metadata, so "Load parameters from PNG…" reproduces an image.

Why it is built like this:

* All math lives in ``engines`` (``image_preprocess`` for the map, ``image_gen`` for the
  model, ``image_io`` for files). The panel wires controls to them and draws arrays.
* The model is loaded lazily, off the GUI thread, inside the same runner job that generates
  (:func:`generation_job`), so app start stays fast and a multi-second Stable Diffusion
  load never freezes the window. A :class:`GeneratorLoader` caches the loaded model and
  serialises loads, so a load that is still running when the user presses Generate is
  waited for rather than started twice.
* The runner delivers only the newest snapshot; every frame therefore carries what the GUI
  must not miss (the generator, the run id, the denoising trail so far).
* A missing model never blocks the panel: sketching and the control map work without one.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from engines import image_io
from engines import image_preprocess as pre
from engines.fileio import ExportError
from engines.image_gen import CONTROL_MODES, SCHEDULERS, GenerationParams, GenerationStep
from widgets.export import save_gif
from widgets.panel import Panel
from widgets.sketch_canvas import SketchCanvas, array_to_qimage, qimage_to_gray

PREPROCESSORS: dict[str, str] = {"canny": "Canny edges", "scribble": "Use sketch as is (scribble)"}
RESIZE_LABELS: dict[str, str] = {
    "just_resize": "Just resize (stretch)",
    "crop_and_resize": "Crop and resize (fill the square)",
    "resize_and_fill": "Resize and fill (pad with black)",
}
CONTROL_MODE_LABELS: dict[str, str] = {
    "balanced": "Balanced",
    "prompt": "My prompt is more important",
    "controlnet": "ControlNet is more important",
}
SCHEDULER_LABELS: dict[str, str] = {"ddim": "DDIM", "euler": "Euler", "dpm++": "DPM++ 2M"}
BUNDLED: tuple[str, ...] = ("bundled",)
#: The map resolution shown before a model is loaded (the model's own once it is).
DEFAULT_RESOLUTION: dict[str, int] = {"bundled": 32, "sd": 512}
#: A sketch bigger than this (PNG bytes) is not kept in the settings: they must stay small.
MAX_SAVED_SKETCH = 2_000_000
CANVAS_MAX_SIDE = 1024
UNCONDITIONED = "Empty sketch: generating without a control map (unconditioned, prompt only)."


# --------------------------------------------------------------------------- Qt-free core
@dataclass(frozen=True)
class ControlSettings:
    """How the sketch becomes the control map (the preprocessor's settings)."""

    preprocessor: str = "canny"
    low: int = 100
    high: int = 200
    invert: bool = False  # flip the detected polarity (scribble only)
    resize_mode: str = "just_resize"

    def describe(self) -> str:
        what = f"canny {self.low}/{self.high}" if self.preprocessor == "canny" else "scribble"
        inverted = " inverted" if self.invert and self.preprocessor == "scribble" else ""
        return f"{what}{inverted}, {self.resize_mode}"


def detect_dark_lines(sketch: np.ndarray) -> bool:
    """True when ``scribble`` reads the sketch as dark lines on light paper (and inverts it).

    Asked of the engine itself (auto result == forced-invert result) so the label the user
    sees can never disagree with what the engine does.
    """
    return bool(np.array_equal(pre.scribble(sketch), pre.scribble(sketch, invert=True)))


def make_control(sketch: np.ndarray, settings: ControlSettings, resolution: int) -> np.ndarray:
    """The exact (resolution, resolution) map the model receives for this sketch."""
    if settings.preprocessor == "canny":
        lines = pre.canny(sketch, settings.low, settings.high)
    else:
        invert = detect_dark_lines(sketch) != settings.invert
        lines = pre.scribble(sketch, invert=invert)
    return pre.resize_control(lines, int(resolution), settings.resize_mode)


def _load_generator(choice: tuple[str, ...], device: torch.device | None) -> Any:
    from engines import image_gen  # the model code (and diffusers) only when a model is wanted

    if choice[0] == "sd":
        return image_gen.StableDiffusionGenerator.from_folders(choice[1], choice[2], device=device)
    return image_gen.BundledGenerator.load(device=device)


def load_error_message(choice: tuple[str, ...], exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if choice[0] == "sd":
        return f"Could not load Stable Diffusion; keeping the previous model. {text}"
    return (f"The bundled image model could not be loaded: {text} "
            "Sketching and the control map still work.")


class _Load:
    """One model load in its own **non-daemon** thread.

    Why not in the runner's (daemon) thread: a load takes seconds (it imports diffusers and
    reads the weights) and cannot be interrupted, and a daemon thread still inside torch when
    the interpreter exits aborts the process. Python waits for a non-daemon thread at exit,
    so quitting during a load finishes it cleanly; the runner job only polls, so Cancel stays
    instant.
    """

    def __init__(self, choice: tuple[str, ...], device: torch.device | None) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(choice, device), daemon=False,
                                       name="playground-image-load")

    def _run(self, choice: tuple[str, ...], device: torch.device | None) -> None:
        try:
            self.result = _load_generator(choice, device)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


class _Pump:
    """Runs the engine's step generator in a non-daemon thread, at most one step ahead.

    Same reason as :class:`_Load`: a denoising step can take seconds on a busy CPU and cannot
    be interrupted; if it ran in the runner's daemon thread, quitting mid-step would abort
    the process at interpreter exit. Here the runner's job only hands steps over, the pump
    stops after the step in flight when the job is closed (cancel, quit), and Python waits
    for that one step at exit. A full hand-over slot makes the pump wait: pause still pauses.
    """

    def __init__(self, steps: Iterator[Any]) -> None:
        self._steps = steps
        self._slot: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=False, name="playground-image-steps")
        self.thread.start()

    def _hand_over(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._slot.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for step in self._steps:
                if not self._hand_over(("step", step)):
                    break
            else:
                self._hand_over(("end", None))
        except BaseException as exc:
            self._hand_over(("error", exc))
        finally:
            with contextlib.suppress(Exception):
                close = getattr(self._steps, "close", None)
                if close is not None:
                    close()

    def get(self, timeout: float) -> tuple[str, Any] | None:
        try:
            return self._slot.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self._stop.set()


class GeneratorLoader:
    """Loads generators once per (choice, device) for the whole process, thread-safely.

    Process-wide so that two windows (or a test suite's many) share one loaded model and
    never load the same weights twice at once. ``device`` is read at each load: a device
    change (View ▸ Device) applies to the next model loaded.
    """

    _lock = threading.Lock()
    _loads: ClassVar[dict[tuple[Any, ...], _Load]] = {}
    _ready: ClassVar[dict[tuple[Any, ...], Any]] = {}

    def __init__(self, device: torch.device | None) -> None:
        self.device = device
        self._own: dict[tuple[str, ...], Any] = {}  # generators handed in with ``put``

    def _key(self, choice: tuple[str, ...]) -> tuple[Any, ...]:
        return (*choice, str(self.device))

    def start(self, choice: tuple[str, ...]) -> _Load:
        """The load of ``choice``: already done, under way, or started now."""
        with self._lock:
            if choice in self._own:
                done = _Load(choice, self.device)
                done.result = self._own[choice]
                done.done.set()
                return done
            key = self._key(choice)
            if key in self._ready:
                done = _Load(choice, self.device)
                done.result = self._ready[key]
                done.done.set()
                return done
            load = self._loads.get(key)
            if load is None or (load.done.is_set() and load.error is not None):
                load = _Load(choice, self.device)
                self._loads[key] = load
                load.thread.start()
            return load

    def finish(self, choice: tuple[str, ...], load: _Load) -> Any:
        """The loaded generator (raises the load's error); call once ``load.done`` is set."""
        key = self._key(choice)
        with self._lock:
            if self._loads.get(key) is load:
                del self._loads[key]
            if load.error is not None:
                raise load.error
            if choice not in self._own:
                # Keep the newest only (two SD models would not fit most GPUs); panels still
                # hold the one they use until the new one is delivered.
                type(self)._ready = {key: load.result}
            return load.result

    def put(self, choice: tuple[str, ...], generator: Any) -> None:
        with self._lock:
            self._own = {choice: generator}


@dataclass(frozen=True)
class Frame:
    """One snapshot of a panel job: a loaded model, a denoising step, or a load error."""

    run: int
    choice: tuple[str, ...]
    generator: Any | None = None
    step: GenerationStep | None = None
    params: GenerationParams | None = None
    trail_xt: tuple[np.ndarray, ...] = ()
    trail_x0: tuple[np.ndarray, ...] = ()
    control: np.ndarray | None = None
    notice: str = ""
    error: str = ""
    settings: ControlSettings | None = None


def generation_job(loader: GeneratorLoader, run: int, choice: tuple[str, ...], sketch: np.ndarray | None,
                   settings: ControlSettings, params: GenerationParams | None) -> Iterator[Frame | None]:
    """Load the model if needed, then one frame per denoising step (``params=None``: load only)."""
    load = loader.start(choice)
    while not load.done.wait(0.1):
        yield None  # nothing to show yet; the runner can cancel between these
    try:
        generator = loader.finish(choice, load)
    except Exception as exc:
        yield Frame(run, choice, error=load_error_message(choice, exc))
        return
    yield Frame(run, choice, generator)
    if params is None:
        return
    control = None if sketch is None else make_control(sketch, settings, generator.resolution)
    notice = ""
    if sketch is None:
        notice = UNCONDITIONED
    elif pre.is_blank(control):
        control = None
        notice = ("The control map is empty (try lower Canny thresholds): generating without it "
                  "(unconditioned).")
    trail_xt: list[np.ndarray] = []
    trail_x0: list[np.ndarray] = []
    pump = _Pump(generator.generate(control, params))
    try:
        while True:
            got = pump.get(0.1)
            if got is None:
                yield None  # the step is still computing; the runner may cancel here
                continue
            kind, step = got
            if kind == "end":
                return
            if kind == "error":
                raise step
            trail_xt.append(step.xt[0])
            trail_x0.append(step.x0[0])
            yield Frame(run, choice, generator, step, params, tuple(trail_xt), tuple(trail_x0), control,
                        step.notice or notice, settings=settings)
    finally:
        pump.stop()  # cancel or quit: the pump ends after the step in flight


@dataclass(frozen=True)
class Result:
    """A finished generation, as the gallery keeps it."""

    params: GenerationParams
    images: np.ndarray  # (B, H, W, 3) uint8
    trail_xt: tuple[np.ndarray, ...]
    trail_x0: tuple[np.ndarray, ...]
    model: str
    control: str

    def metadata(self) -> dict[str, str]:
        meta = dict(self.params.to_metadata())
        meta.update({"model": self.model, "control": self.control, "software": "Generative Playground"})
        return meta


def params_from_metadata(meta: dict[str, str]) -> GenerationParams:
    """Parameters from PNG text; ``ValueError`` when the PNG carries none of ours."""
    keys = set(GenerationParams().to_metadata())
    ours = {k: v for k, v in meta.items() if k in keys}
    if not ours:
        raise ValueError("this PNG carries no generation parameters (was it saved by this panel?)")
    return GenerationParams.from_metadata(ours)


# ------------------------------------------------------------------------------- widgets
def _rgb_qimage(arr: np.ndarray) -> QtGui.QImage:
    a = np.asarray(arr)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    a = np.ascontiguousarray(a[..., :3], dtype=np.uint8)
    h, w = a.shape[:2]
    return QtGui.QImage(a.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()


class ImageView(QtWidgets.QLabel):
    """An array shown scaled to fit; small model outputs are enlarged without blurring."""

    def __init__(self, caption: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = caption
        self.array: np.ndarray | None = None
        self._image: QtGui.QImage | None = None
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Ignored)
        self.setStyleSheet("QLabel { background: #202020; color: #aaaaaa; border: 1px solid #404040; }")
        self.setText(caption)

    def set_array(self, arr: np.ndarray | None) -> None:
        if arr is None:
            self.array = None
            self._image = None
            self.setPixmap(QtGui.QPixmap())
            self.setText(self.caption)
            return
        self.array = np.asarray(arr)
        self._image = _rgb_qimage(self.array)
        self._rescale()

    def _rescale(self) -> None:
        if self._image is None:
            return
        size = self.contentsRect().size()
        if size.width() < 2 or size.height() < 2:
            return
        img = self._image
        scale = min(size.width() / img.width(), size.height() / img.height())
        mode = (QtCore.Qt.TransformationMode.FastTransformation if scale >= 2
                else QtCore.Qt.TransformationMode.SmoothTransformation)
        self.setPixmap(QtGui.QPixmap.fromImage(img.scaled(
            max(1, int(img.width() * scale)), max(1, int(img.height() * scale)),
            QtCore.Qt.AspectRatioMode.KeepAspectRatio, mode)))

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()


def _titled(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
    box = QtWidgets.QWidget()
    lay = QtWidgets.QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    label = QtWidgets.QLabel(title)
    label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    lay.addWidget(label)
    lay.addWidget(widget, 1)
    return box


def _scrolled(widget: QtWidgets.QWidget, min_width: int) -> QtWidgets.QScrollArea:
    scroll = QtWidgets.QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    scroll.setWidget(widget)
    scroll.setMinimumWidth(min_width)
    return scroll


def _array_to_png_bytes(gray: np.ndarray) -> bytes:
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    array_to_qimage(gray).save(buf, "PNG")
    return bytes(buf.data().data())


DEMO_PROMPT = "a red house in the middle under a day sky with the sun"


def demo_sketch(size: int = 512) -> np.ndarray:
    """The demo's sketch, drawn as a user would: a horizon, a house, the sun (black on white)."""
    image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_Grayscale8)
    image.fill(255)
    painter = QtGui.QPainter(image)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        pen = QtGui.QPen(QtGui.QColor(0, 0, 0), size / 64, QtCore.Qt.PenStyle.SolidLine,
                         QtCore.Qt.PenCapStyle.RoundCap, QtCore.Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        u = size / 16
        painter.drawLine(QtCore.QPointF(0, 11 * u), QtCore.QPointF(size, 11 * u))  # horizon
        painter.drawRect(QtCore.QRectF(6 * u, 8 * u, 4 * u, 4 * u))  # the house
        painter.drawPolyline(QtGui.QPolygonF([QtCore.QPointF(5.5 * u, 8 * u), QtCore.QPointF(8 * u, 5.5 * u),
                                              QtCore.QPointF(10.5 * u, 8 * u)]))  # its roof
        painter.drawRect(QtCore.QRectF(7.5 * u, 10 * u, u, 2 * u))  # the door
        painter.drawEllipse(QtCore.QPointF(3 * u, 3 * u), 1.3 * u, 1.3 * u)  # the sun
    finally:
        painter.end()
    return qimage_to_gray(image)


class ImagePanel(Panel):
    """Sketch → control map → generation, with gallery, PNG metadata export and model choice."""

    key: ClassVar[str] = "image"
    title: ClassVar[str] = "Image"
    #: The screenshot waits for the demo generation to finish (``demo_ready``: not active).
    demo_frames: ClassVar[int] = 1_000_000

    def __init__(self, device: torch.device | None = None, parent: QtWidgets.QWidget | None = None,
                 generator: Any | None = None) -> None:
        super().__init__(device, parent)
        self.loader = GeneratorLoader(self.device)
        self.generator: Any | None = None
        self._choice: tuple[str, ...] = BUNDLED
        self._pending: tuple[str, ...] | None = None  # a model being switched to
        self._load_tried: set[tuple[str, ...]] = set()
        self._run_id = 0
        self._recorded: set[int] = set()
        self.results: list[Result] = []
        self.current: Result | None = None
        self._last_dir = ""
        self.control_map: np.ndarray | None = None  # the exact map the model would receive now
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        # Each column scrolls rather than imposing its minimum size on the window (which must
        # still shrink to a laptop's half screen).
        body.addWidget(_scrolled(self._build_sketch_side(), 200))
        body.addWidget(self._build_controls())
        body.addWidget(_scrolled(self._build_results(), 200))
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 2)
        body.setStretchFactor(2, 3)
        body.setSizes([460, 360, 460])
        self.set_body(body)
        self.runner.state_changed.connect(self._update_buttons)
        self.runner.finished.connect(self._on_finished)
        self._update_buttons()
        if generator is not None:
            self.set_generator(generator)
        self._update_model_info()
        self.update_control_preview()

    # =============================================================== building
    def _build_sketch_side(self) -> QtWidgets.QWidget:
        side = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(side)
        lay.setContentsMargins(0, 0, 0, 0)
        tools = QtWidgets.QHBoxLayout()
        self.pen_button = QtWidgets.QToolButton()
        self.pen_button.setText("✎ Pen")
        self.pen_button.setCheckable(True)
        self.pen_button.setChecked(True)
        self.pen_button.setToolTip("Draw black lines (the usual way to sketch)")
        self.eraser_button = QtWidgets.QToolButton()
        self.eraser_button.setText("Eraser")
        self.eraser_button.setCheckable(True)
        self.eraser_button.setToolTip("Paint white: remove lines")
        group = QtWidgets.QButtonGroup(side)
        group.setExclusive(True)
        group.addButton(self.pen_button)
        group.addButton(self.eraser_button)
        self.brush_spin = QtWidgets.QSpinBox()
        self.brush_spin.setRange(1, 64)
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setToolTip("Brush size in canvas pixels (the mouse wheel over the canvas too)")
        undo = QtWidgets.QToolButton()
        undo.setText("↶")
        undo.setToolTip("Undo (Ctrl+Z, canvas focused)")
        redo = QtWidgets.QToolButton()
        redo.setText("↷")
        redo.setToolTip("Redo (Ctrl+Shift+Z)")
        clear = QtWidgets.QToolButton()
        clear.setText("Clear")
        clear.setToolTip("Clear the canvas (Delete); undoable")
        load = QtWidgets.QToolButton()
        load.setText("Load…")
        load.setToolTip("Put a PNG / JPEG / WebP picture on the canvas (as grayscale); undoable")
        for w in (self.pen_button, self.eraser_button, self.brush_spin, undo, redo, clear, load):
            tools.addWidget(w)
        tools.addStretch(1)
        lay.addLayout(tools)
        self.canvas = SketchCanvas()
        self.brush_spin.setValue(self.canvas.brush_size)
        lay.addWidget(self.canvas, 3)
        self.sketch_notice = QtWidgets.QLabel("")
        self.sketch_notice.setWordWrap(True)
        lay.addWidget(self.sketch_notice)
        self.eraser_button.toggled.connect(self.canvas.set_eraser)
        self.canvas.eraser_changed.connect(self._sync_eraser)
        self.brush_spin.valueChanged.connect(self.canvas.set_brush_size)
        self.canvas.brush_size_changed.connect(self._sync_brush)
        undo.clicked.connect(self.canvas.undo)
        redo.clicked.connect(self.canvas.redo)
        clear.clicked.connect(self.canvas.clear)
        load.clicked.connect(lambda: self.load_sketch_image())
        self.canvas.changed.connect(self.update_control_preview)

        pre_box = QtWidgets.QGroupBox("Control map")
        grid = QtWidgets.QGridLayout(pre_box)
        self.preprocessor = QtWidgets.QComboBox()
        for key, label in PREPROCESSORS.items():
            self.preprocessor.addItem(label, key)
        self.preprocessor.setToolTip("Canny: edges of the sketch or photo. Scribble: your lines as drawn.")
        self.low = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.high = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        for s, v in ((self.low, 100), (self.high, 200)):
            s.setRange(0, 255)
            s.setValue(v)
        self.low.setToolTip("Canny low threshold: weaker edges connected to strong ones are kept above it")
        self.high.setToolTip("Canny high threshold: edges stronger than this always count; "
                             "raise it for fewer lines")
        self.low_label = QtWidgets.QLabel()
        self.high_label = QtWidgets.QLabel()
        self.invert = QtWidgets.QCheckBox("Invert")
        self.invert.setToolTip("The model wants white lines on black. The polarity is detected; tick this "
                               "if the detection got it wrong (scribble only: edges have no polarity).")
        self.polarity = QtWidgets.QLabel()
        self.polarity.setWordWrap(True)
        self.resize_mode = QtWidgets.QComboBox()
        for key, label in RESIZE_LABELS.items():
            self.resize_mode.addItem(label, key)
        self.resize_mode.setToolTip("How a non-square sketch becomes the model's square map")
        for combo in (self.preprocessor, self.resize_mode):
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        self.preview = ImageView("control map")
        self.preview.setMinimumSize(112, 112)
        self.preview.setToolTip("Exactly the map the model receives (after resizing to its resolution)")
        self.preview_caption = QtWidgets.QLabel()
        self.preview_caption.setWordWrap(True)
        grid.addWidget(QtWidgets.QLabel("Preprocessor"), 0, 0)
        grid.addWidget(self.preprocessor, 0, 1, 1, 2)
        grid.addWidget(QtWidgets.QLabel("Low"), 1, 0)
        grid.addWidget(self.low, 1, 1)
        grid.addWidget(self.low_label, 1, 2)
        grid.addWidget(QtWidgets.QLabel("High"), 2, 0)
        grid.addWidget(self.high, 2, 1)
        grid.addWidget(self.high_label, 2, 2)
        grid.addWidget(self.polarity, 3, 0, 1, 2)
        grid.addWidget(self.invert, 3, 2)
        grid.addWidget(QtWidgets.QLabel("Resize"), 4, 0)
        grid.addWidget(self.resize_mode, 4, 1, 1, 2)
        grid.addWidget(self.preview, 0, 3, 5, 1)
        grid.addWidget(self.preview_caption, 5, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        for w in (self.preprocessor, self.resize_mode):
            w.currentIndexChanged.connect(self.update_control_preview)
        for s in (self.low, self.high):
            s.valueChanged.connect(self.update_control_preview)
        self.invert.toggled.connect(self.update_control_preview)
        lay.addWidget(pre_box, 2)
        return side

    def _build_controls(self) -> QtWidgets.QWidget:
        inner = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(inner)
        self.model = QtWidgets.QComboBox()
        self.model.addItem("Bundled (offline)", "bundled")
        self.model.addItem("Stable Diffusion (local folders)…", "sd")
        self.model.setToolTip("Which model generates: the small bundled one (offline, 32×32 scenes), or "
                              "Stable Diffusion 1.5 + ControlNet canny from folders on this computer")
        self.model.activated.connect(self._on_model_chosen)
        self.model_info = QtWidgets.QLabel()
        self.model_info.setWordWrap(True)
        form.addRow("Model", self.model)
        form.addRow(self.model_info)
        self.prompt = QtWidgets.QLineEdit()
        self.prompt.setPlaceholderText("what to draw, e.g. a red house under a day sky")
        self.prompt.setToolTip("What the image should show. The bundled model knows only the words "
                               "listed below; unknown words are ignored and shown in red.")
        self.prompt.textChanged.connect(self._check_prompt)
        form.addRow("Prompt", self.prompt)
        self.vocab = QtWidgets.QLabel()
        self.vocab.setWordWrap(True)
        self.vocab.setToolTip("Click a word to add it to the prompt")
        self.vocab.linkActivated.connect(self.add_word)
        form.addRow(self.vocab)
        self.unknown = QtWidgets.QLabel()
        self.unknown.setWordWrap(True)
        self.unknown.setStyleSheet("color: #e05050;")
        form.addRow(self.unknown)
        self.negative = QtWidgets.QLineEdit()
        self.negative.setToolTip("What the image should NOT show: classifier-free guidance pushes away "
                                 "from it instead of from the empty prompt")
        form.addRow("Negative", self.negative)
        seed_row = QtWidgets.QHBoxLayout()
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setMinimumWidth(80)  # not the width of ten digits: the column must fit a laptop
        self.seed.setToolTip("The starting noise: the same seed and settings give the same image")
        self.random_seed = QtWidgets.QCheckBox("random")
        self.random_seed.setChecked(True)
        self.random_seed.setToolTip("Pick a new seed for every Generate (the seed used is shown here)")
        dice = QtWidgets.QToolButton()
        dice.setText("⚄ Roll")
        dice.setToolTip("Roll a new seed now (and keep it fixed)")
        dice.clicked.connect(self.roll_seed)
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        seed_row.addWidget(dice)
        form.addRow("Seed", seed_row)
        self.steps = QtWidgets.QSpinBox()
        self.steps.setRange(1, 200)
        self.steps.setValue(20)
        self.steps.setToolTip("Denoising steps: more is slower and (up to a point) cleaner")
        form.addRow("Steps", self.steps)
        self.cfg = self._double(0.0, 20.0, 0.5, 5.0,
                                "Classifier-free guidance scale: how strongly to follow the prompt "
                                "(1 = no guidance; high values oversaturate)")
        form.addRow("CFG scale", self.cfg)
        self.control_scale = self._double(0.0, 2.0, 0.05, 1.0,
                                          "ControlNet conditioning scale: how strongly the lines steer "
                                          "the image (0 = ignore the sketch)")
        form.addRow("Control scale", self.control_scale)
        self.control_start = self._double(0.0, 1.0, 0.05, 0.0,
                                          "Control guidance start: the fraction of the steps after which "
                                          "the ControlNet starts to act")
        self.control_end = self._double(0.0, 1.0, 0.05, 1.0,
                                        "Control guidance end: the fraction of the steps after which the "
                                        "ControlNet stops (early stop = looser lines, finer detail)")
        form.addRow("Control start", self.control_start)
        form.addRow("Control end", self.control_end)
        self.control_mode = QtWidgets.QComboBox()
        for key in CONTROL_MODES:
            self.control_mode.addItem(CONTROL_MODE_LABELS.get(key, key), key)
        self.control_mode.setToolTip("Balanced: ControlNet on both guidance branches. Prompt more important: "
                                     "weaker, fading control. ControlNet more important: control on the "
                                     "conditional branch only, so guidance amplifies it")
        form.addRow("Control mode", self.control_mode)
        self.scheduler = QtWidgets.QComboBox()
        for key in SCHEDULERS:
            self.scheduler.addItem(SCHEDULER_LABELS.get(key, key), key)
        self.scheduler.setToolTip("The sampler: DDIM (deterministic), Euler (ODE), DPM++ (fewer steps)")
        form.addRow("Scheduler", self.scheduler)
        self.batch = QtWidgets.QSpinBox()
        self.batch.setRange(1, 8)
        self.batch.setToolTip("How many images per Generate (seeds seed, seed+1, …)")
        form.addRow("Batch", self.batch)
        for combo in (self.model, self.control_mode, self.scheduler):
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        buttons = QtWidgets.QHBoxLayout()
        self.generate_button = QtWidgets.QPushButton("Generate")
        self.generate_button.setToolTip("Run the model on the control map and prompt (Space)")
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step; the panel stays ready")
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        form.addRow(buttons)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("step %v / %m")
        form.addRow(self.progress)
        self.notice = QtWidgets.QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #d0a040;")
        self.notice.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.notice)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(220)
        return scroll

    @staticmethod
    def _double(lo: float, hi: float, step: float, value: float, tip: str) -> QtWidgets.QDoubleSpinBox:
        s = QtWidgets.QDoubleSpinBox()
        s.setRange(lo, hi)
        s.setSingleStep(step)
        s.setDecimals(2)
        s.setValue(value)
        s.setToolTip(tip)
        return s

    def _build_results(self) -> QtWidgets.QWidget:
        side = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(side)
        lay.setContentsMargins(0, 0, 0, 0)
        self.views = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.views)
        row.setContentsMargins(0, 0, 0, 0)
        self.xt_view = ImageView("x_t")
        self.xt_view.setToolTip("The current noisy image x_t the sampler holds")
        self.x0_view = ImageView("x₀")
        self.x0_view.setToolTip("The model's current prediction of the clean image x₀ from x_t")
        row.addWidget(_titled("x_t (noisy, now)", self.xt_view), 1)
        row.addWidget(_titled("predicted x₀", self.x0_view), 1)
        lay.addWidget(self.views, 3)
        self.result_view = ImageView("result")
        self.result_view.setToolTip("The finished image(s) of the selected run")
        lay.addWidget(_titled("Result", self.result_view), 2)
        self.gallery = QtWidgets.QListWidget()
        self.gallery.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QtCore.QSize(72, 72))
        self.gallery.setResizeMode(QtWidgets.QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QtWidgets.QListView.Movement.Static)
        self.gallery.setFlow(QtWidgets.QListView.Flow.LeftToRight)
        self.gallery.setWrapping(True)
        self.gallery.setMaximumHeight(200)
        self.gallery.setMinimumHeight(110)
        self.gallery.setToolTip("History: click an image to see it and restore its parameters")
        self.gallery.itemClicked.connect(self._on_gallery_clicked)
        lay.addWidget(_titled("History", self.gallery), 1)
        buttons = QtWidgets.QHBoxLayout()
        save = QtWidgets.QPushButton("Save PNG…")
        save.setToolTip("Save the selected result as PNG with every parameter embedded as text")
        save.clicked.connect(lambda: self.export_image())
        strip = QtWidgets.QPushButton("Save denoising…")
        strip.setToolTip("Save the denoising sequence: a strip PNG (x_t above, x̂₀ below) or an animated GIF")
        strip.clicked.connect(lambda: self.export_denoising())
        params = QtWidgets.QPushButton("Load parameters from PNG…")
        params.setToolTip("Restore the prompt, seed, steps, scales… from a PNG saved here")
        params.clicked.connect(lambda: self.load_parameters())
        for b in (save, strip, params):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        return side

    # ======================================================= sketch and map
    def _sync_eraser(self, on: bool) -> None:
        (self.eraser_button if on else self.pen_button).setChecked(True)

    def _sync_brush(self, size: int) -> None:
        self.brush_spin.blockSignals(True)
        self.brush_spin.setValue(size)
        self.brush_spin.blockSignals(False)

    def control_settings(self) -> ControlSettings:
        return ControlSettings(
            preprocessor=str(self.preprocessor.currentData()),
            low=int(self.low.value()),
            high=int(self.high.value()),
            invert=self.invert.isChecked(),
            resize_mode=str(self.resize_mode.currentData()),
        )

    def resolution(self) -> int:
        """The model's map size: the loaded model's, else the usual one for the chosen kind."""
        if self.generator is not None:
            return int(self.generator.resolution)
        return DEFAULT_RESOLUTION.get(self._choice[0], 32)

    def update_control_preview(self) -> None:
        """Recompute and show the exact control map (a few ms: Canny + resize)."""
        settings = self.control_settings()
        canny = settings.preprocessor == "canny"
        self.low.setEnabled(canny)
        self.high.setEnabled(canny)
        self.invert.setEnabled(not canny)
        self.low_label.setText(str(settings.low))
        self.high_label.setText(str(settings.high))
        sketch = self.canvas.image()
        dark = detect_dark_lines(sketch)
        found = "black lines on white" if dark else "white lines on black"
        if not canny:
            flipped = dark != settings.invert
            found += " → inverted" if flipped else " → used as is"
        self.polarity.setText(f"Detected: {found}")
        res = self.resolution()
        if self.canvas.is_empty():
            self.control_map = None
            self.preview.set_array(np.zeros((res, res), np.uint8))
            self.preview_caption.setText(f"Empty sketch: Generate runs unconditioned ({res}×{res} model).")
            return
        self.control_map = make_control(sketch, settings, res)
        lit = float((self.control_map > 127).mean())
        self.preview.set_array(self.control_map)
        w, h = self.canvas.image_size()
        self.preview_caption.setText(
            f"What the model receives: {res}×{res} from the {w}×{h} sketch ({lit:.1%} of pixels are lines)"
            + ("" if self.generator is not None else " — model not loaded yet"))

    def load_sketch_image(self, path: str | Path | None = None) -> bool:
        """Put a picture on the canvas; on failure say why and keep the sketch."""
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Load an image onto the canvas", self._last_dir,
                "Images (*.png *.jpg *.jpeg *.webp *.bmp);;All files (*)")
            if not path:
                return False
        try:
            rgb, notice = image_io.load_image(path, max_side=CANVAS_MAX_SIDE)
        except ValueError as exc:
            self.show_error(f"{exc} The sketch was kept.")
            return False
        self._last_dir = str(Path(path).parent)
        self.canvas.set_image(pre.to_gray(rgb))
        self.sketch_notice.setText(notice or f"Loaded {Path(path).name} ({rgb.shape[1]}×{rgb.shape[0]}).")
        self.banner.hide()
        return True

    # ============================================================ prompt
    def _update_model_info(self) -> None:
        gen = self.generator
        if gen is None:
            self.model_info.setText("<i>Not loaded yet (loads on first Generate).</i>")
            self.vocab.setText("<i>The model's vocabulary appears once it is loaded.</i>")
        else:
            self.model_info.setText(f"<b>{gen.name}</b>, {gen.resolution}×{gen.resolution}")
            vocab = gen.vocabulary()
            if vocab:
                links = " ".join(f'<a href="{w}">{w}</a>' for w in vocab)
                self.vocab.setText(f"<small>Known words (click to add): {links}</small>")
            else:
                self.vocab.setText("<small>Any words (this model has an open vocabulary).</small>")
        self._check_prompt()

    def add_word(self, word: str) -> None:
        text = self.prompt.text().rstrip()
        self.prompt.setText(f"{text} {word}" if text else word)

    def _check_prompt(self) -> None:
        gen = self.generator
        bad = gen.unknown_words(self.prompt.text()) if gen is not None else []
        self.unknown.setText(f"Not in the vocabulary (ignored): {', '.join(bad)}" if bad else "")

    def roll_seed(self) -> None:
        self.random_seed.setChecked(False)
        self.seed.setValue(random.randrange(0, 2**31 - 1))

    # ============================================================ parameters
    def params(self) -> GenerationParams:
        return GenerationParams(
            prompt=self.prompt.text().strip(),
            negative_prompt=self.negative.text().strip(),
            seed=int(self.seed.value()),
            steps=int(self.steps.value()),
            cfg_scale=float(self.cfg.value()),
            control_scale=float(self.control_scale.value()),
            control_start=float(self.control_start.value()),
            control_end=float(self.control_end.value()),
            control_mode=str(self.control_mode.currentData()),
            scheduler=str(self.scheduler.currentData()),
            batch_size=int(self.batch.value()),
        )

    def apply_params(self, p: GenerationParams) -> None:
        """Show ``p`` in the controls; the seed becomes fixed so Generate reproduces it."""
        self.prompt.setText(p.prompt)
        self.negative.setText(p.negative_prompt)
        self.random_seed.setChecked(False)
        self.seed.setValue(int(p.seed))
        self.steps.setValue(int(p.steps))
        self.cfg.setValue(float(p.cfg_scale))
        self.control_scale.setValue(float(p.control_scale))
        self.control_start.setValue(float(p.control_start))
        self.control_end.setValue(float(p.control_end))
        for combo, value in ((self.control_mode, p.control_mode), (self.scheduler, p.scheduler)):
            i = combo.findData(value)
            if i >= 0:
                combo.setCurrentIndex(i)
        self.batch.setValue(int(p.batch_size))

    # ============================================================ model choice
    def set_generator(self, generator: Any, choice: tuple[str, ...] = ("custom",)) -> None:
        """Use an already-built generator (tests, scripting) without loading anything."""
        self.loader.put(choice, generator)
        self._choice = choice
        self.generator = generator
        self._update_model_info()
        self.update_control_preview()

    def _sync_model_combo(self) -> None:
        i = self.model.findData("sd" if self._choice[0] == "sd" else "bundled")
        self.model.blockSignals(True)
        self.model.setCurrentIndex(i)
        self.model.blockSignals(False)
        self.model.setToolTip(self.model.toolTip().split("\n")[0] + (
            f"\nSD: {self._choice[1]}\nControlNet: {self._choice[2]}" if self._choice[0] == "sd" else ""))

    def _on_model_chosen(self, index: int) -> None:
        if self.model.itemData(index) == "sd":
            self.choose_stable_diffusion()
        elif self._choice[0] != "bundled":
            self.select_generator(BUNDLED)

    def choose_stable_diffusion(self, sd_folder: str | None = None,
                                controlnet_folder: str | None = None) -> None:
        """Ask for the two diffusers folders (unless given), then load them in the worker."""
        if sd_folder is None:
            sd_folder = QtWidgets.QFileDialog.getExistingDirectory(
                self, "Stable Diffusion 1.5 folder (diffusers layout, with model_index.json)", self._last_dir)
        if sd_folder and controlnet_folder is None:
            controlnet_folder = QtWidgets.QFileDialog.getExistingDirectory(
                self, "ControlNet (canny) folder (diffusers layout, with config.json)", sd_folder)
        if not sd_folder or not controlnet_folder:
            self._sync_model_combo()  # cancelled: nothing changes
            return
        self.select_generator(("sd", str(sd_folder), str(controlnet_folder)))

    def select_generator(self, choice: tuple[str, ...]) -> None:
        """Switch models: loaded off the GUI thread; on failure the previous one stays."""
        self._pending = choice
        self.notice.setText("Loading the model…")
        self._start_job(choice, None, None)

    def _start_job(self, choice: tuple[str, ...], sketch: np.ndarray | None,
                   params: GenerationParams | None) -> Iterator[Frame | None]:
        self._run_id += 1
        self.loader.device = self.device
        job = generation_job(self.loader, self._run_id, choice, sketch, self.control_settings(), params)
        if params is None:  # a load: not a generation, so don't go through Panel.start
            self.runner.start(job)
        return job

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        # Lazy load: the first time the panel is seen, not at app start.
        if self.generator is None and self._choice not in self._load_tried and not self.runner.is_active:
            self._load_tried.add(self._choice)
            QtCore.QTimer.singleShot(0, self._preload)

    def _preload(self) -> None:
        if self.generator is None and not self.runner.is_active:
            self._start_job(self._choice, None, None)

    # ============================================================ generation
    def make_job(self) -> Any | None:
        """The generation job (Generate, Space, →): sketch and settings are captured now."""
        if self.random_seed.isChecked():
            self.seed.setValue(random.randrange(0, 2**31 - 1))
        params = self.params()
        try:
            params.validate()  # say it here, before a thread starts, in the user's terms
        except ValueError as exc:
            self.show_error(f"Cannot generate: {exc}.")
            return None
        sketch = None if self.canvas.is_empty() else self.canvas.image()
        loading = "" if self.generator is not None else "Loading the model… "
        self.notice.setText(loading + (UNCONDITIONED if sketch is None else "Generating…"))
        self.progress.setRange(0, params.steps)
        self.progress.setValue(0)
        self._pending = None
        return self._start_job(self._choice, sketch, params)

    def generate(self) -> None:
        self.start()

    def cancel(self) -> None:
        if self.runner.is_active:
            self.runner.cancel(wait=False)
            self.notice.setText(f"Cancelled at step {self.progress.value()} of {self.progress.maximum()}; "
                                "ready for the next run.")

    def draw(self, frame: Frame) -> None:
        if frame.error:
            self._on_load_error(frame.choice, frame.error)
            return
        if frame.generator is not None and frame.generator is not self.generator:
            self.generator = frame.generator
            self._choice = frame.choice
            self._pending = None
            self._sync_model_combo()
            self._update_model_info()
            self.update_control_preview()
            if frame.step is None:
                self.notice.setText(f"Model ready: {frame.generator.name}.")
        step = frame.step
        if step is None:
            return
        self.xt_view.set_array(step.xt[0])
        self.x0_view.set_array(step.x0[0])
        self.progress.setRange(0, max(1, step.total))
        self.progress.setValue(step.total if step.done else min(step.step, step.total))
        if frame.notice:
            self.notice.setText(frame.notice)
        elif not step.done:
            self.notice.setText(f"Step {step.step} of {step.total} ({step.seconds:.2f} s)")
        if step.done and step.images is not None and frame.run not in self._recorded and frame.params:
            self._recorded.add(frame.run)
            self._add_result(Result(frame.params, np.asarray(step.images), frame.trail_xt, frame.trail_x0,
                                    str(frame.generator.name if frame.generator else "?"),
                                    (frame.settings or self.control_settings()).describe()))
            done = f"Done: {step.total} steps in {step.seconds:.1f} s (seed {frame.params.seed})."
            self.notice.setText(f"{done} {frame.notice}".strip())

    def _on_load_error(self, choice: tuple[str, ...], message: str) -> None:
        self.show_error(message)
        self.notice.setText("")
        if choice == self._choice and choice != BUNDLED and self.generator is None:
            self._choice = BUNDLED  # a remembered SD folder that is gone: fall back
        self._pending = None
        self._sync_model_combo()
        self._update_model_info()
        if self.generator is None:
            self.model_info.setText("<i>Not loaded: see the message above. Generate tries again.</i>")

    def _on_finished(self) -> None:
        self._update_buttons()

    def _update_buttons(self, _state: str | None = None) -> None:
        active = self.runner.is_active
        self.generate_button.setEnabled(not active)
        self.cancel_button.setEnabled(active)
        self.model.setEnabled(not active)

    # ================================================================ gallery
    def _add_result(self, result: Result) -> None:
        self.results.append(result)
        self.current = result
        grid = image_io.strip_frames(list(result.images), gap=2, max_frames=len(result.images))
        self.result_view.set_array(grid)
        icon = QtGui.QPixmap.fromImage(_rgb_qimage(result.images[0]).scaled(
            72, 72, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
            QtCore.Qt.TransformationMode.FastTransformation))
        p = result.params
        item = QtWidgets.QListWidgetItem(QtGui.QIcon(icon), f"#{len(self.results)} s{p.seed}")
        item.setData(QtCore.Qt.ItemDataRole.UserRole, len(self.results) - 1)
        item.setToolTip("\n".join(f"{k}: {v}" for k, v in result.metadata().items() if k != "software"))
        self.gallery.addItem(item)
        self.gallery.setCurrentItem(item)

    def _on_gallery_clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        self.show_result(int(item.data(QtCore.Qt.ItemDataRole.UserRole)))

    def show_result(self, index: int) -> None:
        """Show a past result and put its parameters back in the controls."""
        result = self.results[index]
        self.current = result
        self.apply_params(result.params)
        self.result_view.set_array(image_io.strip_frames(list(result.images), gap=2,
                                                         max_frames=len(result.images)))
        if result.trail_xt:
            self.xt_view.set_array(result.trail_xt[-1])
            self.x0_view.set_array(result.trail_x0[-1])
        self.notice.setText(f"Parameters of #{index + 1} restored ({result.model}).")

    # ================================================================ files
    def _ask_save(self, title: str, filters: str, name: str) -> str | None:
        start = str(Path(self._last_dir) / name)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, title, start, filters)
        return path or None

    def export_image(self, path: str | Path | None = None) -> Path | None:
        """The selected result as PNG, every parameter embedded as text (atomic)."""
        result = self.current
        if result is None:
            self.show_error("Nothing to save yet: press Generate first.")
            return None
        if path is None:
            path = self._ask_save("Save image with parameters", "PNG image (*.png)",
                                  f"playground-{result.params.seed}.png")
            if path is None:
                return None
        grid = image_io.strip_frames(list(result.images), gap=2, max_frames=len(result.images))
        try:
            out = image_io.save_png_with_metadata(path, grid, result.metadata())
        except ExportError as exc:
            self.show_error(str(exc))
            return None
        self._last_dir = str(out.parent)
        self.notice.setText(f"Saved {out.name} with its parameters.")
        return out

    def export_denoising(self, path: str | Path | None = None) -> Path | None:
        """The denoising sequence: a strip PNG (x_t over x̂₀) or, for ``.gif``, an animation."""
        result = self.current
        if result is None or not result.trail_xt:
            self.show_error("Nothing to save yet: press Generate first.")
            return None
        if path is None:
            path = self._ask_save("Save the denoising sequence", "Strip PNG (*.png);;Animated GIF (*.gif)",
                                  f"denoising-{result.params.seed}.png")
            if path is None:
                return None
        target = Path(path)
        scale = max(1, 128 // max(1, result.trail_xt[0].shape[0]))  # tiny images: enlarge, no blur
        try:
            if target.suffix.lower() == ".gif":
                frames = [np.concatenate([a, b], axis=1).repeat(scale, 0).repeat(scale, 1)
                          for a, b in zip(result.trail_xt, result.trail_x0, strict=True)]
                out = save_gif(frames, target, fps=8)
            else:
                top = image_io.strip_frames(result.trail_xt)
                bottom = image_io.strip_frames(result.trail_x0)
                both = np.concatenate([top, np.full((2, top.shape[1], 3), 255, np.uint8), bottom])
                out = image_io.save_png_with_metadata(target, both.repeat(scale, 0).repeat(scale, 1),
                                                      result.metadata())
        except (ExportError, ValueError) as exc:
            self.show_error(str(exc))
            return None
        self._last_dir = str(out.parent)
        self.notice.setText(f"Saved {out.name}.")
        return out

    def load_parameters(self, path: str | Path | None = None) -> GenerationParams | None:
        """Restore parameters from a PNG this panel saved."""
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load parameters from PNG", self._last_dir,
                                                            "PNG image (*.png)")
            if not path:
                return None
        try:
            meta = image_io.read_png_metadata(path)
            params = params_from_metadata(meta)
        except (ValueError, TypeError) as exc:
            self.show_error(f"Cannot load parameters from {Path(path).name}: {exc}")
            return None
        self.apply_params(params)
        model = meta.get("model", "")
        here = self.generator.name if self.generator is not None else ""
        extra = ""
        if model and here and model != here:
            extra = f" It was made with {model}; the current model is {here}."
        self.notice.setText(f"Parameters loaded from {Path(path).name}.{extra}")
        self.banner.hide()
        return params

    # ================================================================ panel API
    def export_widget(self) -> QtWidgets.QWidget:
        return self.views

    def start_demo(self) -> None:
        """A pen sketch of a house under the sun, a prompt in the bundled vocabulary, Generate."""
        if self.canvas.is_empty():
            self.canvas.set_image(demo_sketch())
            self.preprocessor.setCurrentIndex(self.preprocessor.findData("scribble"))
            self.prompt.setText(DEMO_PROMPT)
        self.random_seed.setChecked(False)
        self.steps.setValue(12)  # the screenshot must finish on a busy CPU too
        self.start()

    def save_state(self) -> dict[str, Any]:
        s = self.control_settings()
        state: dict[str, Any] = {
            "params": self.params().to_metadata(),
            "random_seed": self.random_seed.isChecked(),
            "control": {f.name: getattr(s, f.name) for f in fields(s)},
            "model": list(self._choice) if self._choice[0] in ("bundled", "sd") else list(BUNDLED),
            "brush": self.canvas.brush_size,
        }
        if not self.canvas.is_empty():
            png = _array_to_png_bytes(self.canvas.image())
            if len(png) <= MAX_SAVED_SKETCH:
                state["sketch_png"] = bytes(QtCore.QByteArray(png).toBase64().data()).decode("ascii")
        return state

    def restore_state(self, state: dict[str, Any]) -> None:
        params = state.get("params")
        if isinstance(params, dict):
            with contextlib.suppress(ValueError, TypeError):  # an old or hand-edited state
                self.apply_params(params_from_metadata({str(k): str(v) for k, v in params.items()}))
        if isinstance(state.get("random_seed"), bool):
            self.random_seed.setChecked(state["random_seed"])
        control = state.get("control")
        if isinstance(control, dict):
            combo_values = (("preprocessor", self.preprocessor), ("resize_mode", self.resize_mode))
            for key, combo in combo_values:
                i = combo.findData(control.get(key))
                if i >= 0:
                    combo.setCurrentIndex(i)
            for key, slider in (("low", self.low), ("high", self.high)):
                if isinstance(control.get(key), int):
                    slider.setValue(control[key])
            if isinstance(control.get("invert"), bool):
                self.invert.setChecked(control["invert"])
        model = state.get("model")
        if (isinstance(model, list) and len(model) == 3 and model[0] == "sd"
                and all(isinstance(v, str) for v in model)):
            self._choice = tuple(model)  # loaded lazily, like the bundled one
            self._sync_model_combo()
        if isinstance(state.get("brush"), int):
            self.canvas.set_brush_size(state["brush"])
        sketch = state.get("sketch_png")
        if isinstance(sketch, str) and sketch:
            image = QtGui.QImage.fromData(QtCore.QByteArray.fromBase64(sketch.encode("ascii")), "PNG")
            if not image.isNull():

                self.canvas.set_image(qimage_to_gray(image))
        self.update_control_preview()
