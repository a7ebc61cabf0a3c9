"""The one place the application lists its panels, in tab order.

Each entry is a ``widgets.panel.Panel`` subclass; the main window builds one of each.
"""

from __future__ import annotations

from widgets.image_panel import ImagePanel
from widgets.lab_panel import LabPanel
from widgets.panel import Panel
from widgets.walk_panel import WalkPanel


def panel_classes() -> list[type[Panel]]:
    """Panels in tab order: 2D Lab, Image, Random Walk."""
    return [LabPanel, ImagePanel, WalkPanel]


PANEL_KEYS: tuple[str, ...] = ("lab", "image", "walk")
