"""The base every panel builds on: a runner, a bounded snapshot history, an error banner.

A panel subclass provides ``draw(snapshot)`` (render one engine snapshot, no math) and
``make_job()`` (the engine job its Play button runs). The base wires the runner to
``draw``, keeps the last snapshots for GIF export, measures display frames/s, and shows a
job's exception in a banner instead of letting it reach the event loop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from PySide6 import QtCore, QtGui, QtWidgets

from engines.jobs import ParamBox
from widgets.runner import JobRunner, JobState


@contextmanager
def signals_blocked(obj: QtCore.QObject) -> Iterator[None]:
    """``blockSignals`` for a block. Not ``QSignalBlocker`` as a context manager: in PySide6
    6.12 its ``__exit__`` over-releases ``None`` and aborts the interpreter after a few
    thousand uses ("none_dealloc")."""
    was = obj.blockSignals(True)
    try:
        yield
    finally:
        obj.blockSignals(was)


class ErrorBanner(QtWidgets.QFrame):
    """A dismissible strip at the top of a panel; errors stay readable, nothing pops up."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet(
            "#errorBanner { background: #5c1f1f; border: 1px solid #b04040; border-radius: 4px; }"
            " QLabel { color: #ffe0e0; }"
        )
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QtWidgets.QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss this message")
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    @property
    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class Panel(QtWidgets.QWidget):
    """Subclass and set ``key``/``title``; override ``draw``, ``make_job`` and friends."""

    key: ClassVar[str] = "panel"
    title: ClassVar[str] = "Panel"
    #: How many snapshots to keep for "Export animation as GIF…".
    history_length: ClassVar[int] = 240
    #: ``playground snapshot`` waits for this many frames of the demo before the screenshot.
    demo_frames: ClassVar[int] = 10

    #: Emitted when the job state, steps/s or fps change enough to refresh the status bar.
    status_changed = QtCore.Signal()

    def __init__(self, device: torch.device | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.device = device or torch.device("cpu")
        self.runner = JobRunner(self)
        self.runner.snapshot.connect(self._on_snapshot)
        self.runner.failed.connect(self.show_error)
        self.runner.state_changed.connect(lambda _s: self.status_changed.emit())
        self.history: deque[Any] = deque(maxlen=self.history_length)
        self.latest: Any = None
        self._frame_times: deque[float] = deque(maxlen=30)
        self.banner = ErrorBanner(self)
        self._outer = QtWidgets.QVBoxLayout(self)
        self._outer.setContentsMargins(4, 4, 4, 4)
        self._outer.addWidget(self.banner)

    # -------------------------------------------------------------- subclass API
    def set_body(self, widget: QtWidgets.QWidget) -> None:
        """Put the panel's content under the error banner."""
        self._outer.addWidget(widget, 1)

    def make_job(self) -> Any | None:
        """The job Play starts when nothing runs yet; ``None`` if the panel has none."""
        return None

    def job_params(self) -> ParamBox | None:
        """Live parameters handed to the job (defaults to the runner's own box)."""
        return None

    def draw(self, snapshot: Any) -> None:
        """Render one snapshot. Called on the GUI thread with the newest snapshot only."""

    def export_widget(self) -> QtWidgets.QWidget:
        """What File ▸ Export view captures (by default the whole panel, banner excluded)."""
        return self

    def save_state(self) -> dict[str, Any]:
        """Plain-JSON settings to persist across launches."""
        return {}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Apply what ``save_state`` returned on a previous launch; ignore unknown keys."""

    def start_demo(self) -> None:
        """What ``playground snapshot`` shows: by default, start the panel's job."""
        self.start()

    def demo_ready(self) -> bool:
        """True once the demo has drawn enough to be worth a screenshot (or has stopped)."""
        return len(self.history) >= self.demo_frames or not self.runner.is_active

    # ------------------------------------------------------------ transport
    def start(self, paused: bool = False) -> None:
        job = self.make_job()
        if job is None:
            return
        self.banner.hide()
        self.history.clear()
        self.runner.start(job, self.job_params(), paused=paused)

    def play_pause(self) -> None:
        if self.runner.is_active:
            self.runner.toggle()
        else:
            self.start()

    def step(self) -> None:
        if not self.runner.is_active:
            self.start(paused=True)
        self.runner.step_once()

    def reset(self) -> None:
        """Stop the job and clear what it drew; Play starts afresh."""
        self.runner.cancel(wait=False)
        self.history.clear()
        self.latest = None
        self.banner.hide()
        self.status_changed.emit()

    def shutdown(self, timeout: float = 2.0) -> bool:
        return self.runner.shutdown(timeout)

    # --------------------------------------------------------------- status
    @property
    def job_state(self) -> JobState:
        return self.runner.state

    @property
    def frames_per_second(self) -> float:
        times = self._frame_times
        if len(times) < 2 or time.perf_counter() - times[-1] > 1.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    def show_error(self, message: str) -> None:
        self.banner.show_message(f"⚠ {message}")
        self.status_changed.emit()

    # ------------------------------------------------------------- internals
    def _on_snapshot(self, snapshot: Any) -> None:
        self.latest = snapshot
        self.history.append(snapshot)
        try:
            self.draw(snapshot)
        except Exception as exc:  # a drawing bug must not take down the app
            self.runner.cancel(wait=False)
            self.show_error(f"Could not draw the result: {exc.__class__.__name__}: {exc}")
            return
        self._frame_times.append(time.perf_counter())

    def has_animation(self) -> bool:
        """Whether :meth:`animation_frames` has anything to show (GIF export asks first)."""
        return bool(self.history)

    def animation_frames(
        self, max_frames: int = 120, size: tuple[int, int] | None = None
    ) -> list[QtGui.QImage]:
        """Re-draw the kept snapshots one by one and capture each, for GIF export."""
        from widgets.export import render_widget

        snaps = list(self.history)
        if len(snaps) > max_frames:
            stride = len(snaps) / max_frames
            snaps = [snaps[int(i * stride)] for i in range(max_frames)]
        target = self.export_widget()
        frames: list[QtGui.QImage] = []
        try:
            for snap in snaps:
                self.draw(snap)
                frames.append(render_widget(target, size))
        finally:
            if self.latest is not None:
                self.draw(self.latest)
        return frames
