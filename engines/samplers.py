"""Hand-written diffusion samplers, one small loop each, so every step can be shown.

All samplers take an *eps model function* ``model(x, t, labels) -> eps`` (see
:data:`engines.diffusion.EpsModel`), so the same code runs on a trained network and on the
exact Gaussian-mixture oracle (then any error left is the sampler's own), and a descending
time grid ``ts`` (steps + 1 times from ~1 down to exactly 0, usually from
:meth:`engines.diffusion.VPSchedule.time_grid`). Notation at grid time t: ``ab = ab(t)``,
``a = sqrt(ab)``, ``s = sqrt(1 - ab)``, primes for the next (less noisy) time.

* :func:`ddpm` -- ancestral sampling from the posterior ``q(x_t' | x_t, x0_hat)``.
* :func:`ddim` -- ``x' = a' x0_hat + sqrt(1 - ab' - sig^2) eps_hat + sig z``, ``eta`` in [0, 1]
  scales ``sig`` from deterministic (0) to DDPM's posterior noise (1).
* :func:`reverse_sde` -- Euler-Maruyama on the reverse VP SDE in its own clock ``-log ab``.
* :func:`pf_ode_euler`, :func:`pf_ode_heun` -- the probability-flow ODE in EDM's variables
  ``x/a`` and ``sigma = s/a`` (where it reads ``d(x/a)/d sigma = eps``). Euler there *is*
  DDIM(eta=0), written differently (the tests check it).
* :func:`dpm_solver_pp_2m` -- DPM-Solver++(2M): exponential integrator on x0-predictions,
  second order from the previous step's prediction (one model call per step).

NFE (number of model evaluations) -> steps: every sampler uses one evaluation per step
except Heun, which uses two per step except the last (its step to t = 0 is an Euler step,
as in EDM), so ``nfe = 2 steps - 1`` and ``steps = (nfe + 1) // 2``. Guided models
(:func:`cfg_model`) cost two network calls per evaluation; NFE still counts evaluations.

Speed: each loop runs under ``torch.inference_mode``, keeps the state in one float32
buffer updated in place (coefficients are float64 Python scalars), and writes the trajectory
straight into a preallocated numpy array.

Pure torch/numpy: never imports Qt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engines.diffusion import EpsModel, GradFn, VPSchedule

__all__ = [
    "SAMPLERS",
    "SampleResult",
    "cfg_model",
    "classifier_guided_model",
    "ddim",
    "ddpm",
    "dpm_solver_pp_2m",
    "nfe_for_steps",
    "ode_error_at",
    "ode_error_vs_nfe",
    "ode_reference",
    "pf_ode_euler",
    "pf_ode_heun",
    "reverse_sde",
    "sample",
    "steps_for_nfe",
]

SAMPLERS: tuple[str, ...] = ("ddpm", "ddim", "sde", "euler", "heun", "dpmpp2m")


@dataclass(frozen=True)
class SampleResult:
    """Final samples (N, 2), optional trajectory (steps + 1, N, 2) (entry 0 is the initial
    noise), the time grid used (steps + 1,) and the number of model evaluations."""

    samples: np.ndarray
    trajectory: np.ndarray | None
    ts: np.ndarray
    nfe: int


# ====================================================================== plumbing


class _Run:
    """State shared by the loops: the in-place float32 state, the trajectory, the noise."""

    def __init__(
        self,
        x_init: torch.Tensor,
        ts: Sequence[float] | np.ndarray,
        schedule: VPSchedule,
        return_trajectory: bool,
        generator: torch.Generator | None,
    ) -> None:
        t = np.asarray(ts, dtype=np.float64).reshape(-1)
        if t.size < 2:
            raise ValueError("a time grid needs at least 2 times")
        if np.any(np.diff(t) >= 0):
            raise ValueError("the time grid must be strictly decreasing")
        if x_init.ndim != 2:
            raise ValueError(f"x_init must be (N, D), got {tuple(x_init.shape)}")
        self.ts = t
        self.ab = schedule.alpha_bar(t)
        self.x = x_init.detach().to(torch.float32).clone()
        self.traj: np.ndarray | None = None
        if return_trajectory:
            self.traj = np.empty((t.size, *self.x.shape), dtype=np.float32)
            self.traj[0] = self.x.cpu().numpy()
        self.generator = generator
        self._z: torch.Tensor | None = None

    def noise(self) -> torch.Tensor:
        """Fresh N(0, I) of the state's shape in a reused buffer (drawn in call order, so a
        seeded generator reproduces diffusers' ``randn_tensor`` draws)."""
        if self._z is None:
            self._z = torch.empty_like(self.x)
        if self.x.device.type == "cpu" or self.generator is None:
            torch.randn(self.x.shape, generator=self.generator, out=self._z)
        else:  # CPU generator, device state: draw on the CPU then copy
            self._z.copy_(torch.randn(self.x.shape, generator=self.generator))
        return self._z

    def record(self, i: int) -> None:
        if self.traj is not None:
            self.traj[i] = self.x.cpu().numpy()

    def result(self, nfe: int) -> SampleResult:
        return SampleResult(self.x.cpu().numpy(), self.traj, self.ts.copy(), nfe)


def _coeffs(ab: float) -> tuple[float, float]:
    return math.sqrt(ab), math.sqrt(max(1.0 - ab, 0.0))


# ====================================================================== samplers


def ddpm(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    ts: Sequence[float] | np.ndarray,
    *,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """DDPM ancestral sampling (Ho et al. 2020), on any grid (diffusers' ``DDPMScheduler``).

    Step t -> t': with ``alpha = ab/ab'`` and ``beta = 1 - alpha``,
    ``x0_hat = (x - s eps_hat)/a``, then sample the Gaussian posterior
    ``q(x' | x, x0_hat)``: mean ``a' beta/(1-ab) x0_hat + sqrt(alpha)(1-ab')/(1-ab) x``,
    variance ``(1-ab')/(1-ab) beta`` ("fixed_small"). No noise on the final step to t = 0.
    """
    run = _Run(x_init, ts, schedule, return_trajectory, generator)
    x = run.x
    with torch.inference_mode():
        for i in range(run.ts.size - 1):
            ab, ab_n = float(run.ab[i]), float(run.ab[i + 1])
            a, s = _coeffs(ab)
            a_n = math.sqrt(ab_n)
            alpha = ab / ab_n
            beta = 1.0 - alpha
            c_x0 = a_n * beta / (1.0 - ab)
            c_x = math.sqrt(alpha) * (1.0 - ab_n) / (1.0 - ab)
            eps = model(x, float(run.ts[i]), labels)
            # mean = c_x0 (x - s eps)/a + c_x x, written as one in-place update
            x.mul_(c_x0 / a + c_x).add_(eps, alpha=-c_x0 * s / a)
            if run.ts[i + 1] > 0:
                var = max((1.0 - ab_n) / (1.0 - ab) * beta, 1e-20)
                x.add_(run.noise(), alpha=math.sqrt(var))
            run.record(i + 1)
    return run.result(run.ts.size - 1)


def ddim(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    ts: Sequence[float] | np.ndarray,
    *,
    eta: float = 0.0,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """DDIM (Song, Meng & Ermon 2021); ``eta = 0`` is deterministic, ``eta = 1`` is DDPM.

    ``x' = a' x0_hat + sqrt(1 - ab' - sig^2) eps_hat + sig z`` with
    ``sig = eta sqrt((1-ab')/(1-ab)) sqrt(1 - ab/ab')``. Matches diffusers' ``DDIMScheduler``
    (``clip_sample=False``) for the same grid and noise.
    """
    run = _Run(x_init, ts, schedule, return_trajectory, generator)
    x = run.x
    with torch.inference_mode():
        for i in range(run.ts.size - 1):
            ab, ab_n = float(run.ab[i]), float(run.ab[i + 1])
            a, s = _coeffs(ab)
            a_n = math.sqrt(ab_n)
            sig = eta * math.sqrt((1.0 - ab_n) / (1.0 - ab) * max(1.0 - ab / ab_n, 0.0))
            dir_c = math.sqrt(max(1.0 - ab_n - sig * sig, 0.0))
            eps = model(x, float(run.ts[i]), labels)
            # x' = a' (x - s eps)/a + dir_c eps + sig z
            x.mul_(a_n / a).add_(eps, alpha=dir_c - a_n * s / a)
            if sig > 0:
                x.add_(run.noise(), alpha=sig)
            run.record(i + 1)
    return run.result(run.ts.size - 1)


def reverse_sde(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    ts: Sequence[float] | np.ndarray,
    *,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """Euler-Maruyama on the reverse-time VP SDE ``dx = [-beta/2 x - beta score] dt + sqrt(beta) dw``.

    Written in the SDE's own clock ``tau = -log ab`` (``d tau = beta dt``), where the VP SDE
    has unit diffusion: a step of length ``B = log(ab'/ab)`` is
    ``x' = x + (x/2 + score) B + sqrt(B) z``, ``score = -eps_hat/s``. Same as EM in t with
    ``beta(t) dt`` integrated exactly over the step, so it works for any schedule. The final
    step to t = 0 adds no noise (it would be pure error at the data).
    """
    run = _Run(x_init, ts, schedule, return_trajectory, generator)
    x = run.x
    with torch.inference_mode():
        for i in range(run.ts.size - 1):
            ab, ab_n = float(run.ab[i]), float(run.ab[i + 1])
            _, s = _coeffs(ab)
            big_b = math.log(ab_n / ab)
            eps = model(x, float(run.ts[i]), labels)
            x.mul_(1.0 + 0.5 * big_b).add_(eps, alpha=-big_b / s)
            if run.ts[i + 1] > 0:
                x.add_(run.noise(), alpha=math.sqrt(big_b))
            run.record(i + 1)
    return run.result(run.ts.size - 1)


def pf_ode_euler(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    ts: Sequence[float] | np.ndarray,
    *,
    labels: torch.Tensor | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """Euler on the probability-flow ODE in EDM variables (Karras et al. 2022).

    With ``y = x/a`` and ``sigma = s/a`` the PF-ODE is ``dy/d sigma = eps_hat(a y, t)``, so a
    step is ``y' = y + (sigma' - sigma) eps_hat``. (Algebraically identical to DDIM with
    eta = 0: DDIM *is* this Euler method.)
    """
    run = _Run(x_init, ts, schedule, return_trajectory, None)
    x = run.x
    with torch.inference_mode():
        for i in range(run.ts.size - 1):
            ab, ab_n = float(run.ab[i]), float(run.ab[i + 1])
            a, s = _coeffs(ab)
            a_n, s_n = _coeffs(ab_n)
            h = s_n / a_n - s / a  # sigma' - sigma (< 0)
            d = model(x, float(run.ts[i]), labels)
            # x' = a' (x/a + h d)
            x.mul_(a_n / a).add_(d, alpha=a_n * h)
            run.record(i + 1)
    return run.result(run.ts.size - 1)


def pf_ode_heun(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    ts: Sequence[float] | np.ndarray,
    *,
    labels: torch.Tensor | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """Heun's 2nd-order method on the PF-ODE in EDM variables (EDM's Algorithm 1, no churn).

    ``y_e = y + h d``; if ``sigma' > 0``: ``d' = eps_hat(a' y_e, t')`` and
    ``y' = y + h (d + d')/2``; the last step (to sigma = 0) stays Euler, where ``d'`` would be
    evaluated at the data. NFE = 2 steps - 1.
    """
    run = _Run(x_init, ts, schedule, return_trajectory, None)
    x = run.x
    d1 = torch.empty_like(x)
    xe = torch.empty_like(x)
    nfe = 0
    with torch.inference_mode():
        for i in range(run.ts.size - 1):
            ab, ab_n = float(run.ab[i]), float(run.ab[i + 1])
            a, s = _coeffs(ab)
            a_n, s_n = _coeffs(ab_n)
            h = s_n / a_n - s / a
            d = model(x, float(run.ts[i]), labels)
            nfe += 1
            if run.ts[i + 1] > 0:
                d1.copy_(d)  # the model may reuse its output buffer
                torch.add(x, d1, alpha=a * h, out=xe)  # a (y + h d): Euler predictor, x-space
                xe.mul_(a_n / a)
                d2 = model(xe, float(run.ts[i + 1]), labels)
                nfe += 1
                d1.add_(d2).mul_(0.5)
                x.mul_(a_n / a).add_(d1, alpha=a_n * h)
            else:
                x.mul_(a_n / a).add_(d, alpha=a_n * h)
            run.record(i + 1)
    return run.result(nfe)


def dpm_solver_pp_2m(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    ts: Sequence[float] | np.ndarray,
    *,
    labels: torch.Tensor | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """DPM-Solver++(2M) (Lu et al. 2022), multistep, data (x0) prediction, midpoint form.

    With ``lambda = log(a/s)`` and ``h = lambda' - lambda``, the exact solution of the PF-ODE
    given a constant x0-prediction D is ``x' = (s'/s) x - a' (exp(-h) - 1) D``. First step:
    ``D = x0_hat``. Later steps extrapolate with the previous prediction,
    ``D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_prev``, ``r = h_prev/h``. The last step to t = 0
    (``s' = 0``, ``h = inf``) is first order and returns ``x0_hat``, as diffusers'
    ``DPMSolverMultistepScheduler`` with ``final_sigmas_type="zero"`` (it matches it).
    """
    run = _Run(x_init, ts, schedule, return_trajectory, None)
    x = run.x
    x0 = torch.empty_like(x)
    x0_prev = torch.empty_like(x)
    h_prev: float | None = None
    with torch.inference_mode():
        for i in range(run.ts.size - 1):
            ab, ab_n = float(run.ab[i]), float(run.ab[i + 1])
            a, s = _coeffs(ab)
            a_n, s_n = _coeffs(ab_n)
            eps = model(x, float(run.ts[i]), labels)
            torch.add(x, eps, alpha=-s, out=x0).div_(a)  # x0_hat
            if s_n == 0.0:  # final step: h = inf, x' = x0_hat
                x.copy_(x0)
            else:
                h = math.log(a_n / s_n) - math.log(a / s)
                phi = -a_n * math.expm1(-h)  # -a' (exp(-h) - 1)
                if h_prev is None:
                    x.mul_(s_n / s).add_(x0, alpha=phi)
                else:
                    c = 0.5 * h / h_prev  # 1/(2r)
                    x.mul_(s_n / s).add_(x0, alpha=phi * (1.0 + c)).add_(x0_prev, alpha=-phi * c)
                if h > 0.0:  # a zero-length step (clamped schedule end) carries no history
                    h_prev = h
                    x0_prev.copy_(x0)
            run.record(i + 1)
    return run.result(run.ts.size - 1)


# ====================================================================== NFE and dispatch


def steps_for_nfe(method: str, nfe: int) -> int:
    """Most steps whose model-evaluation count is <= ``nfe`` (Heun: ``(nfe + 1) // 2``)."""
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; choose one of {', '.join(SAMPLERS)}")
    if nfe < 1:
        raise ValueError(f"nfe must be >= 1, got {nfe}")
    return (int(nfe) + 1) // 2 if method == "heun" else int(nfe)


def nfe_for_steps(method: str, steps: int) -> int:
    """Model evaluations used by ``steps`` steps (Heun: ``2 steps - 1``)."""
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; choose one of {', '.join(SAMPLERS)}")
    return 2 * int(steps) - 1 if method == "heun" else int(steps)


def sample(
    method: str,
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    *,
    nfe: int | None = None,
    steps: int | None = None,
    ts: Sequence[float] | np.ndarray | None = None,
    spacing: str = "uniform",
    eta: float = 0.0,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> SampleResult:
    """One entry point for the GUI: pick a sampler by name and a budget by NFE or steps.

    ``method``: one of :data:`SAMPLERS`. Give ``ts`` (explicit grid), or ``steps``, or
    ``nfe`` (converted with :func:`steps_for_nfe`); the grid is ``schedule.time_grid(steps,
    spacing)``. ``eta`` is used by DDIM only; ``generator`` by the stochastic samplers.
    """
    if ts is None:
        if steps is None:
            if nfe is None:
                raise ValueError("give one of ts, steps or nfe")
            steps = steps_for_nfe(method, nfe)
        grid = schedule.time_grid(int(steps), spacing)
    else:
        grid = np.asarray(ts, dtype=np.float64)
    if method == "ddpm":
        return ddpm(model, x_init, schedule, grid, labels=labels, generator=generator,
                    return_trajectory=return_trajectory)
    if method == "ddim":
        return ddim(model, x_init, schedule, grid, eta=eta, labels=labels, generator=generator,
                    return_trajectory=return_trajectory)
    if method == "sde":
        return reverse_sde(model, x_init, schedule, grid, labels=labels, generator=generator,
                           return_trajectory=return_trajectory)
    if method == "euler":
        return pf_ode_euler(model, x_init, schedule, grid, labels=labels,
                            return_trajectory=return_trajectory)
    if method == "heun":
        return pf_ode_heun(model, x_init, schedule, grid, labels=labels,
                           return_trajectory=return_trajectory)
    if method == "dpmpp2m":
        return dpm_solver_pp_2m(model, x_init, schedule, grid, labels=labels,
                                return_trajectory=return_trajectory)
    raise ValueError(f"unknown sampler {method!r}; choose one of {', '.join(SAMPLERS)}")


def ode_error_vs_nfe(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    nfes: Sequence[int],
    *,
    methods: Sequence[str] = ("euler", "heun", "dpmpp2m"),
    spacing: str = "karras",
    reference_steps: int = 400,
    labels: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Discretisation error of deterministic samplers against a fine-step reference.

    All runs start from the same ``x_init``; the reference is Heun with ``reference_steps``
    steps on the same spacing. Returns ``{"nfe": (len(nfes),), method: RMS error per nfe,
    method + "_nfe": NFE actually used}`` (Heun rounds an even NFE down to ``2 steps - 1``).
    The GUI plots these on log-log axes: slopes ~ -1 (Euler) vs ~ -2 (Heun, DPM++2M).
    """
    ref = pf_ode_heun(model, x_init, schedule, schedule.time_grid(reference_steps, spacing),
                      labels=labels).samples
    out: dict[str, np.ndarray] = {"nfe": np.asarray(nfes, dtype=np.int64)}
    for m in methods:
        if m not in ("euler", "heun", "dpmpp2m", "ddim"):
            raise ValueError(f"{m!r} is not a deterministic sampler")
        errs, used = [], []
        for n in nfes:
            res = sample(m, model, x_init, schedule, nfe=int(n), spacing=spacing, labels=labels)
            errs.append(float(np.sqrt(np.mean(np.sum((res.samples - ref) ** 2, axis=1)))))
            used.append(res.nfe)
        out[m] = np.asarray(errs)
        out[m + "_nfe"] = np.asarray(used, dtype=np.int64)
    return out


def ode_reference(
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    *,
    spacing: str = "karras",
    reference_steps: int = 400,
    labels: torch.Tensor | None = None,
) -> np.ndarray:
    """The fine-step Heun solution :func:`ode_error_vs_nfe` measures errors against."""
    return pf_ode_heun(model, x_init, schedule, schedule.time_grid(reference_steps, spacing),
                       labels=labels).samples


def ode_error_at(
    method: str,
    nfe: int,
    model: EpsModel,
    x_init: torch.Tensor,
    schedule: VPSchedule,
    reference: np.ndarray,
    *,
    spacing: str = "karras",
    labels: torch.Tensor | None = None,
) -> tuple[int, float]:
    """One point of :func:`ode_error_vs_nfe`: ``(NFE used, RMS distance to reference)``.

    Why separate: a GUI job grows the error curve one (sampler, NFE) point per frame.
    """
    if method not in ("euler", "heun", "dpmpp2m", "ddim"):
        raise ValueError(f"{method!r} is not a deterministic sampler")
    res = sample(method, model, x_init, schedule, nfe=int(nfe), spacing=spacing, labels=labels)
    err = float(np.sqrt(np.mean(np.sum((res.samples - reference) ** 2, axis=1))))
    return int(res.nfe), err


# ====================================================================== guidance


def cfg_model(model: EpsModel, scale: float) -> EpsModel:
    """Classifier-free guidance: ``eps_u + w (eps_c - eps_u)`` (Ho & Salimans 2022).

    ``w = 0``: the unconditional model; ``w = 1``: the conditional one; ``w > 1`` pushes
    samples towards where the class is *more likely than average* (sharper, less diverse).
    ``labels=None`` passes straight to the unconditional model. Costs two model calls.
    """
    w = float(scale)

    def guided(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return model(x, t, None)
        e_u = model(x, t, None).clone()  # the next call may reuse the buffer
        e_c = model(x, t, labels)
        return e_u.add_(e_c - e_u, alpha=w)

    return guided


def classifier_guided_model(
    model: EpsModel, grad_log_p: GradFn, scale: float, schedule: VPSchedule
) -> EpsModel:
    """Classifier guidance (Dhariwal & Nichol 2021): ``eps - w s grad_x log p(y | x_t)``.

    Since ``eps = -s score``, this adds ``w grad log p(y | x_t)`` to the score: sampling from
    ``p_t(x) p_t(y | x)^w``. ``grad_log_p`` from :func:`engines.diffusion.classifier_grad`
    (trained) or :func:`engines.diffusion.oracle_classifier_grad` (exact).
    """
    w = float(scale)

    def guided(x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
        eps = model(x, t, None)
        if labels is None or w == 0.0:
            return eps
        s = math.sqrt(max(1.0 - float(schedule.alpha_bar(t)), 0.0))
        return eps - (w * s) * grad_log_p(x, t, labels)

    return guided
