"""``playground image`` run as a user runs it (in-process through the CLI's main)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engines.image_io import read_png_metadata
from playground.cli import main

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "image"
pytestmark = pytest.mark.skipif(not (ASSETS / "unet.safetensors").exists(), reason="no bundled weights")


@pytest.fixture
def sketch(tmp_path: Path) -> Path:
    im = Image.new("RGB", (256, 256), "white")
    d = ImageDraw.Draw(im)
    d.line([(0, 170), (256, 170)], fill="black", width=6)
    d.rectangle([80, 100, 170, 170], outline="black", width=6)
    path = tmp_path / "sketch.png"
    im.save(path)
    return path


def gen(tmp_path: Path, name: str, *extra: str) -> tuple[int, Path]:
    out = tmp_path / name
    code = main(["image", "--prompt", "a red house under a night sky", "--steps", "4", "--out", str(out),
                 *extra])
    return code, out


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_json_metadata_and_reproducibility(tmp_path, sketch, capsys):
    code, out = gen(tmp_path, "a.png", "--control", str(sketch), "--scribble", "--seed", "5", "--json")
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["control_used"] and report["params"]["seed"] == "5" and report["seconds"] > 0
    meta = read_png_metadata(out)
    assert meta["gp_prompt"] == "a red house under a night sky" and meta["gp_steps"] == "4"
    assert pixels(out).shape == (report["resolution"], report["resolution"], 3)
    gen(tmp_path, "b.png", "--control", str(sketch), "--scribble", "--seed", "5")
    gen(tmp_path, "c.png", "--control", str(sketch), "--scribble", "--seed", "6")
    assert np.array_equal(pixels(out), pixels(tmp_path / "b.png"))
    assert not np.array_equal(pixels(out), pixels(tmp_path / "c.png"))


def test_control_scale_zero_is_the_model_without_controlnet(tmp_path, sketch):
    gen(tmp_path, "off.png", "--control", str(sketch), "--control-scale", "0")
    gen(tmp_path, "none.png")  # no control map at all
    gen(tmp_path, "on.png", "--control", str(sketch))
    assert np.array_equal(pixels(tmp_path / "off.png"), pixels(tmp_path / "none.png"))
    assert not np.array_equal(pixels(tmp_path / "on.png"), pixels(tmp_path / "none.png"))


def test_bad_inputs_give_one_line_messages(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert gen(tmp_path, "x.png", "--control", str(bad))[0] == 1
    assert gen(tmp_path, "missing/x.png")[0] == 1
    empty = tmp_path / "weights"
    empty.mkdir()
    assert gen(tmp_path, "y.png", "--model-dir", str(empty))[0] == 1
    assert gen(tmp_path, "z.png", "--control-start", "0.8", "--control-end", "0.2")[0] == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("playground image:")]
    assert len(lines) == 4
    assert "does not exist" in lines[1]
    assert ".safetensors" in lines[2] or "config.json" in lines[2]
