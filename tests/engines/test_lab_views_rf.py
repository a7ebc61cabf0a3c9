"""Issue #3's Lab additions: RF sources and reflow, classifier guidance, compare, Euler vs Heun.

Closed forms where there are any: DDIM(eta=0) *is* Euler on the PF-ODE; exact classifier
guidance at scale 1 *is* the exact conditional model; straightness of an Euler path is
engines.flow_matching.straightness; the trained classifier cannot beat the Bayes posterior.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines import lab_views as lv
from engines import toy_data
from engines.flow_matching import oracle_velocity_model, straightness
from engines.jobs import ParamBox


@pytest.fixture(scope="module")
def gmm():
    return toy_data.mixture("8gaussians")


@pytest.fixture(scope="module")
def target():
    return toy_data.sample("8gaussians", 2000, np.random.default_rng(1), equal_counts=True)


@pytest.fixture(scope="module")
def rf1(target):
    """A 1-rectified flow, 300 steps (3x64, lr 5e-3): fair samples, curved paths."""
    snaps = list(lv.lab_train_job("rf", ParamBox(lr=5e-3, batch_size=256), data="8gaussians",
                                  target=target, width=64, depth=3, max_steps=300,
                                  quality_every_s=0.0))
    return snaps[-1]


def _component(gmm, pts: np.ndarray) -> np.ndarray:
    return gmm.component_log_prob(np.asarray(pts, np.float64)).argmax(1)


# ---------------------------------------------------------------------- rectified flow


def test_reflow_straightens_and_one_euler_step_nearly_suffices(rf1, target):
    snaps = list(lv.reflow_job(ParamBox(lr=2e-3, batch_size=256), config=rf1.config,
                               state=rf1.state, target=target, round_index=1, max_steps=300,
                               quality_every_s=0.0))
    rf2 = snaps[-1]
    assert rf1.reflow_round == 0 and rf2.reflow_round == 1 and rf2.model == "rf"
    assert rf2.step == 300 and len(rf2.quality) >= 1 and rf2.state is not None
    # Straightness (0 = straight): measured 1.9 for the 1-RF, 0.014 after one reflow.
    assert rf1.straightness is not None and rf2.straightness is not None
    assert rf2.straightness < 0.1 * rf1.straightness
    # One Euler step from the same noise: sliced W2 1.70 (1-RF) against 0.25 (2-RF).
    kw = dict(sampler="euler", nfe=1, n=2000, seed=5, target=target)
    one = lv.lab_sample("rf", config=rf1.config, state=rf1.state, **kw)
    two = lv.lab_sample("rf", config=rf2.config, state=rf2.state, **kw)
    np.testing.assert_array_equal(one.trajectories[0], two.trajectories[0])
    assert two.swd < 0.4 * one.swd
    assert two.straightness < 0.1 * one.straightness


def test_warm_start_keeps_the_unconditional_field():
    from engines.flow_matching import make_velocity_net
    from engines.nets import state_to_numpy

    torch.manual_seed(0)
    net = make_velocity_net(16, 2, n_classes=4)
    with torch.no_grad():
        net.class_emb.weight.normal_(0.0, 1.0)  # a null row far from zero
    warm = lv._warm_start_net(net.config(), state_to_numpy(net))
    assert warm.n_classes == 0
    x = torch.randn(50, 2)
    with torch.no_grad():
        np.testing.assert_allclose(warm(x, 0.3).numpy(), net(x, 0.3, None).numpy(), atol=1e-6)
        assert not np.allclose(net(x, 0.3, torch.zeros(50, dtype=torch.long)).numpy(),
                               net(x, 0.3, None).numpy(), atol=1e-3)


def test_rf_sample_straightness_is_the_engines_figure(gmm):
    model = oracle_velocity_model(gmm)
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(3))
    fine = lv.lab_sample("rf", config=None, state=None, gmm=gmm, exact=True, sampler="euler",
                         nfe=50, n=500, seed=3)
    np.testing.assert_allclose(fine.trajectories[0], x0[:64].numpy())  # the same noise as before
    assert fine.straightness == pytest.approx(straightness(model, x0, 50), rel=1e-4)
    # A 1-step solve is straight by construction: re-measured on 20 steps instead.
    coarse = lv.lab_sample("rf", config=None, state=None, gmm=gmm, exact=True, sampler="euler",
                           nfe=1, n=500, seed=3)
    assert coarse.straightness == pytest.approx(straightness(model, x0, 20), rel=1e-4)
    assert coarse.straightness > 0.5  # the exact 1-RF of 8 gaussians is far from straight
    heun = lv.lab_sample("rf", config=None, state=None, gmm=gmm, exact=True, sampler="heun",
                         nfe=60, n=500, seed=3)
    assert heun.straightness == pytest.approx(fine.straightness, rel=0.1)


def test_draw_source_kinds():
    g = lv.draw_source("gaussian", 100, 4)
    same = torch.randn(100, 2, generator=torch.Generator().manual_seed(4))
    np.testing.assert_array_equal(g.numpy(), same.numpy())
    moons = lv.draw_source("moons", 100, 4)
    np.testing.assert_array_equal(moons.numpy(), toy_data.sample("moons", 100, np.random.default_rng(4)))
    pts = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
    rows = lv.draw_source(pts, 200, 4).numpy()
    assert rows.shape == (200, 2) and {tuple(r) for r in rows} == {tuple(r) for r in pts}


def test_rf_training_options_reach_the_engine(target):
    pts = np.random.default_rng(9).normal((2.0, 0.0), 0.3, size=(300, 2)).astype(np.float32)
    last = list(lv.lab_train_job("rf", ParamBox(lr=3e-3, batch_size=64), data="8gaussians",
                                 target=target, width=16, depth=1, source=pts, coupling="ot",
                                 t_sampling="logit_normal", max_steps=20))[-1]
    assert last.straightness is not None and last.state is not None
    out = lv.lab_sample("rf", config=last.config, state=last.state, nfe=4, n=300, seed=1, source=pts)
    start = out.trajectories[0]
    assert np.all(np.min(np.abs(start[:, None, :] - pts[None]).sum(-1), axis=1) == 0)  # source rows
    with pytest.raises(ValueError, match="coupling"):
        next(lv.lab_train_job("rf", ParamBox(), data="8gaussians", target=target, coupling="sinkhorn"))
    with pytest.raises(ValueError, match="t sampling"):
        next(lv.lab_train_job("rf", ParamBox(), data="8gaussians", target=target, t_sampling="beta",
                              width=8, depth=1))


def test_diffusion_trains_with_the_chosen_schedule(monkeypatch, target):
    import engines.diffusion as diffusion

    seen = {}
    original = diffusion.diffusion_train_job

    def spy(*args, **kwargs):
        seen["schedule"] = kwargs.get("schedule")
        return original(*args, **kwargs)

    monkeypatch.setattr(diffusion, "diffusion_train_job", spy)
    last = list(lv.lab_train_job("ddpm", ParamBox(batch_size=64), data="8gaussians", target=target,
                                 width=16, depth=1, max_steps=10, schedule="cosine"))[-1]
    assert last.schedule == "cosine" and seen["schedule"].kind == "cosine"


# ---------------------------------------------------------------------- guidance


def test_exact_classifier_guidance(gmm):
    kw = dict(config=None, state=None, gmm=gmm, exact=True, sampler="ddim", nfe=50, n=1000, seed=2)
    plain = lv.lab_sample("diffusion", **kw)
    zero = lv.lab_sample("diffusion", guidance_kind="classifier", guidance=0.0, class_label=3, **kw)
    np.testing.assert_array_equal(zero.samples, plain.samples)  # scale 0: the unconditional model
    assert np.bincount(_component(gmm, plain.samples), minlength=8).min() > 80  # every mode
    # Scale 1 with the exact (Bayes) classifier is exactly the conditional model p(x | y).
    one = lv.lab_sample("diffusion", guidance_kind="classifier", guidance=1.0, class_label=3, **kw)
    cond = lv.lab_sample("diffusion", guidance_kind="cfg", guidance=1.0, class_label=3, **kw)
    np.testing.assert_allclose(one.samples, cond.samples, atol=1e-4)
    assert (_component(gmm, one.samples) == 3).mean() > 0.98
    spread1 = np.linalg.norm(one.samples - one.samples.mean(0), axis=1).mean()
    # 2-D mean distance of N(mu, s^2 I) from its mean: s sqrt(pi/2), s = 0.5/1.414 (DDIM-50
    # shrinks it by a few per cent).
    assert spread1 == pytest.approx(0.5 / 1.414 * np.sqrt(np.pi / 2), rel=0.12)
    # Scale 5 samples p(x) p(y | x)^5: tighter, and pushed away from the other classes
    # (outwards), not onto mu_k (measured spread 0.12 vs 0.41; mean radius 3.7 vs 2.83).
    five = lv.lab_sample("diffusion", guidance_kind="classifier", guidance=5.0, class_label=3, **kw)
    spread5 = np.linalg.norm(five.samples - five.samples.mean(0), axis=1).mean()
    assert spread5 < 0.5 * spread1
    assert np.linalg.norm(five.samples.mean(0)) > np.linalg.norm(gmm.means[3]) + 0.3
    # class_label None: every class in turn.
    turn = lv.lab_sample("diffusion", guidance_kind="classifier", guidance=1.0, **kw)
    assert (_component(gmm, turn.samples) == np.arange(1000) % 8).mean() > 0.98


def test_classifier_training_and_guidance_on_a_learned_model(gmm, target):
    snaps = list(lv.classifier_train_job(ParamBox(), "8gaussians", steps=300, seed=0))
    last = snaps[-1]
    assert last.done and last.step == last.total_steps == 300 and not snaps[0].done
    assert last.config["out_dim"] == 8 and last.state is not None
    # Noised points with t ~ U(0, 0.3): the exact posterior scores 0.88; nothing can beat it.
    assert last.bayes_accuracy is not None and 0.8 < last.bayes_accuracy < 0.95
    assert 0.8 < last.accuracy <= last.bayes_accuracy + 0.03
    model = list(lv.lab_train_job("ddpm", ParamBox(lr=5e-3, batch_size=256), data="8gaussians",
                                  target=target, width=32, depth=2, max_steps=100))[-1]
    kw = dict(config=model.config, state=model.state, sampler="ddim", nfe=20, n=500, seed=2,
              guidance_kind="classifier")
    with pytest.raises(ValueError, match="classifier"):
        lv.lab_sample("diffusion", **kw)
    with pytest.raises(ValueError, match="diffusion"):
        lv.lab_sample("rf", config=None, state=None, gmm=gmm, exact=True, guidance_kind="classifier")
    clf = (last.config, last.state)
    free = lv.lab_sample("diffusion", classifier=clf, guidance=0.0, class_label=5, **kw)
    guided = lv.lab_sample("diffusion", classifier=clf, guidance=1.0, class_label=5, **kw)
    assert (_component(gmm, free.samples) == 5).mean() < 0.3
    assert (_component(gmm, guided.samples) == 5).mean() > 0.9  # measured 1.0
    with pytest.raises(ValueError, match="class_label"):
        lv.lab_sample("diffusion", classifier=clf, guidance=1.0, class_label=8, **kw)
    with pytest.raises(ValueError, match="2 classes"):
        next(lv.classifier_train_job(ParamBox(), np.zeros((10, 2))))


# ---------------------------------------------------------------------- compare and error curves


def test_compare_job(gmm, rf1):
    common = dict(config=None, state=None, gmm=gmm, exact=True, nfe=20, n=500, seed=4)
    (same,) = lv.compare_job("diffusion", {"sampler": "heun"}, {"sampler": "heun"}, **common)
    assert same.mean_distance == 0.0
    # DDIM(eta = 0) is Euler on the PF-ODE, written differently: the same points.
    (ddim_euler,) = lv.compare_job("diffusion", {"sampler": "ddim"}, {"sampler": "euler"}, **common)
    assert ddim_euler.mean_distance < 1e-4
    (ddim_heun,) = lv.compare_job("diffusion", {"sampler": "ddim"}, {"sampler": "heun"}, **common)
    assert ddim_heun.mean_distance > 0.01
    (cmp,) = lv.compare_job("rf", {"exact": False}, {"exact": True}, **{**common, "config": rf1.config,
                                                         "state": rf1.state, "sampler": "euler"})
    assert not cmp.left.exact and cmp.right.exact
    np.testing.assert_array_equal(cmp.left.trajectories[0], cmp.right.trajectories[0])
    assert cmp.mean_distance > 0.05
    d = np.linalg.norm(cmp.left.samples - cmp.right.samples, axis=1).mean()
    assert cmp.mean_distance == pytest.approx(d)


def test_euler_heun_crossover_on_the_exact_model(gmm):
    curves = list(lv.error_curve_job("diffusion", config=None, state=None, gmm=gmm, exact=True,
                                     n=1000, seed=0))
    assert len(curves) == 2 * len(lv.ERROR_NFES) and curves[-1].done and not curves[-2].done
    assert len(curves[0].nfe["euler"]) == 1 and len(curves[0].nfe["heun"]) == 0
    last = curves[-1]
    nfe = dict(zip(lv.ERROR_NFES, range(len(lv.ERROR_NFES)), strict=True))
    e, h = last.error["euler"], last.error["heun"]
    np.testing.assert_array_equal(last.nfe["euler"], lv.ERROR_NFES)
    np.testing.assert_array_equal(last.nfe["heun"], [k - 1 if k % 2 == 0 else k for k in lv.ERROR_NFES])
    # Measured (VP linear, uniform grid): Euler ahead up to ~30 NFE, crossover ~40, Heun after.
    assert e[nfe[20]] < h[nfe[20]]
    for k in (60, 100, 160):
        assert h[nfe[k]] < e[nfe[k]]
    # Orders: Euler error ~ 1/NFE, Heun ~ 1/NFE^2 (between 60 and 160 NFE).
    slope = lambda err: np.log(err[nfe[160]] / err[nfe[60]]) / np.log(160 / 60)  # noqa: E731
    assert -1.3 < slope(e) < -0.7 and slope(h) < -1.5


def test_rf_error_curve(gmm):
    curves = list(lv.error_curve_job("rf", config=None, state=None, gmm=gmm, exact=True,
                                     nfes=(4, 16, 64), n=300, reference_steps=200))
    last = curves[-1]
    np.testing.assert_array_equal(last.nfe["heun"], [4, 16, 64])  # RF Heun: 2 evaluations a step
    for s in ("euler", "heun"):
        assert np.all(np.diff(last.error[s]) < 0)
    assert last.error["heun"][-1] < last.error["euler"][-1]
    with pytest.raises(ValueError, match="deterministic"):
        next(lv.error_curve_job("rf", config=None, state=None, gmm=gmm, exact=True, samplers=("ddpm",)))
