"""The Lab's training curves: loss, quality (sliced W2) against steps, quality against NFE.

Three small plots under the main view, created once and updated with ``setData`` from a
snapshot's arrays (computed in the engines' worker thread); nothing here computes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

LOSS_TITLES: dict[str, str] = {
    "diffusion": "ε-prediction MSE",
    "rf": "flow-matching MSE",
    "flow": "NLL (nats)",
    "gan": "losses: G (blue), D (red)",
}


ERROR_COLORS: dict[str, tuple[int, int, int]] = {"euler": (90, 170, 255), "heun": (255, 170, 60)}


def _small_plot(title: str, bottom: str, tip: str) -> pg.PlotWidget:
    plot = pg.PlotWidget()
    plot.setTitle(f"<span style='font-size:9pt'>{title}</span>")
    plot.setLabel("bottom", bottom)
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setMinimumHeight(150)
    plot.setToolTip(tip)
    plot.getPlotItem().getAxis("left").setWidth(42)
    return plot


class CurvesView(QtWidgets.QWidget):
    """Loss vs step, sliced W2 vs step, sliced W2 vs NFE (diffusion / RF only)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.loss_plot = _small_plot(
            "loss", "step", "Training loss per chunk: MSE (diffusion, RF), NLL in nats with the "
            "data entropy as a dashed floor (flows), generator and discriminator losses (GANs)")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen((90, 170, 255), width=1.5))
        self.loss_d_curve = self.loss_plot.plot(pen=pg.mkPen((255, 110, 110), width=1.5))
        self.floor_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((255, 200, 80), width=1.5,
                                                                style=pg.QtCore.Qt.PenStyle.DashLine))
        self.floor_line.setToolTip("True entropy of the data: no model's NLL can go below it")
        self.loss_plot.addItem(self.floor_line)
        self.floor_line.hide()
        self.quality_plot = _small_plot(
            "sliced W₂ to the target", "step",
            "Sliced Wasserstein-2 distance of the model's samples to fresh target samples "
            "(data units, lower is better), measured in the training job")
        self.quality_curve = self.quality_plot.plot(pen=pg.mkPen((120, 220, 140), width=1.5),
                                                    symbol="o", symbolSize=4)
        self.nfe_plot = _small_plot(
            "sliced W₂ vs NFE", "NFE (model evaluations)",
            "Sample quality against the sampling budget for the chosen sampler (press 'Quality vs "
            "NFE'); computed in the sampling worker")
        self.nfe_plot.setLogMode(x=True, y=True)
        # 1-2-5 labels: pyqtgraph's own log labels (3, 4, ..., 2·10¹, 3·10¹) overlap here
        nice = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
        self.nfe_plot.getPlotItem().getAxis("bottom").setTicks(
            [[(float(np.log10(v)), str(v)) for v in nice], []])
        self.quality_plot.setLogMode(x=False, y=True)  # W2 falls over decades: 10 -> 0.1
        self.nfe_curve = self.nfe_plot.plot(pen=pg.mkPen((230, 160, 255), width=1.5),
                                            symbol="o", symbolSize=5)
        # Euler vs Heun: distance to a fine-step solution from the same noise (same plot)
        self.error_curves: dict[str, pg.PlotDataItem] = {}
        self.error_legend = self.nfe_plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        for name, color in ERROR_COLORS.items():
            self.error_curves[name] = self.nfe_plot.plot(
                pen=pg.mkPen(color, width=1.5), symbol="o", symbolSize=4, symbolBrush=color,
                name=name.capitalize())
        self.error_legend.hide()
        for plot in (self.loss_plot, self.quality_plot, self.nfe_plot):
            row.addWidget(plot, 1)

    def set_family(self, fam: str) -> None:
        title = LOSS_TITLES.get(fam, "loss")
        self.loss_plot.setTitle(f"<span style='font-size:9pt'>{title}</span>")
        self.nfe_plot.setVisible(fam in ("diffusion", "rf"))
        self.clear()

    def set_loss_title(self, title: str) -> None:
        self.loss_plot.setTitle(f"<span style='font-size:9pt'>{title}</span>")

    def clear(self) -> None:
        for curve in (self.loss_curve, self.loss_d_curve, self.quality_curve, self.nfe_curve,
                      *self.error_curves.values()):
            curve.setData([], [])
        self.error_legend.hide()
        self.floor_line.hide()

    def set_training(self, loss_steps: np.ndarray, loss: np.ndarray, loss_d: np.ndarray | None,
                     floor: float | None, quality_steps: np.ndarray, quality: np.ndarray) -> None:
        self.loss_curve.setData(loss_steps, loss)
        self._fit_loss_range(loss, loss_d, floor)
        if loss_d is not None:
            self.loss_d_curve.setData(loss_steps, loss_d)
        else:
            self.loss_d_curve.setData([], [])
        if floor is not None:
            self.floor_line.setValue(floor)
            self.floor_line.show()
        else:
            self.floor_line.hide()
        self.quality_curve.setData(quality_steps, quality)

    def _fit_loss_range(self, loss: np.ndarray, loss_d: np.ndarray | None, floor: float | None) -> None:
        """y range from the 2nd-99th percentiles: one diverging chunk (a Glow spike of 6000
        nats) must not flatten the whole curve; the entropy floor stays in view."""
        vals = loss if loss_d is None else np.concatenate([loss, loss_d])
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            return
        lo, hi = (float(v) for v in np.percentile(vals, [2.0, 99.0]))
        if floor is not None:
            lo, hi = min(lo, floor), max(hi, floor)
        pad = 0.08 * max(hi - lo, 1e-6)
        self.loss_plot.setYRange(lo - pad, hi + pad, padding=0)

    def set_nfe(self, nfe: np.ndarray, swd: np.ndarray) -> None:
        """Sliced W2 against NFE (replaces an error curve on the same plot)."""
        for curve in self.error_curves.values():
            curve.setData([], [])
        self.error_legend.hide()
        self.nfe_plot.setTitle("<span style='font-size:9pt'>sliced W₂ vs NFE</span>")
        self.nfe_curve.setData(np.asarray(nfe, float), np.asarray(swd, float))

    def set_error(self, nfe: dict[str, np.ndarray], error: dict[str, np.ndarray]) -> None:
        """RMS distance to a fine-step ODE solution against NFE, one curve per solver.

        Log-log: Euler's slope is about −1, Heun's about −2; where they cross is the NFE
        from which the second-order solver pays for its extra evaluation."""
        self.nfe_curve.setData([], [])
        self.nfe_plot.setTitle("<span style='font-size:9pt'>ODE error vs NFE (RMS to a fine "
                               "solution)</span>")
        self.error_legend.show()
        for name, curve in self.error_curves.items():
            x = np.asarray(nfe.get(name, []), float)
            y = np.asarray(error.get(name, []), float)
            keep = (x > 0) & (y > 0)  # log axes
            curve.setData(x[keep], y[keep])

    def error_points(self, name: str) -> int:
        x = self.error_curves[name].xData
        return 0 if x is None else len(x)

    @property
    def n_loss_points(self) -> int:
        x, _ = self.loss_curve.getData()
        return 0 if x is None else len(x)

    @property
    def n_nfe_points(self) -> int:
        x, _ = self.nfe_curve.getData()
        return 0 if x is None else len(x)
