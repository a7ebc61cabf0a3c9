"""The bundled text+sketch → image model: a tiny UNet, its ControlNet and a word-embedding text encoder.

Choices, and why (this runs and trains on a 2-core CPU):

* **Pixel space at 32×32.** A VAE would add a second model to train and to run per preview;
  at 32×32 a pixel-space UNet of ~2 M parameters takes ~25 ms per denoising step here, and
  64×64 is 4× the cost (5 s per training step at batch 16: untrainable on this CPU).
* **diffusers ``UNet2DConditionModel`` + ``ControlNetModel.from_unet``**, the paper's
  construction: a trainable copy of the UNet's encoder whose outputs join the UNet through
  zero-initialised 1×1 convolutions. In pixel space the map enters at the UNet's own
  resolution, so ``conditioning_embedding_out_channels`` has a single entry (diffusers
  downsamples by 2^(entries − 1)); the control map has one channel (white lines on black).
* **No transformers.** The prompt vocabulary is the one the training set speaks
  (:data:`engines.image_data.VOCABULARY`), so a learned embedding per word plus a position
  embedding and one small transformer layer is all the "CLIP" this model needs. Its output
  (B, L, D) is the UNet's ``encoder_hidden_states``. Unknown words map to ``[unk]``.
* **Weights are safetensors only** (``unet``, ``controlnet``, ``text_encoder``) plus a JSON
  config; loading never unpickles anything, and a missing or corrupt file is named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.image_data import MAX_TOKENS, RESOLUTION, VOCABULARY

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "image"
CONFIG_NAME = "config.json"
WEIGHT_FILES = ("unet.safetensors", "controlnet.safetensors", "text_encoder.safetensors")
PAD, UNK = "[pad]", "[unk]"

# Noise schedule shared by training and every inference scheduler (the DDPM CIFAR-10 betas).
# v-prediction, not ε: with ε the clean-image guess at high noise is (x − √(1−ᾱ)ε̂)/√ᾱ, which
# multiplies ε errors by up to 1/√ᾱ_T ≈ 160; a briefly trained model then samples noise. v
# keeps every step well conditioned (measured here: ε-pred after 550 steps sampled noise).
SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "prediction_type": "v_prediction",
}


def default_config(resolution: int = RESOLUTION, width: int = 32) -> dict[str, Any]:
    """The model's full configuration (what ``config.json`` holds)."""
    w = int(width)
    return {
        "format": "generative-playground-image/1",
        "resolution": int(resolution),
        "vocabulary": list(VOCABULARY),
        "max_tokens": MAX_TOKENS,
        "text_dim": 64,
        "schedule": dict(SCHEDULE),
        "unet": {
            "sample_size": int(resolution),
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "block_out_channels": [w, 2 * w, 2 * w],
            "layers_per_block": 1,
            "cross_attention_dim": 64,
            "attention_head_dim": 4,
            "norm_num_groups": 8,
        },
        "controlnet": {"conditioning_embedding_out_channels": [16], "conditioning_channels": 1},
    }


class WordTextEncoder(nn.Module):
    """Prompt → (B, L, D) hidden states from word and position embeddings and one transformer layer.

    Whitespace tokenisation over a closed vocabulary is enough because the model only ever
    learned those words; the transformer layer lets "red" see "house" (cheap: L = 16).
    """

    def __init__(
        self, vocabulary: tuple[str, ...] | list[str], max_tokens: int = MAX_TOKENS, dim: int = 64
    ) -> None:
        super().__init__()
        self.vocabulary = tuple(vocabulary)
        self.tokens = (PAD, UNK, *self.vocabulary)
        self.index = {w: i for i, w in enumerate(self.tokens)}
        self.max_tokens = int(max_tokens)
        self.dim = int(dim)
        self.words = nn.Embedding(len(self.tokens), dim)
        self.positions = nn.Parameter(torch.randn(self.max_tokens, dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(
            dim, nhead=4, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(dim)

    @staticmethod
    def split(prompt: str) -> list[str]:
        """Lower-case whitespace tokens with surrounding punctuation removed."""
        return [w.strip(".,;:!?\"'()") for w in prompt.lower().split() if w.strip(".,;:!?\"'()")]

    def unknown_words(self, prompt: str) -> list[str]:
        """Words of ``prompt`` the model never learned (each reported once, in order)."""
        return list(dict.fromkeys(w for w in self.split(prompt) if w not in self.index))

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """(B, L) token ids, padded with [pad], truncated to ``max_tokens``."""
        unk, pad = self.index[UNK], self.index[PAD]
        rows = []
        for p in prompts:
            ids = [self.index.get(w, unk) for w in self.split(p)][: self.max_tokens]
            rows.append(ids + [pad] * (self.max_tokens - len(ids)))
        return torch.tensor(rows, dtype=torch.long, device=self.positions.device)

    def forward(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenize(prompts)
        h = self.words(ids) + self.positions[None]
        return self.norm(self.layer(h))


@dataclass
class BundledModel:
    """The three networks plus their config; :meth:`load` reads ``assets/image`` by default."""

    unet: Any  # diffusers.UNet2DConditionModel
    controlnet: Any  # diffusers.ControlNetModel
    text_encoder: WordTextEncoder
    config: dict[str, Any]

    @property
    def resolution(self) -> int:
        return int(self.config["resolution"])

    @property
    def device(self) -> torch.device:
        return self.text_encoder.positions.device

    @classmethod
    def build(cls, config: dict[str, Any] | None = None, seed: int = 0) -> BundledModel:
        """Freshly initialised networks (ControlNet copied from the UNet, zero convs at zero)."""
        from diffusers import ControlNetModel, UNet2DConditionModel

        cfg = config or default_config()
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**cfg["unet"])
        cn = cfg["controlnet"]
        controlnet = ControlNetModel.from_unet(
            unet,
            conditioning_embedding_out_channels=tuple(cn["conditioning_embedding_out_channels"]),
            conditioning_channels=int(cn["conditioning_channels"]),
        )
        text = WordTextEncoder(cfg["vocabulary"], cfg["max_tokens"], cfg["text_dim"])
        return cls(unet, controlnet, text, cfg)

    def to(self, device: torch.device | str) -> BundledModel:
        for m in self.modules():
            m.to(device)
        return self

    def modules(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        return (self.unet, self.controlnet, self.text_encoder)

    def eval(self) -> BundledModel:
        for m in self.modules():
            m.eval().requires_grad_(False)
        return self

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {
            "unet.safetensors": self.unet.state_dict(),
            "controlnet.safetensors": self.controlnet.state_dict(),
            "text_encoder.safetensors": self.text_encoder.state_dict(),
        }

    def save(self, folder: str | Path, extra_config: dict[str, Any] | None = None) -> None:
        """Write config + three safetensors atomically (a crash mid-save keeps the old files)."""
        from safetensors.torch import save_file

        from engines.fileio import atomic_write

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, sd in self.state_dicts().items():
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
            atomic_write(out / name, lambda p, t=tensors: save_file(t, str(p)))
        cfg = {**self.config, **(extra_config or {})}
        atomic_write(out / CONFIG_NAME, lambda p: p.write_text(json.dumps(cfg, indent=1)))

    @classmethod
    def load(cls, folder: str | Path | None = None, device: torch.device | str | None = None) -> BundledModel:
        """Load the shipped (or a trained) model; errors name the file at fault.

        Raises ``FileNotFoundError`` for a missing folder/file and ``ValueError`` for a file
        that exists but cannot be read (truncated, not safetensors, wrong shapes).
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        root = Path(folder) if folder is not None else ASSET_DIR
        if not root.is_dir():
            raise FileNotFoundError(f"The image model folder {root} does not exist.")
        cfg_path = root / CONFIG_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(f"The image model file {cfg_path} is missing.")
        try:
            cfg = json.loads(cfg_path.read_text())
            _ = cfg["unet"], cfg["controlnet"], cfg["vocabulary"], cfg["resolution"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"The image model file {cfg_path} is corrupt: {exc}") from exc
        try:
            model = cls.build(cfg)
        except Exception as exc:
            raise ValueError(f"The image model file {cfg_path} describes an invalid model: {exc}") from exc
        for name, module in zip(WEIGHT_FILES, model.modules(), strict=True):
            path = root / name
            if not path.is_file():
                raise FileNotFoundError(f"The image model file {path} is missing.")
            try:
                sd = load_file(str(path))
                module.load_state_dict(sd, strict=True)
            except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
                raise ValueError(
                    f"The image model file {path} is corrupt or does not match {CONFIG_NAME}: {exc}"
                ) from exc
            for v in sd.values():
                if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                    raise ValueError(
                        f"The image model file {path} is corrupt: it holds NaN or infinite weights."
                    )
        model.to(torch.device(device) if device is not None else torch.device("cpu"))
        return model.eval()

    def parameter_count(self) -> dict[str, int]:
        return {
            n: sum(p.numel() for p in m.parameters())
            for n, m in zip(("unet", "controlnet", "text"), self.modules(), strict=True)
        }


def make_scheduler(name: str, schedule: dict[str, Any] | None = None) -> Any:
    """A fresh diffusers scheduler (one per job: multistep schedulers keep state).

    DDIM gets ``clip_sample=False`` (its default clips to [−1, 1] silently, a trap) and
    ``trailing`` spacing so its first step starts from pure noise at t = T − 1.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    cfg = dict(schedule or SCHEDULE)
    if name == "ddim":
        return DDIMScheduler(**cfg, clip_sample=False, timestep_spacing="trailing", set_alpha_to_one=True)
    if name == "euler":
        return EulerDiscreteScheduler(**cfg, timestep_spacing="trailing")
    if name in ("dpm++", "dpmpp", "dpm"):
        return DPMSolverMultistepScheduler(
            **cfg, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing"
        )
    raise ValueError(f"unknown scheduler {name!r}")


def min_snr_weight(
    alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float = 5.0, prediction_type: str = "v_prediction"
) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023): faster, steadier training.

    For ε-prediction the weight is min(SNR, γ)/SNR, for v-prediction min(SNR, γ)/(SNR + 1);
    both equal min(SNR, γ) times the x₀ error.
    """
    a = alphas_cumprod[t]
    snr = a / (1 - a)
    if prediction_type == "epsilon":
        return torch.clamp(snr, max=gamma) / snr
    return torch.clamp(snr, max=gamma) / (snr + 1)


def v_target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ ε − √(1−ᾱ) x₀ (Salimans & Ho 2022), the network's training target."""
    return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
