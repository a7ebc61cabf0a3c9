"""Stand-ins for panels whose own issue has not landed yet.

They are honest about it (a note says what is coming) but still exercise the real shell:
the Lab stand-in runs an exact demo job (a point cloud noised by the VP forward process)
through the runner, draws it with :class:`PointCloudItem`, and exports like any panel.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from engines.demo import CloudSnapshot, noising_cloud_job
from engines.jobs import ParamBox
from widgets.panel import Panel
from widgets.points import PointCloudItem


class NoisingDemoPanel(Panel):
    """The forward (noising) process of a diffusion model on a ring of points."""

    key: ClassVar[str] = "lab"
    title: ClassVar[str] = "2D Lab"
    note: ClassVar[str] = (
        "<b>2D Lab (preview).</b> Training and sampling of flows, GANs, diffusion and "
        "rectified flow arrive with their own issues. Shown now: the exact forward process "
        "x<sub>t</sub> = √ᾱ<sub>t</sub> x<sub>0</sub> + √(1−ᾱ<sub>t</sub>) ε on a ring "
        "(cosine schedule), t sweeping 0 → 1 → 0. Space plays/pauses, → steps, R resets."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params = ParamBox(speed=1.0)
        body = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        info = QtWidgets.QLabel(self.note)
        info.setWordWrap(True)
        layout.addWidget(info)
        self.plot = pg.PlotWidget()
        self.plot.setAspectLocked(True)
        self.plot.setXRange(-3.5, 3.5)
        self.plot.setYRange(-3.5, 3.5)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "x₁")
        self.plot.setLabel("left", "x₂")
        self.cloud = PointCloudItem()
        self.plot.addItem(self.cloud)
        self.title_item = pg.TextItem(anchor=(0, 0))
        self.title_item.setPos(-3.4, 3.4)
        self.plot.addItem(self.title_item)
        layout.addWidget(self.plot, 1)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Speed"))
        self.speed = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.speed.setRange(1, 40)
        self.speed.setValue(10)
        self.speed.setToolTip("How far t moves per frame (live: the running job sees it at its next step)")
        self.speed.valueChanged.connect(lambda v: self.params.update(speed=v / 10.0))
        row.addWidget(self.speed, 1)
        layout.addLayout(row)
        self.set_body(body)

    def make_job(self) -> Any:
        return noising_cloud_job(self.params, n=4000)

    def job_params(self) -> ParamBox:
        return self.params

    def draw(self, snapshot: CloudSnapshot) -> None:
        self.cloud.setData(snapshot.points)
        self.title_item.setText(f"t = {snapshot.t:.2f}")

    def export_widget(self) -> QtWidgets.QWidget:
        return self.plot

    def save_state(self) -> dict[str, Any]:
        return {"speed": self.speed.value()}

    def restore_state(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("speed"), int):
            self.speed.setValue(state["speed"])


class ComingSoonPanel(Panel):
    """A panel that says what will be here; it has no job yet."""

    key: ClassVar[str] = "image"
    title: ClassVar[str] = "Image"
    note: ClassVar[str] = (
        "<h3>Image — ControlNet (coming with its issue)</h3>"
        "<p>Draw a sketch or load a picture, see its edge map, type a prompt and watch a small "
        "bundled diffusion model with a ControlNet follow your lines — offline, or through a "
        "local Stable Diffusion + ControlNet checkpoint.</p>"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        label = QtWidgets.QLabel(self.note)
        label.setWordWrap(True)
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        label.setMinimumSize(200, 120)
        self.set_body(label)
