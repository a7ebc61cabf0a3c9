from __future__ import annotations

from pathlib import Path

import pytest

from engines.fileio import ExportError, atomic_write


def test_atomic_write_replaces_only_on_success(tmp_path: Path):
    target = tmp_path / "out.txt"
    atomic_write(target, lambda p: p.write_text("one"))
    assert target.read_text() == "one"

    def half_then_fail(p: Path) -> None:
        p.write_text("partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(ExportError, match="No space left on device"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_missing_folder_and_folder_target(tmp_path: Path):
    with pytest.raises(ExportError, match="does not exist"):
        atomic_write(tmp_path / "a" / "b.txt", lambda p: p.write_text("x"))
    with pytest.raises(ExportError, match="is a folder"):
        atomic_write(tmp_path, lambda p: p.write_text("x"))


def test_empty_result_is_an_error(tmp_path: Path):
    with pytest.raises(ExportError, match="nothing was written"):
        atomic_write(tmp_path / "x.bin", lambda p: None)
