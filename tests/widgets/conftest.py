"""Panel factory fixtures shared by the widget tests (napari's ``make_napari_viewer`` habit)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from widgets.lab_panel import LabPanel


@pytest.fixture
def make_lab(qtbot) -> Iterator[Callable[[], LabPanel]]:
    """Build shown Lab panels; at teardown every job must stop and no job thread may remain."""
    made: list[LabPanel] = []

    def make() -> LabPanel:
        panel = LabPanel()
        qtbot.addWidget(panel)
        panel.resize(1000, 800)
        panel.show()
        qtbot.waitExposed(panel)
        made.append(panel)
        return panel

    yield make
    for panel in made:
        assert panel.shutdown(3.0)
    assert not [t for t in threading.enumerate() if t.name == "playground-job" and t.is_alive()]
