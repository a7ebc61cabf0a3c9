"""A small, exact demo job: a point cloud noised by the VP forward process and back.

It exists so the shell, the runner, the display and the benchmarks have a real job to drive
before (and independently of) any trained model: x_t = sqrt(ab(t)) x0 + sqrt(1-ab(t)) eps
with a cosine schedule, t sweeping 0 -> 1 -> 0. Going back uses the *same* eps, so the
cloud returns exactly to the data: this is the forward process, not a sampler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engines.jobs import ParamBox


@dataclass(frozen=True)
class CloudSnapshot:
    step: int
    t: float
    speed: float
    points: np.ndarray  # (N, 2) float32


def ring_points(n: int, rng: np.random.Generator, radius: float = 2.0, width: float = 0.08) -> np.ndarray:
    angle = rng.uniform(0.0, 2.0 * math.pi, n)
    r = radius + width * rng.standard_normal(n)
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1).astype(np.float32)


def cosine_alpha_bar(t: float, s: float = 0.008) -> float:
    """Nichol & Dhariwal's cosine schedule, normalised so ab(0) = 1."""
    f = math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return min(1.0, max(0.0, f / f0))


def noising_cloud_job(
    params: ParamBox | None = None,
    n: int = 2000,
    seed: int = 0,
    frames_per_sweep: int = 120,
    max_steps: int | None = None,
    work_seconds: float = 0.0,
) -> Iterator[CloudSnapshot]:
    """Yield one snapshot per frame; ``params['speed']`` (frames per step) changes live.

    ``work_seconds`` burns CPU in each step, for tests and benchmarks that need a job that
    is genuinely busy.
    """
    rng = np.random.default_rng(seed)
    x0 = ring_points(n, rng)
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    phase = 0.0
    step = 0
    while max_steps is None or step < max_steps:
        speed = float(params.get().get("speed", 1.0)) if params is not None else 1.0
        if work_seconds > 0:
            end = time.perf_counter() + work_seconds
            while time.perf_counter() < end:
                pass
        phase = (phase + speed / frames_per_sweep) % 2.0
        t = phase if phase <= 1.0 else 2.0 - phase
        ab = cosine_alpha_bar(t)
        pts = (math.sqrt(ab) * x0 + math.sqrt(1.0 - ab) * eps).astype(np.float32)
        step += 1
        yield CloudSnapshot(step=step, t=t, speed=speed, points=pts)
