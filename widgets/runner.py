"""The one mechanism every panel uses to run an engine job off the GUI thread.

Design (see shared/practices.md):

* The job is plain Python (``engines.jobs.Job`` or a generator) and runs in a daemon
  ``threading.Thread``. No Qt object lives in the worker, so there is no cross-thread
  signal traffic and no "QThread destroyed while running" at exit.
* The worker writes only the **latest** snapshot into a slot; a GUI-thread ``QTimer``
  polls the slot at display rate and emits :attr:`JobRunner.snapshot` when it changed.
  A GUI that falls behind therefore skips stale snapshots instead of queueing them.
* Every ``start`` makes a new :class:`_Run` token (a generation counter): a thread that
  is still winding down from an old run can never deliver into the new one.
* Pause, resume, single step and cancel are a condition variable; live parameters are an
  ``engines.jobs.ParamBox`` the job reads once per step.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections import deque
from enum import Enum
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from engines.jobs import Job, JobStopped, ParamBox, as_job


class JobState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"


_EMPTY = object()
JOB_THREAD_NAME = "playground-job"


def wait_for_jobs(timeout: float = 5.0) -> bool:
    """Wait for cancelled job threads to finish their step in progress; True if all did.

    A daemon thread still inside a torch kernel when the interpreter exits makes the C++
    runtime abort ("terminate called without an active exception"), so the application
    waits here before exiting, and exits hard (``os._exit``) only if a step never ends.
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name == JOB_THREAD_NAME and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.name == JOB_THREAD_NAME and t.is_alive() for t in threading.enumerate())


class _Run:
    """Everything shared between the GUI and one worker thread, guarded by ``cond``."""

    def __init__(self, job: Job, params: ParamBox, paused: bool) -> None:
        self.job = job
        self.params = params
        self.cond = threading.Condition()
        self.paused = paused
        self.credits = 0  # single steps allowed while paused
        self.cancelled = False
        self.steps = 0
        self.latest: Any = _EMPTY
        self.latest_seq = 0
        self.delivered_seq = 0
        self.outcome: JobState | None = None  # set by the worker when it stops
        self.error: str | None = None
        self.step_times: deque[float] = deque(maxlen=64)
        self.thread: threading.Thread | None = None


def format_exception(exc: BaseException) -> str:
    """One readable line for the panel plus where it happened (the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (in {last.name}, {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, JobStopped):
        return text
    message = f"{exc.__class__.__name__}: {text}{where}"
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        message = ("Out of memory: try a smaller batch, fewer particles or walkers, or the CPU device. "
                   "Nothing was lost; the app is ready for the next run. (" + message + ")")
    return message


class JobRunner(QObject):
    """Runs one job at a time for a panel; start a new one to replace the old.

    Signals are emitted on the GUI thread only: ``snapshot(obj)`` at most once per
    ``interval_ms``, ``state_changed(str)``, ``failed(str)`` with a readable message, and
    ``finished()`` when the job ran to completion.
    """

    snapshot = Signal(object)
    state_changed = Signal(str)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, parent: QObject | None = None, interval_ms: int = 16) -> None:
        super().__init__(parent)
        self._run: _Run | None = None
        # Runs replaced by ``start`` finish their step in progress on their own; shutdown
        # still waits for them, so "shut down" means none of this runner's threads is alive.
        self._retired: list[threading.Thread] = []
        self._state = JobState.IDLE
        self._total: int | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._poll)
        self.params = ParamBox()

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> JobState:
        return self._state

    @property
    def is_active(self) -> bool:
        return self._state in (JobState.RUNNING, JobState.PAUSED)

    @property
    def steps(self) -> int:
        return self._run.steps if self._run is not None else 0

    @property
    def total(self) -> int | None:
        return self._total

    @property
    def progress(self) -> float | None:
        """Fraction done, when the job declared a ``total``; ``None`` for open-ended jobs."""
        if not self._total:
            return None
        return min(1.0, self.steps / self._total)

    @property
    def steps_per_second(self) -> float:
        run = self._run
        if run is None or self._state != JobState.RUNNING:
            return 0.0
        with run.cond:
            times = list(run.step_times)
        if len(times) < 2:
            return 0.0
        now = time.perf_counter()
        if now - times[-1] > 2.0:  # a slow step in progress: don't show a stale rate
            return 1.0 / (now - times[-1])
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    # ---------------------------------------------------------------- commands
    def start(self, job: Any, params: ParamBox | None = None, *, paused: bool = False,
              total: int | None = None) -> None:
        """Cancel whatever runs, then run ``job`` (a ``Job`` or a generator)."""
        self.cancel(wait=False)
        if self._run is not None and self._run.thread is not None:
            self._retired = [t for t in self._retired if t.is_alive()]
            self._retired.append(self._run.thread)
        if params is not None:
            self.params = params
        job = as_job(job, total=total)
        self._total = total if total is not None else getattr(job, "total", None)
        run = _Run(job, self.params, paused)
        thread = threading.Thread(target=self._work, args=(run,), name=JOB_THREAD_NAME, daemon=True)
        run.thread = thread
        self._run = run
        self._set_state(JobState.PAUSED if paused else JobState.RUNNING)
        thread.start()
        self._timer.start()

    def pause(self) -> None:
        run = self._run
        if run is None or self._state != JobState.RUNNING:
            return
        with run.cond:
            run.paused = True
            run.credits = 0
            run.cond.notify_all()
        self._set_state(JobState.PAUSED)

    def resume(self) -> None:
        run = self._run
        if run is None or self._state != JobState.PAUSED:
            return
        with run.cond:
            run.paused = False
            run.step_times.clear()
            run.cond.notify_all()
        self._set_state(JobState.RUNNING)

    def toggle(self) -> None:
        if self._state == JobState.RUNNING:
            self.pause()
        elif self._state == JobState.PAUSED:
            self.resume()

    def step_once(self) -> None:
        """Advance a paused job by exactly one step (pauses a running one first)."""
        if self._state == JobState.RUNNING:
            self.pause()
        run = self._run
        if run is None or self._state != JobState.PAUSED:
            return
        with run.cond:
            run.credits += 1
            run.cond.notify_all()

    def set_params(self, **values: Any) -> None:
        """New parameter values; the job sees them at its next step."""
        self.params.update(**values)

    def cancel(self, wait: bool = True, timeout: float = 2.0) -> bool:
        """Stop the current job. Returns False if its thread is still busy after ``timeout``.

        A step cannot be interrupted mid-way (it is plain Python/torch), which is why jobs
        keep steps short; the thread is a daemon, so even a stuck step never blocks exit.
        """
        run = self._run
        if run is None:
            return True
        with run.cond:
            run.cancelled = True
            run.cond.notify_all()
        alive = False
        if wait and run.thread is not None and run.thread is not threading.current_thread():
            run.thread.join(timeout)
            alive = run.thread.is_alive()
        if self.is_active:
            self._timer.stop()
            self._set_state(JobState.CANCELLED)
        return not alive

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Cancel the job and wait (up to ``timeout`` in all) for every thread this runner
        started, including runs that a newer ``start`` replaced."""
        deadline = time.monotonic() + timeout
        ok = self.cancel(wait=True, timeout=timeout)
        self._timer.stop()
        for thread in self._retired:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._retired = [t for t in self._retired if t.is_alive()]
        return ok and not self._retired

    # ------------------------------------------------------------------ worker
    @staticmethod
    def _work(run: _Run) -> None:
        try:
            while True:
                with run.cond:
                    while run.paused and run.credits == 0 and not run.cancelled:
                        run.cond.wait()
                    if run.cancelled:
                        run.outcome = JobState.CANCELLED
                        return
                    if run.paused:
                        run.credits -= 1
                snap = run.job.step()
                now = time.perf_counter()
                with run.cond:
                    if snap is None:
                        # "Still working, nothing new" (e.g. waiting on a model load): not a
                        # step, and a single-step request is still owed.
                        if run.paused:
                            run.credits += 1
                        continue
                    run.steps += 1
                    run.step_times.append(now)
                    run.latest = snap
                    run.latest_seq += 1
        except StopIteration:
            run.outcome = JobState.FINISHED
        except BaseException as exc:
            run.error = format_exception(exc)
            run.outcome = JobState.FAILED
        finally:
            close = getattr(run.job, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    # --------------------------------------------------------------- GUI side
    def _poll(self) -> None:
        run = self._run
        if run is None:
            self._timer.stop()
            return
        with run.cond:
            snap = run.latest if run.latest_seq != run.delivered_seq else _EMPTY
            run.delivered_seq = run.latest_seq
            outcome = run.outcome
        if snap is not _EMPTY:
            self.snapshot.emit(snap)
        if outcome is not None and self.is_active:
            self._timer.stop()
            if outcome == JobState.FAILED:
                self._set_state(JobState.FAILED)
                self.failed.emit(run.error or "the job failed")
            elif outcome == JobState.FINISHED:
                self._set_state(JobState.FINISHED)
                self.finished.emit()
            else:
                self._set_state(JobState.CANCELLED)

    def _set_state(self, state: JobState) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(state.value)
