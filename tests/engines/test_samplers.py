"""Samplers on the exact 8-gaussians oracle: accuracy, NFE bookkeeping, diffusers parity, guidance.

The oracle is exact, so whatever distance remains is the sampler's own error; distances are
judged against the two-sample floor (two fresh target draws of the same size), never a
hard-coded figure.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines import metrics, toy_data
from engines import samplers as S
from engines.diffusion import VPSchedule, oracle_classifier_grad, oracle_eps_model

N = 2000  # particles per SWD check



@pytest.fixture(scope="module")
def gmm():  # type: ignore[no-untyped-def]
    return toy_data.mixture("8gaussians")


@pytest.fixture(scope="module")
def target() -> np.ndarray:
    return toy_data.sample("8gaussians", N, np.random.default_rng(123))


@pytest.fixture(scope="module")
def floor() -> float:
    mean, _ = metrics.swd_floor("8gaussians", N, repeats=4, seed=7)
    return mean


def _noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- accuracy on the oracle


@pytest.mark.parametrize(
    ("method", "nfe", "spacing"),
    [
        ("ddpm", 100, "uniform"),
        ("ddim", 50, "uniform"),
        ("sde", 200, "uniform"),
        ("euler", 50, "uniform"),
        ("heun", 49, "karras"),
        ("dpmpp2m", 25, "logsnr"),
    ],
)
def test_sampler_on_oracle_reaches_two_sample_floor(
    gmm, target: np.ndarray, floor: float, method: str, nfe: int, spacing: str
) -> None:
    sched = VPSchedule("linear")
    res = S.sample(
        method, oracle_eps_model(gmm, sched), _noise(N), sched, nfe=nfe, spacing=spacing,
        generator=torch.Generator().manual_seed(1), return_trajectory=True,
    )
    assert res.nfe == nfe
    steps = S.steps_for_nfe(method, nfe)
    assert res.trajectory is not None and res.trajectory.shape == (steps + 1, N, 2)
    np.testing.assert_array_equal(res.trajectory[-1], res.samples)
    np.testing.assert_array_equal(res.trajectory[0], _noise(N).numpy())
    swd = metrics.sliced_wasserstein(res.samples, target)
    assert swd < 2.0 * floor, f"{method}@{nfe}: SWD {swd:.3f} vs floor {floor:.3f}"


def test_too_few_steps_fail_the_same_check(gmm, target: np.ndarray, floor: float) -> None:
    # Negative control: the threshold above is tight enough to catch a bad sampler.
    sched = VPSchedule("linear")
    res = S.ddim(oracle_eps_model(gmm, sched), _noise(N), sched, sched.time_grid(2))
    assert metrics.sliced_wasserstein(res.samples, target) > 2.0 * floor


def test_cosine_schedule_sampling_on_oracle(gmm, target: np.ndarray, floor: float) -> None:
    sched = VPSchedule("cosine")
    res = S.sample("dpmpp2m", oracle_eps_model(gmm, sched), _noise(N), sched, nfe=30)
    assert metrics.sliced_wasserstein(res.samples, target) < 2.0 * floor


# ---------------------------------------------------------------------- identities


def test_euler_is_ddim_eta0_and_ddpm_is_ddim_eta1(gmm) -> None:
    sched = VPSchedule("linear")
    model = oracle_eps_model(gmm, sched)
    x = _noise(300, 3)
    ts = sched.time_grid(30)
    e = S.pf_ode_euler(model, x, sched, ts).samples
    d = S.ddim(model, x, sched, ts, eta=0.0).samples
    np.testing.assert_allclose(e, d, atol=1e-5)
    p = S.ddpm(model, x, sched, ts, generator=torch.Generator().manual_seed(9)).samples
    d1 = S.ddim(model, x, sched, ts, eta=1.0, generator=torch.Generator().manual_seed(9)).samples
    np.testing.assert_allclose(p, d1, atol=1e-5)
    # and eta actually matters
    assert np.abs(d1 - d).max() > 0.1


def test_nfe_bookkeeping() -> None:
    assert S.steps_for_nfe("heun", 1) == 1
    assert S.steps_for_nfe("heun", 40) == 20  # 39 NFE used
    assert S.nfe_for_steps("heun", 20) == 39
    assert S.steps_for_nfe("dpmpp2m", 7) == 7
    for nfe in (1, 2, 3, 10, 1000):
        assert S.nfe_for_steps("heun", S.steps_for_nfe("heun", nfe)) <= nfe
    with pytest.raises(ValueError):
        S.steps_for_nfe("heun", 0)
    with pytest.raises(ValueError):
        S.steps_for_nfe("rk4", 10)


def test_single_step_lands_on_posterior_mean(gmm) -> None:
    # NFE = 1: the only step goes to t = 0 and (for all but Euler-Maruyama, which just
    # extrapolates) returns x0_hat ~ E[x0], the mixture mean 0 for pure noise: one step gives
    # a blob, not 8 modes.
    sched = VPSchedule("linear")
    model = oracle_eps_model(gmm, sched)
    for m in ("ddpm", "ddim", "euler", "heun", "dpmpp2m"):
        res = S.sample(m, model, _noise(500), sched, nfe=1)
        assert res.nfe == 1
        assert np.abs(res.samples.mean(0)).max() < 0.2
        assert res.samples.std() < 0.5


# ---------------------------------------------------------------------- ODE order


def test_heun_beats_euler_at_fine_nfe_and_has_higher_order(gmm) -> None:
    sched = VPSchedule("linear")
    out = S.ode_error_vs_nfe(
        oracle_eps_model(gmm, sched), _noise(256, 5), sched, [41, 81],
        methods=("euler", "heun"), spacing="karras", reference_steps=200,
    )
    np.testing.assert_array_equal(out["heun_nfe"], [41, 81])
    e, h = out["euler"], out["heun"]
    assert np.all(h < e), (e, h)
    order_e = np.log2(e[0] / e[1])
    order_h = np.log2(h[0] / h[1])
    assert 0.7 < order_e < 1.4, order_e  # first order
    assert order_h > 1.6, order_h  # second order


# ---------------------------------------------------------------------- diffusers parity


def _diffusers_run(gmm, scheduler, x: torch.Tensor, steps: int, **step_kw):  # type: ignore[no-untyped-def]
    from engines.gmm import vp_eps

    scheduler.set_timesteps(steps)
    ac = scheduler.alphas_cumprod
    xx = x.clone()
    for tau in scheduler.timesteps:
        eps = vp_eps(gmm, xx, float(ac[int(tau)]))
        xx = scheduler.step(eps, tau, xx, **step_kw).prev_sample
    # diffusers' integer timestep tau is t = (tau + 1)/T; its final "alpha = 1" is t = 0.
    ts = np.concatenate([(scheduler.timesteps.numpy().astype(np.float64) + 1.0) / 1000.0, [0.0]])
    return xx.numpy(), ts


@pytest.mark.parametrize("steps", [10, 50])
@pytest.mark.parametrize("kind", ["ddim", "ddim_eta1", "ddpm", "dpmpp2m"])
def test_matches_diffusers_schedulers(gmm, kind: str, steps: int) -> None:
    diffusers = pytest.importorskip("diffusers")
    sched = VPSchedule("linear", T=1000)
    np.testing.assert_allclose(
        sched.alphas_cumprod(), diffusers.DDPMScheduler().alphas_cumprod.numpy(), rtol=1e-5
    )
    model = oracle_eps_model(gmm, sched)
    x = _noise(256, 11)
    if kind == "ddim":
        ref, ts = _diffusers_run(gmm, diffusers.DDIMScheduler(clip_sample=False), x, steps)
        ours = S.ddim(model, x, sched, ts).samples
    elif kind == "ddim_eta1":
        ref, ts = _diffusers_run(
            gmm, diffusers.DDIMScheduler(clip_sample=False), x, steps, eta=1.0,
            generator=torch.Generator().manual_seed(5),
        )
        ours = S.ddim(model, x, sched, ts, eta=1.0, generator=torch.Generator().manual_seed(5)).samples
    elif kind == "ddpm":
        ref, ts = _diffusers_run(
            gmm, diffusers.DDPMScheduler(clip_sample=False), x, steps,
            generator=torch.Generator().manual_seed(5),
        )
        ours = S.ddpm(model, x, sched, ts, generator=torch.Generator().manual_seed(5)).samples
    else:
        ref, ts = _diffusers_run(gmm, diffusers.DPMSolverMultistepScheduler(), x, steps)
        ours = S.dpm_solver_pp_2m(model, x, sched, ts).samples
    np.testing.assert_allclose(ours, ref, atol=1e-4)


# ---------------------------------------------------------------------- guidance


def test_cfg_scale_zero_is_unconditional_and_scale_pushes_to_class(gmm) -> None:
    sched = VPSchedule("linear")
    model = oracle_eps_model(gmm, sched)
    x = _noise(1000, 21)
    ts = sched.time_grid(40)
    k = 2
    mu = gmm.means[k]
    unit = mu / np.linalg.norm(mu)
    labels = torch.full((1000,), k, dtype=torch.long)
    uncond = S.ddim(model, x, sched, ts).samples
    w0 = S.ddim(S.cfg_model(model, 0.0), x, sched, ts, labels=labels).samples
    np.testing.assert_allclose(w0, uncond, atol=1e-6)
    scales = (0.0, 0.5, 1.0, 2.0, 4.0)
    runs = [S.ddim(S.cfg_model(model, w), x, sched, ts, labels=labels).samples for w in scales]
    dist = [float(np.linalg.norm(r - mu[None], axis=1).mean()) for r in runs]
    proj = [float((r @ unit).mean()) for r in runs]
    perp = [float((r - np.outer(r @ unit, unit)).std()) for r in runs]
    acc = [float((np.argmin(((r[:, None] - gmm.means[None]) ** 2).sum(-1), 1) == k).mean())
           for r in runs]
    # 0 -> 1 interpolates unconditional -> conditional: samples move onto the class mean.
    assert dist[0] > dist[1] > dist[2]
    assert acc[0] < 0.3 and acc[2] > 0.97
    # Beyond 1 the tilt p(x|y) p(y|x)^(w-1) keeps pushing along the class direction (past the
    # mean, away from the other classes) and collapses the spread across it.
    assert np.all(np.diff(proj) > 0), proj
    assert np.all(np.diff(perp) < 0), perp
    assert min(acc[2:]) > 0.97


def test_classifier_guidance_scale_one_equals_conditional_oracle(gmm) -> None:
    # eps_u - s grad log p(y|x) = -s (score_u + score_c - score_u) = eps_c, exactly.
    sched = VPSchedule("linear")
    model = oracle_eps_model(gmm, sched)
    x = _noise(500, 4)
    ts = sched.time_grid(30)
    labels = torch.arange(500) % 8
    guided = S.classifier_guided_model(model, oracle_classifier_grad(gmm, sched), 1.0, sched)
    a = S.ddim(guided, x, sched, ts, labels=labels).samples
    b = S.ddim(model, x, sched, ts, labels=labels).samples
    np.testing.assert_allclose(a, b, atol=1e-4)
    lab = np.argmin(((a[:, None, :] - gmm.means[None]) ** 2).sum(-1), axis=1)
    assert (lab == labels.numpy()).mean() > 0.97
