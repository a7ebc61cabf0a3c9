"""Test-wide settings: headless Qt before anything imports it, and settings kept apart from the user's."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PLAYGROUND_SETTINGS_ORG", "GenerativePlaygroundTests")



def _configure_torch() -> None:
    """Tests run torch as the app does: one core left to the GUI thread (one thread here).

    On a 2-core machine two OpenMP threads per process spin against any other busy thread;
    measured here, small ops ran 10-100x slower that way.
    """
    from engines.device import configure_threads

    configure_threads()


_configure_torch()
