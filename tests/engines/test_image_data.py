"""The procedural training scenes: deterministic, in vocabulary, with controls that fit the picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.image_data import (
    COLOURS,
    VOCABULARY,
    SceneDataset,
    batches,
    make_example,
    make_scene,
    scene_rng,
)
from engines.image_model import WordTextEncoder


def test_example_shapes_and_determinism() -> None:
    a = make_example(np.random.default_rng(5))
    b = make_example(np.random.default_rng(5))
    image, prompt, control = a
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert control.shape == (32, 32) and control.dtype == np.uint8
    assert set(np.unique(control).tolist()) <= {0, 255} and control.max() == 255
    np.testing.assert_array_equal(image, b[0])
    np.testing.assert_array_equal(control, b[2])
    assert prompt == b[1]
    assert not np.array_equal(image, make_example(np.random.default_rng(6))[0])


def test_prompts_stay_in_vocabulary_and_name_the_scene() -> None:
    enc = WordTextEncoder(VOCABULARY)
    for k in range(40):
        s = make_scene(scene_rng(1, k))
        assert enc.unknown_words(s.prompt) == []
        words = s.prompt.split()
        assert s.colour in words and s.shape in words and s.time in words and s.position in words
        assert len(words) <= enc.max_tokens


def test_mask_holds_the_named_colour() -> None:
    for k in range(20):
        s = make_scene(scene_rng(2, k))
        assert s.mask.sum() >= 4
        mean = s.image[s.mask].astype(float).mean(0)
        dists = {n: np.linalg.norm(mean - np.asarray(c, float)) for n, c in COLOURS.items()}
        assert min(dists, key=dists.__getitem__) == s.colour


def test_both_control_kinds_occur() -> None:
    kinds = {make_scene(scene_rng(3, k)).control_kind for k in range(30)}
    assert kinds == {"canny", "scribble"}


def test_dataset_and_stream() -> None:
    ds = SceneDataset(10, seed=4)
    x, prompt, c = ds[3]
    assert x.shape == (3, 32, 32) and c.shape == (1, 32, 32) and isinstance(prompt, str)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    torch.testing.assert_close(ds[3][0], x)
    images, prompts, controls = next(batches(4, seed=0, rank=1))
    assert images.shape == (4, 3, 32, 32) and controls.shape == (4, 1, 32, 32) and len(prompts) == 4
    other = next(batches(4, seed=0, rank=0))[0]
    assert not torch.equal(images, other)  # ranks draw different scenes


@pytest.mark.parametrize("prompt", ["", "A RED house!", "a red castle"])
def test_text_encoder_shapes(prompt: str) -> None:
    enc = WordTextEncoder(VOCABULARY)
    h = enc([prompt, "a blue tree"])
    assert h.shape == (2, enc.max_tokens, enc.dim)
    assert enc.unknown_words(prompt) == (["castle"] if "castle" in prompt else [])
