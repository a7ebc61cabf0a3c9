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
* ``lab.time_to_swd`` / ``lab.steps_to_swd`` -- training seconds (steps) until DDIM-50
  samples of that net reach sliced W2 <= :data:`TARGET_SWD` on 8gaussians, ours against the
  plain loop on the same random numbers and lr schedule (checked every 100 steps, sampling
  not timed). ``nan`` if not reached.

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


def _twin_nets(
    dev: torch.device, sched: VPSchedule, lr: float
) -> tuple[TimeMLP, TimeMLP, ChunkedTrainer, torch.optim.Optimizer]:
    """The Lab's 3x128 eps net twice from the same initial weights: ours (trained by the
    Lab's ChunkedTrainer on 8gaussians) and the reference (with a plain AdamW)."""
    torch.manual_seed(0)
    ours_net = make_denoiser("eps", width=128, depth=3).to(dev)
    ref_net = copy.deepcopy(ours_net)
    trainer = ChunkedTrainer(
        ours_net,
        diffusion_batches(ours_net, DataSource("8gaussians", rng=np.random.default_rng(0)), sched),
        lr=lr,
    )
    ref_opt = torch.optim.AdamW(ref_net.parameters(), lr=lr, weight_decay=1e-4)
    return ours_net, ref_net, trainer, ref_opt


def _train_rows(dev: torch.device, label: str, rounds: int, steps: int) -> list[dict]:
    batch = 256
    sched = VPSchedule("linear")
    _, ref_net, trainer, ref_opt = _twin_nets(dev, sched, 1e-3)
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


#: Sliced W2 on 8gaussians that counts as "trained" for ``lab.time_to_swd`` (DDIM-50, 2000
#: samples; two fresh 2000-point draws of the data differ by ~0.08).
TARGET_SWD = 0.2
#: The learning-rate schedule both sides follow: cosine from 5e-3 to 2.5e-4 over 2000 steps
#: (``engines.diffusion.train_diffusion``'s recipe; a constant rate leaves the sliced W2
#: bouncing between 0.2 and 0.6 on this net, so "first time below" would be a coin toss).
SWD_RECIPE = (5e-3, 2.5e-4, 2000)


def _time_to_swd_rows(dev: torch.device, label: str, chunk: int, max_steps: int) -> list[dict]:
    """Training time until DDIM-50 samples reach :data:`TARGET_SWD`, ours vs the plain loop.

    Both train the same 3x128 eps net from the same initial weights with AdamW on the *same*
    random numbers (x0, t, eps drawn from identically seeded generators in the same order),
    under :data:`SWD_RECIPE`'s schedule; every ``chunk`` steps each is sampled (not timed)
    and scored against the same target points. So both need about the same number of steps
    and the time ratio is the speed of getting there. ``nan`` if not reached in ``max_steps``.
    """
    import math

    from engines.diffusion import net_eps_model
    from engines.metrics import sliced_wasserstein
    from engines.samplers import sample

    batch = 256
    lr0, lr1, horizon = SWD_RECIPE
    sched = VPSchedule("linear")
    ours_net, ref_net, trainer, ref_opt = _twin_nets(dev, sched, lr0)
    ref_src = DataSource("8gaussians", rng=np.random.default_rng(0))
    target = toy_data.sample("8gaussians", 2000, np.random.default_rng(2))
    x_init = torch.randn(2000, 2, generator=torch.Generator().manual_seed(3)).to(dev)

    def lr_at(step: int) -> float:
        return lr1 + 0.5 * (lr0 - lr1) * (1.0 + math.cos(math.pi * min(step, horizon) / horizon))

    def ref_chunk(lr: float) -> None:
        """The textbook loop, on the numbers diffusion_batches would draw for this chunk."""
        for group in ref_opt.param_groups:
            group["lr"] = lr
        n = chunk * batch
        rng = ref_src.rng
        x0_all, _ = ref_src.draw(n)
        t_all = rng.uniform(1e-3, 1.0, size=n)
        eps_all = rng.standard_normal((n, 2))
        for i in range(chunk):
            sl = slice(i * batch, (i + 1) * batch)
            x0 = torch.from_numpy(x0_all[sl]).to(dev)
            t = torch.from_numpy(t_all[sl].astype(np.float32)).to(dev)
            eps = torch.from_numpy(eps_all[sl].astype(np.float32)).to(dev)
            ab = torch.from_numpy(sched.alpha_bar(t_all[sl]).astype(np.float32)).to(dev)[:, None]
            xt = ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps
            loss = F.mse_loss(ref_net(xt, t), eps)
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()

    def score(net: TimeMLP) -> float:
        out = sample("ddim", net_eps_model(net, sched), x_init, sched, nfe=50).samples
        return sliced_wasserstein(np.asarray(out), target)

    def until_target(run_chunk: Callable[[float], object], net: TimeMLP) -> tuple[float, float]:
        spent, steps = 0.0, 0
        while steps < max_steps:
            lr = lr_at(steps)
            spent += _timed(lambda lr=lr: run_chunk(lr), dev)
            steps += chunk
            if score(net) <= TARGET_SWD:
                return spent, float(steps)
        return float("nan"), float("nan")

    t_ours, s_ours = until_target(lambda lr: trainer.run(chunk, batch, lr=lr), ours_net)
    t_ref, s_ref = until_target(ref_chunk, ref_net)
    return [_row("lab.time_to_swd", t_ours, "s", t_ref, label),
            _row("lab.steps_to_swd", s_ours, "steps", s_ref, label)]


def bench_lab(
    device: torch.device | str = "cpu",
    quick: bool = False,
    *,
    particles: int = 10_000,
    sample_steps: int = 100,
    train_steps: int | None = None,
    rounds: int | None = None,
    clock: str = "wall",
    time_to_target: bool = True,
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
        if time_to_target:  # seconds of training: the tests' relative checks skip it
            rows += _time_to_swd_rows(dev, label, chunk=50 if quick else 100,
                                      max_steps=300 if quick else 4000)
    finally:
        _clock = previous
    return rows
