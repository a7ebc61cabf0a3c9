"""The worker runner driven through its public API, with real threads and fake jobs."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from engines.jobs import ParamBox
from widgets.runner import JobRunner, JobState


def counting_job(
    params: ParamBox | None = None, sleep: float = 0.002, limit: int | None = None
) -> Iterator[dict]:
    i = 0
    while limit is None or i < limit:
        time.sleep(sleep)
        i += 1
        yield {"i": i, "scale": params.get().get("scale") if params is not None else None}


@pytest.fixture
def runner(qtbot):
    r = JobRunner()
    yield r
    assert r.shutdown(2.0)


def test_snapshots_arrive_and_job_finishes(qtbot, runner):
    seen: list[dict] = []
    runner.snapshot.connect(seen.append)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start(counting_job(limit=50), total=50)
    qtbot.wait(50)
    assert runner.state == JobState.FINISHED
    assert runner.steps == 50
    assert runner.progress == 1.0
    # The last snapshot is always delivered; intermediate ones may be dropped.
    assert seen[-1]["i"] == 50
    assert len(seen) <= 50


def test_stale_snapshots_are_dropped_not_queued(qtbot, runner):
    seen: list[int] = []
    runner.snapshot.connect(lambda s: seen.append(s["i"]))
    runner.start(counting_job(sleep=0.0))  # tens of thousands of steps per second
    qtbot.wait(300)
    runner.pause()
    steps = runner.steps
    assert steps > 10 * len(seen), (steps, len(seen))  # the GUI saw only the latest ones
    assert seen == sorted(seen)  # and never an older one after a newer one


def test_pause_step_resume_cancel(qtbot, runner):
    seen: list[int] = []
    runner.snapshot.connect(lambda s: seen.append(s["i"]))
    runner.start(counting_job(), paused=True)
    qtbot.wait(100)
    assert runner.state == JobState.PAUSED
    assert runner.steps == 0  # paused from the start: nothing ran
    for expected in (1, 2, 3):
        runner.step_once()
        qtbot.waitUntil(lambda e=expected: bool(seen) and seen[-1] == e, timeout=2000)
    assert runner.steps == 3
    qtbot.wait(100)
    assert runner.steps == 3  # still paused
    runner.resume()
    assert runner.state == JobState.RUNNING
    qtbot.waitUntil(lambda: runner.steps > 10, timeout=2000)
    assert runner.steps_per_second > 0
    runner.pause()
    frozen = runner.steps
    qtbot.wait(100)
    assert runner.steps <= frozen + 1  # at most the step in flight
    assert runner.cancel()
    assert runner.state == JobState.CANCELLED


def test_step_while_running_pauses_after_one(qtbot, runner):
    runner.start(counting_job())
    qtbot.waitUntil(lambda: runner.steps > 3, timeout=2000)
    runner.step_once()
    assert runner.state == JobState.PAUSED
    qtbot.wait(50)
    before = runner.steps
    qtbot.wait(100)
    assert runner.steps == before


def test_parameter_change_reaches_running_job(qtbot, runner):
    params = ParamBox(scale=1)
    seen: list[dict] = []
    runner.snapshot.connect(seen.append)
    runner.start(counting_job(params), params)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1]["scale"] == 1, timeout=2000)
    runner.set_params(scale=7)
    qtbot.waitUntil(lambda: seen[-1]["scale"] == 7, timeout=2000)
    assert params.version == 1


def test_exception_becomes_message_and_runner_recovers(qtbot, runner):
    def bad() -> Iterator[int]:
        yield 1
        raise ValueError("loss became NaN at step 2")

    with qtbot.waitSignal(runner.failed, timeout=3000) as blocker:
        runner.start(bad())
    assert "ValueError: loss became NaN at step 2" in blocker.args[0]
    assert runner.state == JobState.FAILED
    with qtbot.waitSignal(runner.finished, timeout=3000):
        runner.start(counting_job(limit=3))


def test_new_start_replaces_old_job_and_ignores_its_results(qtbot, runner):
    seen: list[str] = []
    runner.snapshot.connect(seen.append)

    def tagged(tag: str) -> Iterator[str]:
        while True:
            time.sleep(0.001)
            yield tag

    runner.start(tagged("old"))
    qtbot.waitUntil(lambda: "old" in seen, timeout=2000)
    runner.start(tagged("new"))
    seen.clear()
    qtbot.wait(200)
    assert seen and set(seen) == {"new"}
    assert sum(t.name == "playground-job" for t in threading.enumerate()) == 1


def test_cancel_returns_quickly_and_leaves_no_thread(qtbot, runner):
    runner.start(counting_job(sleep=0.05))
    qtbot.wait(100)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runner.cancel(timeout=2.0)
    assert time.perf_counter() - t0 < 1.0
    assert not any(t.name == "playground-job" for t in threading.enumerate())


def test_none_means_still_working_not_a_step(qtbot, runner):
    seen: list[int] = []
    runner.snapshot.connect(seen.append)

    def slow_start() -> Iterator[int | None]:
        for _ in range(5):
            time.sleep(0.005)
            yield None  # e.g. a model still loading
        i = 0
        while True:
            i += 1
            time.sleep(0.002)
            yield i

    runner.start(slow_start(), paused=True)
    runner.step_once()
    qtbot.waitUntil(lambda: seen == [1], timeout=2000)
    qtbot.wait(50)
    assert runner.steps == 1 and seen == [1]  # the Nones neither counted nor used the step


def test_wait_for_jobs_joins_cancelled_threads(qtbot, runner):
    from widgets.runner import wait_for_jobs

    runner.start(counting_job(sleep=0.3))
    qtbot.wait(50)
    runner.cancel(wait=False)
    assert wait_for_jobs(2.0)


def test_out_of_memory_gets_a_plain_message(qtbot, runner):
    def hungry() -> Iterator[int]:
        yield 1
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with qtbot.waitSignal(runner.failed, timeout=3000) as blocker:
        runner.start(hungry())
    assert blocker.args[0].startswith("Out of memory: try a smaller batch")
    assert "Tried to allocate 20.00 GiB" in blocker.args[0]
    with qtbot.waitSignal(runner.finished, timeout=3000):
        runner.start(counting_job(limit=2))


def test_shutdown_waits_for_replaced_runs(qtbot, runner):
    """A drag restarts a job many times; each old run finishes its step alone, but after
    ``shutdown`` none of them may still be alive (a torch kernel at exit aborts the app)."""
    for _ in range(2):
        runner.start(counting_job(sleep=0.6))
        qtbot.wait(30)  # each run is inside its 0.6 s step when the next one replaces it
    runner.start(counting_job(sleep=0.01))  # the current run stops at once
    threads = [t for t in threading.enumerate() if t.name == "playground-job" and t.is_alive()]
    assert len(threads) >= 2
    assert runner.shutdown(2.0)
    assert not any(t.is_alive() for t in threads)


def test_job_stopped_reads_as_its_message(qtbot, runner):
    """An actionable stop (e.g. training diverged) is shown as written, not as a crash."""
    from engines.jobs import JobStopped

    def job():
        yield {"i": 1}
        raise JobStopped("Training diverged at step 7: lower the learning rate.")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.start(job())
    assert blocker.args == ["Training diverged at step 7: lower the learning rate."]
