"""Exact views for the 2D Lab: forward marginals, oracle vector fields, the exact ODE job.

Why this module exists: the Lab's first views need no trained model. For a Gaussian-mixture
target the noised marginals, the score of VP diffusion and the marginal velocity of rectified
flow are known in closed form (:mod:`engines.gmm`), so the panel can show *the truth*: the
cloud at any t of the forward process, the exact field at that t, and the probability-flow
ODE of a perfect model carrying noise onto the data. Learned models (their own issues) are
later compared against exactly these views.

Time conventions (each process keeps its own, as in the papers and in ``reference.md``):

* ``"vp"`` (diffusion): ``x_t = sqrt(ab(t)) x0 + sqrt(1 - ab(t)) eps``; data at ``t = 0``,
  noise at ``t = 1`` (cosine schedule, ``ab(1) = 0`` exactly).
* ``"rf"`` (rectified flow): ``x_t = (1 - t) eps + t x1``; noise at ``t = 0``, data at ``t = 1``.

Pure numpy/torch: never imports Qt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from engines.demo import cosine_alpha_bar
from engines.gmm import GaussianMixture, rf_velocity, vp_score, vp_x0
from engines.jobs import ParamBox

__all__ = [
    "PROCESSES",
    "LabSnapshot",
    "alpha_bar",
    "arrow_display_vectors",
    "data_end",
    "forward_marginal",
    "grid_points",
    "histogram_density",
    "marginal_mixture",
    "mixture_density",
    "noise_end",
    "ode_job",
    "vector_field",
]

Process = Literal["vp", "rf"]
PROCESSES: tuple[str, ...] = ("vp", "rf")
Extent = tuple[float, float, float, float]


@dataclass(frozen=True)
class LabSnapshot:
    """One frame of the Lab: the particles at time ``t`` and, while the ODE runs, paths.

    ``trajectories`` is (T, M, 2) float32: the first M particles at each of the T times
    visited so far (T = 0 for a forward-process view), so the panel can draw paths.
    """

    step: int
    t: float
    speed: float
    points: np.ndarray
    trajectories: np.ndarray
    process: str = "vp"
    done: bool = False


def _check_process(process: str) -> None:
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; choose one of {PROCESSES}")


def alpha_bar(t: float) -> float:
    """The VP schedule (Nichol & Dhariwal cosine, ``ab(0) = 1``, ``ab(1) = 0``)."""
    return cosine_alpha_bar(min(1.0, max(0.0, float(t))))


def noise_end(process: str) -> float:
    """The time at which ``process`` is pure N(0, I) noise (VP: 1, RF: 0)."""
    _check_process(process)
    return 1.0 if process == "vp" else 0.0


def data_end(process: str) -> float:
    """The time at which ``process`` is the data (VP: 0, RF: 1)."""
    return 1.0 - noise_end(process)


def forward_marginal(process: str, data: np.ndarray, noise: np.ndarray, t: float) -> np.ndarray:
    """Exact samples of p_t by the forward process, float32 (n, 2).

    The *same* ``data``/``noise`` pairs are used at every t, so scrubbing t moves each point
    continuously (a coupling, not fresh samples per frame), and both directions agree.
    """
    _check_process(process)
    d = np.asarray(data, dtype=np.float64)
    e = np.asarray(noise, dtype=np.float64)
    n = min(d.shape[0], e.shape[0])
    d, e = d[:n], e[:n]
    t = min(1.0, max(0.0, float(t)))
    if process == "vp":
        ab = alpha_bar(t)
        x = math.sqrt(ab) * d + math.sqrt(1.0 - ab) * e
    else:
        x = (1.0 - t) * e + t * d
    return x.astype(np.float32)


def marginal_mixture(gmm: GaussianMixture, process: str, t: float) -> GaussianMixture:
    """The exact marginal p_t of a mixture target (itself a mixture)."""
    _check_process(process)
    t = min(1.0, max(0.0, float(t)))
    return gmm.noised_vp(alpha_bar(t)) if process == "vp" else gmm.interpolated_rf(t)


def grid_points(extent: Sequence[float], n: int = 21) -> np.ndarray:
    """An n x n grid of arrow origins inside ``extent``, (n*n, 2) float64, cell-centred."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    xs = xmin + (np.arange(n) + 0.5) * (xmax - xmin) / n
    ys = ymin + (np.arange(n) + 0.5) * (ymax - ymin) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def vector_field(gmm: GaussianMixture, process: str, t: float, pts: np.ndarray) -> np.ndarray:
    """The exact field at ``pts``: VP score ``grad log p_t`` or RF velocity ``E[x1 - x0 | x_t]``.

    VP at ``t = 0`` is evaluated at ``ab = 1 - 1e-4``: the data's own score, finite because
    every component has a positive-definite covariance.
    """
    _check_process(process)
    x = torch.from_numpy(np.asarray(pts, dtype=np.float64).reshape(-1, 2))
    t = min(1.0, max(0.0, float(t)))
    if process == "rf":
        return rf_velocity(gmm, x, t).numpy()
    return vp_score(gmm, x, min(alpha_bar(t), 1.0 - 1e-4)).numpy()


def arrow_display_vectors(vectors: np.ndarray, cell: float) -> np.ndarray:
    """Scale field vectors for drawing: direction kept, length in (0, 0.9 cell].

    Why not true length: the score spans orders of magnitude (huge near sharp modes), so
    lengths are squashed by ``tanh(|v| / typical)``; colour-free arrows then still show both
    the direction everywhere and where the field is strong.
    """
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 2)
    norm = np.hypot(v[:, 0], v[:, 1])
    if not np.any(norm > 0):
        return np.zeros_like(v)
    typical = float(np.median(norm[norm > 0]))
    length = 0.9 * cell * np.tanh(norm / max(typical, 1e-12))
    safe = np.where(norm > 0, norm, 1.0)
    return v / safe[:, None] * length[:, None]


def mixture_density(gmm: GaussianMixture, extent: Sequence[float], res: int = 160) -> np.ndarray:
    """Exact density on a res x res grid, image-oriented (row 0 is ``y = ymax``), float64."""
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    xs = xmin + (np.arange(res) + 0.5) * (xmax - xmin) / res
    ys = ymax - (np.arange(res) + 0.5) * (ymax - ymin) / res
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return np.exp(gmm.log_prob(pts)).reshape(res, res)


def histogram_density(points: np.ndarray, extent: Sequence[float], res: int = 128) -> np.ndarray:
    """Normalised 2-D histogram of samples, image-oriented like :func:`mixture_density`.

    The stand-in for the target density where no closed form exists (toy sets other than the
    mixtures, imported point sets).
    """
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hist, _, _ = np.histogram2d(pts[:, 1], pts[:, 0], bins=res, range=[[ymin, ymax], [xmin, xmax]])
    area = (xmax - xmin) * (ymax - ymin) / (res * res)
    total = max(pts.shape[0], 1)
    return hist[::-1] / (total * area)


def ode_job(
    gmm: GaussianMixture,
    process: str,
    noise: np.ndarray,
    params: ParamBox | None = None,
    *,
    n_frames: int = 120,
    n_traj: int = 64,
    frame_seconds: float = 1.0 / 60.0,
) -> Iterator[LabSnapshot]:
    """The exact probability-flow ODE from ``noise`` (n, 2) to the mixture, one step per frame.

    Each step advances the process time by ``speed / n_frames`` (``params['speed']``, read
    live), so at speed 1 the trip takes ``n_frames`` steps. VP uses the DDIM update with the
    exact posterior mean ``E[x0 | x_t]`` (the exact discretisation of the VP probability-flow
    ODE in ``sigma/sqrt(ab)``, finite at ``ab = 0``); RF uses Euler on the exact velocity.
    ``frame_seconds`` paces steps so the trip is watchable (0 runs flat out, for tests).
    The first snapshot is the noise itself at step 0.
    """
    _check_process(process)
    x = torch.from_numpy(np.array(noise, dtype=np.float64).reshape(-1, 2))
    m = min(int(n_traj), x.shape[0])
    t0, t1 = noise_end(process), data_end(process)
    direction = 1.0 if t1 > t0 else -1.0
    path: list[np.ndarray] = [x[:m].numpy().astype(np.float32)]
    progress = 0.0
    step = 0
    speed = 1.0

    def snap(t: float, done: bool) -> LabSnapshot:
        return LabSnapshot(
            step=step, t=t, speed=speed, points=x.numpy().astype(np.float32),
            trajectories=np.stack(path), process=process, done=done,
        )

    yield snap(t0, False)
    while progress < 1.0:
        started = time.perf_counter()
        if params is not None:
            speed = float(params.get().get("speed", 1.0))
        speed = max(speed, 1e-3)
        new_progress = min(1.0, progress + speed / n_frames)
        t_a = t0 + direction * progress
        t_b = t0 + direction * new_progress
        if process == "vp":
            ab_a, ab_b = alpha_bar(t_a), alpha_bar(t_b)
            x0_hat = vp_x0(gmm, x, ab_a)
            # E[eps | x_t] from the same posterior (one oracle call per step, not two):
            # x_t = sqrt(ab) x0 + sqrt(1 - ab) eps holds for the conditional means too.
            eps_hat = (x - math.sqrt(ab_a) * x0_hat) / math.sqrt(max(1.0 - ab_a, 1e-12))
            x = math.sqrt(ab_b) * x0_hat + math.sqrt(1.0 - ab_b) * eps_hat
        else:
            x = x + (t_b - t_a) * rf_velocity(gmm, x, t_a)
        progress = new_progress
        step += 1
        path.append(x[:m].numpy().astype(np.float32))
        done = progress >= 1.0
        if frame_seconds > 0 and not done:
            rest = frame_seconds - (time.perf_counter() - started)
            if rest > 0:
                time.sleep(rest)
        yield snap(t_b, done)
