"""The image generation API: tiny random models for the rules, the shipped weights when present.

The ControlNet's zero convolutions make a fresh ControlNet a no-op, so the fixture gives them
random weights: otherwise "control changes the output" could not be tested.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.image_gen import (
    CONTROL_MODES,
    NO_CONTROL_NOTICE,
    SCHEDULERS,
    BundledGenerator,
    GenerationParams,
    MissingDependencyError,
    StableDiffusionGenerator,
    control_active,
)
from engines.image_model import ASSET_DIR, WEIGHT_FILES, BundledModel, default_config

RES = 16


def _control() -> np.ndarray:
    c = np.zeros((RES, RES), np.uint8)
    c[4:12, 4] = c[4:12, 11] = c[4, 4:12] = c[11, 4:12] = 255
    return c


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = BundledModel.build(default_config(resolution=RES, width=8), seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.controlnet.named_parameters():
            if "controlnet_down_blocks" in name or "controlnet_mid_block" in name or "conv_out" in name:
                p.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("tiny_image_model")
    model.save(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> BundledGenerator:
    return BundledGenerator.load(tiny_folder)


def _final(gen: BundledGenerator, control: np.ndarray | None, **kw: object) -> np.ndarray:
    params = GenerationParams(**{"prompt": "a red house", "steps": 3, **kw})  # type: ignore[arg-type]
    steps = list(gen.generate(control, params))
    assert steps[-1].done and steps[-1].images is not None
    return steps[-1].images


def test_steps_shapes_and_done(tiny: BundledGenerator) -> None:
    steps = list(tiny.generate(_control(), GenerationParams(prompt="a red house", steps=4, batch_size=2)))
    assert [s.step for s in steps] == [1, 2, 3, 4] and all(s.total == 4 for s in steps)
    assert [s.done for s in steps] == [False, False, False, True]
    assert all(s.images is None for s in steps[:-1])
    for s in steps:
        assert s.xt.shape == s.x0.shape == (2, RES, RES, 3) and s.xt.dtype == np.uint8
    assert steps[-1].images.shape == (2, RES, RES, 3)
    assert steps[-1].seconds >= steps[0].seconds >= 0
    assert steps[0].notice == ""


def test_seed_reproducible_and_different(tiny: BundledGenerator) -> None:
    a = _final(tiny, _control(), seed=3)
    np.testing.assert_array_equal(a, _final(tiny, _control(), seed=3))
    assert not np.array_equal(a, _final(tiny, _control(), seed=4))


def test_control_scale_zero_is_exactly_no_controlnet(tiny: BundledGenerator) -> None:
    off = _final(tiny, None)
    np.testing.assert_array_equal(_final(tiny, _control(), control_scale=0.0), off)
    np.testing.assert_array_equal(_final(tiny, np.zeros((RES, RES), np.uint8)), off)  # blank map
    assert not np.array_equal(_final(tiny, _control(), control_scale=1.0), off)


def test_blank_or_missing_control_says_so(tiny: BundledGenerator) -> None:
    for control in (None, np.zeros((RES, RES), np.uint8), np.full((64, 64, 3), 255, np.uint8)):
        first = next(iter(tiny.generate(control, GenerationParams(steps=2))))
        assert first.notice == NO_CONTROL_NOTICE


def test_control_window_follows_the_diffusers_rule(tiny: BundledGenerator) -> None:
    n = 10
    assert [control_active(i, n, 0.0, 1.0) for i in range(n)] == [True] * n
    assert [control_active(i, n, 0.3, 0.8) for i in range(n)] == [i >= 3 and i + 1 <= 8 for i in range(n)]
    off = _final(tiny, None)
    window = _final(tiny, _control(), control_start=0.5, control_end=1.0)
    full = _final(tiny, _control())
    assert not np.array_equal(window, off) and not np.array_equal(window, full)


@pytest.mark.parametrize("mode", CONTROL_MODES)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_mode_and_scheduler_runs(tiny: BundledGenerator, mode: str, scheduler: str) -> None:
    out = _final(tiny, _control(), control_mode=mode, scheduler=scheduler, steps=2)
    assert out.shape == (1, RES, RES, 3)


def test_modes_differ(tiny: BundledGenerator) -> None:
    outs = [_final(tiny, _control(), control_mode=m) for m in CONTROL_MODES]
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


def test_cancel_by_closing(tiny: BundledGenerator) -> None:
    gen = tiny.generate(_control(), GenerationParams(steps=50))
    first = next(gen)
    assert first.step == 1 and not first.done
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)


def test_a_larger_control_map_is_resized(tiny: BundledGenerator) -> None:
    big = np.zeros((128, 128, 3), np.uint8)
    big[30:100, 30:34] = 255
    out = _final(tiny, big)
    assert out.shape == (1, RES, RES, 3)


def test_invalid_params() -> None:
    with pytest.raises(ValueError, match="scheduler"):
        GenerationParams(scheduler="plms").validate()
    with pytest.raises(ValueError, match="control mode"):
        GenerationParams(control_mode="both").validate()
    with pytest.raises(ValueError, match="start"):
        GenerationParams(control_start=0.8, control_end=0.2).validate()


def test_metadata_round_trip() -> None:
    p = GenerationParams(
        prompt="a blue tree",
        negative_prompt="night",
        seed=7,
        steps=12,
        cfg_scale=3.5,
        control_scale=0.5,
        control_start=0.1,
        control_end=0.9,
        control_mode="prompt",
        scheduler="euler",
        batch_size=3,
    )
    md = p.to_metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in md.items())
    assert GenerationParams.from_metadata(md) == p
    assert GenerationParams.from_metadata({}) == GenerationParams()


def test_vocabulary_and_unknown_words(tiny: BundledGenerator) -> None:
    vocab = tiny.vocabulary()
    assert vocab is not None and "red" in vocab and "house" in vocab
    assert tiny.unknown_words("A red castle, under a purple dragon!") == ["castle", "dragon"]
    step = next(iter(tiny.generate(None, GenerationParams(prompt="a red castle", steps=2))))
    assert "castle" in step.notice


@pytest.mark.parametrize("victim", [*WEIGHT_FILES, "config.json"])
def test_missing_or_corrupt_file_is_named(tiny_folder: Path, tmp_path: Path, victim: str) -> None:
    for f in tiny_folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / victim).unlink()
    with pytest.raises(FileNotFoundError, match=victim):
        BundledGenerator.load(tmp_path)
    (tmp_path / victim).write_bytes(b"\x00garbage, not a weight file")
    with pytest.raises(ValueError, match=victim):
        BundledGenerator.load(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BundledGenerator.load(tmp_path / "nowhere")


@pytest.mark.skipif(not (ASSET_DIR / "config.json").is_file(), reason="no bundled weights in assets/image")
def test_bundled_weights_generate() -> None:
    gen = BundledGenerator.load()
    assert gen.resolution == 32
    cfg = json.loads((ASSET_DIR / "config.json").read_text())
    assert cfg["resolution"] == 32
    control = np.zeros((32, 32), np.uint8)
    control[20, :] = 255
    kw = {"prompt": "a red house on the left under a day sky", "steps": 3}
    a = _final(gen, control, seed=1, **kw)
    assert a.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(a, _final(gen, control, seed=1, **kw))
    assert not np.array_equal(a, _final(gen, control, seed=2, **kw))
    np.testing.assert_array_equal(
        _final(gen, control, seed=1, control_scale=0.0, **kw), _final(gen, None, seed=1, **kw)
    )


# ------------------------------------------------------------------------- Stable Diffusion


def _sd_folders(root: Path) -> tuple[Path, Path]:
    """Tiny diffusers-format folders built from configs, as diffusers' own tests build them."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=1,
    )
    controlnet = ControlNetModel(
        block_out_channels=(4, 8),
        layers_per_block=2,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
        conditioning_embedding_out_channels=(16, 32),
        norm_num_groups=1,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
    )
    sd, cn = root / "sd", root / "controlnet"
    unet.save_pretrained(sd / "unet")
    vae.save_pretrained(sd / "vae")
    DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False).save_pretrained(sd / "scheduler")
    controlnet.save_pretrained(cn)
    try:
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

        text = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=0,
                eos_token_id=2,
                hidden_size=32,
                intermediate_size=37,
                layer_norm_eps=1e-05,
                num_attention_heads=4,
                num_hidden_layers=5,
                pad_token_id=1,
                vocab_size=1000,
            )
        )
        text.save_pretrained(sd / "text_encoder")
        tok_dir = root / "tok"
        tok_dir.mkdir()
        vocab = {
            "<|startoftext|>": 0,
            "<|endoftext|>": 1,
            "!": 2,
            **{f"{c}</w>": 3 + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")},
        }
        (tok_dir / "vocab.json").write_text(json.dumps(vocab))
        (tok_dir / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(
            str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77
        )
        tokenizer.save_pretrained(sd / "tokenizer")
    except ImportError:  # no transformers: placeholders so the folder looks complete
        (sd / "text_encoder").mkdir(parents=True)
        (sd / "text_encoder" / "config.json").write_text("{}")
        (sd / "text_encoder" / "model.safetensors").write_bytes(b"placeholder")
        (sd / "tokenizer").mkdir()
        (sd / "tokenizer" / "vocab.json").write_text("{}")
    (sd / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionControlNetPipeline",
                "_diffusers_version": "0.42.0",
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
                "scheduler": ["diffusers", "DDIMScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "safety_checker": [None, None],
                "feature_extractor": [None, None],
                "requires_safety_checker": False,
            }
        )
    )
    return sd, cn


def test_sd_invalid_folders_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        StableDiffusionGenerator.from_folders(tmp_path / "nope", tmp_path / "nope2")
    (tmp_path / "sd").mkdir()
    with pytest.raises(ValueError, match=r"model_index\.json.*unet/"):
        StableDiffusionGenerator.from_folders(tmp_path / "sd", tmp_path)
    sd, _ = _sd_folders(tmp_path / "ok")
    (tmp_path / "cn").mkdir()
    with pytest.raises(ValueError, match=r"ControlNet folder.*config\.json"):
        StableDiffusionGenerator.from_folders(sd, tmp_path / "cn")


def test_sd_without_transformers_says_what_to_install(tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    try:
        import transformers  # noqa: F401
    except ImportError:
        sd, cn = _sd_folders(tmp_path)
        with pytest.raises(MissingDependencyError, match="pip install transformers"):
            StableDiffusionGenerator.from_folders(sd, cn)
    else:
        pytest.skip("transformers is installed")


def test_sd_end_to_end_with_tiny_local_components(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    sd, cn = _sd_folders(tmp_path)
    gen = StableDiffusionGenerator.from_folders(sd, cn)
    control = np.zeros((gen.resolution, gen.resolution), np.uint8)
    control[10:50, 30] = 255
    steps = list(gen.generate(control, GenerationParams(prompt="a cat", steps=3, seed=1)))
    assert [s.step for s in steps] == [1, 2, 3] and steps[-1].done
    a = steps[-1].images
    assert a.shape == (1, gen.resolution, gen.resolution, 3)
    again = list(gen.generate(control, GenerationParams(prompt="a cat", steps=3, seed=1)))[-1].images
    np.testing.assert_array_equal(a, again)
    off = list(gen.generate(None, GenerationParams(prompt="a cat", steps=3, seed=1)))[-1]
    assert off.notice == NO_CONTROL_NOTICE
    run = gen.generate(control, GenerationParams(prompt="a cat", steps=20, seed=1))
    next(run)
    run.close()
