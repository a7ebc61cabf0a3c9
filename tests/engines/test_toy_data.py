"""Toy data sets, image/stroke densities and point-set files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import cKDTree
from scipy.special import digamma

from engines import toy_data
from engines.toy_data import (
    DATASETS,
    density_from_image,
    density_from_strokes,
    load_points,
    sample_from_density,
    save_points,
)


def _knn_entropy(x: np.ndarray, k: int = 3) -> float:
    """Kozachenko-Leonenko entropy estimate (nats) in 2-D; independent of our definitions."""
    x = x.astype(np.float64)
    r = cKDTree(x).query(x, k + 1)[0][:, k]
    return float(digamma(len(x)) - digamma(k) + math.log(math.pi) + 2 * np.mean(np.log(r)))


# ---------------------------------------------------------------------- data sets


@pytest.mark.parametrize("name", DATASETS)
def test_shapes_labels_and_reproducibility(name: str) -> None:
    x, lab = toy_data.sample_labelled(name, 501, np.random.default_rng(0))
    assert x.shape == (501, 2) and x.dtype == np.float32
    assert lab.shape == (501,) and lab.dtype == np.int64
    assert lab.min() >= 0 and lab.max() < toy_data.n_classes(name)
    assert np.all(np.isfinite(x))
    # Same seed, same data, whatever the global numpy state (FFJORD's trap).
    np.random.seed(1)
    x2, lab2 = toy_data.sample_labelled(name, 501, np.random.default_rng(0))
    np.random.seed(2)
    x3 = toy_data.sample(name, 501, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(lab, lab2)
    np.testing.assert_array_equal(x, x3)
    assert not np.array_equal(x, toy_data.sample(name, 501, np.random.default_rng(1)))
    assert toy_data.sample(name, 0, np.random.default_rng(0)).shape == (0, 2)


@pytest.mark.parametrize("name", DATASETS)
def test_scale_matches_reference_entropy(name: str) -> None:
    """A nearest-neighbour entropy estimate hits reference.md's figure: a scale off by 10%
    would move it by 2 ln 1.1 = 0.19 nats."""
    x = toy_data.sample(name, 20_000, np.random.default_rng(3))
    h = toy_data.true_entropy(name)
    assert h is not None
    assert abs(_knn_entropy(x) - h) < 0.06


@pytest.mark.parametrize("name", DATASETS)
def test_bounds_hold_the_data_and_classes_are_balanced(name: str) -> None:
    x, lab = toy_data.sample_labelled(name, 20_000, np.random.default_rng(4))
    xmin, xmax, ymin, ymax = toy_data.bounds(name)
    inside = (x[:, 0] > xmin) & (x[:, 0] < xmax) & (x[:, 1] > ymin) & (x[:, 1] < ymax)
    assert inside.mean() > 0.999
    k = toy_data.n_classes(name)
    counts = np.bincount(lab, minlength=k)
    # Equally likely classes: each count within 5 binomial std of n / k.
    sd = math.sqrt(20_000 * (1 / k) * (1 - 1 / k))
    assert np.all(np.abs(counts - 20_000 / k) < 5 * sd)
    assert toy_data.describe(name)


@pytest.mark.parametrize("name", DATASETS)
def test_labels_are_spatial_classes(name: str) -> None:
    """Labels mean something: a 5-nearest-neighbour vote recovers them on held-out points."""
    rng = np.random.default_rng(5)
    x, lab = toy_data.sample_labelled(name, 4000, rng)
    xq, labq = toy_data.sample_labelled(name, 1000, rng)
    _, idx = cKDTree(x).query(xq, 5)
    votes = np.array([np.bincount(row, minlength=toy_data.n_classes(name)).argmax() for row in lab[idx]])
    assert (votes == labq).mean() > 0.85


@pytest.mark.parametrize("name", DATASETS)
def test_equal_counts(name: str) -> None:
    _, lab = toy_data.sample_labelled(name, 203, np.random.default_rng(6), equal_counts=True)
    counts = np.bincount(lab, minlength=toy_data.n_classes(name))
    assert counts.max() - counts.min() <= 1 and counts.sum() == 203


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_exact_mixture_describes_the_samples(name: str) -> None:
    g = toy_data.mixture(name)
    assert g is not None
    x, lab = toy_data.sample_labelled(name, 20_000, np.random.default_rng(7))
    for k in range(g.n_components):
        np.testing.assert_allclose(x[lab == k].mean(0), g.means[k], atol=0.05)
    # Cross-entropy of the samples under the mixture is the entropy.
    nll = -g.log_prob(x)
    assert abs(nll.mean() - toy_data.true_entropy(name)) < 5 * nll.std() / math.sqrt(len(x))


def test_documented_geometry() -> None:
    rng = np.random.default_rng(8)
    g8 = toy_data.mixture("8gaussians")
    assert g8 is not None
    np.testing.assert_allclose(np.linalg.norm(g8.means, axis=1), 4 / 1.414)
    np.testing.assert_allclose(g8.covs[:, 0, 0], (0.5 / 1.414) ** 2)
    x, lab = toy_data.sample_labelled("rings", 4000, rng)
    for k in range(4):
        assert np.median(np.linalg.norm(x[lab == k], axis=1)) == pytest.approx(0.75 * (k + 1), abs=0.03)
    x = toy_data.sample("checkerboard", 4000, rng)
    assert np.all(np.abs(x) <= 4)
    # Checkerboard squares: floor(x/2) + floor(y/2) is even on every filled square.
    assert np.all((np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2 == 0)
    assert toy_data.mixture("moons") is None


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="8gaussians"):
        toy_data.sample("nope", 10, np.random.default_rng(0))


# ---------------------------------------------------------------------- densities


def test_sample_from_density_follows_the_pixels() -> None:
    d = np.zeros((4, 8))
    d[0, 0] = 3.0  # top-left pixel
    d[3, 7] = 1.0  # bottom-right pixel
    extent = (0.0, 8.0, 0.0, 4.0)  # 1x1 pixels
    x = sample_from_density(d, extent, 8000, np.random.default_rng(9))
    assert x.shape == (8000, 2) and x.dtype == np.float32
    top_left = (x[:, 0] < 1) & (x[:, 1] > 3)
    bottom_right = (x[:, 0] > 7) & (x[:, 1] < 1)
    assert np.all(top_left | bottom_right)
    assert abs(top_left.mean() - 0.75) < 5 * math.sqrt(0.75 * 0.25 / 8000)
    # Uniform jitter inside the pixel, not a point at its centre.
    assert np.ptp(x[top_left, 0]) > 0.9 and np.ptp(x[top_left, 1]) > 0.9
    with pytest.raises(ValueError, match="zero"):
        sample_from_density(np.zeros((3, 3)), extent, 5, np.random.default_rng(0))
    with pytest.raises(ValueError):
        sample_from_density(-d, extent, 5, np.random.default_rng(0))


def test_image_to_samples_lands_on_the_ink() -> None:
    img = Image.new("RGB", (40, 20), "white")
    for c in range(25, 35):
        for r in range(2, 6):
            img.putpixel((c, r), (0, 0, 0))
    d = density_from_image(img)
    assert d.shape == (20, 40)
    assert d[3, 30] == pytest.approx(1.0) and d[15, 5] == pytest.approx(0.0)
    x = sample_from_density(d, (-2.0, 2.0, -1.0, 1.0), 2000, np.random.default_rng(10))
    # Columns 25..34 of 40 span x in [0.5, 1.5]; rows 2..5 of 20 span y in [0.4, 0.8].
    assert np.all((x[:, 0] >= 0.5) & (x[:, 0] <= 1.5) & (x[:, 1] >= 0.4) & (x[:, 1] <= 0.8))
    bright = density_from_image(np.asarray(img), invert_dark=False)
    np.testing.assert_allclose(bright, 1.0 - d)


def test_image_alpha_and_dtypes() -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # black everywhere...
    rgba[0, 0, 3] = 255  # ...but only one pixel opaque
    np.testing.assert_allclose(density_from_image(rgba), [[1.0, 0.0], [0.0, 0.0]])
    g16 = np.array([[0, 65535]], dtype=np.uint16)
    np.testing.assert_allclose(density_from_image(g16), [[1.0, 0.0]])
    with pytest.raises(ValueError):
        density_from_image(np.zeros((2, 2, 2, 2)))


def test_strokes_give_even_ink_along_the_path() -> None:
    extent = (-2.0, 2.0, -2.0, 2.0)
    # The same horizontal line drawn with evenly and very unevenly spaced mouse events.
    even = np.stack([np.linspace(-1, 1, 50), np.full(50, 0.5)], axis=1)
    uneven = np.array([[-1.0, 0.5], [-0.95, 0.5], [-0.9, 0.5], [0.7, 0.5], [1.0, 0.5]])
    d1 = density_from_strokes([even], extent, 80, 0.1)
    d2 = density_from_strokes([uneven], extent, 80, 0.1)
    assert d1.shape == (80, 80)
    np.testing.assert_allclose(d1, d2, atol=0.02 * d1.max())
    # Total ink is the path length; it sits on the row of y = 0.5 (row 30 of 80, from the top).
    assert d1.sum() == pytest.approx(2.0, rel=1e-3)
    assert np.argmax(d1.sum(axis=1)) in (29, 30)
    profile = d1[:, 40]
    assert profile[30] > 0 and profile[10] < 1e-6 * profile[30]
    # A click is a dot; ink off the canvas is dropped.
    dot = density_from_strokes([np.array([[0.0, 0.0]])], extent, 40, 0.2)
    assert np.unravel_index(np.argmax(dot), dot.shape) in {(19, 19), (19, 20), (20, 19), (20, 20)}
    off = density_from_strokes([np.array([[5.0, 5.0], [6.0, 6.0]])], extent, 40, 0.1)
    assert not off.any()


# ---------------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".txt", ".tsv"])
def test_save_load_round_trip(tmp_path: Path, suffix: str) -> None:
    pts = toy_data.sample("moons", 300, np.random.default_rng(11))
    path = tmp_path / f"pts{suffix}"
    save_points(path, pts)
    back = load_points(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, pts)  # bit-exact, text included
    save_points(path, pts[:10])  # overwrite in place
    np.testing.assert_array_equal(load_points(path), pts[:10])
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp files left


def test_save_rejects_bad_points_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.csv"
    save_points(path, np.ones((3, 2)))
    before = path.read_bytes()
    for bad in (np.ones((3, 3)), np.array([[0.0, np.nan]]), np.zeros((0, 2))):
        with pytest.raises(ValueError):
            save_points(path, bad)
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


def test_write_failure_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="does not exist"):
        save_points(tmp_path / "no" / "such.csv", np.ones((2, 2)))
    with pytest.raises(ValueError, match="cannot be read"):
        load_points(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="npy"):
        load_points(tmp_path / "missing.npy")


def test_load_text_variants(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("# exported by hand\nx;y\n1.5; -2\n\n3e-1;4\n")
    np.testing.assert_array_equal(load_points(p), np.array([[1.5, -2], [0.3, 4]], np.float32))
    q = tmp_path / "b.txt"
    q.write_text("0 1\n2 3\n")
    np.testing.assert_array_equal(load_points(q), np.array([[0, 1], [2, 3]], np.float32))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("three.csv", "1,2,3\n4,5,6\n", "2 columns"),
        ("word.csv", "x,y\n1,2\nfoo,3\n", "line 3"),
        ("nan.csv", "1,2\nnan,3\n", "non-finite"),
        ("empty.csv", "x,y\n", "no points"),
        ("pic.png", "not really", "unsupported"),
    ],
)
def test_load_bad_text_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_points(path)


def test_load_bad_npy_files(tmp_path: Path) -> None:
    np.save(tmp_path / "3d.npy", np.zeros((4, 3)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "inf.npy", np.array([[0.0, np.inf]]))
    (tmp_path / "junk.npy").write_bytes(b"\x00\x01garbage")
    for name, message in [
        ("3d.npy", "shape"),
        ("obj.npy", "npy"),
        ("inf.npy", "non-finite"),
        ("junk.npy", "npy"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_points(tmp_path / name)
