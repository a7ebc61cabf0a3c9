"""The ``playground`` command: the GUI by default, plus headless sub-commands.

``playground`` launches the app; ``playground snapshot`` saves a screenshot of a panel's
demo; ``playground bench`` runs the benchmarks. Panels add their own sub-commands
(``lab``, ``image``, ``walk``) in ``playground/commands/`` as their issues land.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from playground import __version__

ORGANIZATION = "GenerativePlayground"
APPLICATION = "playground"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 1280x800, got {text!r}") from exc
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise argparse.ArgumentTypeError("size must be between 64x64 and 8192x8192")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"],
                        help="compute device (default: the saved setting, else auto = CUDA, MPS, CPU)")
    parser = argparse.ArgumentParser(
        prog="playground", parents=[common],
        description="Generative Playground: learn generative models by touching them.")
    parser.add_argument("--version", action="version", version=f"playground {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    snap = sub.add_parser("snapshot", parents=[common],
                          help="save a screenshot of a panel's demo (offscreen)")
    snap.add_argument("--panel", required=True, choices=["lab", "image", "walk"])
    snap.add_argument("--out", required=True, type=Path, help="PNG file to write")
    snap.add_argument("--size", type=_parse_size, default=(1280, 800), help="window size, e.g. 1280x800")
    snap.add_argument("--timeout", type=float, default=30.0,
                      help="seconds to wait for the demo's first frames")

    bench = sub.add_parser("bench", parents=[common], help="run benchmarks (figures with same-run baselines)")
    bench.add_argument("names", nargs="*", help="benchmark names or prefixes (default: all)")
    bench.add_argument("--json", action="store_true", help="print one JSON list of results")
    bench.add_argument("--list", action="store_true", help="list benchmark names and exit")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    bench.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch threads for the compute benchmarks (default: cores - 1, as the app uses; "
             "on an otherwise idle machine all cores give the hardware's best figures)")

    from playground.commands import register_commands

    register_commands(sub, common)
    return parser


def _resolve_device(arg: str | None):
    from engines.device import choose_device

    if arg is None:
        from PySide6.QtCore import QSettings

        saved = QSettings(ORGANIZATION, APPLICATION).value("device", "auto")
        arg = saved if isinstance(saved, str) else "auto"
    return choose_device(arg)


def _make_app(argv: Sequence[str] | None = None):
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(list(argv or [sys.argv[0]]))
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Generative Playground")
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, background="#15171c", foreground="#c8ccd4")
    return app


def run_gui(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QSettings

    from playground.window import MainWindow

    try:
        device = _resolve_device(args.device)
    except (RuntimeError, ValueError) as exc:
        print(f"playground: {exc}", file=sys.stderr)
        return 2
    app = _make_app()
    settings = QSettings(ORGANIZATION, APPLICATION)
    if args.device:
        settings.setValue("device", args.device)
    window = MainWindow(device, settings)
    window.show()
    code = int(app.exec())
    return _exit_after_jobs(code)


def _exit_after_jobs(code: int) -> int:
    """Let cancelled jobs finish their current step; exit hard if one never does.

    Settings are saved and files written before this point, so a hard exit loses nothing,
    while a normal exit with a thread inside torch would abort the process.
    """
    from widgets.runner import wait_for_jobs

    if not wait_for_jobs(1.0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def run_snapshot(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from engines.fileio import ExportError, atomic_write
    from playground.window import MainWindow

    device = _resolve_device(args.device or "auto")
    app = _make_app()
    # A throwaway settings file: screenshots must not depend on (or change) the user's.
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "snapshot.ini"), QSettings.Format.IniFormat)
        window = MainWindow(device, settings, restore=False)
        window.resize(*args.size)
        window.set_current_panel(args.panel)
        window.show()
        panel = window.panel(args.panel)
        panel.start_demo()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not panel.demo_ready():
            app.processEvents()
            time.sleep(0.005)
        panel.runner.pause()
        app.processEvents()
        image = window.grab().toImage()
        window.close()
        app.processEvents()

    def write(tmp_path: Path) -> None:
        if not image.save(str(tmp_path), "PNG"):
            raise ExportError(f"Cannot write {args.out}: Qt could not encode the image.")

    try:
        atomic_write(args.out, write)
    except ExportError as exc:
        print(f"playground snapshot: {exc}", file=sys.stderr)
        return _exit_after_jobs(1)
    print(f"wrote {args.out} ({image.width()}x{image.height()}, panel {args.panel})")
    return _exit_after_jobs(0)


def run_bench(args: argparse.Namespace) -> int:
    from playground.bench import BENCHMARKS, format_table, run_benchmarks

    if args.list:
        for bench in BENCHMARKS:
            print(f"{bench.name:28s} {bench.description}")
        return 0
    device = _resolve_device(args.device or "auto")
    if args.threads is not None:
        import torch

        if args.threads < 1:
            print("playground bench: --threads must be at least 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    try:
        results = run_benchmarks(args.names, device=device, quick=args.quick)
    except KeyError as exc:
        print(f"playground bench: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results))
    else:
        print(format_table(results))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from engines.device import configure_threads

    # Every command runs torch as the GUI does: one core stays free (on 2 cores, two OpenMP
    # threads next to any other busy thread ran 10-100x slower here).
    configure_threads()
    if args.command is None:
        return run_gui(args)
    if args.command == "snapshot":
        return run_snapshot(args)
    if args.command == "bench":
        return run_bench(args)
    return int(args.handler(args))
