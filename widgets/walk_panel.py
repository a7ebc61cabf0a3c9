"""The Random Walk panel: many walkers, and every statistic drawn over its exact law.

The engine (``engines.walk.walk_job``) streams snapshots; ``engines.walk_views`` turns a
snapshot into curves (empirical beside exact); this panel only draws them. Plot items are
created once and updated with ``setData``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from engines import walk_views as views
from engines.jobs import ParamBox
from engines.walk import WalkConfig, WalkSnapshot, walk_job
from widgets.panel import Panel

EMPIRICAL = (90, 160, 255)
EXACT = (255, 170, 60)
LIMIT = (120, 220, 140)
POLYA_COLOURS = {1: (200, 200, 200), 2: (200, 120, 220), 3: (240, 90, 90)}

NOTES: dict[str, str] = {
    "Paths": "<b>Sample paths.</b> Each walker adds a ±1 step per tick (in 2-D/3-D along one random "
    "axis). The spread grows like √n: the dashed lines are the mean ± one standard deviation, "
    "n(p−q) ± √(4npq). Drag the time slider to look back at step n.",
    "Histogram": "<b>Where the walkers are.</b> P(S<sub>n</sub> = k) = C(n, (n+k)/2) p<sup>(n+k)/2</sup>"
    " q<sup>(n−k)/2</sup> (orange) and its Gaussian limit N(n(p−q), 4npq) (green, ×2 for the "
    "lattice spacing). In d dimensions each axis is ≈ N(0, n/d): the heat kernel.",
    "Moments": "<b>Mean, variance and mean squared displacement.</b> For the simple walk E S<sub>n</sub> = "
    "n(p−q), Var S<sub>n</sub> = 4npq, and E|S<sub>n</sub>|² = n in any dimension: diffusion.",
    "Returns": "<b>Coming back.</b> P(S<sub>2n</sub> = 0) = C(2n, n)/4<sup>n</sup> ~ 1/√(πn); the "
    "first return at 2n has probability u<sub>2n</sub>/(2n−1) (renewal in 2-D/3-D). "
    "Pólya: a walker returns with probability 1 in 1-D and 2-D, 0.3405… in 3-D (dashed: exact "
    "curves for d = 1, 2, 3; solid: your simulations, one per dimension you have run).",
    "Passage": "<b>First passage.</b> T<sub>a</sub>, the first time a walker reaches a levels above its "
    "start. Reflection principle / hitting-time theorem: P(T<sub>a</sub> = n) = (a/n) P(S<sub>n</sub>"
    " = a). For p = ½ the walker surely gets there, but E T<sub>a</sub> = ∞: the tail is ~n<sup>−3/2</sup>.",
    "Arcsine": "<b>Arcsine laws.</b> The fraction of time spent positive and the time of the last "
    "visit to 0 share the law u<sub>2k</sub> u<sub>2n−2k</sub> (Chung–Feller), whose limit "
    "is 1/(π√(x(1−x))): a walker is most likely to be almost always ahead or behind.",
    "Occupancy": "<b>2-D visits and gambler's ruin.</b> With absorbing barriers at 0 and N from i, "
    "P(reach N first) = (1−(q/p)<sup>i</sup>)/(1−(q/p)<sup>N</sup>), or i/N when p = q.",
    "Brownian": "<b>The bridge to diffusion.</b> Rescaled paths S<sub>⌊nt⌋</sub>/√n converge to "
    "Brownian motion (Donsker); the walker density follows the heat kernel. A diffusion "
    "model's forward process x<sub>t</sub> = x<sub>0</sub> + σ<sub>t</sub> ε is exactly this "
    "limit: noise added step by step until nothing of the data is left.",
}

WALKER_CHOICES = (1_000, 10_000, 100_000, 1_000_000)


def _dots(
    plot: Any, color: tuple[int, int, int], symbol: str = "o", size: int = 4, name: str | None = None
) -> Any:
    """A markers-only curve: how every empirical statistic is drawn (theory is a line)."""
    return plot.plot(pen=None, symbol=symbol, symbolSize=size, symbolBrush=color, symbolPen=None, name=name)


def _loglog(plot: Any, xlabel: str) -> None:
    """Waiting-time laws have power-law tails: draw them on log–log axes."""
    plot.setLogMode(x=True, y=True)
    plot.setLabel("bottom", xlabel)
    plot.showGrid(x=True, y=True, alpha=0.2)


def _pen(color: tuple[int, int, int], width: float = 2.0, dash: bool = False) -> Any:
    pen = pg.mkPen(color=color, width=width)
    if dash:
        pen.setStyle(QtCore.Qt.PenStyle.DashLine)
    return pen


class WalkPanel(Panel):
    key: ClassVar[str] = "walk"
    title: ClassVar[str] = "Random Walk"
    demo_frames: ClassVar[int] = 6
    # Each snapshot carries up to 200 display paths of 2048 points (a few MB): keep fewer.
    history_length: ClassVar[int] = 40

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params = ParamBox()
        self._display_n: int | None = None  # None: follow the simulation
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        body.addWidget(self._build_controls())
        body.addWidget(self._build_views())
        body.setStretchFactor(1, 1)
        body.setSizes([280, 1000])
        self.set_body(body)
        self._update_enabled()
        self.params.update(**self._config_values())

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(box)
        self.dim = QtWidgets.QComboBox()
        self.dim.addItems(["1-D", "2-D", "3-D"])
        self.dim.setToolTip("Lattice dimension; each step moves ±1 along one randomly chosen axis")
        self.step_kind = QtWidgets.QComboBox()
        self.step_kind.addItems(["±1 lattice steps", "Gaussian steps"])
        self.step_kind.setToolTip("Gaussian steps N(0, I) instead of ±1: the same √n spreading")
        self.p = QtWidgets.QDoubleSpinBox()
        self.p.setRange(0.0, 1.0)
        self.p.setSingleStep(0.01)
        self.p.setDecimals(2)
        self.p.setValue(0.5)
        self.p.setToolTip("P(step = +1) in 1-D; p ≠ 0.5 adds drift n(p − q)")
        self.walkers = QtWidgets.QComboBox()
        for w in WALKER_CHOICES:
            self.walkers.addItem(f"{w:,}", w)
        self.walkers.setCurrentIndex(2)
        self.walkers.setToolTip("Number of walkers simulated (the first 200 paths are drawn)")
        self.steps = QtWidgets.QSpinBox()
        self.steps.setRange(10, 100_000)
        self.steps.setSingleStep(100)
        self.steps.setValue(1000)
        self.steps.setToolTip("Horizon n; raising it while running extends the run without restarting")
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Random seed: the same seed gives the same walkers")
        self.barrier = QtWidgets.QComboBox()
        self.barrier.addItems(["none", "absorbing (gambler's ruin)", "reflecting"])
        self.barrier.setToolTip("1-D barriers at 0 and N; walkers start at i")
        self.start_i = QtWidgets.QSpinBox()
        self.start_i.setRange(1, 999)
        self.start_i.setValue(5)
        self.start_i.setToolTip("Start i (gambler's fortune) when barriers are on")
        self.upper = QtWidgets.QSpinBox()
        self.upper.setRange(2, 1000)
        self.upper.setValue(20)
        self.upper.setToolTip("Upper barrier N (the lower one is at 0)")
        self.level = QtWidgets.QSpinBox()
        self.level.setRange(1, 1000)
        self.level.setValue(10)
        self.level.setToolTip("Level a for the first-passage time T_a (1-D)")
        self.speed = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.speed.setRange(1, 100)
        self.speed.setValue(30)
        self.speed.setToolTip("Compute per frame (ms of work per snapshot): lower is slower, smoother")
        for label, widget in (
            ("Dimension", self.dim),
            ("Steps", self.step_kind),
            ("p", self.p),
            ("Walkers", self.walkers),
            ("Horizon n", self.steps),
            ("Seed", self.seed),
            ("Barrier", self.barrier),
            ("Start i", self.start_i),
            ("Upper N", self.upper),
            ("Level a", self.level),
            ("Speed", self.speed),
        ):
            form.addRow(label, widget)
        buttons = QtWidgets.QHBoxLayout()
        self.play_button = QtWidgets.QPushButton("▶ Play")
        self.play_button.setToolTip("Run / pause the simulation (Space)")
        self.play_button.clicked.connect(self.play_pause)
        step = QtWidgets.QPushButton("Step")
        step.setToolTip("Advance one chunk (→)")
        step.clicked.connect(self.step)
        reset = QtWidgets.QPushButton("Reset")
        reset.setToolTip("Clear and start from n = 0 (R)")
        reset.clicked.connect(self.reset)
        for b in (self.play_button, step, reset):
            buttons.addWidget(b)
        form.addRow(buttons)
        self.export_stats_button = QtWidgets.QPushButton("Export statistics (CSV)…")
        self.export_stats_button.setToolTip(
            "Every per-step statistic beside its exact value, one row per step"
        )
        self.export_stats_button.clicked.connect(lambda: self.export_statistics())
        form.addRow(self.export_stats_button)
        self.readout = QtWidgets.QLabel("Press Play.")
        self.readout.setWordWrap(True)
        self.readout.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.readout)
        for w in (self.dim, self.step_kind, self.walkers, self.barrier):
            w.currentIndexChanged.connect(self._config_changed)
        for w in (self.p, self.steps, self.seed, self.start_i, self.upper, self.level):
            w.valueChanged.connect(self._config_changed)
        self.runner.state_changed.connect(self._update_play_button)
        return box

    def _config_values(self) -> dict[str, Any]:
        dim = self.dim.currentIndex() + 1
        gaussian = self.step_kind.currentIndex() == 1
        barrier_kind = self.barrier.currentIndex()
        values: dict[str, Any] = {
            "dim": dim,
            "walkers": int(self.walkers.currentData()),
            "steps": int(self.steps.value()),
            "p": float(self.p.value()) if dim == 1 and not gaussian else 0.5,
            "step_kind": "gaussian" if gaussian else "lattice",
            "seed": int(self.seed.value()),
            "barrier": None,
            "start": 0,
            "per_step_walkers": min(int(self.walkers.currentData()), 100_000),
            "level": int(self.level.value()),
        }
        if dim == 1 and barrier_kind and not gaussian:
            upper = int(self.upper.value())
            start = min(int(self.start_i.value()), upper - 1)
            values["barrier"] = {
                "kind": "absorbing" if barrier_kind == 1 else "reflecting",
                "lower": 0,
                "upper": upper,
            }
            values["start"] = start
        return values

    def _config_changed(self) -> None:
        self._update_enabled()
        try:
            values = self._config_values()
            WalkConfig.from_mapping(values)  # validate before the job sees it
        except ValueError as exc:
            self.show_error(f"Invalid setting: {exc}")
            return
        self.banner.hide()
        self.params.update(**values)  # a running job restarts (or extends) at its next step
        if self.runner.state.value == "finished":
            self.start()  # keep the plots in step with the controls: re-run the (finished) demo

    def _update_enabled(self) -> None:
        one_d = self.dim.currentIndex() == 0
        lattice = self.step_kind.currentIndex() == 0
        self.p.setEnabled(one_d and lattice)
        self.level.setEnabled(one_d and lattice)
        self.barrier.setEnabled(one_d and lattice)
        barriers = one_d and lattice and self.barrier.currentIndex() > 0
        self.start_i.setEnabled(barriers)
        self.upper.setEnabled(barriers)

    def _update_play_button(self, state: str) -> None:
        self.play_button.setText("⏸ Pause" if state == "running" else "▶ Play")

    # --------------------------------------------------------------------- views
    def _plot(self, title: str, x: str, y: str) -> pg.PlotWidget:
        w = pg.PlotWidget(title=title)
        w.setLabel("bottom", x)
        w.setLabel("left", y)
        w.showGrid(x=True, y=True, alpha=0.2)
        w.addLegend(offset=(-10, 10))
        return w

    def _build_views(self) -> QtWidgets.QWidget:
        right = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(right)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QtWidgets.QTabWidget()
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(QtCore.Qt.TextFormat.RichText)

        # Paths
        self.paths_plot = self._plot("Sample paths", "step n", "position S_n")
        self.path_curve = self.paths_plot.plot(pen=pg.mkPen((90, 160, 255, 60), width=1), name="walkers")
        self.env_hi = self.paths_plot.plot(pen=_pen(EXACT, 2, dash=True), name="mean ± std (exact)")
        self.env_lo = self.paths_plot.plot(pen=_pen(EXACT, 2, dash=True))
        self.time_line = pg.InfiniteLine(angle=90, pen=_pen((230, 230, 230), 1))
        self.paths_plot.addItem(self.time_line)
        # Histogram
        self.hist_plot = self._plot("Position", "k", "P(S_n = k)")
        self.hist_bars = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=(*EMPIRICAL, 110), pen=_pen(EMPIRICAL, 1), name="simulation"
        )
        self.hist_plot.addItem(self.hist_bars)
        self.hist_exact = _dots(self.hist_plot, EXACT, size=5, name="exact law")
        self.hist_limit = self.hist_plot.plot(pen=_pen(LIMIT, 2), name="Gaussian limit")
        # Moments
        mom = pg.GraphicsLayoutWidget()
        self.var_plot = mom.addPlot(title="Variance and mean squared displacement")
        self.var_plot.addLegend(offset=(10, 10))
        self.var_plot.setLabel("bottom", "step n")
        self.var_plot.showGrid(x=True, y=True, alpha=0.2)
        self.var_curve = self.var_plot.plot(pen=_pen(EMPIRICAL), name="Var S_n (axis 1)")
        self.var_exact = self.var_plot.plot(pen=_pen(EXACT, 2, dash=True), name="exact")
        self.msd_curve = self.var_plot.plot(pen=_pen(LIMIT), name="E|S_n|²")
        self.msd_exact = self.var_plot.plot(pen=_pen((220, 220, 220), 1, dash=True), name="exact E|S_n|²")
        mom.nextRow()
        self.mean_plot = mom.addPlot(title="Mean")
        self.mean_plot.setLabel("bottom", "step n")
        self.mean_plot.showGrid(x=True, y=True, alpha=0.2)
        self.mean_curve = self.mean_plot.plot(pen=_pen(EMPIRICAL))
        self.mean_exact = self.mean_plot.plot(pen=_pen(EXACT, 2, dash=True))
        # Returns
        ret = pg.GraphicsLayoutWidget()
        self.ret_plot = ret.addPlot(title="P(returned to start by step k)", colspan=2)
        self.ret_plot.addLegend(offset=(-10, -10))
        self.ret_plot.setLabel("bottom", "k")
        self.ret_plot.showGrid(x=True, y=True, alpha=0.2)
        self.ret_curve = self.ret_plot.plot(pen=_pen(EMPIRICAL, 3), name="simulation (this run)")
        self.ret_exact = self.ret_plot.plot(pen=_pen(EXACT, 2, dash=True), name="exact (this dimension)")
        self.polya_exact = {
            d: self.ret_plot.plot(pen=_pen(c, 1, dash=True), name=f"exact, {d}-D")
            for d, c in POLYA_COLOURS.items()
        }
        self.polya_runs = {
            d: self.ret_plot.plot(pen=_pen(c, 1.5), name=f"simulated, {d}-D")
            for d, c in POLYA_COLOURS.items()
        }
        self._polya_seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.polya_line = pg.InfiniteLine(
            angle=0,
            pen=_pen(LIMIT, 1, dash=True),
            label="Pólya limit",
            labelOpts={"position": 0.1, "color": LIMIT},
        )
        self.ret_plot.addItem(self.polya_line)
        ret.nextRow()
        self.first_plot = ret.addPlot(title="First-return time law f_k (log–log)")
        _loglog(self.first_plot, "k")
        self.first_curve = _dots(self.first_plot, EMPIRICAL)
        self.first_exact = self.first_plot.plot(pen=_pen(EXACT, 2))
        self.u_plot = ret.addPlot(title="P(S_2n = start) vs C(2n, n)/4ⁿ (log–log)")
        _loglog(self.u_plot, "2n")
        self.u_curve = _dots(self.u_plot, EMPIRICAL)
        self.u_exact = self.u_plot.plot(pen=_pen(EXACT, 2))
        # Passage
        self.pass_plot = self._plot("First-passage time T_a", "n", "P(T_a = n)")
        _loglog(self.pass_plot, "n")
        self.pass_curve = _dots(self.pass_plot, EMPIRICAL, name="simulation")
        self.pass_exact = self.pass_plot.plot(pen=_pen(EXACT, 2), name="(a/n) P(S_n = a)")
        # Arcsine
        self.arc_plot = self._plot("Arcsine laws", "x = k/n", "probability")
        self.arc_pos = _dots(self.arc_plot, EMPIRICAL, name="time positive")
        self.arc_last = _dots(self.arc_plot, LIMIT, symbol="t", size=5, name="last visit to 0")
        self.arc_exact = self.arc_plot.plot(pen=_pen(EXACT, 2), name="u₂ₖ u₂ₙ₋₂ₖ")
        self.arc_density = self.arc_plot.plot(pen=_pen((220, 220, 220), 1, dash=True), name="1/(π√(x(1−x)))")
        # Occupancy / ruin
        occ = pg.GraphicsLayoutWidget()
        self.occ_plot = occ.addPlot(title="2-D visits (log scale)")
        self.occ_plot.setAspectLocked(True)
        self.occ_image = pg.ImageItem()
        self.occ_image.setColorMap(pg.colormap.get("viridis"))
        self.occ_plot.addItem(self.occ_image)
        self.ruin_plot = occ.addPlot(title="Gambler's ruin: P(reach N before 0)")
        self.ruin_plot.setLabel("bottom", "start i")
        self.ruin_plot.showGrid(x=True, y=True, alpha=0.2)
        self.ruin_curve = self.ruin_plot.plot(pen=_pen(EXACT, 2), name="exact")
        self.ruin_point = self.ruin_plot.plot(pen=None, symbol="o", symbolSize=10, symbolBrush=EMPIRICAL)
        # Brownian
        self.bm_plot = self._plot("Rescaled paths S⌊nt⌋/√n", "t", "W(t)")
        self.bm_curve = self.bm_plot.plot(pen=pg.mkPen((90, 160, 255, 50), width=1), name="rescaled walkers")
        self.bm_hi = self.bm_plot.plot(pen=_pen(LIMIT, 2, dash=True), name="±1.96√t (Brownian 95%)")
        self.bm_lo = self.bm_plot.plot(pen=_pen(LIMIT, 2, dash=True))

        for name, widget in (
            ("Paths", self.paths_plot),
            ("Histogram", self.hist_plot),
            ("Moments", mom),
            ("Returns", ret),
            ("Passage", self.pass_plot),
            ("Arcsine", self.arc_plot),
            ("Occupancy", occ),
            ("Brownian", self.bm_plot),
        ):
            self.tabs.addTab(widget, name)
        self.tabs.currentChanged.connect(self._tab_changed)
        layout.addWidget(self.note)
        layout.addWidget(self.tabs, 1)
        row = QtWidgets.QHBoxLayout()
        self.time_label = QtWidgets.QLabel("n = 0")
        self.time_label.setMinimumWidth(110)
        self.time_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.time_slider.setRange(0, 0)
        self.time_slider.setToolTip(
            "Look back at step n (paths and the histogram of the drawn walkers); "
            "drag to the right end to follow the simulation"
        )
        self.time_slider.valueChanged.connect(self._time_moved)
        row.addWidget(QtWidgets.QLabel("Time"))
        row.addWidget(self.time_slider, 1)
        row.addWidget(self.time_label)
        layout.addLayout(row)
        self._tab_changed(0)
        return right

    def _tab_changed(self, index: int) -> None:
        self.note.setText(NOTES[self.tabs.tabText(index)])
        if self.latest is not None:
            self.draw(self.latest)

    def _time_moved(self, value: int) -> None:
        snap = self.latest
        if snap is None:
            return
        self._display_n = None if value >= snap.n else value
        self.draw(snap)

    # ---------------------------------------------------------------- job & draw
    def make_job(self) -> Any:
        self.params.update(**self._config_values())
        return walk_job(self.params, target_ms=float(self.speed.value()))

    def job_params(self) -> ParamBox:
        return self.params

    def reset(self) -> None:
        super().reset()
        self._display_n = None
        self.time_slider.setRange(0, 0)
        for item in (self.path_curve, self.hist_bars, self.hist_exact, self.hist_limit, self.bm_curve):
            item.setData([], [])
        self.readout.setText("Press Play.")

    def export_widget(self) -> QtWidgets.QWidget:
        return self.tabs.currentWidget()

    def draw(self, snap: WalkSnapshot) -> None:
        n_now = snap.n
        blocked = self.time_slider.blockSignals(True)
        following = self._display_n is None
        self.time_slider.setRange(0, max(n_now, 0))
        if following:
            self.time_slider.setValue(n_now)
        self.time_slider.blockSignals(blocked)
        n = n_now if following else min(self._display_n or 0, n_now)
        self.time_label.setText(f"n = {n:,}" + ("" if following else f" / {n_now:,}"))
        tab = self.tabs.tabText(self.tabs.currentIndex())
        {
            "Paths": self._draw_paths,
            "Histogram": self._draw_hist,
            "Moments": self._draw_moments,
            "Returns": self._draw_returns,
            "Passage": self._draw_passage,
            "Arcsine": self._draw_arcsine,
            "Occupancy": self._draw_occupancy,
            "Brownian": self._draw_brownian,
        }[tab](snap, n)
        cfg = snap.config
        text = (
            f"n = {n_now:,} of {cfg.steps:,} · {cfg.walkers:,} walkers · "
            f"{snap.walker_steps_per_s / 1e9:.2f} × 10⁹ walker-steps/s ({snap.backend})"
        )
        ruin = views.ruin_view(snap)
        if ruin is not None:
            text += (
                f"<br>reached N first: {ruin.p_upper_empirical:.4f} (exact {ruin.p_upper_exact:.4f});"
                f" still walking: {ruin.still_running:,}"
            )
        self.readout.setText(text)

    def _draw_paths(self, snap: WalkSnapshot, n: int) -> None:
        t = snap.display_t
        paths = snap.display_paths
        if paths.size == 0:
            return
        keep = t <= n
        if snap.config.dim == 1:
            x = np.broadcast_to(t[keep], (paths.shape[0], int(keep.sum())))
            y = paths[:, keep, 0]
            self.paths_plot.setLabel("bottom", "step n")
            self.paths_plot.setLabel("left", "position S_n")
            env_t = np.linspace(0, max(n, 1), 200)
            centre = snap.config.start + env_t * (2 * snap.config.p - 1)
            width = np.sqrt(env_t * 4 * snap.config.p * (1 - snap.config.p))
            self.env_hi.setData(env_t, centre + width)
            self.env_lo.setData(env_t, centre - width)
            self.time_line.setValue(n)
            self.time_line.show()
        else:
            x = paths[:, keep, 0]
            y = paths[:, keep, 1]
            self.paths_plot.setLabel("bottom", "x")
            self.paths_plot.setLabel("left", "y")
            self.env_hi.setData([], [])
            self.env_lo.setData([], [])
            self.time_line.hide()
        # One curve for all paths: NaN-separated rows draw as separate lines in a single call.
        sep = np.full((x.shape[0], 1), np.nan)
        self.path_curve.setData(
            np.hstack([x, sep]).ravel(), np.hstack([y.astype(float), sep]).ravel(), connect="finite"
        )

    def _draw_hist(self, snap: WalkSnapshot, n: int) -> None:
        positions = None if n == snap.n else views.display_positions_at(snap, n)
        view = views.histogram_view(snap, positions=positions, n=n)
        lattice = snap.config.step_kind == "lattice"
        self.hist_plot.setTitle(view.label + ("" if positions is None else " — drawn walkers only"))
        self.hist_plot.setLabel("left", "P(S_n = k)" if lattice else "density")
        self.hist_bars.setData(view.edges, view.empirical)
        if view.exact is not None:
            self.hist_exact.setData(view.exact.x, view.exact.y)
        else:
            self.hist_exact.setData([], [])
        self.hist_limit.setData(view.limit.x, view.limit.y)

    def _draw_moments(self, snap: WalkSnapshot, n: int) -> None:
        view = views.moments_view(snap)
        if view is None:
            return
        self.var_curve.setData(view.n, view.var)
        self.var_exact.setData(view.n, view.var_exact, connect="finite")
        self.msd_curve.setData(view.n, view.msd)
        self.msd_exact.setData(view.n, view.msd_exact, connect="finite")
        self.mean_curve.setData(view.n, view.mean)
        self.mean_exact.setData(view.n, view.mean_exact, connect="finite")

    def _draw_returns(self, snap: WalkSnapshot, n: int) -> None:
        view = views.returns_view(snap)
        if view is None:
            self.ret_curve.setData([], [])
            return
        self.ret_curve.setData(view.k, view.return_by)
        self.ret_exact.setData(
            view.k, view.return_by_exact
        ) if view.return_by_exact is not None else self.ret_exact.setData([], [])
        self.polya_line.setValue(view.polya)
        dim = snap.config.dim
        if view.return_by_exact is not None:
            self._polya_seen[dim] = (view.k, view.return_by)
        horizon = max([snap.n] + [int(k[-1]) for k, _ in self._polya_seen.values()])
        for d, curve in views.exact_return_curves(horizon).items():
            self.polya_exact[d].setData(np.arange(len(curve)), curve)
        for d, item in self.polya_runs.items():
            k, r = self._polya_seen.get(d, (np.array([]), np.array([])))
            item.setData(k, r)
        if view.at_start is not None:
            ok = view.at_start > 0
            self.u_curve.setData(view.first_return_k[ok], view.at_start[ok])
        if view.at_start_exact is not None:
            self.u_exact.setData(view.first_return_k, view.at_start_exact)
        pos = view.first_return > 0
        self.first_curve.setData(view.first_return_k[pos], view.first_return[pos])
        if view.first_return_exact is not None:
            ok = view.first_return_exact > 0
            self.first_exact.setData(view.first_return_k[ok], view.first_return_exact[ok])

    def _draw_passage(self, snap: WalkSnapshot, n: int) -> None:
        view = views.passage_view(snap)
        if view is None:
            self.pass_plot.setTitle("First passage: 1-D lattice walks without barriers")
            self.pass_curve.setData([], [])
            self.pass_exact.setData([], [])
            return
        self.pass_plot.setTitle(
            f"First passage to a = {view.level}: reached {view.reached:.4f} by n = {snap.n:,}"
            f" (exact {view.reached_exact:.4f})"
        )
        ok = view.empirical > 0
        self.pass_curve.setData(view.k[ok], view.empirical[ok])
        good = view.exact > 0
        self.pass_exact.setData(view.k[good], view.exact[good])

    def export_statistics(self, path: str | None = None) -> bool:
        """Write the per-step statistics with their exact values to CSV; asks for a file if needed."""
        snap = self.latest
        if snap is None:
            self.show_error("Nothing to export yet: press Play first.")
            return False
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(
                self, "Export statistics", "walk-statistics.csv", "CSV (*.csv)"
            )
            if not path:
                return False
        try:
            views.save_statistics_csv(path, snap)
        except OSError as exc:
            self.show_error(str(exc))
            return False
        return True

    def _draw_arcsine(self, snap: WalkSnapshot, n: int) -> None:
        view = views.arcsine_view(snap)
        if view is None:
            self.arc_plot.setTitle("Arcsine laws: 1-D walks without barriers, at even n")
            return
        self.arc_plot.setTitle(f"Arcsine laws at n = {snap.n:,}")
        self.arc_pos.setData(view.x, view.positive)
        self.arc_last.setData(view.x, view.last_zero)
        self.arc_exact.setData(view.x, view.exact, connect="finite")
        self.arc_density.setData(view.density_x, view.density)
        self.arc_plot.setYRange(0, float(np.nanmax(view.exact[1:-1])) * 4 if len(view.x) > 2 else 1)

    def _draw_occupancy(self, snap: WalkSnapshot, n: int) -> None:
        if snap.occupancy is not None:
            radius = (snap.occupancy.shape[0] - 1) // 2
            self.occ_image.setImage(np.log1p(snap.occupancy.astype(float)), autoLevels=True)
            side = 2 * radius + 1
            self.occ_image.setRect(QtCore.QRectF(-radius - 0.5, -radius - 0.5, side, side))
            self.occ_plot.setTitle("2-D visits per site (log scale)")
        else:
            self.occ_plot.setTitle("2-D visits: choose Dimension 2-D")
        ruin = views.ruin_view(snap)
        if ruin is not None:
            self.ruin_curve.setData(ruin.curve.x, ruin.curve.y)
            self.ruin_point.setData([ruin.start], [ruin.p_upper_empirical])
            self.ruin_plot.setTitle(
                f"Gambler's ruin: simulated {ruin.p_upper_empirical:.4f}, exact {ruin.p_upper_exact:.4f}"
            )
        else:
            self.ruin_plot.setTitle("Gambler's ruin: choose an absorbing barrier (1-D)")

    def _draw_brownian(self, snap: WalkSnapshot, n: int) -> None:
        view = views.brownian_view(snap)
        if view is None:
            return
        sep = np.full((view.paths.shape[0], 1), np.nan)
        t = np.broadcast_to(view.t, view.paths.shape)
        self.bm_curve.setData(
            np.hstack([t, sep]).ravel(), np.hstack([view.paths, sep]).ravel(), connect="finite"
        )
        self.bm_hi.setData(view.band_t, view.band)
        self.bm_lo.setData(view.band_t, -view.band)

    # -------------------------------------------------------------- persistence
    def save_state(self) -> dict[str, Any]:
        return {
            "dim": self.dim.currentIndex(),
            "step_kind": self.step_kind.currentIndex(),
            "p": self.p.value(),
            "walkers": self.walkers.currentIndex(),
            "steps": self.steps.value(),
            "seed": self.seed.value(),
            "barrier": self.barrier.currentIndex(),
            "start": self.start_i.value(),
            "upper": self.upper.value(),
            "speed": self.speed.value(),
            "level": self.level.value(),
            "view": self.tabs.currentIndex(),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        combos = {
            "dim": self.dim,
            "step_kind": self.step_kind,
            "walkers": self.walkers,
            "barrier": self.barrier,
            "view": self.tabs,
        }
        for key, widget in combos.items():
            value = state.get(key)
            if isinstance(value, int) and 0 <= value < widget.count():
                widget.setCurrentIndex(value)
        spins = {
            "p": self.p,
            "steps": self.steps,
            "seed": self.seed,
            "start": self.start_i,
            "upper": self.upper,
            "speed": self.speed,
            "level": self.level,
        }
        for key, widget in spins.items():
            value = state.get(key)
            if isinstance(value, (int, float)):
                widget.setValue(type(widget.value())(value))
        self._update_enabled()
