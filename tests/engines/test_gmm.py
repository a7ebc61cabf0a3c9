"""Exact Gaussian-mixture densities and oracles, checked against independent computations.

Every oracle is compared with something that does not share its algebra: autograd of the
noised density, Monte Carlo over the forward process, or an elementwise closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from engines import toy_data
from engines.gmm import GaussianMixture, rf_velocity, vp_eps, vp_score, vp_x0
from engines.metrics import sliced_wasserstein


@pytest.fixture
def gmm() -> GaussianMixture:
    """Three unequal, anisotropic, correlated components: nothing cancels by symmetry."""
    return GaussianMixture(
        weights=np.array([0.2, 0.5, 0.3]),
        means=np.array([[-1.5, 0.5], [1.0, 1.0], [0.3, -1.2]]),
        covs=np.array(
            [
                [[0.30, 0.10], [0.10, 0.20]],
                [[0.05, -0.02], [-0.02, 0.40]],
                [[0.50, 0.00], [0.00, 0.08]],
            ]
        ),
    )


def _points(n: int, seed: int, scale: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=(n, 2))


def _autograd_score(mix: GaussianMixture, x: np.ndarray) -> np.ndarray:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(mix.log_prob_torch(xt).sum(), xt)
    return grad.numpy()


# ---------------------------------------------------------------------- densities


def test_log_prob_matches_scipy(gmm: GaussianMixture) -> None:
    x = _points(50, 0)
    dens = sum(
        w * multivariate_normal(m, c).pdf(x)
        for w, m, c in zip(gmm.weights, gmm.means, gmm.covs, strict=True)
    )
    np.testing.assert_allclose(gmm.log_prob(x), np.log(dens), rtol=1e-10, atol=1e-12)
    lp_t = gmm.log_prob_torch(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(lp_t, np.log(dens), rtol=1e-10, atol=1e-12)


def test_log_prob_is_stable_far_from_the_data(gmm: GaussianMixture) -> None:
    far = np.array([[300.0, -200.0]])
    assert np.isfinite(gmm.log_prob(far)).all()
    assert torch.isfinite(gmm.log_prob_torch(torch.tensor(far))).all()


def test_constructor_validates_and_renormalises() -> None:
    g = GaussianMixture(np.array([1.0, 3.0]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2))
    np.testing.assert_allclose(g.weights, [0.25, 0.75])
    assert not g.means.flags.writeable
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(np.ones(1), np.zeros((1, 2)), np.array([[[1.0, 2.0], [2.0, 1.0]]]))
    with pytest.raises(ValueError, match="means"):
        GaussianMixture(np.ones(2), np.zeros((3, 2)), np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(np.array([-1.0, 2.0]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2))


def test_grid_density_integrates_to_one_and_is_image_oriented() -> None:
    g = GaussianMixture.isotropic(np.array([[1.0, 2.0]]), 0.5)
    d = g.grid_density((-3.0, 5.0), (-2.0, 6.0), (160, 120))
    assert d.shape == (160, 120)
    cell = (8.0 / 120) * (8.0 / 160)
    assert d.sum() * cell == pytest.approx(1.0, abs=1e-3)
    row, col = np.unravel_index(np.argmax(d), d.shape)
    # Row 0 is the top (y = 6): y = 2 lies at 4/8 of the height from the top; x = 1 at 4/8.
    assert abs(row - 80) <= 1
    assert abs(col - 60) <= 1


def test_sample_moments_and_labels(gmm: GaussianMixture) -> None:
    rng = np.random.default_rng(1)
    x, lab = gmm.sample(60_000, rng)
    assert x.shape == (60_000, 2) and x.dtype == np.float32 and lab.dtype == np.int64
    frac = np.bincount(lab, minlength=3) / lab.size
    np.testing.assert_allclose(frac, gmm.weights, atol=0.01)
    for k in range(3):
        xk = x[lab == k].astype(np.float64)
        np.testing.assert_allclose(xk.mean(0), gmm.means[k], atol=0.03)
        np.testing.assert_allclose(np.cov(xk.T), gmm.covs[k], atol=0.03)


def test_equal_counts_follow_the_weights(gmm: GaussianMixture) -> None:
    _, lab = gmm.sample(1001, np.random.default_rng(2), equal_counts=True)
    counts = np.bincount(lab, minlength=3)
    assert counts.sum() == 1001
    assert np.all(np.abs(counts - 1001 * gmm.weights) < 1.0)
    # Shuffled, not sorted by component.
    assert np.any(np.diff(lab) < 0)


def test_entropy_mc_of_8gaussians_matches_reference() -> None:
    g = toy_data.mixture("8gaussians")
    assert g is not None
    n = 200_000
    h = g.entropy_mc(n, np.random.default_rng(3))
    x, _ = g.sample(20_000, np.random.default_rng(4))
    se = g.log_prob(x).std() / math.sqrt(n)
    reference = 2.8319  # reference.md, by quadrature, rounded to 1e-4
    assert abs(h - reference) < 4 * se + 1e-4


def test_subset_renormalises(gmm: GaussianMixture) -> None:
    s = gmm.subset([2, 0])
    np.testing.assert_allclose(s.weights, np.array([0.2, 0.3]) / 0.5)
    np.testing.assert_allclose(s.means, gmm.means[[0, 2]])
    with pytest.raises(ValueError):
        gmm.subset([3])


@pytest.mark.parametrize("kind", ["vp", "rf"])
def test_noised_marginals_match_simulated_forward_process(gmm: GaussianMixture, kind: str) -> None:
    """Simulate x_t from (x0, noise) and compare per-component moments with the formula."""
    rng = np.random.default_rng(5)
    x0, lab = gmm.sample(60_000, rng)
    eps = rng.standard_normal(x0.shape)
    if kind == "vp":
        ab = 0.4
        xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        marg = gmm.noised_vp(ab)
    else:
        t = 0.7
        xt = t * x0 + (1 - t) * eps
        marg = gmm.interpolated_rf(t)
    for k in range(3):
        xk = xt[lab == k]
        np.testing.assert_allclose(xk.mean(0), marg.means[k], atol=0.03)
        np.testing.assert_allclose(np.cov(xk.T), marg.covs[k], atol=0.03)
    np.testing.assert_allclose(marg.weights, gmm.weights)


def test_marginal_endpoints(gmm: GaussianMixture) -> None:
    np.testing.assert_allclose(gmm.noised_vp(1.0).covs, gmm.covs)
    np.testing.assert_allclose(gmm.interpolated_rf(1.0).means, gmm.means)
    for noise in (gmm.noised_vp(0.0), gmm.interpolated_rf(0.0)):
        np.testing.assert_allclose(noise.means, 0.0)
        np.testing.assert_allclose(noise.covs, np.stack([np.eye(2)] * 3))


# ---------------------------------------------------------------------- VP oracles


@pytest.mark.parametrize("ab", [0.01, 0.3, 0.8, 0.999])
def test_vp_score_equals_autograd_of_noised_density(gmm: GaussianMixture, ab: float) -> None:
    x = _points(64, 6)
    expected = _autograd_score(gmm.noised_vp(ab), x)
    got = vp_score(gmm, torch.tensor(x, dtype=torch.float32), ab)
    assert got.dtype == torch.float32 and got.shape == (64, 2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_vp_score_with_per_sample_alpha_bar(gmm: GaussianMixture) -> None:
    abs_ = np.array([0.05, 0.5, 0.95])
    x = _points(30, 7)
    ab = np.repeat(abs_, 10)
    got = vp_score(gmm, torch.tensor(x, dtype=torch.float32), torch.tensor(ab)).numpy()
    for i, a in enumerate(abs_):
        rows = slice(10 * i, 10 * (i + 1))
        exp = _autograd_score(gmm.noised_vp(a), x[rows])
        np.testing.assert_allclose(got[rows], exp, rtol=1e-4, atol=1e-4 * np.abs(exp).max())


def test_class_conditional_score(gmm: GaussianMixture) -> None:
    x = _points(40, 8)
    ab = 0.6
    labels = torch.tensor(np.arange(40) % 4 - 1)  # -1 = unconditional, then 0, 1, 2
    got = vp_score(gmm, torch.tensor(x), ab, labels=labels).numpy()
    for k in (-1, 0, 1, 2):
        rows = (np.arange(40) % 4 - 1) == k
        mix = gmm if k < 0 else gmm.subset([k])
        exp = _autograd_score(mix.noised_vp(ab), x[rows])
        np.testing.assert_allclose(got[rows], exp, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError):
        vp_score(gmm, torch.tensor(x), ab, labels=3)


def test_vp_eps_and_x0_relations(gmm: GaussianMixture) -> None:
    x = torch.tensor(_points(50, 9), dtype=torch.float64)
    ab = torch.linspace(0.02, 0.98, 50, dtype=torch.float64)
    score = vp_score(gmm, x, ab)
    eps = vp_eps(gmm, x, ab)
    np.testing.assert_allclose(eps.numpy(), (-torch.sqrt(1 - ab)[:, None] * score).numpy())
    tweedie = (x + (1 - ab)[:, None] * score) / torch.sqrt(ab)[:, None]
    np.testing.assert_allclose(vp_x0(gmm, x, ab).numpy(), tweedie.numpy(), rtol=1e-10, atol=1e-12)
    # At ab = 0 the observation carries no information: E[x0 | x_t] is the mixture mean.
    mean = gmm.weights @ gmm.means
    np.testing.assert_allclose(vp_x0(gmm, x, 0.0).numpy(), np.tile(mean, (50, 1)), atol=1e-12)


def test_vp_x0_is_the_posterior_mean_by_monte_carlo(gmm: GaussianMixture) -> None:
    """Regression residual x0 - E[x0|x_t] must be orthogonal to every function of x_t."""
    rng = np.random.default_rng(10)
    n, ab = 200_000, 0.5
    x0, _ = gmm.sample(n, rng)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * rng.standard_normal(x0.shape)
    pred = vp_x0(gmm, torch.tensor(xt), ab).numpy()
    _assert_orthogonal(x0 - pred, xt)
    # The same test rejects a plausible wrong answer (the prior mean, ignoring x_t).
    with pytest.raises(AssertionError):
        _assert_orthogonal(x0 - gmm.weights @ gmm.means, xt)


def _assert_orthogonal(resid: np.ndarray, xt: np.ndarray) -> None:
    feats = [np.ones(len(xt)), xt[:, 0], xt[:, 1], np.tanh(xt[:, 0] * xt[:, 1]), np.sin(xt[:, 0])]
    for f in feats:
        prod = resid * f[:, None]
        z = prod.mean(0) / (prod.std(0) / math.sqrt(len(xt)))
        assert np.all(np.abs(z) < 5), z


def test_oracles_are_stable_far_away() -> None:
    g = toy_data.mixture("25gaussians")  # std 0.018: the stiffest case
    assert g is not None
    x = torch.tensor([[50.0, -40.0], [0.36, 0.35], [1e3, 1e3]], dtype=torch.float32)
    for ab in (1.0, 0.999, 0.5):
        s = vp_score(g, x, ab)
        assert torch.isfinite(s).all()
        assert (s * x).sum(1)[0] < 0  # points back towards the data
    assert torch.isfinite(rf_velocity(g, x, 1.0)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_oracles_on_cuda_match_cpu(gmm: GaussianMixture) -> None:
    x = torch.tensor(_points(100, 11), dtype=torch.float32)
    t = torch.rand(100)
    for f in (vp_score, vp_eps, vp_x0, rf_velocity):
        cpu = f(gmm, x, t.clamp(0.05, 0.95))
        gpu = f(gmm, x.cuda(), t.clamp(0.05, 0.95).cuda())
        assert gpu.device.type == "cuda"
        np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- rectified flow


def test_rf_velocity_between_two_gaussians_matches_closed_form() -> None:
    """N(0, I) -> N(mu, diag(s^2)): per axis the joint is Gaussian and
    v_i = mu_i + (t s_i^2 - (1 - t)) / ((1 - t)^2 + t^2 s_i^2) * (x_i - t mu_i)."""
    mu = np.array([1.5, -0.5])
    s2 = np.array([0.25, 2.0])
    g = GaussianMixture(np.ones(1), mu[None], np.diag(s2)[None])
    x = _points(40, 12)
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        gain = (t * s2 - (1 - t)) / ((1 - t) ** 2 + t**2 * s2)
        expected = mu + gain * (x - t * mu)
        got = rf_velocity(g, torch.tensor(x), t).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_rf_velocity_is_the_conditional_expectation(gmm: GaussianMixture) -> None:
    rng = np.random.default_rng(13)
    n = 200_000
    x1, _ = gmm.sample(n, rng)
    x0 = rng.standard_normal(x1.shape)
    t = rng.uniform(0.05, 0.95, size=n)
    xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    v = rf_velocity(gmm, torch.tensor(xt), torch.tensor(t)).numpy()
    _assert_orthogonal((x1 - x0) - v, xt)
    with pytest.raises(AssertionError):  # the mean displacement alone is not E[x1-x0|x_t]
        _assert_orthogonal((x1 - x0) - (gmm.weights @ gmm.means), xt)


def test_rf_velocity_satisfies_the_continuity_equation(gmm: GaussianMixture) -> None:
    """d/dt log p_t + div v + v . grad log p_t = 0 with p_t = interpolated_rf(t)."""
    x = torch.tensor(_points(30, 14, scale=1.5), dtype=torch.float64, requires_grad=True)
    h = 1e-5
    for t in (0.1, 0.5, 0.85):
        dlogp_dt = (
            gmm.interpolated_rf(t + h).log_prob_torch(x)
            - gmm.interpolated_rf(t - h).log_prob_torch(x)
        ) / (2 * h)
        logp = gmm.interpolated_rf(t).log_prob_torch(x)
        (grad_logp,) = torch.autograd.grad(logp.sum(), x)
        v = rf_velocity(gmm, x, t)
        div = sum(
            torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2)
        )
        resid = dlogp_dt + div + (v * grad_logp).sum(1)
        assert resid.abs().max().item() < 1e-6


def test_rf_ode_transports_noise_onto_the_mixture() -> None:
    """RK4 on the exact velocity from N(0, I) lands on 8gaussians (SWD at the sample floor)."""
    g = toy_data.mixture("8gaussians")
    assert g is not None
    rng = np.random.default_rng(15)
    n, steps = 1500, 25
    x = torch.tensor(rng.standard_normal((n, 2)))
    dt = 1.0 / steps
    for i in range(steps):
        t = i * dt
        k1 = rf_velocity(g, x, t)
        k2 = rf_velocity(g, x + 0.5 * dt * k1, t + 0.5 * dt)
        k3 = rf_velocity(g, x + 0.5 * dt * k2, t + 0.5 * dt)
        k4 = rf_velocity(g, x + dt * k3, t + dt)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    ref = toy_data.sample("8gaussians", n, rng)
    other = toy_data.sample("8gaussians", n, rng)
    floor = sliced_wasserstein(ref, other)
    assert sliced_wasserstein(x.numpy(), ref) < 2.5 * floor + 0.05
    # ...while the noise it started from is far away.
    assert sliced_wasserstein(rng.standard_normal((n, 2)), ref) > 5 * floor


def test_rf_class_conditional_velocity(gmm: GaussianMixture) -> None:
    x = torch.tensor(_points(20, 16))
    got = rf_velocity(gmm, x, 0.6, labels=torch.full((20,), 1))
    expected = rf_velocity(gmm.subset([1]), x, 0.6)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)
