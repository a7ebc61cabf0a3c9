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
    np.testing.assert_allclose(lv.forward_marginal("vp", data, noise, 1.0), noise, atol=1e-6)
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
    # Pure noise: VP score of N(0, I) is -x; RF velocity at t=0 is E[x1] - x = -x here.
    np.testing.assert_allclose(lv.vector_field(gmm, "vp", 1.0, pts), -pts, atol=1e-9)
    np.testing.assert_allclose(lv.vector_field(gmm, "rf", 0.0, pts), -pts, atol=1e-9)
    arrows = lv.arrow_display_vectors(lv.vector_field(gmm, "vp", 0.3, pts), cell=0.5)
    assert np.all(np.hypot(arrows[:, 0], arrows[:, 1]) <= 0.45 + 1e-12)


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
