"""The image benchmark compares like with like: its baseline loop makes the very same image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "image"


@pytest.mark.skipif(not (ASSETS / "unet.safetensors").exists(), reason="no bundled weights")
def test_baseline_loop_reproduces_the_generator_output():
    import torch

    from engines.bench_image import _control, _diffusers_loop
    from engines.image_gen import BundledGenerator, GenerationParams, to_uint8

    gen = BundledGenerator.load()
    control = _control(gen.resolution)
    params = GenerationParams(prompt="a red house under a night sky", steps=6, cfg_scale=5.0, seed=2)
    *_, last = gen.generate(control, params)
    ref = to_uint8(torch.from_numpy(_diffusers_loop(gen, control, params.prompt, 6, 5.0, 2)))
    assert np.abs(last.images.astype(int) - ref.astype(int)).max() <= 1
