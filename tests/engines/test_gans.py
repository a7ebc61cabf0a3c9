"""GANs: losses and visual helpers checked against independent computations, plus one
end-to-end mode-coverage run on 8 gaussians."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from engines import toy_data
from engines.flows import grid_points
from engines.gans import (
    GAN,
    GAN_LOSSES,
    GAN_PRESETS,
    GanSnapshot,
    GanTrainer,
    critic_grid,
    discriminator_loss,
    gan_train_job,
    generator_loss_per_sample,
    generator_manifold,
    generator_push,
    gradient_penalty,
    mode_coverage,
)
from engines.jobs import ParamBox


def _gan(latent_dim: int = 2, seed: int = 0, dtype: torch.dtype = torch.float32) -> GAN:
    torch.manual_seed(seed)
    return GAN(latent_dim, hidden=32, depth=2).to(dtype)


# ---------------------------------------------------------------------- losses


def test_gradient_penalty_matches_a_per_sample_autograd_loop_and_finite_differences() -> None:
    gan = _gan(dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(16, 2, generator=gen, dtype=torch.float64) * 2
    fake = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    alpha = torch.rand(16, 1, generator=gen, dtype=torch.float64)
    got = gradient_penalty(gan.D, real, fake, alpha=alpha)

    x_hat = alpha * real + (1 - alpha) * fake
    loop, fd = [], []
    h = 1e-6
    for i in range(16):
        xi = x_hat[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(gan.D(xi).sum(), xi)
        loop.append((g.norm() - 1) ** 2)
        with torch.no_grad():  # central differences, one coordinate at a time
            e = torch.eye(2, dtype=torch.float64) * h
            g_fd = torch.stack([(gan.D(xi + e[j]) - gan.D(xi - e[j]))[0] / (2 * h)
                                for j in range(2)])
        fd.append((g_fd.norm() - 1) ** 2)
    assert got.item() == pytest.approx(torch.stack(loop).mean().item(), rel=1e-10)
    assert got.item() == pytest.approx(torch.stack(fd).mean().item(), rel=1e-6)
    # and it is differentiable w.r.t. D's weights (the whole point of create_graph=True)
    # (the output bias does not change grad_x D, so it alone gets no gradient)
    got.backward()
    weights = [m.weight for m in gan.D_net if isinstance(m, torch.nn.Linear)]
    assert all(w.grad is not None and w.grad.abs().max() > 0 for w in weights)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic() -> None:
    w = torch.tensor([0.6, 0.8])
    pen = gradient_penalty(lambda x: x @ w, torch.randn(32, 2), torch.randn(32, 2))
    assert pen.item() == pytest.approx(0.0, abs=1e-12)


def test_vanilla_losses_are_binary_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(1)
    d_real = torch.randn(50, generator=gen, dtype=torch.float64) * 3
    d_fake = torch.randn(50, generator=gen, dtype=torch.float64) * 3
    bce = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
           + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    for kind in ("minimax", "nonsaturating"):
        assert discriminator_loss(kind, d_real, d_fake).item() == pytest.approx(bce.item(), 1e-6)
    p = torch.sigmoid(d_fake)
    torch.testing.assert_close(generator_loss_per_sample("minimax", d_fake), torch.log1p(-p),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(generator_loss_per_sample("nonsaturating", d_fake), -torch.log(p),
                               atol=1e-5, rtol=1e-5)
    assert discriminator_loss("wgan", d_real, d_fake).item() == pytest.approx(
        (d_fake.mean() - d_real.mean()).item())


def test_minimax_push_vanishes_where_the_discriminator_is_sure() -> None:
    """The saturation argument of Goodfellow et al.: with D(G(z)) ~ 0 the minimax gradient
    is ~0 while the non-saturating one is not."""
    gan = _gan()
    with torch.no_grad():
        gan.D_net[-1].bias.fill_(-15.0)  # D is certain everything is fake
    z = gan.latent(64, np.random.default_rng(0))
    _, push_mm = generator_push(gan, "minimax", z)
    _, push_ns = generator_push(gan, "nonsaturating", z)
    ratio = np.linalg.norm(push_mm, axis=1) / np.linalg.norm(push_ns, axis=1)
    assert ratio.max() < 1e-3  # analytically sigmoid(a) / (1 - sigmoid(a)) = exp(a)


def test_generator_push_is_the_negative_loss_gradient_by_finite_differences() -> None:
    gan = _gan(dtype=torch.float64)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for kind in GAN_LOSSES:
        x, push = generator_push(gan, kind, z)
        h = 1e-6
        for i in range(5):
            for j in range(2):
                xp, xm = torch.tensor(x[i : i + 1]), torch.tensor(x[i : i + 1])
                xp[0, j] += h
                xm[0, j] -= h
                with torch.no_grad():
                    fd = (generator_loss_per_sample(kind, gan.D(xp))
                          - generator_loss_per_sample(kind, gan.D(xm))).item() / (2 * h)
                assert push[i, j] == pytest.approx(-fd, rel=1e-5, abs=1e-8)


def test_weight_clipping_bounds_every_critic_weight() -> None:
    gan = _gan()
    trainer = GanTrainer(gan, "8gaussians", seed=0)
    trainer.step({**GAN_PRESETS["wgan"], "loss": "wgan", "clip": 0.02, "lr_d": 0.05})
    flat = torch.cat([p.detach().flatten() for p in gan.D_net.parameters()])
    assert flat.abs().max().item() <= 0.02 + 1e-7
    assert flat.abs().max().item() == pytest.approx(0.02)  # the clip was active


# ---------------------------------------------------------------------- visual helpers


def test_critic_grid_is_image_oriented_and_matches_d() -> None:
    gan = _gan()
    heat = critic_grid(gan, "nonsaturating", (-2.0, 2.0), (-1.0, 3.0), 9)
    assert heat.shape == (9, 9) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    _, _, pts = grid_points((-2.0, 2.0), (-1.0, 3.0), 9)
    assert pts[0].tolist() == pytest.approx([-2.0 + 2 / 9, 3.0 - 2 / 9])  # top-left centre
    with torch.no_grad():
        want = torch.sigmoid(gan.D(torch.from_numpy(pts))).numpy().reshape(9, 9)
        raw = gan.D(torch.from_numpy(pts)).numpy().reshape(9, 9)
    np.testing.assert_allclose(heat, want, rtol=1e-6)
    np.testing.assert_allclose(critic_grid(gan, "wgan", (-2.0, 2.0), (-1.0, 3.0), 9), raw,
                               rtol=1e-6)


@pytest.mark.parametrize(("latent_dim", "shape"), [(1, (1, 11, 2)), (2, (11, 11, 2)),
                                                    (5, (11, 11, 2))])
def test_generator_manifold_maps_a_latent_grid(latent_dim: int, shape: tuple[int, ...]) -> None:
    gan = _gan(latent_dim)
    m = generator_manifold(gan, n=11, span=2.0)
    assert m.shape == shape
    z = torch.zeros(1, latent_dim)
    z[0, 0] = -2.0
    if latent_dim > 1:
        z[0, 1] = 2.0  # row 10, column 0
    with torch.no_grad():
        want = gan.G(z).numpy()[0]
    np.testing.assert_allclose(m[-1, 0], want, rtol=1e-5, atol=1e-6)


def test_mode_coverage_of_true_samples_matches_the_chi2_probability() -> None:
    mix = toy_data.mixture("8gaussians")
    assert mix is not None
    x = toy_data.sample("8gaussians", 40_000, np.random.default_rng(0))
    cov = mode_coverage(x, mix)
    assert cov.modes_hit == cov.n_modes == 8
    # P(chi^2_2 <= 9) = 1 - exp(-4.5): the fraction of a Gaussian within 3 std
    assert cov.high_quality == pytest.approx(1 - np.exp(-4.5), abs=0.002)
    assert cov.counts.sum() == pytest.approx(cov.high_quality * 40_000)


def test_mode_coverage_flags_collapse_and_off_manifold_samples() -> None:
    mix = toy_data.mixture("8gaussians")
    assert mix is not None
    rng = np.random.default_rng(1)
    one_mode = mix.means[3] + 0.1 * rng.standard_normal((1000, 2))
    collapsed = mode_coverage(one_mode, mix)
    assert collapsed.modes_hit == 1 and collapsed.high_quality == 1.0
    # 2% of samples on a second mode: below a quarter of the fair share (3.1%), not "hit"
    few = np.concatenate([one_mode[:980], mix.means[0] + 0.1 * rng.standard_normal((20, 2))])
    assert mode_coverage(few, mix).modes_hit == 1
    assert mode_coverage(few, mix, min_fraction=0.01).modes_hit == 2
    centre = 0.1 * rng.standard_normal((500, 2))  # the hole in the middle of the ring
    assert mode_coverage(centre, mix).high_quality == 0.0


# ---------------------------------------------------------------------- training job


def test_train_job_snapshots_and_live_loss_switch() -> None:
    params = ParamBox(loss="nonsaturating", batch_size=64)
    job = gan_train_job(params, dataset="8gaussians", hidden=16, depth=1, chunk_s=0.005,
                        visual_every=2, n_vis_samples=300, n_arrows=20, grid_res=12)
    first = next(job)
    assert isinstance(first, GanSnapshot) and first.loss == "nonsaturating"
    assert first.samples is not None and first.samples.shape == (300, 2)
    assert first.heatmap is not None and first.heatmap.shape == (12, 12)
    assert first.push is not None and first.push.shape == first.push_points.shape == (20, 2)
    assert first.manifold is not None and first.manifold.shape == (21, 21, 2)
    assert first.coverage is not None and first.coverage.n_modes == 8
    second = next(job)
    assert second.heatmap is None
    params.update(loss="wgan-gp", n_critic=3)
    third = next(job)
    assert third.loss == "wgan-gp" and third.gradient_penalty > 0
    assert third.step > second.step > first.step
    assert third.history.shape[1] == 3 and third.history[-1, 0] == third.step
    job.close()


def test_train_job_stops_at_max_steps() -> None:
    snaps = list(gan_train_job(ParamBox(), hidden=8, depth=1, max_steps=5, chunk_s=0.0,
                               grid_res=8, n_vis_samples=50))
    assert [s.step for s in snaps] == [1, 2, 3, 4, 5]


def test_train_job_fits_a_user_point_set() -> None:
    """Given an (n, 2) array, real batches are its rows; no mode coverage without known modes."""
    a = np.random.default_rng(0).uniform(0, 2 * np.pi, 500)
    ring = (np.stack([np.cos(a), np.sin(a)], axis=1) + np.array([2.0, -1.5])).astype(np.float32)
    snaps = list(gan_train_job(ParamBox(batch_size=128), dataset=ring, hidden=32, max_steps=200,
                               visual_every=1, n_vis_samples=1000, grid_res=8))
    last = snaps[-1]
    assert last.coverage is None and last.samples is not None
    np.testing.assert_allclose(last.samples.mean(axis=0), [2.0, -1.5], atol=0.4)


def test_unknown_loss_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown GAN loss"):
        GanTrainer(_gan()).step({"loss": "lsgan"})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_wgan_gp_covers_the_8_gaussians(seed: int) -> None:
    """WGAN-GP with the ``GAN_PRESETS["wgan-gp"]`` settings: G and D MLPs 2 x 64 (ReLU /
    LeakyReLU 0.2), latent 2, Adam (0.5, 0.9) lr 1e-3 for both, 5 critic steps per G step,
    penalty weight 0.1, batch 256, 200 generator steps.

    Measured: all 8 modes by step 150 for seeds 0-11; at step 200 (this test) 8/8 with
    54-64% high-quality samples for seeds 0-5. (The non-saturating GAN is ~3x cheaper per
    step but collapsed to 2 modes in 1 of 10 seeds at 600 steps: a flaky test.) We ask for
    >= 6 of 8 modes and >= 40% high-quality samples. ~1.5 s idle, 2.5-5 s busy per seed.
    """
    torch.manual_seed(seed)
    gan = GAN(latent_dim=2, hidden=64, depth=2)
    trainer = GanTrainer(gan, "8gaussians", seed=seed)
    settings = {**GAN_PRESETS["wgan-gp"], "loss": "wgan-gp", "batch_size": 256}
    for _ in range(200):
        trainer.step(settings)
    mix = toy_data.mixture("8gaussians")
    assert mix is not None
    cov = mode_coverage(gan.sample(4000, np.random.default_rng(100 + seed)), mix)
    assert cov.modes_hit >= 6
    assert cov.high_quality >= 0.4
