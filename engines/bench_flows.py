"""Flow benchmarks for ``playground bench``: each figure beside a baseline from the same run.

Rows (plain dicts ``{"name", "value", "unit", "baseline", "ratio", "device"}``,
``ratio = value / baseline``):

* ``flows.train_steps_per_s`` -- maximum-likelihood training steps per second of our
  RealNVP (8 affine couplings, MLP 1 -> 64 -> 64 -> 2, batch 256) as ``flow_train_job``
  runs it (fused Adam, :func:`engines.flows.fast_adam`) against :class:`StraightRealNVP`,
  the same flow written as one straight-line function with no layer objects, the way a
  tutorial would, with the default ``torch.optim.Adam``. Same weights and data, runs
  interleaved; ratio > 1 is faster.
* ``flows.train_steps_per_s_same_adam`` -- the same with the default Adam on both sides:
  the price of the inspectable layer structure alone (each layer returns the whole
  ``x``, one ``cat`` per layer that the straight-line code avoids).
* ``flows.density_200x200`` -- milliseconds for the exact 200 x 200 density heat map of
  the same flow. Baseline: the obvious loop, one ``log_prob`` call per image row (200 calls
  of 200 points, under ``no_grad``), which is what a first GUI version does. Ratio < 1 is
  faster. The requirement is <= 50 ms on the project's 2-core CPU.
* ``flows.density_200x200_nsf`` -- the same for the spline flow (4 spline couplings + LU
  mixes), whose per-point cost is several times an affine coupling's.

Pure torch/numpy: no Qt.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from engines import toy_data
from engines.flows import AffineCoupling, Flow, build_flow, fast_adam

_LOG_2PI = float(np.log(2 * np.pi))


class StraightRealNVP(nn.Module):
    """Reference RealNVP in straight-line code: a list of MLPs and one loop.

    Numerically identical to ``build_flow("realnvp", n_layers, hidden, depth)`` once
    :meth:`copy_from` has taken that flow's weights (normalizing step ``i`` keeps
    coordinate ``i % 2`` and transforms the other; log-scale ``2 tanh(raw / 2)``).
    """

    def __init__(self, n_layers: int = 8, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()

        def net() -> nn.Sequential:
            layers: list[nn.Module] = [nn.Linear(1, hidden), nn.SiLU()]
            for _ in range(depth - 1):
                layers += [nn.Linear(hidden, hidden), nn.SiLU()]
            return nn.Sequential(*layers, nn.Linear(hidden, 2))

        self.nets = nn.ModuleList(net() for _ in range(n_layers))

    def log_prob(self, x: Tensor) -> Tensor:
        a, b = x[:, :1], x[:, 1:]
        logdet = x.new_zeros(x.shape[0])
        for i, net in enumerate(self.nets):
            if i % 2:  # keep b, transform a
                h = net(b)
                s = 2.0 * torch.tanh(h[:, :1] / 2.0)
                a = (a - h[:, 1:]) * torch.exp(-s)
            else:  # keep a, transform b
                h = net(a)
                s = 2.0 * torch.tanh(h[:, :1] / 2.0)
                b = (b - h[:, 1:]) * torch.exp(-s)
            logdet = logdet - s[:, 0]
        return -0.5 * (a[:, 0] ** 2 + b[:, 0] ** 2) - _LOG_2PI + logdet

    @torch.no_grad()
    def copy_from(self, flow: Flow) -> None:
        """Take the weights of a ``build_flow("realnvp", ...)`` flow."""
        couplings = [m for m in reversed(flow.layers) if isinstance(m, AffineCoupling)]
        if len(couplings) != len(self.nets):
            raise ValueError("flow and reference have different numbers of couplings")
        for net, layer in zip(self.nets, couplings, strict=True):
            net.load_state_dict(layer.net.state_dict())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_rate(
    log_prob: Callable[[Tensor], Tensor],
    opt: torch.optim.Optimizer,
    batches: list[Tensor],
    device: torch.device,
) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for x in batches:
        loss = -log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return len(batches) / (time.perf_counter() - t0)


def _best_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def density_by_rows(flow: Flow, res: int = 200, lim: float = 4.0) -> np.ndarray:
    """The naive baseline: one log_prob call per image row."""
    xs = -lim + (np.arange(res) + 0.5) * (2 * lim / res)
    out = np.empty((res, res), dtype=np.float32)
    dev = next(flow.parameters()).device
    with torch.no_grad():
        for i, y in enumerate(xs[::-1]):
            row = torch.from_numpy(np.stack([xs, np.full(res, y)], 1).astype(np.float32))
            out[i] = flow.log_prob(row.to(dev)).exp().cpu().numpy()
    return out


def _row(name: str, value: float, unit: str, baseline: float, device: torch.device) -> dict:
    return {"name": name, "value": float(value), "unit": unit, "baseline": float(baseline),
            "ratio": float(value / baseline) if baseline else float("nan"),
            "device": str(device)}


def bench_flows(device: torch.device | str = "cpu", quick: bool = False) -> list[dict]:
    """Run the flow benchmarks (see module docstring); ``quick`` shortens every loop."""
    dev = torch.device(device)
    # short interleaved rounds, best of each: a load burst from another process spoils one
    # round, not the figure
    steps, rounds, repeats = (40, 3, 3) if quick else (100, 5, 7)
    rng = np.random.default_rng(0)
    batches = [torch.from_numpy(toy_data.sample("8gaussians", 256, rng)).to(dev)
               for _ in range(steps)]

    ours = build_flow("realnvp", 8, 64, 2, seed=0).to(dev)
    ref = StraightRealNVP(8, 64, 2).to(dev)
    ref.copy_from(ours)
    ours_opt = fast_adam(ours.parameters(), 1e-3)  # what flow_train_job uses
    ours_plain_opt = torch.optim.Adam(ours.parameters(), 1e-3)
    ref_opt = torch.optim.Adam(ref.parameters(), 1e-3)
    ours_rates, plain_rates, ref_rates = [], [], []
    for _ in range(rounds):  # interleaved, so load changes hit all alike
        ours_rates.append(_train_rate(ours.log_prob, ours_opt, batches, dev))
        plain_rates.append(_train_rate(ours.log_prob, ours_plain_opt, batches, dev))
        ref_rates.append(_train_rate(ref.log_prob, ref_opt, batches, dev))
    rows = [
        _row("flows.train_steps_per_s", max(ours_rates), "steps/s", max(ref_rates), dev),
        _row("flows.train_steps_per_s_same_adam", max(plain_rates), "steps/s", max(ref_rates),
             dev),
    ]

    # density of the (now trained a little) flow: batched vs per-row
    fast = _best_ms(lambda: ours.density_grid((-4.0, 4.0), (-4.0, 4.0), 200), dev, repeats)
    slow = _best_ms(lambda: density_by_rows(ours), dev, max(repeats // 2, 1))
    rows.append(_row("flows.density_200x200", fast, "ms", slow, dev))

    nsf = build_flow("nsf", 4, 64, 2, seed=0).to(dev)
    fast = _best_ms(lambda: nsf.density_grid((-4.0, 4.0), (-4.0, 4.0), 200), dev, repeats)
    slow = _best_ms(lambda: density_by_rows(nsf), dev, max(repeats // 2, 1))
    rows.append(_row("flows.density_200x200_nsf", fast, "ms", slow, dev))
    return rows


if __name__ == "__main__":  # pragma: no cover - manual run
    for r in bench_flows():
        print(f"{r['name']:32s} {r['value']:9.2f} {r['unit']:8s} baseline {r['baseline']:9.2f}"
              f"  ratio {r['ratio']:.2f}  ({r['device']})")
