"""Test-wide settings: headless Qt before anything imports it, and settings kept apart from the user's."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PLAYGROUND_SETTINGS_ORG", "GenerativePlaygroundTests")

