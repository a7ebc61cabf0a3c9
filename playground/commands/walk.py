"""``playground walk``: the random-walk simulation, headless, with the panel's statistics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _barrier(text: str) -> dict[str, Any]:
    """``absorbing:0:20`` or ``reflecting:0`` (lower[:upper]); empty bounds mean none."""
    parts = text.split(":")
    if parts[0] not in ("absorbing", "reflecting") or not 2 <= len(parts) <= 3:
        raise argparse.ArgumentTypeError(
            "barrier looks like absorbing:LOWER:UPPER or reflecting:LOWER[:UPPER]")
    try:
        lower = int(parts[1]) if parts[1] else None
        upper = int(parts[2]) if len(parts) == 3 and parts[2] else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"barrier bounds must be integers: {text}") from exc
    return {"kind": parts[0], "lower": lower, "upper": upper}


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("walk", parents=[common], help="simulate random walks and print their statistics")
    p.add_argument("--dim", type=int, choices=[1, 2, 3], default=1)
    p.add_argument("--walkers", type=int, default=100_000)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--p", type=float, default=0.5, help="P(step = +1), 1-D only")
    p.add_argument("--gaussian", action="store_true", help="Gaussian steps instead of ±1")
    p.add_argument("--barrier", type=_barrier, default=None,
                   help="absorbing:LOWER:UPPER or reflecting:LOWER[:UPPER] (1-D)")
    p.add_argument("--start", type=int, default=None, help="start position (1-D; default 0, or mid-way "
                   "between absorbing barriers)")
    p.add_argument("--level", type=int, default=10, help="first-passage level a > 0 (1-D)")
    p.add_argument("--per-step-walkers", type=int, default=None,
                   help="walkers with per-step statistics (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--positions-out", type=Path, default=None, help="write final positions (W x D) as .npy")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engines.device import choose_device
    from engines.fileio import ExportError, atomic_write
    from engines.walk import simulate

    device = choose_device(args.device or "auto")
    start = args.start
    if start is None:
        b = args.barrier
        bounded = b is not None and b["lower"] is not None and b["upper"] is not None
        start = (b["lower"] + b["upper"]) // 2 if bounded else 0
        if b and b["kind"] == "reflecting" and b["lower"] is not None and start < b["lower"]:
            start = b["lower"]
    options: dict[str, Any] = {"start": start, "level": args.level,
                               "step_kind": "gaussian" if args.gaussian else "lattice",
                               "per_step_walkers": args.per_step_walkers}
    if device.type == "cuda":
        options["device"] = str(device)
    try:
        result = simulate(args.dim, args.walkers, args.steps, p=args.p, barrier=args.barrier,
                          seed=args.seed, **options)
    except ValueError as exc:
        print(f"playground walk: {exc}", file=sys.stderr)
        return 2
    if args.positions_out is not None:
        positions = np.asarray(result.positions)
        try:
            atomic_write(args.positions_out, lambda tmp: np.save(tmp.open("wb"), positions))
        except ExportError as exc:
            print(f"playground walk: {exc}", file=sys.stderr)
            return 1
    data = result.to_json_dict(include_positions=False)
    if args.json:
        print(json.dumps(data))
        return 0
    cfg = result.config
    print(f"{cfg.walkers:,} walkers × {result.n:,} steps in {cfg.dim}-D ({result.backend}): "
          f"{result.walker_steps_per_s / 1e9:.2f} × 10⁹ walker-steps/s")
    if result.mean is not None:
        print(f"mean {result.mean[-1].round(3).tolist()}  variance {result.var[-1].round(2).tolist()}  "
              f"MSD {result.msd[-1]:.2f}")
    if result.return_by is not None:
        print(f"P(returned to start by step {result.n}) = {result.return_by[-1]:.4f}")
    if cfg.barrier is not None and cfg.barrier.kind == "absorbing":
        print(f"absorbed at lower {result.absorbed_lower:,}, at upper {result.absorbed_upper:,}")
    if args.positions_out is not None:
        print(f"wrote {args.positions_out}")
    return 0
