"""The Lab's exact views against closed forms and against fresh target samples."""

from __future__ import annotations

import numpy as np
import pytest

from engines import lab_views as lv
from engines import toy_data
from engines.jobs import ParamBox
from engines.metrics import sliced_wasserstein


@pytest.fixture(scope="module")
def gmm():
    return toy_data.mixture("8gaussians")


def test_forward_marginal_ends_and_moments(gmm):
    rng = np.random.default_rng(0)
    data = toy_data.sample("8gaussians", 4000, rng)
    noise = rng.standard_normal((4000, 2))
    np.testing.assert_allclose(lv.forward_marginal("vp", data, noise, 0.0), data, atol=1e-6)
    # VP linear: ab(1) = exp(-(0.1 + 19.9/2)) = 4.3e-5, not 0: p_1 is N(0, I) up to ~0.02.
    ab1 = np.exp(-(0.1 + 0.5 * 19.9))
    end = lv.forward_marginal("vp", data, noise, 1.0)
    np.testing.assert_allclose(end, np.sqrt(ab1) * data + np.sqrt(1 - ab1) * noise, atol=1e-5)
    assert np.abs(end - noise).max() < 0.03
    np.testing.assert_allclose(lv.forward_marginal("rf", data, noise, 0.0), noise, atol=1e-6)
    np.testing.assert_allclose(lv.forward_marginal("rf", data, noise, 1.0), data, atol=1e-6)
    for process, t in (("vp", 0.6), ("rf", 0.4)):
        x = lv.forward_marginal(process, data, noise, t)
        exact = lv.marginal_mixture(gmm, process, t)
        mean = exact.weights @ exact.means
        second = np.einsum("k,kij->ij", exact.weights, exact.covs + np.einsum("ki,kj->kij", exact.means,
                                                                              exact.means))
        cov = second - np.outer(mean, mean)
        np.testing.assert_allclose(np.cov(x.T), cov, atol=0.15 * np.abs(cov).max())


def test_vector_field_directions(gmm):
    pts = lv.grid_points((-4, 4, -4, 4), 5)
    assert pts.shape == (25, 2)
    # Pure noise: VP score of N(0, I) is -x (up to sqrt(ab(1)) |mu| ~ 0.02, since ab(1) > 0);
    # RF velocity at t=0 is E[x1] - x = -x here.
    np.testing.assert_allclose(lv.vector_field(gmm, "vp", 1.0, pts), -pts, atol=0.02)
    assert not np.allclose(lv.vector_field(gmm, "vp", 1.0, pts), -pts, atol=1e-6)
    np.testing.assert_allclose(lv.vector_field(gmm, "rf", 0.0, pts), -pts, atol=1e-9)
    arrows = lv.arrow_display_vectors(lv.vector_field(gmm, "vp", 0.3, pts), cell=0.5)
    assert np.all(np.hypot(arrows[:, 0], arrows[:, 1]) <= 0.45 + 1e-12)


def test_one_vp_schedule_for_exact_and_learned(gmm):
    """The exact views use engines.diffusion.VPSchedule, the schedule the learned model trains on."""
    from engines.diffusion import VPSchedule

    t = 0.37
    lin = np.exp(-(0.1 * t + 0.5 * 19.9 * t * t))  # Song et al.'s linear beta, integrated
    s = 0.008
    cos = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2 / np.cos(s / (1 + s) * np.pi / 2) ** 2
    assert lv.alpha_bar(t) == pytest.approx(lin) == pytest.approx(lv.alpha_bar(t, "linear"))
    assert lv.alpha_bar(t, "cosine") == pytest.approx(cos)
    assert lv.alpha_bar(0.5, "cosine") == pytest.approx(float(VPSchedule(kind="cosine").alpha_bar(0.5)))
    assert lv.alpha_bar(1.0, "cosine") == pytest.approx(1e-5)  # VPSchedule's floor
    assert not hasattr(lv, "cosine_alpha_bar")
    with pytest.raises(ValueError):
        lv.alpha_bar(0.5, "sigmoid")
    mix = lv.marginal_mixture(gmm, "vp", t, schedule="cosine")
    np.testing.assert_allclose(mix.means, np.sqrt(cos) * gmm.means, rtol=1e-9)


def test_densities_are_image_oriented(gmm):
    top_heavy = toy_data.mixture("8gaussians").subset([2])  # the N mode (y > 0)
    img = lv.mixture_density(top_heavy, (-4, 4, -4, 4), res=40)
    assert img[:20].sum() > 100 * img[20:].sum()
    pts = np.array([[0.0, 3.0]] * 10)
    hist = lv.histogram_density(pts, (-4, 4, -4, 4), res=8)
    assert hist[0:2].sum() > 0 and hist[2:].sum() == 0
    assert hist.sum() * (8 * 8 / 64) == pytest.approx(1.0)
    del gmm


@pytest.mark.parametrize("process", ["vp", "rf"])
def test_ode_job_reaches_target(gmm, process):
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((2000, 2))
    snaps = list(lv.ode_job(gmm, process, noise, ParamBox(speed=1.0), n_frames=60, frame_seconds=0))
    assert snaps[0].step == 0 and snaps[0].t == lv.noise_end(process)
    last = snaps[-1]
    assert last.done and last.t == pytest.approx(lv.data_end(process))
    assert last.trajectories.shape == (61, 64, 2)
    target = toy_data.sample("8gaussians", 2000, np.random.default_rng(2), equal_counts=True)
    floor = toy_data.sample("8gaussians", 2000, np.random.default_rng(3), equal_counts=True)
    swd = sliced_wasserstein(last.points, target)
    ref = sliced_wasserstein(floor, target)
    assert swd < 3 * ref + 0.05


def test_ode_job_speed_is_live(gmm):
    box = ParamBox(speed=1.0)
    job = lv.ode_job(gmm, "rf", np.zeros((10, 2)), box, n_frames=100, frame_seconds=0)
    next(job)
    a = next(job)
    box.update(speed=4.0)
    b = next(job)
    assert b.t - a.t == pytest.approx(0.04) and b.speed == 4.0


# ---------------------------------------------------------------------- learned-model adapters


def test_model_table_and_defaults():
    assert lv.family("exact") == "exact" and lv.family("glow") == "flow" and lv.family("wgan") == "gan"
    with pytest.raises(ValueError):
        lv.family("vae")
    assert lv.default_lr("wgan") == pytest.approx(5e-4)
    assert lv.n_flow_layers("realnvp") == 8 and lv.n_flow_layers("glow") == 24


def test_gan_params_map_the_lab_controls():
    box = ParamBox(lr=3e-4, batch_size=64)
    p = lv._GanParams(box, "wgan-gp").get()
    assert p["loss"] == "wgan-gp" and p["lr_g"] == p["lr_d"] == pytest.approx(3e-4)  # the one lr
    assert p["n_critic"] == 5 and p["batch_size"] == 64 and p["gp_weight"] == pytest.approx(0.1)
    box.update(lr_g=2e-4, n_critic=2, gan_loss="minimax")
    p = lv._GanParams(box, "wgan-gp").get()
    assert p["lr_g"] == pytest.approx(2e-4) and p["lr_d"] == pytest.approx(3e-4)  # lr_d: still lr
    assert p["n_critic"] == 2
    assert p["loss"] == "wgan-gp"  # the WGANs keep their loss whatever the box says
    assert lv._GanParams(box, "gan").get()["loss"] == "minimax"
    assert lv._GanParams(ParamBox(), "gan").get()["loss"] == "nonsaturating"
    with pytest.raises(ValueError, match="gan_loss"):
        lv._GanParams(ParamBox(gan_loss="wgan"), "gan").get()
    # an empty box falls back to the model's preset, which is what gan_defaults hands the panel
    bare = lv._GanParams(ParamBox(), "wgan").get()
    assert lv.gan_defaults("wgan") == {"lr_g": 5e-4, "lr_d": 5e-4, "n_critic": 5}
    assert {k: bare[k] for k in ("lr_g", "lr_d", "n_critic")} == lv.gan_defaults("wgan")
    assert lv.gan_defaults("gan")["n_critic"] == 1 and lv.gan_defaults("gan")["lr_g"] == lv.default_lr("gan")
    assert lv.MODELS["gan"][0] == "GAN: vanilla (minimax / non-saturating)"
    with pytest.raises(ValueError, match="not a GAN"):
        lv.gan_defaults("realnvp")


def test_gan_controls_reach_the_trainer():
    """lr_g, lr_d, n_critic and gan_loss from the Lab's box are what GanTrainer.step uses."""
    import copy

    import torch

    from engines.gans import GAN, GanTrainer

    torch.manual_seed(0)
    gan = GAN(2, 16, 1)
    twin = copy.deepcopy(gan)
    box = ParamBox(lr=1e-3, lr_g=2e-4, lr_d=7e-4, n_critic=3, gan_loss="minimax", batch_size=64)
    trainer = GanTrainer(gan, "8gaussians", seed=0)
    loss_g_mm, loss_d_mm = trainer.step(lv._GanParams(box, "gan").get())
    assert trainer.kind == "minimax"
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(7e-4)
    d_weight = next(gan.D_net.parameters())
    g_weight = next(gan.G.parameters())
    assert int(trainer.opt_d.state[d_weight]["step"]) == 3  # n_critic D steps per G step
    assert int(trainer.opt_g.state[g_weight]["step"]) == 1
    # Same weights, same seed, the other vanilla loss: the D step is the same, G's loss is not
    # (minimax log(1 - D) is negative, non-saturating -log D positive).
    box.update(gan_loss="nonsaturating")
    other = GanTrainer(twin, "8gaussians", seed=0)
    loss_g_ns, loss_d_ns = other.step(lv._GanParams(box, "gan").get())
    assert other.kind == "nonsaturating"
    assert loss_d_ns == pytest.approx(loss_d_mm, rel=1e-5)
    assert loss_g_mm < 0.0 < loss_g_ns


@pytest.mark.parametrize("model", ["rf", "nice", "gan"])
def test_train_job_uniform_snapshots(model):
    target = toy_data.sample("8gaussians", 500, np.random.default_rng(4))
    job = lv.lab_train_job(model, ParamBox(lr=lv.default_lr(model), batch_size=128), data="8gaussians",
                           target=target, width=16, depth=1, extent=toy_data.bounds("8gaussians"),
                           max_steps=40, quality_every_s=0.0, quality_n=300)
    snaps = list(job)
    last = snaps[-1]
    assert last.step == 40 and last.model == model
    assert len(last.loss) == len(last.loss_steps) == len(snaps)
    assert len(last.quality) >= 1 and np.all(last.quality > 0)
    assert last.samples.shape[1] == 2 and last.points is last.samples
    if model == "nice":
        assert last.floor == pytest.approx(toy_data.true_entropy("8gaussians"), abs=0.05)
        assert last.heatmap is not None and last.state is not None
    if model == "gan":
        assert last.loss_d is not None and last.modes_hit is not None and last.n_modes == 8
        assert last.push is not None and last.manifold is not None


@pytest.mark.parametrize("model", ["glow", "gan"])
def test_flows_and_gans_train_on_point_sets(model):
    """A drawn/imported point set (here a ring, which is no named set) trains flows and GANs."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 400)
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32) * 2.0 + [1.0, -0.5]
    params = ParamBox(lr=lv.default_lr(model), batch_size=128, lr_g=5e-4, gan_loss="minimax")
    snaps = list(lv.lab_train_job(model, params, data=ring, target=ring, width=16, depth=1,
                                  max_steps=20, quality_every_s=0.0, quality_n=300, latent_dim=1))
    last = snaps[-1]
    assert last.step == 20
    assert last.samples.shape == (300, 2) and np.all(np.isfinite(last.samples))
    assert np.all(np.isfinite(last.loss)) and len(last.quality) >= 1
    assert last.floor is None and last.modes_hit is None  # no known density, no known modes
    if model == "gan":
        assert last.lr == pytest.approx(5e-4)  # the generator's lr, from the box
        assert last.manifold is not None and last.manifold.shape[0] == 1  # a 1-D latent: a line


def test_exact_sampling_and_nfe_curve(gmm):
    target = toy_data.sample("8gaussians", 1000, np.random.default_rng(5), equal_counts=True)
    few = lv.lab_sample("diffusion", config=None, state=None, gmm=gmm, exact=True, sampler="ddim",
                        nfe=1, n=1000, target=target)
    many = lv.lab_sample("diffusion", config=None, state=None, gmm=gmm, exact=True, sampler="heun",
                         nfe=40, n=1000, target=target)
    assert many.nfe == 39 and many.trajectories.shape == (21, 64, 2)  # Heun: 2 steps - 1
    assert many.swd < 0.3 < few.swd  # a perfect model still needs steps
    rf = lv.lab_sample("rf", config=None, state=None, gmm=gmm, exact=True, sampler="ddpm", nfe=30,
                       n=1000, target=target)
    assert rf.sampler == "euler" and rf.swd < 0.35
    with pytest.raises(ValueError, match="train"):
        lv.lab_sample("rf", config=None, state=None)
    curves = list(lv.nfe_curve_job("rf", target=target, config=None, state=None, gmm=gmm, exact=True,
                                   sampler="euler", nfes=(1, 4, 16), n=500))
    assert len(curves) == 3 and curves[-1].done and list(curves[-1].nfe) == [1, 4, 16]
    assert curves[-1].swd[-1] < curves[-1].swd[0]


def test_flow_layer_view_ends():
    from engines.flows import build_flow

    flow = build_flow("realnvp", 4, 8, 1, seed=1)
    with __import__("torch").no_grad():
        for prm in flow.parameters():
            prm.add_(0.05)  # not the identity any more
    data = toy_data.sample("8gaussians", 200, np.random.default_rng(6))
    v0 = lv.flow_layer_view(flow.config, flow.state_numpy(), 0, data=data, n=200)
    np.testing.assert_allclose(v0.grid, lv.latent_grid(), atol=1e-6)  # k = 0: the latent itself
    assert v0.label.startswith("base") and v0.n_layers == 4
    v4 = lv.flow_layer_view(flow.config, flow.state_numpy(), 99, data=data, n=200)
    assert v4.k == 4 and not np.allclose(v4.grid, v0.grid)
    np.testing.assert_allclose(v4.data_latent, data, atol=1e-5)  # k = K: the data, unmoved


def test_drawing_helpers():
    img, lo, hi = lv.heat_levels(np.array([[1.0, 1e-9], [0.5, 0.0]]), log=True, span=5.0)
    assert hi == pytest.approx(0.0) and lo == pytest.approx(-5.0) and img.min() == pytest.approx(-5.0)
    raw, lo, hi = lv.heat_levels(np.linspace(-1, 1, 100).reshape(10, 10), log=False)
    assert lo < hi and raw.dtype == np.float32
    x, _, connect = lv.polyline_arrays(lv.latent_grid(lines=3, points=5))
    assert len(x) == 30 and (~connect).sum() == 6
    assert lv.manifold_lines(np.zeros((5, 5, 2))).shape == (10, 5, 2)  # rows and columns
    assert lv.manifold_lines(np.zeros((1, 5, 2))).shape == (1, 5, 2)  # a 1-D latent: one line


def test_conditional_model_guidance_and_field(gmm):
    target = toy_data.sample("8gaussians", 300, np.random.default_rng(7))
    last = list(lv.lab_train_job("ddpm", ParamBox(lr=2e-3, batch_size=128), data="8gaussians",
                                 target=target, width=16, depth=2, conditional=True,
                                 max_steps=30, quality_n=300))[-1]
    assert last.config["n_classes"] == 8 and last.state is not None
    kw = dict(config=last.config, state=last.state, sampler="euler", nfe=5, n=400, seed=3)
    plain = lv.lab_sample("diffusion", guidance=1.0, **kw)
    guided = lv.lab_sample("diffusion", guidance=5.0, **kw)
    assert not np.allclose(plain.samples, guided.samples)  # CFG changes the samples
    view = lv.field_view("diffusion", config=last.config, state=last.state, gmm=gmm, t=0.5,
                         extent=(-4, 4, -4, 4), n=11, res=16)
    assert view.learned.shape == view.exact.shape == (121, 2) and view.diff.shape == (16, 16)
    assert np.all(np.isfinite(view.diff)) and view.diff.max() > 0


def test_rf_trains_on_drawn_points():
    pts = np.random.default_rng(8).normal((1.5, -1.0), 0.2, size=(400, 2)).astype(np.float32)
    last = list(lv.lab_train_job("rf", ParamBox(lr=3e-3, batch_size=128), data=pts, target=pts,
                                 width=16, depth=2, max_steps=300, quality_n=400))[-1]
    out = lv.lab_sample("rf", config=last.config, state=last.state, nfe=20, n=400, target=pts)
    assert np.linalg.norm(out.samples.mean(0) - (1.5, -1.0)) < 0.5


@pytest.mark.parametrize("fam,model", [("diffusion", "ddpm"), ("rf", "rf")])
def test_bf16_preview_stays_close_to_float32(fam, model):
    """The fast preview changes the arithmetic, not the picture: same noise, nearly the same
    samples (bfloat16 keeps 8 mantissa bits; 20 steps compound it only mildly)."""
    target = toy_data.sample("8gaussians", 300, np.random.default_rng(7))
    last = list(lv.lab_train_job(model, ParamBox(lr=2e-3, batch_size=128), data="8gaussians",
                                 target=target, width=32, depth=2, max_steps=40, quality_n=300))[-1]
    kw = dict(config=last.config, state=last.state, sampler="euler", nfe=20, n=500, seed=1)
    full = lv.lab_sample(fam, **kw).samples
    fast = lv.lab_sample(fam, bf16=True, **kw).samples
    gap = np.linalg.norm(full - fast, axis=1)
    scale = np.linalg.norm(full, axis=1).mean()
    assert 0 < gap.mean() < 0.03 * scale


def test_diverged_training_stops_with_a_plain_message():
    from engines.jobs import JobStopped

    target = toy_data.sample("8gaussians", 300, np.random.default_rng(0))
    job = lv.lab_train_job("realnvp", ParamBox(lr=1e4, batch_size=128), data="8gaussians",
                           target=target, max_steps=2000, quality_n=300)
    seen = []
    with pytest.raises(JobStopped) as err:
        for snap in job:
            seen.append(snap)
    assert all(np.isfinite(s.loss).all() for s in seen)  # every frame it yielded is good
    text = str(err.value)
    assert text.startswith("Training diverged at step") and "learning rate" in text
