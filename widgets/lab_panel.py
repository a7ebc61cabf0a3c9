"""The 2D Lab: exact oracles on toy data, and learned models trained and sampled live.

What the user does here: pick a data set (or draw one, or load an image or a point file),
scrub t to watch the forward process blur the data into N(0, I) and back, switch on the
exact vector field and the target density, and press Play to watch a *perfect* model carry
noise onto the data along the probability-flow ODE. Exact oracles exist only for Gaussian
mixtures, which the panel says plainly for the other data sets; learned models come with
the training views.

The Model combo switches from the exact oracle to a model trained here: diffusion (DDPM),
rectified flow, four normalizing flows, three GANs. Training runs in the panel's runner
(``engines.lab_views.lab_train_job`` adapts each engine's job to one snapshot with a loss curve
and a sliced-W2 quality curve); sampling, flow-layer views and fields run in their own runners
so a slider drag re-samples while training continues, and only the newest request is drawn.

Where the data comes from (named sets, the brush, images, point files) lives in
:mod:`widgets.lab_data`; sampling, compare mode, guidance, reflow and the curves in
:mod:`widgets.lab_sampling` (both mixins of :class:`LabPanel`); the controls' construction in
:mod:`widgets.lab_controls`. This module builds the panel, wires it and draws.

All numbers come from ``engines`` (``engines.lab_views``, ``engines.toy_data``,
``engines.gmm``): this module only wires controls to them and draws. The ODE runs in the
panel's runner; a t-slider drag recomputes an O(particles) array interpolation and a 441-point
field, both sub-millisecond, so they run directly and never queue stale work.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engines import lab_views as lv
from engines import toy_data
from engines.gmm import GaussianMixture
from engines.jobs import ParamBox
from engines.lab_views import LabSnapshot
from widgets.lab_controls import T_STEPS, LearnedControls, restrict_samplers
from widgets.lab_curves import CurvesView
from widgets.lab_data import CANVAS, DATASET_CHOICES, DRAW, IMAGE, IMPORT, BrushFilter, LabDataMixin
from widgets.lab_sampling import LabSamplingMixin
from widgets.panel import Panel, signals_blocked
from widgets.plots import ArrowFieldItem, DensityImageItem, HeatmapItem, PolylinesItem, TrajectoryItem
from widgets.points import PointCloudItem
from widgets.runner import JobRunner, JobState

PREDICTION_LOSS: dict[str, str] = {"eps": "ε-prediction MSE", "x0": "x₀-prediction MSE",
                                   "v": "v-prediction MSE"}
PROCESS_CHOICES: dict[str, str] = {"Diffusion (VP)": "vp", "Rectified flow": "rf"}


NOTES: dict[str, str] = {
    "vp": (
        "<b>Diffusion (VP).</b> Forward: x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + "
        "√(1−ᾱ<sub>t</sub>) ε, data at t = 0, pure noise N(0, I) at t = 1 (ᾱ: the schedule). "
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
MODEL_NOTES: dict[str, str] = {
    "diffusion": (
        "<b>Diffusion (DDPM), learned.</b> A network ε<sub>θ</sub>(x<sub>t</sub>, t) learns the "
        "noise that was added: L = E<sub>t, x<sub>0</sub>, ε</sub> ‖ε − ε<sub>θ</sub>(√ᾱ<sub>t</sub> "
        "x<sub>0</sub> + √(1−ᾱ<sub>t</sub>) ε, t)‖²; its minimiser is −√(1−ᾱ<sub>t</sub>) ∇log "
        "p<sub>t</sub>. Samplers turn it into samples: DDPM/SDE add noise, DDIM η = 0, Euler, Heun "
        "and DPM-Solver++ follow the probability-flow ODE. Guidance: classifier-free ε<sub>u</sub> + "
        "w (ε<sub>c</sub> − ε<sub>u</sub>), or classifier ∇log p<sub>t</sub>(x) + w ∇log "
        "p<sub>t</sub>(y | x). Blue: samples; paths: 64 of them."
    ),
    "rf": (
        "<b>Rectified flow, learned.</b> A velocity v<sub>θ</sub>(x, t) regresses the straight "
        "path from noise x<sub>0</sub> to data x<sub>1</sub>: L = E ‖(x<sub>1</sub> − x<sub>0</sub>) − "
        "v<sub>θ</sub>((1−t) x<sub>0</sub> + t x<sub>1</sub>, t)‖² (flow matching). Sampling "
        "integrates dx/dt = v<sub>θ</sub> from t = 0 to 1 (Euler or Heun). Reflow retrains on "
        "(x<sub>0</sub>, ODE(x<sub>0</sub>)) pairs: the paths straighten until one Euler step "
        "lands on the data."
    ),
    "flow": (
        "<b>Normalizing flow.</b> An invertible x = f(z), z ~ N(0, I), trained by exact maximum "
        "likelihood through the change of variables: log p(x) = log N(f<sup>−1</sup>(x); 0, I) + "
        "log |det ∂f<sup>−1</sup>/∂x|. Heat map: the model's exact log-density. Grid: the latent "
        "grid after the first k layers; orange: the data pulled back to the same stage. The NLL "
        "cannot go below the data's entropy (dashed)."
    ),
    "gan": (
        "<b>GAN.</b> Generator G(z) against a discriminator D: min<sub>G</sub> max<sub>D</sub> "
        "E log D(x) + E log(1 − D(G(z))) (vanilla; G minimises −log D(G(z)), the non-saturating "
        "loss). WGAN: the Kantorovich–Rubinstein dual W₁ = sup<sub>‖f‖<sub>L</sub>≤1</sub> "
        "E f(x) − E f(G(z)), with the critic kept Lipschitz by weight clipping or a gradient "
        "penalty (GP). Heat map: D (or the critic); arrows: where D pushes each sample."
    ),
}
NO_ORACLE = (
    "<i>Exact oracles (field, ODE) exist only for Gaussian mixtures (8gaussians, "
    "25gaussians); for this data set the t slider still shows the exact forward process. "
    "Learned models come with training.</i>"
)


class Setup(NamedTuple):
    """What a learned model is built with: changing any of it means a new model."""

    width: int
    depth: int
    conditional: bool
    schedule: str
    source: str
    coupling: str
    t_sampling: str
    latent: int
    prediction: str




class LabPanel(LabDataMixin, LabSamplingMixin, Panel):
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
        self._undo: list[list[np.ndarray]] = []  # drawing states before each change
        self._redo: list[list[np.ndarray]] = []
        self._source = "8gaussians"  # what the current data came from, for messages
        self._combo_index = 0  # last data set actually loaded (reverted to on a failed import)
        # Learned models: training runs in ``self.runner``; sampling and flow-layer views in a
        # second runner so training continues while a slider drag re-samples; the NFE curve in
        # a third so it does not cancel (or get cancelled by) those re-samples.
        self.train_params = ParamBox(lr=2e-3, batch_size=256, temperature=1.0)
        self.sample_runner = JobRunner(self)
        self.sample_runner.snapshot.connect(self._on_view_snapshot)
        self.sample_runner.failed.connect(self.show_error)
        self.curve_runner = JobRunner(self)
        self.curve_runner.snapshot.connect(self._on_nfe_snapshot)
        self.curve_runner.failed.connect(self.show_error)
        self.field_runner = JobRunner(self)
        self.field_runner.snapshot.connect(self._on_field_snapshot)
        self.field_runner.failed.connect(self.show_error)
        self.runner.state_changed.connect(self._update_play_text)
        self.clf_runner = JobRunner(self)
        self.clf_runner.snapshot.connect(self._on_classifier_snapshot)
        self.clf_runner.failed.connect(self.show_error)
        self.clf_runner.finished.connect(lambda *_: self._update_guidance_controls())
        # (key it was trained for, (config, state)): used only while the key still matches
        self._classifier: tuple[tuple, tuple[dict, dict]] | None = None
        self._classifier_pending: tuple | None = None
        self._straightness: dict[int, float] = {}  # reflow round -> straightness of its paths
        # a loaded model Train carries on: (config, state, step, reflow round)
        self._resume: tuple[dict, dict, int, int] | None = None
        self._model = "exact"
        self._arch = Setup(128, 3, False, "linear", "gaussian", "independent", "uniform", 2, "eps")
        self._train: lv.LabTrainSnapshot | None = None  # latest training frame
        self._view: Any = None  # latest sampling / flow-layer result
        self._resample_timer = QtCore.QTimer(self)
        self._resample_timer.setSingleShot(True)
        self._resample_timer.setInterval(30)  # coalesce a slider drag into few requests
        self._resample_timer.timeout.connect(self.request_view)

        root = QtWidgets.QWidget()
        h = QtWidgets.QHBoxLayout(root)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self._build_controls())
        h.addWidget(self._build_view(), 1)
        self.set_body(root)
        self._load_dataset()

    # ----------------------------------------------------------------- building
    def _build_controls(self) -> QtWidgets.QWidget:
        outer = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(outer)
        col.setContentsMargins(0, 0, 4, 0)
        box = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self._form = form

        self.model = QtWidgets.QComboBox()
        for key, (label, _fam) in lv.MODELS.items():
            self.model.addItem(label, key)
        self.model.setToolTip(
            "What carries noise to data: the exact oracle (mixtures), or a model you train here: "
            "diffusion, rectified flow, a normalizing flow or a GAN. Switching stops the old "
            "training and starts from the new model")
        self.model.currentIndexChanged.connect(self._on_model_changed)
        for combo in (self.model,):
            # long labels must not widen the control column past its scroll area
            combo.setSizeAdjustPolicy(
                QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
        form.addRow("Model", self.model)

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

        self.schedule = QtWidgets.QComboBox()
        self.schedule.addItem("linear β (DDPM)", "linear")
        self.schedule.addItem("cosine ᾱ (improved DDPM)", "cosine")
        self.schedule.setToolTip(
            "The VP noise schedule ᾱ(t): linear β from 0.1 to 20 (Ho et al.; the continuous "
            "limit of DDPM's table) or Nichol & Dhariwal's cosine, which destroys information "
            "more evenly. Shared by the exact views and the learned diffusion model")
        self.schedule.currentIndexChanged.connect(self._on_schedule_changed)
        form.addRow("Schedule", self.schedule)

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
        self.undo_button = QtWidgets.QPushButton("↶")
        self.undo_button.setToolTip("Undo the last stroke or Clear (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo_stroke)
        self.redo_button = QtWidgets.QPushButton("↷")
        self.redo_button.setToolTip("Redo (Ctrl+Shift+Z)")
        self.redo_button.clicked.connect(self.redo_stroke)
        for button in (self.undo_button, self.redo_button):
            button.setMaximumWidth(36)
            button.setEnabled(False)
        for keys, slot in ((QtGui.QKeySequence.StandardKey.Undo, self.undo_stroke),
                           (QtGui.QKeySequence.StandardKey.Redo, self.redo_stroke)):
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(keys), self)
            shortcut.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.brush)
        row.addWidget(self.clear_button)
        row.addWidget(self.undo_button)
        row.addWidget(self.redo_button)
        form.addRow(row)

        self.export_button = QtWidgets.QPushButton("Export samples…")
        self.export_button.setToolTip("Save the particles as shown (.csv, .txt or .npy)")
        self.export_button.clicked.connect(self._export_dialog)
        form.addRow(self.export_button)

        self.source_label = QtWidgets.QLabel()
        self.source_label.setWordWrap(True)
        self.source_label.setToolTip("Where the current target samples come from")
        form.addRow(self.source_label)
        col.addWidget(box)

        self.ctl = LearnedControls()
        c = self.ctl
        c.lr.valueChanged.connect(lambda v: self.train_params.update(lr=float(v)))
        c.batch.valueChanged.connect(lambda v: self.train_params.update(batch_size=int(v)))
        c.width.valueChanged.connect(self._on_arch_changed)
        c.depth.valueChanged.connect(self._on_arch_changed)
        c.conditional.toggled.connect(self._on_arch_changed)
        c.latent.valueChanged.connect(self._on_arch_changed)
        for combo in (c.source, c.coupling, c.t_sampling, c.prediction):
            combo.currentIndexChanged.connect(self._on_arch_changed)
        c.lr_g.valueChanged.connect(lambda v: self.train_params.update(lr_g=float(v)))
        c.lr_d.valueChanged.connect(lambda v: self.train_params.update(lr_d=float(v)))
        c.n_critic.valueChanged.connect(lambda v: self.train_params.update(n_critic=int(v)))
        c.gan_loss.currentIndexChanged.connect(
            lambda _i: self.train_params.update(gan_loss=str(c.gan_loss.currentData())))
        for combo in (c.guidance_kind, c.class_label, c.sampler_b):
            combo.currentIndexChanged.connect(self._on_view_control)
        c.exact_b.toggled.connect(self._on_view_control)
        c.bf16.toggled.connect(self._on_view_control)
        c.compare.toggled.connect(self._on_compare_toggled)
        c.train_classifier.clicked.connect(self.request_classifier)
        c.error_button.clicked.connect(self.request_error_curve)
        c.reflow.clicked.connect(self.start_reflow)
        c.save_model.clicked.connect(self._save_model_dialog)
        c.load_model.clicked.connect(self._load_model_dialog)
        c.one_step.clicked.connect(self.one_step_samples)
        for slider in (c.nfe, c.eta, c.guidance, c.layer, c.temperature):
            slider.valueChanged.connect(self._on_view_control)
        c.sampler.currentIndexChanged.connect(self._on_view_control)
        c.sampler.currentIndexChanged.connect(lambda _i: self._update_sampler_controls())
        c.exact.toggled.connect(self._on_view_control)
        c.nfe_button.clicked.connect(self.request_nfe_curve)
        c.field_t.valueChanged.connect(self._on_field_control)
        c.show_field.toggled.connect(self._on_field_control)
        for cb in (c.show_grid, c.show_latent, c.show_push, c.show_manifold, c.show_heat):
            cb.toggled.connect(self._apply_toggles)
        col.addWidget(c)
        col.addStretch(1)
        c.show_family("exact")

        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(outer)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(300)
        scroll.setMaximumWidth(320)
        return scroll

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
        self.heat_item = HeatmapItem()
        self.plot.addItem(self.heat_item)
        self.grid_item = PolylinesItem()
        self.plot.addItem(self.grid_item)
        self.latent_cloud = PointCloudItem(size=2.5)
        self.latent_cloud.setColor((255, 150, 60), 200)
        self.plot.addItem(self.latent_cloud)
        self.push_item = ArrowFieldItem(color=(255, 90, 90, 200))
        self.plot.addItem(self.push_item)
        self.stroke_item = pg.PlotCurveItem(pen=pg.mkPen((255, 120, 120), width=2))
        self.plot.addItem(self.stroke_item)
        self.title_item = pg.TextItem(anchor=(0, 0), color=(230, 230, 230))
        self.plot.addItem(self.title_item, ignoreBounds=True)
        self.brush_filter = BrushFilter(self.plot)
        self.plot.viewport().installEventFilter(self.brush_filter)
        self.brush_filter.stroke_moved.connect(lambda s: self.stroke_item.setData(s[:, 0], s[:, 1]))
        self.brush_filter.stroke_finished.connect(self.add_stroke)
        self.compare_plot = pg.PlotWidget()
        self.compare_plot.setAspectLocked(True)
        self.compare_plot.showGrid(x=True, y=True, alpha=0.15)
        self.compare_plot.setLabel("bottom", "x₁")
        self.compare_plot.setXLink(self.plot)
        self.compare_plot.setYLink(self.plot)
        self.compare_plot.setToolTip("Sampler B from the same initial noise as the left plot")
        self.compare_density = DensityImageItem()
        self.compare_plot.addItem(self.compare_density)
        self.compare_traj = TrajectoryItem()
        self.compare_plot.addItem(self.compare_traj)
        self.compare_cloud = PointCloudItem(size=2.5)
        self.compare_plot.addItem(self.compare_cloud)
        self.compare_title = pg.TextItem(anchor=(0, 0), color=(230, 230, 230))
        self.compare_plot.addItem(self.compare_title, ignoreBounds=True)
        self.compare_plot.hide()
        self.plots = QtWidgets.QWidget()
        pair = QtWidgets.QHBoxLayout(self.plots)
        pair.setContentsMargins(0, 0, 0, 0)
        pair.setSpacing(2)
        pair.addWidget(self.plot, 1)
        pair.addWidget(self.compare_plot, 1)
        v.addWidget(self.plots, 1)

        self.t_row = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.t_row)
        row.setContentsMargins(0, 0, 0, 0)
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
        v.addWidget(self.t_row)
        self.curves = CurvesView()
        self.curves.setMaximumHeight(190)
        self.curves.hide()
        v.addWidget(self.curves)
        return view

    # ------------------------------------------------------------------ queries
    @property
    def process_key(self) -> str:
        return PROCESS_CHOICES[self.process.currentText()]

    @property
    def schedule_key(self) -> str:
        """``linear`` or ``cosine``: the VP schedule of the exact views and learned diffusion."""
        return str(self.schedule.currentData())

    @property
    def model_key(self) -> str:
        """The chosen model's key in :data:`engines.lab_views.MODELS`."""
        return str(self.model.currentData())

    @property
    def family(self) -> str:
        """``exact``, ``diffusion``, ``rf``, ``flow`` or ``gan``."""
        return lv.family(self.model_key)

    @property
    def is_learned(self) -> bool:
        return self.family != "exact"

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
    # ------------------------------------------------------------------ views
    def _update_schedule_row(self) -> None:
        """The VP schedule matters to the exact diffusion view and to learned diffusion only."""
        fam = self.family
        self._form.setRowVisible(self.schedule, fam == "diffusion"
                                 or (fam == "exact" and self.process_key == "vp"))

    def _on_process_changed(self) -> None:
        self._update_schedule_row()
        if self.is_learned:  # the process picks the exact view only
            return
        self.runner.cancel(wait=False)
        self._refresh_text()
        self.show_forward()

    @property
    def time_process(self) -> str:
        """Whose time convention the t slider uses: the learned model's, else the Process combo's."""
        return {"diffusion": "vp", "rf": "rf"}.get(self.family, self.process_key)

    def _on_t_changed(self) -> None:
        if self.is_learned:
            self._show_learned_frame()
            return
        if self.runner.is_active:  # the user grabbed t: the ODE animation gives way
            self.runner.cancel(wait=False)
        self.show_forward()

    def show_target(self) -> None:
        """Move t to the data end (a new drawing or file is worth seeing as it is)."""
        with signals_blocked(self.t_slider):
            self.t_slider.setValue(round(lv.data_end(self.process_key) * T_STEPS))
        self.show_forward()

    def show_forward(self) -> None:
        """Draw the exact forward marginal at the slider's t (no job: O(particles) work).

        With a learned model selected: redraw its latest frame (or the bare target)."""
        if self.is_learned:
            self._draw_learned_idle()
            return
        t = self.t
        pts = lv.forward_marginal(self.process_key, self._data, self._noise, t,
                                  schedule=self.schedule_key)
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
        key = self.time_process
        fam = self.family
        if fam == "exact":
            note = NOTES[key]
            if self._gmm is None:
                note += "<br>" + NO_ORACLE
        else:
            note = MODEL_NOTES[fam]
        self.note.setText(note)
        self.play_button.setEnabled(self._gmm is not None if fam == "exact" else True)
        self._update_exact_controls()
        self.ctl.conditional.setEnabled(self._named_data())
        self._update_play_text()
        self.show_field.setEnabled(self._gmm is not None)
        self.source_label.setText(f"<small>{self._source}</small>")
        noise_at = "t = 1" if key == "vp" else "t = 0"
        data_at = "t = 0" if key == "vp" else "t = 1"
        left, right = ("data", "noise") if key == "vp" else ("noise", "data")
        self.t_left.setText(f"{left} (0)")
        self.t_right.setText(f"(1) {right}")
        if fam == "exact":
            tip = f"Scrub t: the exact forward marginal p_t; data at {data_at}, N(0, I) at {noise_at}"
        else:
            tip = (f"Scrub t through the last sampling run: every particle of the learned reverse "
                   f"process at time t (N(0, I) at {noise_at}, samples at {data_at})")
        self.t_slider.setToolTip(tip)

    def _apply_toggles(self) -> None:
        fam, c = self.family, self.ctl
        self.density_item.setVisible(self.show_density.isChecked() and self._density is not None)
        self.compare_density.setVisible(self.density_item.isVisible())
        self.compare_traj.setVisible(self.show_traj.isChecked())
        self.traj_item.setVisible(self.show_traj.isChecked() and fam in ("exact", "diffusion", "rf"))
        self.field_item.setVisible(self.show_field.isChecked() and self._gmm is not None
                                   and fam == "exact")
        learned_field = fam in ("diffusion", "rf") and c.show_field.isChecked()
        self.heat_item.setVisible((c.show_heat.isChecked() and fam in ("flow", "gan")) or learned_field)
        if learned_field:
            self.field_item.setVisible(True)
        self.grid_item.setVisible((fam == "flow" and c.show_grid.isChecked())
                                  or (fam == "gan" and c.show_manifold.isChecked()))
        self.latent_cloud.setVisible(fam == "flow" and c.show_latent.isChecked())
        self.push_item.setVisible(fam == "gan" and c.show_push.isChecked())
        if self.latest is not None:
            self.draw(self.latest)

    # ------------------------------------------------------------ learned models
    def confirm_reset(self, text: str) -> bool:
        """Ask before throwing a trained model away. A method so tests can monkeypatch it."""
        answer = QtWidgets.QMessageBox.question(self, "Start a new model?", text)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def _arch_now(self) -> Setup:
        c = self.ctl
        return Setup(c.width.value(), c.depth.value(), c.conditional.isChecked(), self.schedule_key,
                     str(c.source.currentData()), str(c.coupling.currentData()),
                     str(c.t_sampling.currentData()), c.latent.value(),
                     str(c.prediction.currentData()))

    @property
    def has_model(self) -> bool:
        """A learned model exists (trained some steps, or its job is live)."""
        return self.is_learned and (self._train is not None or self.runner.is_active)

    def _setup_widgets(self) -> list[QtWidgets.QWidget]:
        c = self.ctl
        return [c.width, c.depth, c.conditional, self.schedule, c.source, c.coupling,
                c.t_sampling, c.latent, c.prediction]

    def _set_arch_silently(self, arch: Setup | dict[str, Any]) -> None:
        """Put a set-up back on the controls without triggering a reset (a dict: some keys)."""
        values = arch._asdict() if isinstance(arch, Setup) else arch
        c = self.ctl
        widgets = self._setup_widgets()
        was = [w.blockSignals(True) for w in widgets]
        try:
            for key, value in values.items():
                if value is None:
                    continue
                if key in ("width", "depth", "latent"):
                    getattr(c, key).setValue(int(value))
                elif key == "conditional":
                    c.conditional.setChecked(bool(value))
                else:
                    combo = self.schedule if key == "schedule" else getattr(c, key)
                    i = combo.findData(value)
                    if i >= 0:
                        combo.setCurrentIndex(i)
        finally:
            for w, b in zip(widgets, was, strict=True):
                w.blockSignals(b)

    def _on_schedule_changed(self) -> None:
        if self.is_learned:
            self._on_arch_changed()
            return
        self.runner.cancel(wait=False)
        self.show_forward()

    def _on_arch_changed(self) -> None:
        """Width, depth, conditioning (and the schedule, RF source / coupling / t sampling, GAN
        latent size) define the model: ask before discarding a trained one."""
        self._update_exact_controls()
        new = self._arch_now()
        if new == self._arch:
            return
        if self.has_model:
            if not self.confirm_reset(
                    "This setting is part of the model's set-up (architecture, schedule, source, "
                    "coupling or t sampling): changing it starts a new model and discards this "
                    "one's training. Go ahead?"):
                self._set_arch_silently(self._arch)
                return
            was_running = self.runner.state == JobState.RUNNING
            self._arch = new
            self.reset()
            if was_running:
                self.start()
            return
        self._arch = new

    def _on_model_changed(self) -> None:
        """Stop whatever trains (its thread winds down alone) and set up the new model."""
        old_learned = self.runner.is_active and isinstance(self.latest, lv.LabTrainSnapshot)
        was_running = self.runner.state == JobState.RUNNING and old_learned
        self.runner.cancel(wait=False)
        self.history.clear()
        self.latest = None
        self.banner.hide()
        fam = self.family
        self.ctl.show_family(fam)
        if fam != "exact":
            w, d = lv.ARCH_DEFAULTS[fam]
            self._set_arch_silently({"width": w, "depth": d})
            self.ctl.lr.setValue(lv.default_lr(self.model_key))
        if fam == "gan":
            preset = lv.gan_defaults(self.model_key)
            self.ctl.lr_g.setValue(float(preset["lr_g"]))
            self.ctl.lr_d.setValue(float(preset["lr_d"]))
            self.ctl.n_critic.setValue(int(preset["n_critic"]))
            self.ctl.gan_loss.setEnabled(self.model_key == "gan")
        self._restrict_samplers(fam)
        if fam == "flow":
            k = lv.n_flow_layers(self.model_key)
            with signals_blocked(self.ctl.layer):
                self.ctl.layer.setMaximum(k)
                self.ctl.layer.setValue(k)
            self.ctl.layer_label.setText(f"{k}/{k}")
        self.t_row.setVisible(fam in ("exact", "diffusion", "rf"))
        if fam in ("diffusion", "rf"):  # samples arrive at the data end: start there
            with signals_blocked(self.t_slider):
                self.t_slider.setValue(round(lv.data_end(self.time_process) * T_STEPS))
            self.t_value.setText(f"t = {lv.data_end(self.time_process):.2f}")
        for w in (self.process, self.speed, self.show_field):  # the exact views' own controls
            self._form.setRowVisible(w, fam == "exact")
        self._update_schedule_row()
        self.curves.setVisible(fam != "exact")
        self.curves.set_family(fam)
        self.compare_plot.setVisible(self.ctl.compare.isChecked() and fam in ("diffusion", "rf"))
        self._clear_training()
        self._refresh_text()
        self._apply_toggles()
        self.show_forward()
        if was_running and fam != "exact":
            self.start()

    def _restrict_samplers(self, fam: str) -> None:
        """Rectified flow has only ODE solvers: grey out the diffusion samplers for it."""
        restrict_samplers(self.ctl.sampler, fam, fallback="euler")
        self._update_sampler_controls()

    def _update_sampler_controls(self) -> None:
        self.ctl.eta.setEnabled(self.ctl.sampler.currentData() == "ddim")

    def _clear_training(self) -> None:
        """Forget the trained model and everything drawn from it."""
        self._train = None
        self._resume = None
        self._view = None
        self._target = None
        self._arch = self._arch_now()
        self.sample_runner.cancel(wait=False)
        self.curve_runner.cancel(wait=False)
        self.field_runner.cancel(wait=False)
        self._resample_timer.stop()
        self.curves.clear()
        self.heat_item.clearHeat()
        self.grid_item.setLines(np.zeros(0), np.zeros(0), np.zeros(0, bool))
        self.latent_cloud.setData(np.zeros((0, 2)))
        self.push_item.setField(np.zeros((0, 2)), np.zeros((0, 2)))
        self.traj_item.setPaths(np.zeros((0, 0, 2)))
        self.ctl.coverage.setText("")
        self.ctl.rate.setText("–")
        self.ctl.sample_info.setText("")
        self.ctl.straightness.setText("")
        self._straightness.clear()
        self.compare_cloud.setData(np.zeros((0, 2)))
        self.compare_traj.setPaths(np.zeros((0, 0, 2)))

    def _update_play_text(self, *_: Any) -> None:
        if self.family == "exact":
            self.play_button.setText("▶ Play ODE")
            self.play_button.setToolTip("Run the exact probability-flow ODE from noise to data (Space)")
            return
        state = self.runner.state
        text = {JobState.RUNNING: "❚❚ Pause training", JobState.PAUSED: "▶ Resume training"}
        self.play_button.setText(text.get(state, "▶ Train"))
        self.play_button.setToolTip("Train the chosen model (Space); → single chunk, R resets")

    def _make_train_job(self) -> Any | None:
        fam = self.family
        if not self._named_data() and not len(self._data):
            self.show_error("Nothing to train on yet: draw or load some data first.")
            return None
        resume = self._resume
        self._clear_training()
        data: str | np.ndarray = self.dataset.currentText() if self._named_data() else self._data
        setup = self._arch_now()
        c = self.ctl
        self.train_params.update(
            lr=c.lr.value(), batch_size=c.batch.value(), temperature=c.temperature.value() / 100,
            lr_g=c.lr_g.value(), lr_d=c.lr_d.value(), n_critic=c.n_critic.value(),
            gan_loss=str(c.gan_loss.currentData()))
        extra: dict[str, Any] = {}
        if fam == "diffusion":
            extra.update(schedule=setup.schedule, prediction=setup.prediction)
        elif fam == "rf":
            extra.update(source=setup.source, coupling=setup.coupling, t_sampling=setup.t_sampling)
        elif fam == "gan":
            extra["latent_dim"] = setup.latent
        if resume is not None:  # a loaded model: train on from its weights and step
            extra.update(resume=(resume[0], resume[1]), step_offset=resume[2])
            if fam == "rf":
                extra["reflow_round"] = resume[3]
        return lv.lab_train_job(
            self.model_key, self.train_params, data=data, target=self._target_sample(),
            width=setup.width, depth=setup.depth,
            conditional=setup.conditional and self._named_data() and fam in ("diffusion", "rf"),
            seed=self.seed.value(), extent=self._extent, device=self.device, **extra)

    def _draw_learned_idle(self) -> None:
        if self._train is not None:
            self._draw_training(self._train)
            return
        if isinstance(self._view, lv.LabSampleSnapshot):  # exact-model samples, no training yet
            self._on_view_snapshot(self._view)
            return
        self.cloud.setData(np.zeros((0, 2)))
        self.title_item.setHtml("<span style='color:#e6e6e6'>target density (orange) · press "
                                "Train (Space) to fit the model</span>")
        rect = self.plot.getPlotItem().vb.viewRect()
        self.title_item.setPos(rect.left(), rect.bottom())

    def _draw_training(self, s: lv.LabTrainSnapshot) -> None:
        """One training frame: curves, samples and the family's own views."""
        if s.model != self.model_key:
            return
        self._train = s
        fam = lv.family(s.model)
        c = self.ctl
        self.curves.set_training(s.loss_steps, s.loss, s.loss_d, s.floor, s.quality_steps, s.quality)
        if fam == "diffusion" and s.config is not None:
            self.curves.set_loss_title(PREDICTION_LOSS.get(str(s.config.get("prediction")), "MSE"))
        q = f" · sliced W₂ {s.quality[-1]:.3f}" if len(s.quality) else ""
        c.rate.setText(f"step {s.step:,} · {s.steps_per_s:,.0f} steps/s · lr {s.lr:.2g} · "
                       f"batch {s.batch_size}{q}")
        want_view = (s.fresh and s.state is not None and not self.sample_runner.is_active
                     and s is self.latest)  # not while re-drawing history for a GIF
        if want_view and c.show_field.isChecked() and not self.field_runner.is_active:
            self.request_field()
        self._update_guidance_controls()
        if fam == "rf":
            self._show_straightness(s)
        if fam in ("diffusion", "rf"):
            if not isinstance(self._view, (lv.LabSampleSnapshot, lv.LabComparison)):
                self.cloud.setData(s.samples)
            if want_view:
                self.request_view()
        elif fam == "flow":
            if s.heatmap is not None and s.extent is not None:
                img, lo, hi = lv.heat_levels(s.heatmap, log=True)
                self.heat_item.setHeat(img, s.extent, (lo, hi))
            if not isinstance(self._view, lv.FlowLayerView):
                self.cloud.setData(s.samples)
            if want_view:
                self.request_view()
        else:
            self.cloud.setData(s.samples)
            if s.heatmap is not None and s.extent is not None:
                img, lo, hi = lv.heat_levels(s.heatmap, log=False)
                self.heat_item.setHeat(img, s.extent, (lo, hi))
            if s.push is not None and s.push_points is not None and s.extent is not None:
                cell = (s.extent[1] - s.extent[0]) / 20
                self.push_item.setField(s.push_points, lv.arrow_display_vectors(s.push, cell))
            if s.manifold is not None:
                self.grid_item.setLines(*lv.polyline_arrays(lv.manifold_lines(s.manifold)))
            if s.modes_hit is not None:
                c.coverage.setText(f"Modes hit: <b>{s.modes_hit}/{s.n_modes}</b> · high-quality "
                                   f"samples: <b>{100 * (s.high_quality or 0):.0f}%</b>")
            else:
                c.coverage.setText("<i>Mode coverage: mixture targets only</i>")
        rect = self.plot.getPlotItem().vb.viewRect()
        self.title_item.setPos(rect.left(), rect.bottom())
        preview = f" · training preview: sliced W₂ {s.quality[-1]:.3f}" if len(s.quality) else ""
        self.title_item.setHtml(f"<span style='color:#e6e6e6'>{lv.MODELS[s.model][0]} · step "
                                f"{s.step:,}{preview}</span>")

    # ---------------------------------------------------------------- Panel API
    def make_job(self) -> Any | None:
        if self.is_learned:
            return self._make_train_job()
        if self._gmm is None or not len(self._noise):
            return None
        with signals_blocked(self.t_slider):
            self.t_slider.setValue(round(lv.noise_end(self.process_key) * T_STEPS))
        return lv.ode_job(self._gmm, self.process_key, self._noise, self.params,
                         schedule=self.schedule_key)

    def job_params(self) -> ParamBox:
        return self.train_params if self.is_learned else self.params

    def draw(self, snapshot: Any) -> None:
        if isinstance(snapshot, lv.LabTrainSnapshot):
            self._draw_training(snapshot)
            return
        self.cloud.setData(snapshot.points)
        if self.traj_item.isVisible():
            self.traj_item.setPaths(snapshot.trajectories)
        if self.field_item.isVisible() and self._gmm is not None and not self.is_learned:
            (xmin, xmax), (ymin, ymax) = self.plot.getPlotItem().vb.viewRange()
            n = 21
            origins = lv.grid_points((xmin, xmax, ymin, ymax), n)
            field = lv.vector_field(self._gmm, snapshot.process, snapshot.t, origins,
                                    schedule=self.schedule_key)
            cell = min(xmax - xmin, ymax - ymin) / n
            self.field_item.setField(origins, lv.arrow_display_vectors(field, cell))
        if snapshot.step > 0:  # the ODE moves t: keep the slider in step, silently
            with signals_blocked(self.t_slider):
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
        return self.plots if self.compare_plot.isVisible() else self.plot

    def reset(self) -> None:
        super().reset()
        self._clear_training()
        self.show_forward()

    def shutdown(self, timeout: float = 2.0) -> bool:
        ok = self.clf_runner.shutdown(timeout)
        ok = self.sample_runner.shutdown(timeout) and ok
        ok = self.curve_runner.shutdown(timeout) and ok
        ok = self.field_runner.shutdown(timeout) and ok
        return super().shutdown(timeout) and ok

    def start_demo(self) -> None:
        self.show_field.setChecked(False)
        self.start()

    def demo_ready(self) -> bool:
        """Screenshot the end of the trip: the samples and their paths (a learned model:
        once it has drawn a few training frames)."""
        if self.is_learned:
            return len(self.history) >= self.demo_frames or not self.runner.is_active
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
            "model": self.model_key,
            "lr": self.ctl.lr.value(),
            "batch": self.ctl.batch.value(),
            "width": self.ctl.width.value(),
            "depth": self.ctl.depth.value(),
            "conditional": self.ctl.conditional.isChecked(),
            "sampler": str(self.ctl.sampler.currentData()),
            "nfe": self.ctl.nfe.value(),
            "eta": self.ctl.eta.value(),
            "guidance": self.ctl.guidance.value(),
            "exact_model": self.ctl.exact.isChecked(),
            "temperature": self.ctl.temperature.value(),
            "heatmap": self.ctl.show_heat.isChecked(),
            "warped_grid": self.ctl.show_grid.isChecked(),
            "pulled_back": self.ctl.show_latent.isChecked(),
            "gan_arrows": self.ctl.show_push.isChecked(),
            "gan_manifold": self.ctl.show_manifold.isChecked(),
            "learned_field": self.ctl.show_field.isChecked(),
            "field_t": self.ctl.field_t.value(),
            "schedule": self.schedule_key,
            "source": str(self.ctl.source.currentData()),
            "coupling": str(self.ctl.coupling.currentData()),
            "t_sampling": str(self.ctl.t_sampling.currentData()),
            "latent": self.ctl.latent.value(),
            "prediction": str(self.ctl.prediction.currentData()),
            "strokes": self.strokes_state(),
            "lr_g": self.ctl.lr_g.value(),
            "lr_d": self.ctl.lr_d.value(),
            "n_critic": self.ctl.n_critic.value(),
            "gan_loss": str(self.ctl.gan_loss.currentData()),
            "guidance_kind": str(self.ctl.guidance_kind.currentData()),
            "compare": self.ctl.compare.isChecked(),
            "sampler_b": str(self.ctl.sampler_b.currentData()),
            "exact_b": self.ctl.exact_b.isChecked(),
            "bf16": self.ctl.bf16.isChecked(),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        def get(key: str, kind: type) -> Any:
            value = state.get(key)
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            return value if ok else None

        if "strokes" in state:
            self.restore_strokes(state["strokes"])
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
        c = self.ctl
        for key, cb in (("trajectories", self.show_traj), ("field", self.show_field),
                        ("density", self.show_density), ("exact_model", c.exact),
                        ("heatmap", c.show_heat), ("warped_grid", c.show_grid),
                        ("pulled_back", c.show_latent), ("gan_arrows", c.show_push),
                        ("gan_manifold", c.show_manifold), ("learned_field", c.show_field)):
            if get(key, bool) is not None:
                cb.setChecked(state[key])
        model = get("model", str)
        if model in lv.MODELS:
            self.model.setCurrentIndex(list(lv.MODELS).index(model))  # sets defaults, then:
        for key, spin in (("batch", c.batch), ("nfe", c.nfe), ("eta", c.eta),
                          ("guidance", c.guidance), ("temperature", c.temperature),
                          ("field_t", c.field_t), ("n_critic", c.n_critic)):
            if get(key, int) is not None:
                spin.setValue(state[key])
        for key, dspin in (("lr", c.lr), ("lr_g", c.lr_g), ("lr_d", c.lr_d)):
            lr = state.get(key)
            if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
                dspin.setValue(float(lr))
        for key, combo in (("gan_loss", c.gan_loss), ("guidance_kind", c.guidance_kind),
                           ("sampler_b", c.sampler_b)):
            i = combo.findData(get(key, str))
            if i >= 0:
                combo.setCurrentIndex(i)
        for key, cb in (("compare", c.compare), ("exact_b", c.exact_b), ("bf16", c.bf16)):
            if get(key, bool) is not None:
                cb.setChecked(state[key])
        sampler = get("sampler", str)
        if sampler in lv.SAMPLER_LABELS:
            c.sampler.setCurrentIndex(list(lv.SAMPLER_LABELS).index(sampler))
        self._set_arch_silently({
            "width": get("width", int), "depth": get("depth", int),
            "conditional": get("conditional", bool), "schedule": get("schedule", str),
            "source": get("source", str), "coupling": get("coupling", str),
            "t_sampling": get("t_sampling", str), "latent": get("latent", int),
            "prediction": get("prediction", str)})
        self._load_dataset()


__all__ = ["CANVAS", "DATASET_CHOICES", "DRAW", "IMAGE", "IMPORT", "PROCESS_CHOICES", "LabPanel"]
