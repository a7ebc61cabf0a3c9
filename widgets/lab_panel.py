"""The 2D Lab, part 1: exact forward marginals, exact fields and the exact ODE, on toy data.

What the user does here: pick a data set (or draw one, or load an image or a point file),
scrub t to watch the forward process blur the data into N(0, I) and back, switch on the
exact vector field and the target density, and press Play to watch a *perfect* model carry
noise onto the data along the probability-flow ODE. Exact oracles exist only for Gaussian
mixtures, which the panel says plainly for the other data sets; learned models come with
the training views.

All numbers come from ``engines`` (``engines.lab_views``, ``engines.toy_data``,
``engines.gmm``): this module only wires controls to them and draws. The ODE runs in the
panel's runner; a t-slider drag recomputes an O(particles) array interpolation and a 441-point
field, both sub-millisecond, so they run directly and never queue stale work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engines import lab_views as lv
from engines import toy_data
from engines.gmm import GaussianMixture
from engines.jobs import ParamBox
from engines.lab_views import LabSnapshot
from widgets.panel import Panel
from widgets.plots import ArrowFieldItem, DensityImageItem, TrajectoryItem
from widgets.points import PointCloudItem

DRAW = "draw your own"
IMAGE = "image as density"
IMPORT = "import points…"
DATASET_CHOICES: tuple[str, ...] = (*toy_data.DATASETS, DRAW, IMAGE, IMPORT)
PROCESS_CHOICES: dict[str, str] = {"Diffusion (VP)": "vp", "Rectified flow": "rf"}

#: Canvas for drawn and image densities (data units), a bit larger than N(0, I)'s bulk.
CANVAS: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0)
BRUSH_SIGMA = 0.18
T_STEPS = 1000  # t slider resolution

NOTES: dict[str, str] = {
    "vp": (
        "<b>Diffusion (VP).</b> Forward: x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + "
        "√(1−ᾱ<sub>t</sub>) ε, data at t = 0, pure noise N(0, I) at t = 1 (cosine ᾱ). "
        "Arrows: the exact score ∇log p<sub>t</sub>(x), pointing to where p<sub>t</sub> grows. "
        "Play runs the probability-flow ODE dx = −½β(t)[x + ∇log p<sub>t</sub>(x)] dt backwards "
        "from t = 1 (DDIM steps with the exact E[x<sub>0</sub>|x<sub>t</sub>])."
    ),
    "rf": (
        "<b>Rectified flow.</b> x<sub>t</sub> = (1−t) x<sub>0</sub> + t x<sub>1</sub>, noise "
        "x<sub>0</sub> ~ N(0, I) at t = 0, data x<sub>1</sub> at t = 1. Arrows: the exact "
        "velocity v(x, t) = E[x<sub>1</sub> − x<sub>0</sub> | x<sub>t</sub> = x]. Play "
        "integrates dx/dt = v(x, t) (Euler) from t = 0 to 1."
    ),
}
NO_ORACLE = (
    "<i>Exact oracles (field, ODE) exist only for Gaussian mixtures (8gaussians, "
    "25gaussians); for this data set the t slider still shows the exact forward process. "
    "Learned models come with training.</i>"
)


@contextmanager
def _signals_blocked(obj: QtCore.QObject) -> Iterator[None]:
    """``blockSignals`` for a block. Not ``QSignalBlocker`` as a context manager: in PySide6
    6.12 its ``__exit__`` over-releases ``None`` and aborts the interpreter after a few
    thousand uses ("none_dealloc")."""
    was = obj.blockSignals(True)
    try:
        yield
    finally:
        obj.blockSignals(was)


class BrushFilter(QtCore.QObject):
    """Turns left-drags on the plot's viewport into strokes in data coordinates.

    An event filter rather than a ViewBox subclass: it swallows the drag only in brush mode,
    so panning and zooming keep working otherwise.
    """

    stroke_finished = QtCore.Signal(object)  # (m, 2) float64 array
    stroke_moved = QtCore.Signal(object)

    def __init__(self, plot: pg.PlotWidget) -> None:
        super().__init__(plot)
        self.plot = plot
        self.enabled = False
        self._stroke: list[tuple[float, float]] | None = None

    def _to_data(self, pos: QtCore.QPointF) -> tuple[float, float]:
        scene = self.plot.mapToScene(pos.toPoint())
        p = self.plot.getPlotItem().vb.mapSceneToView(scene)
        return float(p.x()), float(p.y())

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:
        if not self.enabled:
            return False
        if not isinstance(event, QtGui.QMouseEvent):
            return False
        kind = event.type()
        if kind == QtCore.QEvent.Type.MouseButtonPress:
            if event.button() != QtCore.Qt.MouseButton.LeftButton:
                return False
            self._stroke = [self._to_data(event.position())]
            self.stroke_moved.emit(np.array(self._stroke))
            return True
        if kind == QtCore.QEvent.Type.MouseMove and self._stroke is not None:
            self._stroke.append(self._to_data(event.position()))
            self.stroke_moved.emit(np.array(self._stroke))
            return True
        if kind == QtCore.QEvent.Type.MouseButtonRelease and self._stroke is not None:
            self._stroke.append(self._to_data(event.position()))
            stroke, self._stroke = np.array(self._stroke, dtype=np.float64), None
            self.stroke_finished.emit(stroke)
            return True
        return False


class LabPanel(Panel):
    """Exact forward process, exact field and exact ODE for 2-D generative models."""

    key: ClassVar[str] = "lab"
    title: ClassVar[str] = "2D Lab"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params = ParamBox(speed=1.0)
        self._data = np.zeros((0, 2), np.float32)  # target samples (the data end)
        self._noise = np.zeros((0, 2), np.float32)  # the coupled noise end
        self._gmm: GaussianMixture | None = None
        self._extent: tuple[float, float, float, float] = CANVAS
        self._density: np.ndarray | None = None  # image-oriented target density
        self._strokes: list[np.ndarray] = []
        self._source = "8gaussians"  # what the current data came from, for messages
        self._combo_index = 0  # last data set actually loaded (reverted to on a failed import)

        root = QtWidgets.QWidget()
        h = QtWidgets.QHBoxLayout(root)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self._build_controls())
        h.addWidget(self._build_view(), 1)
        self.set_body(root)
        self._load_dataset()

    # ----------------------------------------------------------------- building
    def _build_controls(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        box.setMaximumWidth(270)
        form = QtWidgets.QFormLayout(box)
        form.setContentsMargins(0, 0, 4, 0)

        self.dataset = QtWidgets.QComboBox()
        self.dataset.addItems(list(DATASET_CHOICES))
        self.dataset.setToolTip(
            "Target distribution. The mixtures (8gaussians, 25gaussians) have exact oracles; "
            "'draw your own' paints a density with the mouse; you can also use an image or a point file."
        )
        for i, name in enumerate(toy_data.DATASETS):
            self.dataset.setItemData(i, toy_data.describe(name), QtCore.Qt.ItemDataRole.ToolTipRole)
        self.dataset.currentIndexChanged.connect(self._on_dataset_chosen)
        form.addRow("Data", self.dataset)

        self.process = QtWidgets.QComboBox()
        self.process.addItems(list(PROCESS_CHOICES))
        self.process.setToolTip(
            "Which noising process connects data and N(0, I): VP diffusion or rectified flow")
        self.process.currentIndexChanged.connect(self._on_process_changed)
        form.addRow("Process", self.process)

        self.particles = QtWidgets.QSpinBox()
        self.particles.setRange(100, 20_000)
        self.particles.setSingleStep(500)
        self.particles.setValue(2000)
        self.particles.setToolTip("Number of particles (samples) shown and transported")
        self.particles.editingFinished.connect(self._resample)
        form.addRow("Particles", self.particles)

        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.seed.setToolTip("Random seed of the data and the noise: same seed, same picture")
        self.seed.editingFinished.connect(self._resample)
        form.addRow("Seed", self.seed)

        self.speed = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.speed.setRange(1, 40)
        self.speed.setValue(10)
        self.speed.setToolTip("ODE speed: how far t moves per frame while playing (live; 1.0 = 120 frames)")
        self.speed.valueChanged.connect(lambda v: self.params.update(speed=v / 10.0))
        form.addRow("Speed", self.speed)

        self.show_traj = QtWidgets.QCheckBox("Trajectories")
        self.show_traj.setChecked(True)
        self.show_traj.setToolTip("Draw the ODE paths of 64 particles, coloured by time (purple → yellow)")
        self.show_field = QtWidgets.QCheckBox("Vector field")
        self.show_field.setToolTip(
            "Arrows of the exact VP score or RF velocity at the current t (mixtures only)")
        self.show_density = QtWidgets.QCheckBox("Target density")
        self.show_density.setChecked(True)
        self.show_density.setToolTip(
            "The data density, faint orange: exact for mixtures and drawings, a histogram otherwise"
        )
        for cb in (self.show_traj, self.show_field, self.show_density):
            cb.toggled.connect(self._apply_toggles)
            form.addRow(cb)

        self.play_button = QtWidgets.QPushButton("▶ Play ODE")
        self.play_button.setToolTip("Run the exact probability-flow ODE from noise to data (Space)")
        self.play_button.clicked.connect(self.play_pause)
        form.addRow(self.play_button)

        self.brush = QtWidgets.QPushButton("Brush")
        self.brush.setCheckable(True)
        self.brush.setToolTip("Paint density with the left mouse button (only for 'draw your own'); "
                              "off: drag pans, wheel zooms")
        self.brush.toggled.connect(self._on_brush_toggled)
        self.clear_button = QtWidgets.QPushButton("Clear")
        self.clear_button.setToolTip("Erase the drawing")
        self.clear_button.clicked.connect(self.clear_drawing)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.brush)
        row.addWidget(self.clear_button)
        form.addRow(row)

        self.export_button = QtWidgets.QPushButton("Export samples…")
        self.export_button.setToolTip("Save the particles as shown (.csv, .txt or .npy)")
        self.export_button.clicked.connect(self._export_dialog)
        form.addRow(self.export_button)

        self.source_label = QtWidgets.QLabel()
        self.source_label.setWordWrap(True)
        self.source_label.setToolTip("Where the current target samples come from")
        form.addRow(self.source_label)
        return box

    def _build_view(self) -> QtWidgets.QWidget:
        view = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(view)
        v.setContentsMargins(0, 0, 0, 0)
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.note.setToolTip("What am I looking at: the process and its key equation")
        v.addWidget(self.note)

        self.plot = pg.PlotWidget()
        self.plot.setAspectLocked(True)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "x₁")
        self.plot.setLabel("left", "x₂")
        self.plot.setToolTip("Particles (blue), target density (orange), field arrows and ODE paths")
        self.density_item = DensityImageItem()
        self.plot.addItem(self.density_item)
        self.traj_item = TrajectoryItem()
        self.plot.addItem(self.traj_item)
        self.cloud = PointCloudItem(size=2.5)
        self.plot.addItem(self.cloud)
        self.field_item = ArrowFieldItem()
        self.plot.addItem(self.field_item)
        self.stroke_item = pg.PlotCurveItem(pen=pg.mkPen((255, 120, 120), width=2))
        self.plot.addItem(self.stroke_item)
        self.title_item = pg.TextItem(anchor=(0, 0), color=(230, 230, 230))
        self.plot.addItem(self.title_item, ignoreBounds=True)
        self.brush_filter = BrushFilter(self.plot)
        self.plot.viewport().installEventFilter(self.brush_filter)
        self.brush_filter.stroke_moved.connect(lambda s: self.stroke_item.setData(s[:, 0], s[:, 1]))
        self.brush_filter.stroke_finished.connect(self.add_stroke)
        v.addWidget(self.plot, 1)

        row = QtWidgets.QHBoxLayout()
        self.t_left = QtWidgets.QLabel()
        self.t_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.t_slider.setRange(0, T_STEPS)
        self.t_slider.setToolTip("Scrub t: the exact forward marginal p_t (the same particles at every t)")
        self.t_slider.valueChanged.connect(self._on_t_changed)
        self.t_right = QtWidgets.QLabel()
        self.t_value = QtWidgets.QLabel()
        self.t_value.setMinimumWidth(70)
        self.t_value.setToolTip("The process time shown on the plot")
        t_name = QtWidgets.QLabel("<b>t</b>")
        t_name.setToolTip(self.t_slider.toolTip())
        row.addWidget(t_name)
        row.addSpacing(6)
        row.addWidget(self.t_left)
        row.addWidget(self.t_slider, 1)
        row.addWidget(self.t_right)
        row.addSpacing(12)
        row.addWidget(self.t_value)
        v.addLayout(row)
        return view

    # ------------------------------------------------------------------ queries
    @property
    def process_key(self) -> str:
        return PROCESS_CHOICES[self.process.currentText()]

    @property
    def t(self) -> float:
        return self.t_slider.value() / T_STEPS

    @property
    def data_points(self) -> np.ndarray:
        """The current target samples (the data end of the process)."""
        return self._data

    @property
    def mixture(self) -> GaussianMixture | None:
        return self._gmm

    # ------------------------------------------------------------------ data
    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed.value(), stream])

    def _on_dataset_chosen(self, index: int) -> None:
        name = self.dataset.itemText(index)
        if name == IMPORT:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Import points", "", "Points (*.csv *.txt *.tsv *.npy)")
            if not path or not self.import_points(path):
                self._revert_combo()
            return
        if name == IMAGE:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Image as density", "", "Images (*.png *.jpg *.jpeg *.bmp *.gif)")
            if not path or not self.load_image(path):
                self._revert_combo()
            return
        self._load_dataset()

    def _revert_combo(self) -> None:
        with _signals_blocked(self.dataset):
            self.dataset.setCurrentIndex(self._combo_index)

    def _load_dataset(self) -> None:
        """(Re)build data, noise, oracle and density for the combo's data set, then redraw."""
        name = self.dataset.currentText()
        self.runner.cancel(wait=False)
        self.banner.hide()
        n = self.particles.value()
        self._noise = self._rng(1).standard_normal((n, 2)).astype(np.float32)
        if name in toy_data.DATASETS:
            self._data = toy_data.sample(name, n, self._rng(0))
            self._gmm = toy_data.mixture(name)
            self._extent = toy_data.bounds(name)
            if self._gmm is not None:
                self._density = lv.mixture_density(self._gmm, self._extent)
            else:
                many = toy_data.sample(name, 100_000, self._rng(2))
                self._density = lv.histogram_density(many, self._extent)
            self._source = toy_data.describe(name)
        elif name == DRAW:
            self._gmm = None
            self._extent = CANVAS
            self._data_from_density(self._drawn_density(), self._drawing_source())
        self._combo_index = self.dataset.currentIndex()
        self.brush.setEnabled(name == DRAW)
        self.clear_button.setEnabled(name == DRAW)
        self.brush.setChecked(name == DRAW)
        self._set_ranges()
        self._refresh_text()
        self.show_forward()

    def _resample(self) -> None:
        """New particle count or seed: redraw the same target with fresh samples."""
        name = self.dataset.currentText()
        if name in (*toy_data.DATASETS, DRAW):
            self._load_dataset()
        elif self._density is not None and name == IMAGE:
            self._data_from_density(self._density, self._source)
            self.show_forward()

    def _drawing_source(self) -> str:
        return (f"Your drawing ({len(self._strokes)} strokes). With Brush on, drag with the left "
                "mouse button to paint density; Clear starts over.")

    def _drawn_density(self) -> np.ndarray:
        return toy_data.density_from_strokes(self._strokes, CANVAS, 128, BRUSH_SIGMA)

    def _data_from_density(self, density: np.ndarray, source: str) -> None:
        n = self.particles.value()
        self._noise = self._rng(1).standard_normal((n, 2)).astype(np.float32)
        self._density = density
        self._source = source
        self.density_item.setDensity(density, self._extent)
        self._apply_toggles()
        if density.sum() > 0:
            self._data = toy_data.sample_from_density(density, self._extent, n, self._rng(0))
        else:
            self._data = np.zeros((0, 2), np.float32)

    def add_stroke(self, stroke: np.ndarray) -> None:
        """A finished brush stroke (data coordinates): re-rasterise and resample."""
        self.stroke_item.setData([], [])
        self._strokes.append(np.asarray(stroke, dtype=np.float64))
        self._data_from_density(self._drawn_density(), self._drawing_source())
        self._refresh_text()
        self.show_target()

    def clear_drawing(self) -> None:
        self._strokes.clear()
        if self.dataset.currentText() == DRAW:
            self._data_from_density(self._drawn_density(), self._drawing_source())
            self._refresh_text()
            self.show_forward()

    def import_points(self, path: str | Path) -> bool:
        """Use a point file as the target. On a bad file: banner message, old points kept."""
        try:
            pts = toy_data.load_points(path)
        except (ValueError, OSError) as exc:
            self.show_error(f"Could not import points: {exc}")
            return False
        self.runner.cancel(wait=False)
        self.banner.hide()
        self._gmm = None
        n = pts.shape[0]
        self._data = pts
        self._noise = self._rng(1).standard_normal((n, 2)).astype(np.float32)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.1 * float(max(hi - lo)) + 1e-3
        self._extent = (float(lo[0] - pad), float(hi[0] + pad), float(lo[1] - pad), float(hi[1] + pad))
        self._density = lv.histogram_density(pts, self._extent, 96)
        self._source = f"{n} points from {Path(path).name}"
        self._select_silently(IMPORT)
        self._set_ranges()
        self._refresh_text()
        self.show_target()
        return True

    def load_image(self, path: str | Path) -> bool:
        """Use an image (dark = mass) as the target density on the canvas."""
        try:
            from PIL import Image

            with Image.open(path) as im:
                im.thumbnail((160, 160))
                density = toy_data.density_from_image(np.asarray(im.convert("LA")))
            if density.sum() <= 0:
                raise ValueError("the image has no dark pixels to use as mass")
        except (ValueError, OSError) as exc:
            self.show_error(f"Could not use {Path(path).name} as a density: {exc}")
            return False
        self.runner.cancel(wait=False)
        self.banner.hide()
        self._gmm = None
        h, w = density.shape
        half_w, half_h = (4.0, 4.0 * h / w) if w >= h else (4.0 * w / h, 4.0)
        self._extent = (-half_w, half_w, -half_h, half_h)
        self._data_from_density(density, f"Image {Path(path).name}")
        self._select_silently(IMAGE)
        self._set_ranges()
        self._refresh_text()
        self.show_target()
        return True

    def _select_silently(self, name: str) -> None:
        with _signals_blocked(self.dataset):
            self.dataset.setCurrentText(name)
        self._combo_index = self.dataset.currentIndex()
        self.brush.setChecked(False)
        self.brush.setEnabled(False)
        self.clear_button.setEnabled(False)

    def export_samples(self, path: str | Path) -> bool:
        """Save the particles on screen; errors go to the banner, never a crash."""
        pts = self.latest.points if self.latest is not None else self._data
        try:
            toy_data.save_points(path, pts)
        except (ValueError, OSError) as exc:
            self.show_error(f"Could not export samples: {exc}")
            return False
        return True

    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export samples", "samples.csv", "CSV (*.csv);;NumPy (*.npy);;Text (*.txt)")
        if path:
            self.export_samples(path)

    # ------------------------------------------------------------------ views
    def _on_process_changed(self) -> None:
        self.runner.cancel(wait=False)
        self._refresh_text()
        self.show_forward()

    def _on_t_changed(self) -> None:
        if self.runner.is_active:  # the user grabbed t: the ODE animation gives way
            self.runner.cancel(wait=False)
        self.show_forward()

    def show_target(self) -> None:
        """Move t to the data end (a new drawing or file is worth seeing as it is)."""
        with _signals_blocked(self.t_slider):
            self.t_slider.setValue(round(lv.data_end(self.process_key) * T_STEPS))
        self.show_forward()

    def show_forward(self) -> None:
        """Draw the exact forward marginal at the slider's t (no job: O(particles) work)."""
        t = self.t
        pts = lv.forward_marginal(self.process_key, self._data, self._noise, t)
        snap = LabSnapshot(step=0, t=t, speed=self.params["speed"], points=pts,
                           trajectories=np.zeros((0, 0, 2), np.float32), process=self.process_key)
        self.latest = snap
        self.draw(snap)

    def _set_ranges(self) -> None:
        xmin, xmax, ymin, ymax = self._extent
        r = 3.3  # N(0, I) must fit too
        self.plot.setXRange(min(xmin, -r), max(xmax, r), padding=0.02)
        self.plot.setYRange(min(ymin, -r), max(ymax, r), padding=0.02)
        if self._density is not None:
            self.density_item.setDensity(self._density, self._extent)
        self._apply_toggles()

    def _refresh_text(self) -> None:
        key = self.process_key
        note = NOTES[key]
        if self._gmm is None:
            note += "<br>" + NO_ORACLE
        self.note.setText(note)
        self.play_button.setEnabled(self._gmm is not None)
        self.show_field.setEnabled(self._gmm is not None)
        self.source_label.setText(f"<small>{self._source}</small>")
        noise_at = "t = 1" if key == "vp" else "t = 0"
        data_at = "t = 0" if key == "vp" else "t = 1"
        left, right = ("data", "noise") if key == "vp" else ("noise", "data")
        self.t_left.setText(f"{left} (0)")
        self.t_right.setText(f"(1) {right}")
        self.t_slider.setToolTip(
            f"Scrub t: the exact forward marginal p_t; data at {data_at}, N(0, I) at {noise_at}")

    def _apply_toggles(self) -> None:
        self.density_item.setVisible(self.show_density.isChecked() and self._density is not None)
        self.traj_item.setVisible(self.show_traj.isChecked())
        self.field_item.setVisible(self.show_field.isChecked() and self._gmm is not None)
        if self.latest is not None:
            self.draw(self.latest)

    def _on_brush_toggled(self, on: bool) -> None:
        self.brush_filter.enabled = on
        self.plot.setMouseEnabled(x=not on, y=not on)

    # ---------------------------------------------------------------- Panel API
    def make_job(self) -> Any | None:
        if self._gmm is None or not len(self._noise):
            return None
        with _signals_blocked(self.t_slider):
            self.t_slider.setValue(round(lv.noise_end(self.process_key) * T_STEPS))
        return lv.ode_job(self._gmm, self.process_key, self._noise, self.params)

    def job_params(self) -> ParamBox:
        return self.params

    def draw(self, snapshot: LabSnapshot) -> None:
        self.cloud.setData(snapshot.points)
        if self.traj_item.isVisible():
            self.traj_item.setPaths(snapshot.trajectories)
        if self.field_item.isVisible() and self._gmm is not None:
            (xmin, xmax), (ymin, ymax) = self.plot.getPlotItem().vb.viewRange()
            n = 21
            origins = lv.grid_points((xmin, xmax, ymin, ymax), n)
            field = lv.vector_field(self._gmm, snapshot.process, snapshot.t, origins)
            cell = min(xmax - xmin, ymax - ymin) / n
            self.field_item.setField(origins, lv.arrow_display_vectors(field, cell))
        if snapshot.step > 0:  # the ODE moves t: keep the slider in step, silently
            with _signals_blocked(self.t_slider):
                self.t_slider.setValue(round(snapshot.t * T_STEPS))
        self.t_value.setText(f"t = {snapshot.t:.2f}")
        rect = self.plot.getPlotItem().vb.viewRect()
        self.title_item.setPos(rect.left(), rect.bottom())
        what = f"ODE step {snapshot.step}" if snapshot.step else "forward process p<sub>t</sub>"
        legend = ""
        if self.traj_item.n_paths:
            legend = ("   paths: <span style='color:#5c01a6'>■</span> start → "
                      "<span style='color:#f0f921'>■</span> end")
        self.title_item.setHtml(
            f"<span style='color:#e6e6e6'>{what} &nbsp; t = {snapshot.t:.2f}{legend}</span>")

    def export_widget(self) -> QtWidgets.QWidget:
        return self.plot

    def reset(self) -> None:
        super().reset()
        self.show_forward()

    def start_demo(self) -> None:
        self.show_field.setChecked(False)
        self.start()

    def demo_ready(self) -> bool:
        """Screenshot the end of the trip: the samples and their paths."""
        return not self.runner.is_active

    def save_state(self) -> dict[str, Any]:
        name = self.dataset.currentText()
        return {
            "dataset": name if name in (*toy_data.DATASETS, DRAW) else toy_data.DATASETS[0],
            "process": self.process.currentText(),
            "particles": self.particles.value(),
            "seed": self.seed.value(),
            "speed": self.speed.value(),
            "trajectories": self.show_traj.isChecked(),
            "field": self.show_field.isChecked(),
            "density": self.show_density.isChecked(),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        def get(key: str, kind: type) -> Any:
            value = state.get(key)
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            return value if ok else None

        widgets: list[QtWidgets.QWidget] = [self.dataset, self.process, self.particles, self.seed]
        previous = [w.blockSignals(True) for w in widgets]
        if get("dataset", str) in (*toy_data.DATASETS, DRAW):
            self.dataset.setCurrentText(state["dataset"])
        if get("process", str) in PROCESS_CHOICES:
            self.process.setCurrentText(state["process"])
        for key, spin in (("particles", self.particles), ("seed", self.seed)):
            if get(key, int) is not None:
                spin.setValue(state[key])
        for w, was in zip(widgets, previous, strict=True):
            w.blockSignals(was)
        if get("speed", int) is not None:
            self.speed.setValue(state["speed"])
        for key, cb in (("trajectories", self.show_traj), ("field", self.show_field),
                        ("density", self.show_density)):
            if get(key, bool) is not None:
                cb.setChecked(state[key])
        self._load_dataset()


__all__ = ["DATASET_CHOICES", "PROCESS_CHOICES", "LabPanel"]
