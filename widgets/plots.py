"""Reusable pyqtgraph items for 2-D views: arrow fields, faint density images, paths.

Why custom items: each is created once and updated with ``setData``-style calls (no item
churn per frame), and each draws everything in one or a few ``PlotCurveItem``s with
``connect="pairs"`` instead of one item per arrow or per path, which is what keeps a 21x21
field or 64 paths x 120 steps at display rate. No model math here: the arrays arrive ready
(see ``engines.lab_views``); these items only lay them out for drawing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore


def _pairs_curve(color: tuple[int, int, int, int], width: float) -> pg.PlotCurveItem:
    pen = pg.mkPen(color=color, width=width)
    pen.setCosmetic(True)
    return pg.PlotCurveItem(pen=pen, connect="pairs", antialias=False)


class ArrowFieldItem(pg.ItemGroup):
    """Arrows (shaft + two-stroke head) from ``origins`` along display-scaled ``vectors``."""

    def __init__(self, color: tuple[int, int, int, int] = (235, 235, 235, 170), width: float = 1.2) -> None:
        super().__init__()
        self.curve = _pairs_curve(color, width)
        self.addItem(self.curve)
        self._n = 0

    def setField(self, origins: np.ndarray, vectors: np.ndarray) -> None:
        o = np.asarray(origins, dtype=np.float64).reshape(-1, 2)
        v = np.asarray(vectors, dtype=np.float64).reshape(-1, 2)
        tip = o + v
        # Head strokes: the reversed vector rotated by +-25 degrees, 35% of the shaft.
        c, s = np.cos(np.radians(25.0)), np.sin(np.radians(25.0))
        back = -0.35 * v
        h1 = tip + np.stack([c * back[:, 0] - s * back[:, 1], s * back[:, 0] + c * back[:, 1]], 1)
        h2 = tip + np.stack([c * back[:, 0] + s * back[:, 1], -s * back[:, 0] + c * back[:, 1]], 1)
        segs = np.stack([o, tip, tip, h1, tip, h2], axis=1).reshape(-1, 2)
        self._n = o.shape[0]
        self.curve.setData(segs[:, 0], segs[:, 1])

    @property
    def n_arrows(self) -> int:
        return self._n if self.isVisible() else 0


class DensityImageItem(pg.ImageItem):
    """A density drawn faintly in one colour, alpha rising with density.

    Takes image-oriented arrays (row 0 is ``y = ymax``, as ``engines``) and flips them for
    pyqtgraph, whose row 0 (with ``axisOrder="row-major"``) is the *bottom* of the rect.
    """

    def __init__(self, color: tuple[int, int, int] = (255, 190, 80), max_alpha: int = 110) -> None:
        super().__init__(axisOrder="row-major")
        self._color = color
        self._max_alpha = max_alpha
        self.setZValue(-10)

    def setDensity(self, density: np.ndarray, extent: Sequence[float]) -> None:
        d = np.asarray(density, dtype=np.float64)
        top = float(d.max()) if d.size else 0.0
        level = np.sqrt(d / top) if top > 0 else np.zeros_like(d)  # sqrt: faint tails stay visible
        rgba = np.empty((*d.shape, 4), dtype=np.uint8)
        rgba[..., :3] = self._color
        rgba[..., 3] = (self._max_alpha * level).astype(np.uint8)
        self.setImage(np.ascontiguousarray(rgba[::-1]), autoLevels=False)
        xmin, xmax, ymin, ymax = (float(v) for v in extent)
        self.setRect(QtCore.QRectF(xmin, ymin, xmax - xmin, ymax - ymin))


class TrajectoryItem(pg.ItemGroup):
    """Particle paths coloured by time: a few colour bins, each one ``PlotCurveItem``."""

    def __init__(self, n_bins: int = 8, width: float = 1.0, alpha: int = 170) -> None:
        super().__init__()
        cmap = pg.colormap.get("plasma")
        colors = cmap.getLookupTable(0.1, 0.95, n_bins, alpha=False)
        self.curves = [_pairs_curve((int(r), int(g), int(b), alpha), width) for r, g, b in colors]
        for curve in self.curves:
            self.addItem(curve)
        self._n_paths = 0

    def setPaths(self, paths: np.ndarray) -> None:
        """``paths`` (T, M, 2): M particles at T times; early steps purple, late yellow."""
        p = np.asarray(paths, dtype=np.float64)
        self._n_paths = p.shape[1] if p.ndim == 3 and p.shape[0] > 1 else 0
        if self._n_paths == 0:
            for curve in self.curves:
                curve.setData([], [])
            return
        steps = p.shape[0] - 1
        edges = np.linspace(0, steps, len(self.curves) + 1).round().astype(int)
        for curve, lo, hi in zip(self.curves, edges[:-1], edges[1:], strict=True):
            if hi <= lo:
                curve.setData([], [])
                continue
            seg = np.stack([p[lo:hi], p[lo + 1 : hi + 1]], axis=2).reshape(-1, 2)
            curve.setData(seg[:, 0], seg[:, 1])

    @property
    def n_paths(self) -> int:
        return self._n_paths if self.isVisible() else 0


class HeatmapItem(pg.ImageItem):
    """A scalar field (model log-density, critic value) under a colour map, behind the points.

    Takes image-oriented arrays (row 0 = top) with explicit levels, ready from
    ``engines.lab_views.heat_levels``; created once, updated with :meth:`setHeat`.
    """

    def __init__(self, cmap: str = "viridis", opacity: float = 0.75) -> None:
        super().__init__(axisOrder="row-major")
        self.setLookupTable(pg.colormap.get(cmap).getLookupTable(0.0, 1.0, 256))
        self.setOpacity(opacity)
        self.setZValue(-20)
        self._has_data = False

    def setHeat(self, values: np.ndarray, extent: Sequence[float], levels: tuple[float, float]) -> None:
        img = np.asarray(values, dtype=np.float32)
        self.setImage(np.ascontiguousarray(img[::-1]), autoLevels=False, levels=levels)
        xmin, xmax, ymin, ymax = (float(v) for v in extent)
        self.setRect(QtCore.QRectF(xmin, ymin, xmax - xmin, ymax - ymin))
        self._has_data = True

    def clearHeat(self) -> None:
        self.clear()
        self._has_data = False

    @property
    def has_data(self) -> bool:
        return self._has_data and self.isVisible()


class PolylinesItem(pg.PlotCurveItem):
    """Many polylines (a warped grid, a generator manifold) as one curve with a connect mask."""

    def __init__(self, color: tuple[int, int, int, int] = (120, 220, 255, 150), width: float = 1.0) -> None:
        pen = pg.mkPen(color=color, width=width)
        pen.setCosmetic(True)
        super().__init__(pen=pen, antialias=False)
        self._n = 0

    def setLines(self, x: np.ndarray, y: np.ndarray, connect: np.ndarray) -> None:
        """``x, y, connect`` as ``engines.lab_views.polyline_arrays`` returns them."""
        self._n = int(np.count_nonzero(~np.asarray(connect, bool))) if len(x) else 0
        if len(x):
            self.setData(np.asarray(x), np.asarray(y), connect=np.asarray(connect, bool))
        else:
            self.setData([], [])

    @property
    def n_lines(self) -> int:
        return self._n if self.isVisible() else 0
