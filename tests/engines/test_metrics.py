"""Sample distances: zero on identical sets, exact on translations, monotone in the shift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.metrics import sliced_wasserstein, swd_floor, w2_exact


def test_distances_of_a_set_to_itself_are_zero() -> None:
    a = np.random.default_rng(0).normal(size=(300, 2))
    assert sliced_wasserstein(a, a) < 1e-12
    assert w2_exact(a, a) < 1e-9
    # Order does not matter: these are distances between point *sets*.
    assert sliced_wasserstein(a, a[::-1]) < 1e-12


def test_swd_grows_with_the_shift_and_matches_theory() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(1000, 2))
    b = rng.normal(size=(1000, 2))
    direction = np.array([0.6, 0.8])
    vals = [sliced_wasserstein(a, b + s * direction) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert np.all(np.diff(vals) > 0)
    # For a shift m of the same law, sliced W2 -> |m| / sqrt(2) (mean of cos^2 is 1/2); with
    # 200 random projections the mean of cos^2 has a relative std of ~3.5% on W2.
    assert vals[-1] == pytest.approx(4.0 / math.sqrt(2.0), rel=0.1)


def test_w2_of_a_translated_copy_is_the_shift_exactly() -> None:
    """W2(a, a + m) = |m|: cross terms sum to zero over any permutation."""
    a = np.random.default_rng(2).normal(size=(200, 2))
    m = np.array([0.3, -1.1])
    assert w2_exact(a, a + m) == pytest.approx(float(np.linalg.norm(m)), rel=1e-9)
    assert sliced_wasserstein(a, a + m) <= w2_exact(a, a + m) + 1e-12


def test_seed_fixes_the_projections() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 0.3
    assert sliced_wasserstein(a, b, seed=5) == sliced_wasserstein(a, b, seed=5)
    assert sliced_wasserstein(a, b, seed=5) != sliced_wasserstein(a, b, seed=6)


def test_floor_is_positive_and_equal_counts_lower_it() -> None:
    iid, iid_sd = swd_floor("8gaussians", 1000, repeats=4, n_projections=100)
    eq, _ = swd_floor("8gaussians", 1000, repeats=4, n_projections=100, equal_counts=True)
    assert 0 < eq < iid
    assert iid_sd > 0


def test_bad_inputs() -> None:
    a = np.zeros((5, 2))
    with pytest.raises(ValueError, match="non-finite"):
        sliced_wasserstein(a, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="dimension"):
        w2_exact(a, np.zeros((5, 3)))
    with pytest.raises(ValueError):
        sliced_wasserstein(np.zeros((0, 2)), a)
