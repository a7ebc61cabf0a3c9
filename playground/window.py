"""The main window: three panels in tabs, menus, status bar, shortcuts and persistence."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import PySide6
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from engines.device import choose_device, describe_device
from engines.fileio import ExportError
from playground import __version__
from playground.panels import panel_classes
from widgets.export import EXPORT_SIZES, save_gif, save_view
from widgets.panel import Panel

SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Space", "Play / pause the current panel's job"),
    ("→ (Right)", "Single step (pauses first)"),
    ("R", "Reset the current panel"),
    ("Ctrl+E", "Export the current view as PNG/SVG"),
    ("Ctrl+Shift+E", "Export the recent animation as GIF"),
    ("Ctrl+1 / 2 / 3", "Switch to 2D Lab / Image / Random Walk"),
    ("Ctrl+Z / Ctrl+Shift+Z", "Undo / redo a stroke (Lab drawing; Image canvas when focused)"),
    ("Ctrl+Q", "Quit"),
)

DEFAULT_SIZE = QtCore.QSize(1280, 800)


class MainWindow(QtWidgets.QMainWindow):
    """Holds the panels; everything user-visible that is not a panel lives here."""

    def __init__(self, device: torch.device, settings: QtCore.QSettings | None = None,
                 restore: bool = True) -> None:
        super().__init__()
        self.device = device
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.setWindowTitle("Generative Playground")
        self.resize(DEFAULT_SIZE)
        self.last_error: str = ""
        self._message_box: QtWidgets.QMessageBox | None = None
        self.export_size: tuple[int, int] | None = None  # None: the view's own size

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.panels: dict[str, Panel] = {}
        for cls in panel_classes():
            panel = cls(device=device)
            panel.setObjectName(f"panel-{cls.key}")
            self.panels[cls.key] = panel
            self.tabs.addTab(panel, cls.title)
            panel.status_changed.connect(self._refresh_status)
        self.setCentralWidget(self.tabs)
        self.tabs.currentChanged.connect(lambda _i: self._refresh_status())

        self._build_status_bar()
        self._build_menus()
        self._status_timer = QtCore.QTimer(self)
        self._status_timer.setInterval(250)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()
        if restore:
            self.restore_settings()
        self._refresh_status()

    # ------------------------------------------------------------------ panels
    def panel(self, key: str) -> Panel:
        return self.panels[key]

    def current_panel(self) -> Panel:
        widget = self.tabs.currentWidget()
        assert isinstance(widget, Panel)
        return widget

    def set_current_panel(self, key: str) -> None:
        self.tabs.setCurrentWidget(self.panels[key])

    # ------------------------------------------------------------------- menus
    def _action(self, menu: QtWidgets.QMenu, text: str, slot: Any, shortcut: str | None = None,
                tip: str | None = None) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut:
            action.setShortcut(QtGui.QKeySequence(shortcut))
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.addAction(action)  # shortcuts work even while the menu bar is hidden
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.export_action = self._action(file_menu, "Export view as PNG/SVG…", self.export_view, "Ctrl+E",
                                          "Save the current panel's plots as an image")
        self.export_gif_action = self._action(file_menu, "Export animation as GIF…", self.export_animation,
                                              "Ctrl+Shift+E", "Save the recent frames as an animated GIF")
        size_menu = file_menu.addMenu("Export size")
        group = QtGui.QActionGroup(self)
        self.size_actions: dict[str, QtGui.QAction] = {}
        for size in (None, *EXPORT_SIZES):
            label = "As shown on screen" if size is None else f"{size[0]} × {size[1]}"
            act = QtGui.QAction(label, self, checkable=True)
            act.setActionGroup(group)
            act.triggered.connect(lambda _c=False, s=size: self._set_export_size(s))
            size_menu.addAction(act)
            self.size_actions[self._size_key(size)] = act
        self.size_actions["screen"].setChecked(True)
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close, "Ctrl+Q")

        run_menu = bar.addMenu("&Run")
        self._action(run_menu, "Play / Pause", lambda: self.current_panel().play_pause(), "Space")
        self._action(run_menu, "Step", lambda: self.current_panel().step(), "Right")
        self._action(run_menu, "Reset", lambda: self.current_panel().reset(), "R")
        run_menu.addSeparator()
        device_menu = run_menu.addMenu("Compute device")
        device_group = QtGui.QActionGroup(self)
        self.device_actions: dict[str, QtGui.QAction] = {}
        for name, label in (("auto", "Automatic (CUDA, then MPS, then CPU)"), ("cpu", "CPU"),
                            ("cuda", "CUDA GPU"), ("mps", "Apple MPS")):
            act = QtGui.QAction(label, self, checkable=True)
            act.setActionGroup(device_group)
            try:
                choose_device(name)
            except RuntimeError:
                act.setEnabled(False)
                act.setToolTip("not available on this machine")
            act.triggered.connect(lambda _c=False, n=name: self.set_device(n))
            device_menu.addAction(act)
            self.device_actions[name] = act
        saved = self.settings.value("device", "auto")
        self.device_actions.get(saved if isinstance(saved, str) else "auto", self.device_actions["auto"]
                                ).setChecked(True)

        view_menu = bar.addMenu("&View")
        for i, (key, panel) in enumerate(self.panels.items(), start=1):
            self._action(view_menu, panel.title, lambda k=key: self.set_current_panel(k), f"Ctrl+{i}")
        view_menu.addSeparator()
        self._action(view_menu, "Reset layout", self.reset_layout, tip="Default window size and first panel")

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "Keyboard shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "About Generative Playground", self.show_about)

    def set_device(self, name: str) -> None:
        """Use ``name`` for jobs started from now on, and by default on the next launch."""
        try:
            device = choose_device(name)
        except (RuntimeError, ValueError) as exc:
            self.report_error("Device not available", str(exc))
            return
        self.device = device
        for panel in self.panels.values():
            panel.device = device
        self.settings.setValue("device", name)
        self.device_actions[name].setChecked(True)
        self.device_label.setText(describe_device(device))
        self.statusBar().showMessage(f"Jobs started from now on run on {describe_device(device)}", 5000)

    @staticmethod
    def _size_key(size: tuple[int, int] | None) -> str:
        return "screen" if size is None else f"{size[0]}x{size[1]}"

    def _set_export_size(self, size: tuple[int, int] | None) -> None:
        self.export_size = size
        self.size_actions[self._size_key(size)].setChecked(True)

    # -------------------------------------------------------------- status bar
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QtWidgets.QLabel(describe_device(self.device))
        self.device_label.setToolTip("Compute device (change with --device or the settings)")
        self.state_label = QtWidgets.QLabel()
        self.rate_label = QtWidgets.QLabel()
        self.fps_label = QtWidgets.QLabel()
        for w in (self.state_label, self.rate_label, self.fps_label, self.device_label):
            w.setMinimumWidth(90)
            bar.addPermanentWidget(w)

    def _refresh_status(self) -> None:
        panel = self.current_panel()
        self.state_label.setText(f"Job: {panel.job_state.value}")
        rate = panel.runner.steps_per_second
        progress = panel.runner.progress
        text = f"{rate:,.0f} steps/s" if rate >= 10 else f"{rate:.1f} steps/s"
        if progress is not None:
            text += f" · {progress:.0%}"
        self.rate_label.setText(text)
        self.fps_label.setText(f"{panel.frames_per_second:.0f} frames/s")

    # ------------------------------------------------------------------ export
    def _ask_path(self, title: str, filters: str, default_name: str) -> str | None:
        folder = str(self.settings.value("export/folder", str(Path.home())))
        start = str(Path(folder) / default_name)
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, title, start, filters)
        return path or None

    def _remember_folder(self, path: Path) -> None:
        self.settings.setValue("export/folder", str(path.parent.resolve()))

    def export_view(self, path: str | Path | None = None, size: tuple[int, int] | None = None) -> Path | None:
        """Export the current panel's view; asks for a file when ``path`` is None."""
        panel = self.current_panel()
        if path is None:
            chosen = self._ask_path("Export view", "PNG image (*.png);;SVG drawing (*.svg);;JPEG (*.jpg)",
                                    f"{panel.key}.png")
            if chosen is None:
                return None
            path = chosen
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".png")
        try:
            written = save_view(panel.export_widget(), target, size or self.export_size)
        except ExportError as exc:
            self.report_error("Export failed", str(exc))
            return None
        self._remember_folder(written)
        self.statusBar().showMessage(f"Saved {written}", 5000)
        return written

    def export_animation(
        self, path: str | Path | None = None, size: tuple[int, int] | None = None
    ) -> Path | None:
        panel = self.current_panel()
        if not panel.has_animation():
            self.report_error("Nothing to export", "This panel has no frames yet: press Play (Space) first.")
            return None
        if path is None:
            chosen = self._ask_path("Export animation", "Animated GIF (*.gif)", f"{panel.key}.gif")
            if chosen is None:
                return None
            path = chosen
        target = Path(path)
        if target.suffix.lower() != ".gif":
            target = target.with_suffix(".gif")
        was_running = panel.runner.state.value == "running"
        if was_running:
            panel.runner.pause()
        try:
            # GIFs get big fast: cap the frame size at 800×500 whatever the export size.
            gif_size = size or self.export_size
            if gif_size is not None:
                gif_size = (min(gif_size[0], 800), min(gif_size[1], 500))
            frames = panel.animation_frames(size=gif_size)
            written = save_gif(frames, target)
        except ExportError as exc:
            self.report_error("Export failed", str(exc))
            return None
        finally:
            if was_running:
                panel.runner.resume()
        self._remember_folder(written)
        self.statusBar().showMessage(f"Saved {written} ({len(frames)} frames)", 5000)
        return written

    def report_error(self, title: str, text: str) -> None:
        """Non-blocking message box plus a status-bar line; the app carries on."""
        self.last_error = text
        self.statusBar().showMessage(text, 10000)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, text,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self._message_box = box

    # --------------------------------------------------------------- help
    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
        box = QtWidgets.QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setText(f"<table>{rows}</table>")
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self._message_box = box

    def about_text(self) -> str:
        return (
            f"<h3>Generative Playground {__version__}</h3>"
            "<p>Learn generative models by touching them.</p>"
            f"<p>Qt {QtCore.qVersion()} (PySide6 {PySide6.__version__}) · pyqtgraph {pg.__version__}<br>"
            f"torch {torch.__version__} · numpy {np.__version__} · Python {platform.python_version()}<br>"
            f"Device: {describe_device(self.device)}</p>"
        )

    def show_about(self) -> None:
        box = QtWidgets.QMessageBox(self)
        box.setWindowTitle("About Generative Playground")
        box.setText(self.about_text())
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self._message_box = box

    # ------------------------------------------------------------ persistence
    def reset_layout(self) -> None:
        self.showNormal()
        self.resize(DEFAULT_SIZE)
        self.tabs.setCurrentIndex(0)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/panel", self.current_panel().key)
        s.setValue("export/size", self._size_key(self.export_size))
        for key, panel in self.panels.items():
            try:
                s.setValue(f"panels/{key}", json.dumps(panel.save_state()))
            except (TypeError, ValueError):
                continue  # a panel state that isn't JSON is a bug, but must not lose the rest
        s.sync()

    def restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if isinstance(state, QtCore.QByteArray) and not state.isEmpty():
            self.restoreState(state)
        key = s.value("window/panel")
        if isinstance(key, str) and key in self.panels:
            self.set_current_panel(key)
        size_key = s.value("export/size")
        if isinstance(size_key, str) and size_key in self.size_actions:
            size = None if size_key == "screen" else tuple(int(v) for v in size_key.split("x"))
            self._set_export_size(size)  # type: ignore[arg-type]
        for pkey, panel in self.panels.items():
            raw = s.value(f"panels/{pkey}")
            if not isinstance(raw, str):
                continue
            try:
                state_dict = json.loads(raw)
            except ValueError:
                continue
            if isinstance(state_dict, dict):
                try:
                    panel.restore_state(state_dict)
                except Exception as exc:  # an old or hand-edited setting must not block start-up
                    panel.show_error(f"Ignored saved settings ({exc})")

    def shutdown_panels(self, timeout: float = 2.0) -> None:
        """Cancel every job; each thread gets a share of ``timeout`` to finish its step."""
        share = timeout / max(len(self.panels), 1)
        for panel in self.panels.values():
            panel.shutdown(share)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self._status_timer.stop()
        self.save_settings()
        self.shutdown_panels()
        super().closeEvent(event)
