"""The 2D Lab's data: named toy sets, drawing with the brush, an image as density, point files.

A mixin of :class:`widgets.lab_panel.LabPanel` (it uses the panel's widgets and state): kept
apart so the panel module holds the wiring and the views, this one where the target samples
come from. No math here: densities, sampling from them and point files are ``engines.toy_data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engines import lab_views as lv
from engines import toy_data
from widgets.panel import signals_blocked

DRAW = "draw your own"
IMAGE = "image as density"
IMPORT = "import points…"
DATASET_CHOICES: tuple[str, ...] = (*toy_data.DATASETS, DRAW, IMAGE, IMPORT)

#: Canvas for drawn and image densities (data units), a bit larger than N(0, I)'s bulk.
CANVAS: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0)
BRUSH_SIGMA = 0.18
MAX_UNDO = 100  # drawing states kept for Ctrl+Z
MAX_SAVED_STROKES = 500



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


class LabDataMixin:
    """Target data of the Lab: choose, draw, load, import, export (see the module docstring)."""

    # provided by LabPanel
    dataset: QtWidgets.QComboBox
    seed: QtWidgets.QSpinBox
    particles: QtWidgets.QSpinBox
    _data: np.ndarray
    _strokes: list[np.ndarray]
    _undo: list[list[np.ndarray]]
    _redo: list[list[np.ndarray]]
    undo_button: QtWidgets.QPushButton
    redo_button: QtWidgets.QPushButton
    _target: np.ndarray | None
    _extent: tuple[float, float, float, float]
    _density: np.ndarray | None
    _source: str
    _combo_index: int

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
        with signals_blocked(self.dataset):
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
        self._fill_classes()
        self._clear_training()
        self._update_guidance_controls()
        self.brush.setEnabled(name == DRAW)
        self.clear_button.setEnabled(name == DRAW)
        self._update_undo_buttons()
        self.brush.setChecked(name == DRAW)
        self._set_ranges()
        self._refresh_text()
        self.show_forward()

    def _resample(self) -> None:
        """New particle count or seed: redraw the same target with fresh samples.

        With a trained model they only change its sampling: re-sample, keep the model."""
        if self.is_learned and self._train is not None:
            self.request_view()
            return
        name = self.dataset.currentText()
        if name in (*toy_data.DATASETS, DRAW):
            self._load_dataset()
        elif self._density is not None and name == IMAGE:
            self._data_from_density(self._density, self._source)
            self.show_forward()

    def _drawing_source(self) -> str:
        return (f"Your drawing ({len(self._strokes)} strokes). With Brush on, drag with the left "
                "mouse button to paint density; Clear starts over.")

    def _note_stale_model(self) -> None:
        """The drawing changed under a trained model: say so (it keeps what it learned)."""
        if getattr(self, "has_model", False):
            self.source_label.setText(
                f"<small>{self._source} <b>The current model learned the earlier drawing: R "
                "resets it, then Train fits this one.</b></small>")

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
        self._push_undo()
        self._strokes.append(np.asarray(stroke, dtype=np.float64))
        self._update_undo_buttons()
        self._data_from_density(self._drawn_density(), self._drawing_source())
        self._refresh_text()
        self.show_target()
        self._note_stale_model()

    def clear_drawing(self) -> None:
        """Erase the drawing (undoable: Ctrl+Z brings it back)."""
        if self._strokes:
            self._push_undo()
        self._strokes.clear()
        self._redraw_drawing()

    def _push_undo(self) -> None:
        self._undo.append(list(self._strokes))
        del self._undo[:-MAX_UNDO]
        self._redo.clear()

    def undo_stroke(self) -> None:
        """Ctrl+Z: back to the drawing before the last stroke (or before Clear)."""
        if not self._undo:
            return
        self._redo.append(list(self._strokes))
        self._strokes = self._undo.pop()
        self._redraw_drawing()

    def redo_stroke(self) -> None:
        """Ctrl+Shift+Z: the undone stroke again."""
        if not self._redo:
            return
        self._undo.append(list(self._strokes))
        self._strokes = self._redo.pop()
        self._redraw_drawing()

    def _redraw_drawing(self) -> None:
        if self.dataset.currentText() == DRAW:
            self._data_from_density(self._drawn_density(), self._drawing_source())
            self._refresh_text()
            self.show_target()
            self._note_stale_model()
        self._update_undo_buttons()

    def _update_undo_buttons(self) -> None:
        drawing = self.dataset.currentText() == DRAW
        self.undo_button.setEnabled(drawing and bool(self._undo))
        self.redo_button.setEnabled(drawing and bool(self._redo))

    def strokes_state(self) -> list[list[list[float]]]:
        """The drawing as plain lists (for the saved settings), at full precision: the samples
        drawn from a restored drawing are then exactly the ones before."""
        return [s.tolist() for s in self._strokes[-MAX_SAVED_STROKES:]]

    def restore_strokes(self, value: Any) -> None:
        """Strokes from saved settings; anything malformed is skipped, never fatal."""
        strokes: list[np.ndarray] = []
        if isinstance(value, list):
            for item in value[:MAX_SAVED_STROKES]:
                try:
                    arr = np.asarray(item, dtype=np.float64)
                except (TypeError, ValueError):
                    continue
                if arr.ndim == 2 and arr.shape[1] == 2 and len(arr) and np.isfinite(arr).all():
                    strokes.append(arr)
        self._strokes = strokes
        self._undo.clear()
        self._redo.clear()

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

    # ------------------------------------------------------------------ model files
    def save_model(self, path: str | Path) -> Path | None:
        """Save the trained model; problems go to the banner, never a crash."""
        from engines.fileio import ExportError
        from engines.lab_models import save_lab_model

        s = self._train
        if s is None or s.state is None or s.config is None:
            self.show_error("Nothing to save yet: train a model first (its weights appear after "
                            "the first preview).")
            return None
        setup = self._arch_now()
        name = self.dataset.currentText()
        meta = {"schedule": s.schedule, "reflow_round": s.reflow_round, "lr": s.lr,
                "batch_size": s.batch_size, "straightness": s.straightness,
                "source": setup.source, "coupling": setup.coupling,
                "t_sampling": setup.t_sampling,
                "data": name if name in toy_data.DATASETS else "user points"}
        try:
            return save_lab_model(path, model=s.model, config=s.config, state=s.state,
                                  step=s.step, **meta)
        except (ExportError, ValueError) as exc:
            self.show_error(f"Could not save the model: {exc}")
            return None

    def load_model(self, path: str | Path) -> bool:
        """Load a model file: shown at once (sampled), and Train continues from it."""
        from engines.lab_models import LabModelError, load_lab_model, loaded_snapshot

        try:
            f = load_lab_model(path)
        except LabModelError as exc:
            self.show_error(f"Could not load the model: {exc}")
            return False
        self.runner.cancel(wait=False)
        self.banner.hide()
        index = list(lv.MODELS).index(f.model)
        if self.model.currentIndex() != index:
            self.model.setCurrentIndex(index)  # sets the family's controls and defaults
        else:
            self._clear_training()
        c, cfg, meta = self.ctl, f.config, f.meta
        arch: dict[str, Any] = {"width": cfg.get("width", cfg.get("hidden")),
                                "depth": cfg.get("depth"),
                                "schedule": meta.get("schedule"), "source": meta.get("source"),
                                "coupling": meta.get("coupling"), "t_sampling": meta.get("t_sampling"),
                                "latent": cfg.get("latent_dim"), "prediction": cfg.get("prediction")}
        if f.family in ("diffusion", "rf"):
            arch["conditional"] = bool(cfg.get("n_classes"))
        self._set_arch_silently(arch)
        self._arch = self._arch_now()
        snap = loaded_snapshot(f, extent=self._extent, n=min(self.particles.value(), 4000),
                               seed=self.seed.value(), mixture=self._gmm)
        self._resume = (f.config, f.state, f.step, snap.reflow_round)
        self.history.clear()
        self.latest = snap
        self._draw_training(snap)
        c.rate.setText(f"loaded {Path(path).name}: step {f.step:,}. Train carries on from it.")
        return True

    def _save_model_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save Lab model", f"{self.model_key}.safetensors", "Lab model (*.safetensors)")
        if path:
            self.save_model(path)

    def _load_model_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Load Lab model", "", "Lab model (*.safetensors)")
        if path:
            self.load_model(path)

    def _select_silently(self, name: str) -> None:
        with signals_blocked(self.dataset):
            self.dataset.setCurrentText(name)
        self._combo_index = self.dataset.currentIndex()
        self.brush.setChecked(False)
        self.brush.setEnabled(False)
        self.clear_button.setEnabled(False)
        self._update_undo_buttons()

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

    def _on_brush_toggled(self, on: bool) -> None:
        self.brush_filter.enabled = on
        self.plot.setMouseEnabled(x=not on, y=not on)

    def _named_data(self) -> bool:
        return self.dataset.currentText() in toy_data.DATASETS

    def _target_sample(self) -> np.ndarray:
        """1000 fixed target points: what sliced W2 compares samples against."""
        if self._target is None:
            name = self.dataset.currentText()
            if name in toy_data.DATASETS:
                self._target = toy_data.sample(name, 1000, self._rng(3))
            else:
                self._target = np.asarray(self._data[:1000], np.float32)
        return self._target
