"""Atomic file writes, shared by every exporter (engines and widgets alike).

A write goes to a temporary file in the destination folder and is renamed over the target
only once complete, so a full disk, a crash or an unwritable path never leaves a truncated
file and never destroys the previous one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


class ExportError(OSError):
    """A write failed; the message is written for the user, not the developer."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``.

    ``write`` must create the file at the temporary path (and raise on failure). Any
    error becomes an :class:`ExportError` naming the target, and the old file is intact.
    """
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"Cannot write {target}: the folder {folder} does not exist.")
    if target.is_dir():
        raise ExportError(f"Cannot write {target}: it is a folder.")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=folder)
    except OSError as exc:
        raise ExportError(f"Cannot write {target}: {exc.strerror or exc}.") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise ExportError(f"Cannot write {target}: nothing was written.")
        os.replace(tmp, target)
    except ExportError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ExportError(f"Cannot write {target}: {exc.strerror or exc}.") from exc
    except Exception as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ExportError(f"Cannot write {target}: {exc}") from exc
    return target
