"""Control-map preprocessing: Canny, scribble polarity, the exact resized map, blank detection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.image_preprocess import canny, is_blank, resize_control, scribble


def _square(size: int = 64, fg: int = 255, bg: int = 0) -> np.ndarray:
    img = np.full((size, size), bg, np.uint8)
    img[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = fg
    return img


def test_canny_binary_edges_on_the_square_outline() -> None:
    edges = canny(_square(), 50, 100)
    assert edges.shape == (64, 64) and edges.dtype == np.uint8
    assert set(np.unique(edges).tolist()) <= {0, 255}
    assert edges[32, 14:18].max() == 255  # left side of the square
    assert edges[32, 28:36].max() == 0  # flat inside: no edge
    assert edges[:8].max() == 0  # flat background


def test_canny_matches_the_documented_opencv_call_and_rgb_equals_gray() -> None:
    img = _square()
    expected = cv2.Canny(cv2.GaussianBlur(img, (5, 5), 1), 50, 100, L2gradient=True)
    np.testing.assert_array_equal(canny(img, 50, 100), expected)
    np.testing.assert_array_equal(canny(np.repeat(img[..., None], 3, axis=2), 50, 100), expected)
    np.testing.assert_array_equal(canny(img, 100, 50), expected)  # swapped thresholds accepted


def test_scribble_detects_polarity() -> None:
    white_on_black = np.zeros((40, 40), np.uint8)
    cv2.line(white_on_black, (5, 5), (35, 30), 255, 2)
    black_on_white = 255 - white_on_black
    a, b = scribble(white_on_black), scribble(black_on_white)
    np.testing.assert_array_equal(a, b)
    assert a[5, 5] == 255 and a[0, 39] == 0
    assert scribble(black_on_white, invert=False)[0, 0] == 255  # forced: taken as is
    rgb = np.repeat(black_on_white[..., None], 3, axis=2)
    np.testing.assert_array_equal(scribble(rgb), a)


@pytest.mark.parametrize("mode", ["just_resize", "crop_and_resize", "resize_and_fill"])
def test_resize_control_modes_give_the_requested_square(mode: str) -> None:
    img = np.zeros((60, 120), np.uint8)
    img[:, 59:61] = 255  # a vertical line in the centre
    out = resize_control(img, 32, mode)
    assert out.shape == (32, 32) and out.dtype == np.uint8
    assert set(np.unique(out).tolist()) <= {0, 255}
    assert out[:, 14:18].max() == 255  # the centre line survives


def test_resize_control_keeps_thin_lines_when_shrinking() -> None:
    img = np.zeros((256, 256), np.uint8)
    cv2.line(img, (10, 128), (245, 128), 255, 1)
    out = resize_control(img, 32)
    assert out[16].sum() > 20 * 255  # still a full-strength line across
    assert out.max() == 255


def test_resize_and_fill_pads_black_and_crop_centres() -> None:
    img = np.full((50, 100), 255, np.uint8)
    img[:, :5] = 0
    filled = resize_control(img, 20, "resize_and_fill")
    assert filled[0].max() == 0 and filled[-1].max() == 0  # padding rows
    cropped = resize_control(img, 20, "crop_and_resize")
    assert cropped.min() == 255  # the black left border was cropped away
    with pytest.raises(ValueError, match="resize mode"):
        resize_control(img, 20, "stretch")


def test_resize_control_of_an_rgb_image() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert resize_control(rgb, 16, "crop_and_resize").shape == (16, 16, 3)


def test_is_blank() -> None:
    assert is_blank(None)
    assert is_blank(np.zeros((32, 32), np.uint8))
    assert is_blank(np.full((32, 32), 255, np.uint8))  # an untouched white canvas
    assert not is_blank(_square(32))
    line = np.zeros((32, 32), np.uint8)
    line[16, 4:28] = 255
    assert not is_blank(line)
