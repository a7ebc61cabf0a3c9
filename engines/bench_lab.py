"""2D Lab benchmarks for ``playground bench``: our fast paths beside plain torch, same run.

Rows are plain dicts ``{"name", "value", "unit", "baseline", "ratio", "device"}`` with
``ratio = value / baseline``:

* ``lab.sample_10k_x100`` -- seconds to integrate 10,000 particles x 100 Euler steps through
  the Lab's default 3x128 time-conditioned MLP (``TimeMLP(width=128, depth=3, time_dim=32)``)
  with :func:`engines.flow_matching.ode_sample` + :class:`engines.nets.FastMLP` (float32).
  Baseline: the naive loop ``x = x + net(x, t) * dt`` under ``no_grad`` with the same
  network. Ratio < 1 is faster. Requirement: <= 0.35 s on the project's 2-core CPU.
* ``lab.sample_10k_x100_bf16`` -- the same with the hidden layers in bfloat16
  (``FastMLP(dtype=torch.bfloat16)``, the GUI's preview mode; ~1e-3 relative error).
* ``lab.sample_10k_x100_rawt`` -- float32 fast path vs naive loop for reference.md's exact
  network (3 -> 128 -> 128 -> 128 -> 2 on ``cat([x, t])``, no time embedding).
* ``lab.train_steps_per_s`` -- DDPM eps-training steps per second (3x128 net, batch 256,
  8gaussians, AdamW) as ``diffusion_train_job`` runs them (:class:`engines.nets.ChunkedTrainer`)
  against a plain PyTorch loop (per step: draw data, noise, forward, backward, default
  AdamW) with the same architecture and initial weights. Ratio > 1 is faster.

Runs of ours and the baseline are interleaved and the best of each is kept, so a burst of
load from other processes penalises both sides alike. Pure torch/numpy: no Qt.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from engines import toy_data
from engines.device import describe_device
from engines.diffusion import DataSource, VPSchedule, diffusion_batches, make_denoiser
from engines.flow_matching import ode_sample
from engines.nets import ChunkedTrainer, FastMLP, TimeMLP

__all__ = ["bench_lab"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
_clock: Callable[[], float] = time.perf_counter


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = _clock()
    fn()
    _sync(device)
    return _clock() - t0


def _row(name: str, value: float, unit: str, baseline: float, device: str) -> dict:
    return {
        "name": name,
        "value": float(value),
        "unit": unit,
        "baseline": float(baseline),
        "ratio": float(value / baseline) if baseline else float("nan"),
        "device": device,
    }


def _naive_sample(net: TimeMLP, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """What a first version writes: a fresh tensor per op, the embedding per particle."""
    x = x0.clone()
    n = x.shape[0]
    dt = 1.0 / steps
    with torch.no_grad():
        for i in range(steps):
            t = torch.full((n,), i * dt, device=x.device)
            x = x + net(x, t) * dt
    return x


def _sampling_rows(
    dev: torch.device, label: str, rounds: int, n: int, steps: int
) -> list[dict]:
    rows = []
    for name, time_dim, dtype in (
        ("lab.sample_10k_x100", 32, torch.float32),
        ("lab.sample_10k_x100_bf16", 32, torch.bfloat16),
        ("lab.sample_10k_x100_rawt", 0, torch.float32),
    ):
        torch.manual_seed(0)
        net = TimeMLP(width=128, depth=3, time_dim=time_dim, prediction="velocity").to(dev).eval()
        x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(1)).to(dev)

        def ours(net: TimeMLP = net, x0: torch.Tensor = x0, dtype: torch.dtype = dtype) -> None:
            ode_sample(FastMLP(net, dtype=dtype), x0, steps)

        def naive(net: TimeMLP = net, x0: torch.Tensor = x0) -> None:
            _naive_sample(net, x0, steps)

        ours()  # warm-up (allocator, oneDNN/MKL kernel selection)
        naive()
        t_ours, t_naive = [], []
        for _ in range(rounds):
            t_naive.append(_timed(naive, dev))
            t_ours.append(_timed(ours, dev))
        rows.append(_row(name, min(t_ours), "s", min(t_naive), label))
    return rows


def _train_rows(dev: torch.device, label: str, rounds: int, steps: int) -> list[dict]:
    batch = 256
    sched = VPSchedule("linear")
    torch.manual_seed(0)
    ours_net = make_denoiser("eps", width=128, depth=3).to(dev)
    ref_net = copy.deepcopy(ours_net)
    trainer = ChunkedTrainer(
        ours_net,
        diffusion_batches(ours_net, DataSource("8gaussians", rng=np.random.default_rng(0)), sched),
        lr=1e-3,
    )
    ref_opt = torch.optim.AdamW(ref_net.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(1)
    half = 0.5 * (sched.beta_max - sched.beta_min)

    def reference() -> None:
        for _ in range(steps):
            x0 = torch.from_numpy(toy_data.sample("8gaussians", batch, rng)).to(dev)
            t = torch.rand(batch, device=dev) * 0.999 + 1e-3
            ab = torch.exp(-(sched.beta_min * t + half * t * t))[:, None]
            eps = torch.randn(batch, 2, device=dev)
            xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
            loss = F.mse_loss(ref_net(xt, t), eps)
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()

    def ours() -> None:
        trainer.run(steps, batch)

    reference()  # warm-up both
    ours()
    r_ref, r_ours = [], []
    for _ in range(rounds):
        r_ref.append(steps / _timed(reference, dev))
        r_ours.append(steps / _timed(ours, dev))
    return [_row("lab.train_steps_per_s", max(r_ours), "steps/s", max(r_ref), label)]


def bench_lab(
    device: torch.device | str = "cpu",
    quick: bool = False,
    *,
    particles: int = 10_000,
    sample_steps: int = 100,
    train_steps: int | None = None,
    rounds: int | None = None,
    clock: str = "wall",
) -> list[dict]:
    """Run the 2D Lab benchmarks (see the module docstring); ``quick`` shortens the loops.

    The size arguments exist for the tests' scaled-down relative checks; the row names
    describe the default sizes (10,000 particles x 100 steps, 300 training steps).
    ``clock="cpu"`` times with the process CPU clock instead of the wall clock: with one
    torch thread on a CPU that is the work done, unaffected by time spent descheduled while
    other processes run (what the tests use on the shared machine).
    """
    global _clock
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be one of {sorted(_CLOCKS)}, got {clock!r}")
    dev = torch.device(device)
    label = describe_device(dev) + ("" if clock == "wall" else f", {clock} clock")
    n_rounds = rounds if rounds is not None else (2 if quick else 3)
    n_train = train_steps if train_steps is not None else (60 if quick else 300)
    previous, _clock = _clock, _CLOCKS[clock]
    try:
        rows = _sampling_rows(dev, label, n_rounds, particles, sample_steps)
        rows += _train_rows(dev, label, n_rounds, n_train)
    finally:
        _clock = previous
    return rows
