"""The one-way layering playground -> widgets -> engines, checked two ways."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_engines_import_no_qt():
    """Import every engines module in a fresh interpreter; no Qt module may load."""
    code = (
        "import importlib, pkgutil, sys, engines\n"
        "for m in pkgutil.walk_packages(engines.__path__, 'engines.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "{'PySide6', 'pyqtgraph', 'superqt', 'qtpy', 'widgets', 'playground'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_widgets_never_import_playground():
    import widgets

    for mod in pkgutil.walk_packages(widgets.__path__, "widgets."):
        source = Path(mod.module_finder.path, mod.name.split(".")[-1] + ".py")  # type: ignore[union-attr]
        if source.exists():
            text = source.read_text()
            assert "import playground" not in text and "from playground" not in text, source


LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.prefix) / "bin" / "lint-imports")


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter is not installed")
def test_import_linter_contracts():
    exe = LINT_IMPORTS
    out = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stdout + out.stderr
