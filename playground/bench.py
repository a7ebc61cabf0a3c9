"""``playground bench``: every figure next to a baseline measured in the same run.

This machine is noisy, so absolute times mean little; each benchmark measures its own
baseline (the naive or library way) right beside the figure and reports the ratio.
Result rows are plain dicts ``{"name", "value", "unit", "baseline", "ratio", "device"}``
with stable names (listed in the README). Groups from the panels' engines register here
too; a group whose module is not there yet is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Result = dict[str, Any]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[[torch.device, bool], list[Result]]


def result(name: str, value: float, unit: str, baseline: float, device: torch.device | str,
           ratio: float | None = None) -> Result:
    """One row; ``ratio`` defaults to value / baseline."""
    if ratio is None:
        ratio = value / baseline if baseline else float("nan")
    return {"name": name, "value": float(value), "unit": unit, "baseline": float(baseline),
            "ratio": float(ratio), "device": str(device)}


# --------------------------------------------------------------------- display
def _qt_app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def bench_display(device: torch.device, quick: bool) -> list[Result]:
    """Frame time (set new positions + render the plot) for animated point clouds.

    Baseline: pyqtgraph's ``ScatterPlotItem.setData`` with the same points and plot.
    """
    _qt_app()
    import pyqtgraph as pg

    from widgets.points import PointCloudItem

    rng = np.random.default_rng(0)
    rows: list[Result] = []
    frames = 5 if quick else 15
    for n, label in ((10_000, "10k"), (100_000, "100k")):
        base = rng.standard_normal((n, 2))
        jitter = rng.standard_normal((frames, n, 2)) * 0.02

        def frame_time(make_item: Callable[[], Any], set_points: Callable[[Any, np.ndarray], None],
                       base: np.ndarray = base, jitter: np.ndarray = jitter) -> float:
            plot = pg.PlotWidget()
            plot.resize(800, 600)
            plot.setXRange(-4, 4)
            plot.setYRange(-4, 4)
            plot.show()
            item = make_item()
            plot.addItem(item)
            set_points(item, base)
            plot.grab()  # warm-up: fonts, caches
            times = []
            for k in range(frames):
                t0 = time.perf_counter()
                set_points(item, base + jitter[k])
                plot.grab()
                times.append(time.perf_counter() - t0)
            plot.close()
            return statistics.median(times) * 1e3

        ours = frame_time(PointCloudItem, lambda it, p: it.setData(p))
        naive = frame_time(pg.ScatterPlotItem,
                           lambda it, p: it.setData(pos=p, size=3, pen=None, brush=(80, 140, 255)))
        rows.append(result(f"display.points_{label}", ours, "ms/frame", naive, "cpu"))
    return rows


def bench_stall(device: torch.device, quick: bool) -> list[Result]:
    """Lateness of a 5 ms QTimer while the runner trains an MLP (p50 and p99).

    Baseline: the same timer with nothing running, measured in the same run.
    """
    app = _qt_app()
    from PySide6 import QtCore

    from widgets.runner import JobRunner

    seconds = 1.0 if quick else 3.0

    def measure() -> list[float]:
        late: list[float] = []
        last = [time.perf_counter()]
        timer = QtCore.QTimer()
        timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        timer.setInterval(5)

        def tick() -> None:
            now = time.perf_counter()
            late.append(max(0.0, (now - last[0]) * 1e3 - 5.0))
            last[0] = now

        timer.timeout.connect(tick)
        end = time.perf_counter() + seconds
        last[0] = time.perf_counter()
        timer.start()
        while time.perf_counter() < end:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
            time.sleep(0.0005)
        timer.stop()
        return late[1:] or [0.0]

    def training_job():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 256), torch.nn.SiLU(), torch.nn.Linear(256, 256),
                                  torch.nn.SiLU(), torch.nn.Linear(256, 2)).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        x = torch.randn(2048, 3, device=device)
        y = torch.randn(2048, 2, device=device)
        step = 0
        while True:
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            yield {"step": step, "loss": float(loss.detach())}

    idle = measure()
    runner = JobRunner()
    runner.start(training_job())
    busy = measure()
    runner.shutdown()
    rows = []
    for q, label in ((50, "p50"), (99, "p99")):
        b = float(np.percentile(busy, q))
        i = float(np.percentile(idle, q))
        rows.append(result(f"gui.stall_{label}", b, "ms", i, device, ratio=b / max(i, 0.1)))
    return rows


# ------------------------------------------------------------------- registry
def _engine_group(module: str, func: str) -> Callable[[torch.device, bool], list[Result]]:
    def run(device: torch.device, quick: bool) -> list[Result]:
        fn = getattr(importlib.import_module(module), func)
        accepted = inspect.signature(fn).parameters
        kwargs = {k: v for k, v in (("device", device), ("quick", quick)) if k in accepted}
        return list(fn(**kwargs))

    return run


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


BENCHMARKS: list[Benchmark] = [
    Benchmark("display", "frame time of 10k / 100k animated points vs ScatterPlotItem", bench_display),
    Benchmark("gui", "event-loop stall (5 ms timer lateness) while a job trains", bench_stall),
]
for _name, _module, _func, _desc in (
    ("walk", "engines.walk", "bench_walk", "random-walk fast path vs naive numpy; peak memory"),
    ("lab", "engines.bench_lab", "bench_lab", "2D Lab sampling and training speed vs plain torch"),
    ("flows", "engines.bench_flows", "bench_flows", "flow training speed and density heatmap"),
    ("image", "engines.bench_image", "bench_image", "20-step generation vs the diffusers loop, same weights"),
):
    if _available(_module):
        BENCHMARKS.append(Benchmark(_name, _desc, _engine_group(_module, _func)))


def run_benchmarks(names: Sequence[str], device: torch.device, quick: bool = False) -> list[Result]:
    """Run the groups matching ``names`` (a group name, or a result-name prefix)."""
    wanted = list(names)
    groups = [b for b in BENCHMARKS if not wanted or any(
        w == b.name or w.startswith(b.name + ".") for w in wanted)]
    if wanted and not groups:
        known = ", ".join(b.name for b in BENCHMARKS)
        raise KeyError(f"no benchmark matches {' '.join(wanted)}; known groups: {known}")
    rows: list[Result] = []
    for bench in groups:
        for row in bench.run(device, quick):
            if not wanted or any(row["name"] == w or w == bench.name or row["name"].startswith(w)
                                 for w in wanted):
                rows.append(row)
    return rows


def format_table(rows: Sequence[Result]) -> str:
    lines = [f"{'name':30s} {'value':>12s} {'baseline':>12s} {'ratio':>7s}  unit / device"]
    for r in rows:
        lines.append(f"{r['name']:30s} {r['value']:12.4g} {r['baseline']:12.4g} {r['ratio']:7.3f}  "
                     f"{r['unit']} / {r['device']}")
    return "\n".join(lines)
