"""Qt-free job protocol shared by every engine and the GUI's worker runner.

An engine job is plain Python: either an object with ``step()`` or a generator. Each
``step()`` (or ``next()``) does one small unit of work (aim for <= 50 ms so cancel and
pause feel instant) and returns a *snapshot*: a frozen dataclass or dict of numpy arrays
and numbers, never live tensors, because the GUI reads it from another thread while the
job keeps mutating its own state. ``StopIteration`` means the job is finished.

Parameters that may change while a job runs (a slider drag) live in a :class:`ParamBox`;
the job reads ``params.get()`` at the top of each step, so it always sees the newest value
and never a half-written one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable


class ParamBox:
    """A thread-safe, versioned mapping of live parameters.

    The GUI thread calls :meth:`update`; the worker thread calls :meth:`get` once per
    step. The version lets a job notice "something changed since my last step" cheaply
    (e.g. to rebuild an optimizer only when the learning rate moved).
    """

    def __init__(self, **initial: Any) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = dict(initial)
        self._version = 0

    def update(self, **values: Any) -> None:
        with self._lock:
            self._values.update(values)
            self._version += 1

    def get(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._values)

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._values[key]

    @property
    def version(self) -> int:
        with self._lock:
            return self._version


class JobStopped(RuntimeError):
    """A job ended for a reason the user can act on (training diverged, ...).

    Its message is written for the user: the GUI shows it as it is, without the exception
    class or source line it adds to unexpected errors."""


@runtime_checkable
class Job(Protocol):
    """Anything with ``step()``; raising ``StopIteration`` ends it."""

    def step(self) -> Any: ...


class GeneratorJob:
    """Adapts a generator to the :class:`Job` protocol (``step`` is ``next``)."""

    def __init__(self, gen: Iterator[Any], total: int | None = None) -> None:
        self._gen = gen
        self.total = total

    def step(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        close: Callable[[], None] | None = getattr(self._gen, "close", None)
        if close is not None:
            close()


def as_job(obj: Job | Iterator[Any], total: int | None = None) -> Job:
    """Accept a ``Job`` or a generator; the runner only ever sees ``step()``."""
    if isinstance(obj, Job):
        return obj
    return GeneratorJob(iter(obj), total=total)
