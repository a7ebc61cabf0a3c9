"""The ``playground`` command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from playground import __version__


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "playground", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_version():
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"playground {__version__}"


def test_snapshot_writes_a_non_blank_png(tmp_path: Path):
    target = tmp_path / "lab.png"
    out = run("snapshot", "--panel", "lab", "--out", str(target), "--size", "900x600")
    assert out.returncode == 0, out.stderr
    with Image.open(target) as im:
        assert im.size == (900, 600)
        rgb = np.asarray(im.convert("RGB")).astype(float)
    # The plot area holds an animated cloud: many distinct colours, not a flat fill.
    assert rgb.std() > 10
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50


def test_snapshot_to_missing_folder_fails_cleanly(tmp_path: Path):
    out = run("snapshot", "--panel", "image", "--out", str(tmp_path / "nope" / "x.png"))
    assert out.returncode == 1
    assert "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


def test_bench_json_schema():
    out = run("bench", "display", "--quick", "--json", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == ["display.points_10k", "display.points_100k"]
    for r in rows:
        assert set(r) == {"name", "value", "unit", "baseline", "ratio", "device"}
        assert r["value"] > 0 and r["baseline"] > 0
        assert abs(r["ratio"] - r["value"] / r["baseline"]) < 1e-9


def test_bench_unknown_name_is_an_error():
    out = run("bench", "no-such-bench")
    assert out.returncode == 2
    assert "no benchmark matches" in out.stderr


def test_bad_device_is_a_clear_error():
    out = run("bench", "display", "--device", "cuda", "--quick")
    import torch

    if torch.cuda.is_available():
        assert out.returncode == 0
    else:
        assert out.returncode != 0
        assert "CUDA was requested" in out.stderr


def test_walk_json_and_positions(tmp_path: Path):
    out_file = tmp_path / "pos.npy"
    out = run("walk", "--dim", "2", "--walkers", "3000", "--steps", "64", "--seed", "3", "--json",
              "--positions-out", str(out_file))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("final_hist", "return_by", "first_return_counts", "walker_steps_per_s"):
        assert key in data
    assert sum(data["final_hist"]["counts"]) == 3000
    positions = np.load(out_file)
    assert positions.shape == (3000, 2) and positions.dtype.kind == "i"
    # Every site of a 2-D simple walk after 64 steps has |x| + |y| even and at most 64.
    assert np.all((np.abs(positions).sum(axis=1) % 2) == 0)
    assert np.abs(positions).sum(axis=1).max() <= 64
    again = run("walk", "--dim", "2", "--walkers", "3000", "--steps", "64", "--seed", "3", "--json")
    assert json.loads(again.stdout)["final_hist"] == data["final_hist"]


def test_walk_rejects_bad_barrier():
    out = run("walk", "--barrier", "sticky:0:3")
    assert out.returncode == 2
    assert "barrier looks like" in out.stderr


def test_bench_threads_option():
    out = run("bench", "lab", "--threads", "0")
    assert out.returncode == 2 and "--threads must be at least 1" in out.stderr
