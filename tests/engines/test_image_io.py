"""Image files for the Image panel: safe loading, PNG parameter metadata, strips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import image_io
from engines.fileio import ExportError


def test_load_png_and_jpeg_as_rgb(tmp_path: Path) -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: must read as white, not black
    rgba[5:10, 5:10] = (0, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    arr, notice = image_io.load_image(tmp_path / "a.png")
    assert arr.shape == (20, 30, 3) and arr.dtype == np.uint8 and notice == ""
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[7, 7].tolist() == [0, 0, 0]
    Image.fromarray(np.full((8, 9, 3), 100, np.uint8)).save(tmp_path / "b.jpg")
    arr, _ = image_io.load_image(tmp_path / "b.jpg")
    assert arr.shape == (8, 9, 3)
    Image.fromarray(np.full((8, 9, 3), 100, np.uint8)).save(tmp_path / "c.webp")
    assert image_io.load_image(tmp_path / "c.webp")[0].shape == (8, 9, 3)


def test_corrupt_and_non_image_files_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not an image at all")
    with pytest.raises(ValueError, match=r"text\.png"):
        image_io.load_image(tmp_path / "text.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        image_io.load_image(tmp_path / "cut.png")
    with pytest.raises(ValueError, match="does not exist"):
        image_io.load_image(tmp_path / "missing.png")


def test_huge_image_is_downscaled_with_a_notice(tmp_path: Path) -> None:
    Image.new("L", (3000, 1500), 255).save(tmp_path / "big.png")
    arr, notice = image_io.load_image(tmp_path / "big.png", max_side=1024)
    assert arr.shape == (512, 1024, 3)
    assert "downscaled" in notice and "3000×1500" in notice


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch) -> None:
    Image.new("L", (400, 300), 0).save(tmp_path / "bomb.png")
    monkeypatch.setattr(image_io, "MAX_PIXELS", 100_000)
    with pytest.raises(ValueError, match="too large"):
        image_io.load_image(tmp_path / "bomb.png")


def test_png_metadata_round_trip(tmp_path: Path) -> None:
    meta = {"prompt": "a red house, «ünïcode»", "seed": "42", "cfg_scale": "5.5"}
    img = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    out = image_io.save_png_with_metadata(tmp_path / "x.png", img, meta)
    assert image_io.read_png_metadata(out) == meta
    assert np.array_equal(np.asarray(Image.open(out)), img)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary left behind


def test_metadata_write_failure_keeps_old_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        image_io.save_png_with_metadata(tmp_path / "nope" / "x.png", np.zeros((4, 4), np.uint8), {})
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "x.png").write_bytes(b"old")
    locked.chmod(0o500)
    try:
        with pytest.raises(ExportError):
            image_io.save_png_with_metadata(locked / "x.png", np.zeros((4, 4), np.uint8), {"a": "b"})
        assert (locked / "x.png").read_bytes() == b"old"
    finally:
        locked.chmod(0o700)


def test_read_metadata_of_non_png(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="not a PNG"):
        image_io.read_png_metadata(tmp_path / "a.jpg")


def test_strip_frames_and_polarity() -> None:
    frames = [np.full((1, 8, 8, 3), i * 8, np.uint8) for i in range(30)]
    strip = image_io.strip_frames(frames, gap=2, max_frames=5)
    assert strip.shape == (8, 5 * 8 + 4 * 2, 3)
    assert strip[0, -1, 0] == 29 * 8  # the last frame is always kept
    assert image_io.strip_frames([np.zeros((4, 4), np.uint8)]).shape == (4, 4, 3)
    with pytest.raises(ValueError):
        image_io.strip_frames([])
    sketch = np.full((32, 32), 255, np.uint8)
    sketch[10, :] = 0
    assert image_io.looks_dark_on_light(sketch)
    assert not image_io.looks_dark_on_light(255 - sketch)
    assert image_io.to_gray(np.dstack([sketch] * 3)).tolist() == sketch.tolist()
