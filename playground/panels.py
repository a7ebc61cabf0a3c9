"""The one place the application lists its panels, in tab order.

Each entry is ``(key, factory)``; the factory is a ``widgets.panel.Panel`` subclass. A
panel whose own issue has not landed is a stand-in from ``widgets.placeholder``.
"""

from __future__ import annotations

from widgets.lab_panel import LabPanel
from widgets.panel import Panel
from widgets.placeholder import ComingSoonPanel


def _walk_panel() -> type[Panel]:
    try:
        from widgets.walk_panel import WalkPanel
    except ImportError:  # the Random Walk panel lands with its own issue
        class WalkPlaceholder(ComingSoonPanel):
            key = "walk"
            title = "Random Walk"
            note = (
                "<h3>Random Walk (coming with its issue)</h3><p>Millions of walkers, every "
                "histogram against its exact law, and the bridge to Brownian motion and "
                "diffusion.</p>"
            )

        return WalkPlaceholder
    return WalkPanel


def panel_classes() -> list[type[Panel]]:
    """Panels in tab order: 2D Lab, Image, Random Walk."""
    return [LabPanel, ComingSoonPanel, _walk_panel()]


PANEL_KEYS: tuple[str, ...] = ("lab", "image", "walk")
