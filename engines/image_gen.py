"""Image generation for the Image panel: the bundled ControlNet model and a local Stable Diffusion.

Both generators speak one API (:class:`Generator`): ``generate(control, params)`` is a
generator job that yields one :class:`GenerationStep` per denoising step (the current noisy
image and the model's guess of the clean one, as uint8 arrays), so the GUI's runner can show
the picture forming and cancel between any two steps by closing the generator.

ControlNet knobs follow diffusers' ``StableDiffusionControlNetPipeline`` so what a user
learns here transfers:

* ``control_scale`` multiplies the ControlNet's residuals; 0 skips the ControlNet entirely
  (the output is then bit-identical to generating without a control map);
* ``control_start``/``control_end``: the ControlNet is off at step i when i/N < start or
  (i+1)/N > end (diffusers' rule);
* ``control_mode``: ``balanced`` is the plain sum; ``controlnet`` ("ControlNet is more
  important") is diffusers' ``guess_mode``: control only on the conditional half of
  classifier-free guidance, residuals scaled by logspace(−1, 0) from shallow to deep;
  ``prompt`` ("my prompt is more important", as in the ControlNet WebUI extension) keeps
  control on both halves but damps the shallow residuals by 0.825^(depth from the deepest), so
  the prompt shapes the details.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from engines.image_preprocess import is_blank, resize_control, to_gray

SCHEDULERS: tuple[str, ...] = ("ddim", "euler", "dpm++")
CONTROL_MODES: tuple[str, ...] = ("balanced", "prompt", "controlnet")
NO_CONTROL_NOTICE = "No control map (empty sketch): generating from the prompt alone, ControlNet off."


@dataclass(frozen=True)
class GenerationParams:
    """Everything that decides a generation (with the control map): the panel's settings.

    Stored in exported PNGs via :meth:`to_metadata` so an image can be regenerated exactly.
    """

    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    cfg_scale: float = 5.0
    control_scale: float = 1.0
    control_start: float = 0.0
    control_end: float = 1.0
    control_mode: str = "balanced"
    scheduler: str = "ddim"
    batch_size: int = 1

    def to_metadata(self) -> dict[str, str]:
        """String key/values (PNG text chunks hold strings only)."""
        return {f"gp_{k}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, d: dict[str, str]) -> GenerationParams:
        """Inverse of :meth:`to_metadata`; unknown keys are ignored, missing ones take defaults."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = d.get(f"gp_{f.name}", d.get(f.name))
            if raw is None:
                continue
            default = f.default
            try:
                if isinstance(default, bool):
                    kwargs[f.name] = str(raw).lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    kwargs[f.name] = int(float(raw))
                elif isinstance(default, float):
                    kwargs[f.name] = float(raw)
                else:
                    kwargs[f.name] = str(raw)
            except ValueError as exc:
                raise ValueError(f"metadata field {f.name!r} has an invalid value {raw!r}") from exc
        return cls(**kwargs)

    def validate(self) -> None:
        """Raise ``ValueError`` with a user-facing message for settings no generator accepts."""
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        if self.control_mode not in CONTROL_MODES:
            raise ValueError(
                f"unknown control mode {self.control_mode!r}; choose one of {', '.join(CONTROL_MODES)}"
            )
        if not 1 <= self.steps <= 1000:
            raise ValueError(
                "steps must be between 1 and 1000 (the models were trained with 1000 noise levels)"
            )
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if not 0.0 <= self.control_start <= self.control_end <= 1.0:
            raise ValueError("control start and end must satisfy 0 ≤ start ≤ end ≤ 1")
        if self.control_scale < 0:
            raise ValueError("control scale must not be negative")


@dataclass(frozen=True)
class GenerationStep:
    """One denoising step's snapshot (numpy only: the GUI reads it from another thread)."""

    step: int  # 1-based: steps done so far
    total: int
    xt: np.ndarray  # (B, H, W, 3) uint8, the current noisy image
    x0: np.ndarray  # (B, H, W, 3) uint8, the model's current guess of the final image
    images: np.ndarray | None  # (B, H, W, 3) uint8 on the last step, else None
    done: bool
    seconds: float
    notice: str = ""


class Generator(Protocol):
    name: str
    resolution: int

    def vocabulary(self) -> tuple[str, ...] | None: ...

    def unknown_words(self, prompt: str) -> list[str]: ...

    def generate(self, control: np.ndarray | None, params: GenerationParams) -> Iterator[GenerationStep]: ...


def control_active(i: int, n: int, start: float, end: float) -> bool:
    """diffusers' rule: ControlNet off at step i when i/N < start or (i+1)/N > end."""
    return not (i / n < start or (i + 1) / n > end)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [−1, 1] → (B, H, W, 3) uint8."""
    return (
        ((x.detach().float().clamp(-1, 1) + 1) * 127.5)
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )


def _prepare_control(control: np.ndarray | None, resolution: int) -> tuple[np.ndarray | None, str]:
    if control is None:
        return None, NO_CONTROL_NOTICE
    arr = np.asarray(control)
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = to_gray(arr)
    if is_blank(arr):
        return None, NO_CONTROL_NOTICE
    if arr.shape != (resolution, resolution):
        arr = resize_control(arr, resolution, "just_resize")
    return arr, ""


def _mode_scales(mode: str, n_down: int, scale: float) -> tuple[list[float], float]:
    """Per-residual multipliers (down blocks shallow → deep, then mid) for a control mode."""
    if mode == "controlnet":
        s = torch.logspace(-1, 0, n_down + 1).tolist()
    elif mode == "prompt":
        s = [0.825 ** (n_down - k) for k in range(n_down + 1)]
    else:
        s = [1.0] * (n_down + 1)
    return [v * scale for v in s[:-1]], s[-1] * scale


class BundledGenerator:
    """The app's own 32×32 text + sketch model (:mod:`engines.image_model`)."""

    name = "Bundled (32×32, procedural scenes)"

    def __init__(self, model: Any, device: torch.device | None = None) -> None:
        self.model = model
        self.device = device or model.device
        self.resolution = int(model.resolution)
        self.schedule = dict(model.config.get("schedule", {})) or None

    @classmethod
    def load(
        cls, folder: str | Path | None = None, device: torch.device | str | None = None
    ) -> BundledGenerator:
        """Load ``assets/image`` (or ``folder``); errors name the missing or corrupt file."""
        from engines.image_model import BundledModel

        dev = torch.device(device) if device is not None else torch.device("cpu")
        return cls(BundledModel.load(folder, dev), dev)

    def vocabulary(self) -> tuple[str, ...] | None:
        return tuple(self.model.text_encoder.vocabulary)

    def unknown_words(self, prompt: str) -> list[str]:
        return self.model.text_encoder.unknown_words(prompt)

    def generate(self, control: np.ndarray | None, params: GenerationParams) -> Iterator[GenerationStep]:
        """One yield per denoising step; close the generator to cancel."""
        from engines.image_model import make_scheduler

        params.validate()
        t0 = time.perf_counter()
        ctrl, notice = _prepare_control(control, self.resolution)
        unknown = self.unknown_words(params.prompt) + self.unknown_words(params.negative_prompt)
        if unknown:
            extra = "Unknown words ignored: " + ", ".join(dict.fromkeys(unknown)) + "."
            notice = f"{notice} {extra}".strip()
        m = self.model
        dev = self.device
        b, r, n = params.batch_size, self.resolution, params.steps
        use_cn = ctrl is not None and params.control_scale > 0
        guided = params.cfg_scale != 1.0
        with torch.no_grad():
            sched = make_scheduler(params.scheduler, self.schedule)
            sched.set_timesteps(n, device=dev)
            gen = torch.Generator("cpu").manual_seed(int(params.seed))
            x = torch.randn((b, 3, r, r), generator=gen).to(dev) * sched.init_noise_sigma
            cond = m.text_encoder([params.prompt] * b)
            uncond = m.text_encoder([params.negative_prompt] * b)
            hidden = torch.cat([uncond, cond]) if guided else cond
            cond_map = None
            if use_cn:
                c = torch.from_numpy(ctrl).float().div(255.0).to(dev)[None, None].expand(b, 1, r, r)
                cond_map = torch.cat([c, c]) if guided else c
        euler = type(sched).__name__ == "EulerDiscreteScheduler"
        for i, t in enumerate(sched.timesteps):
            with torch.no_grad():
                x_in = sched.scale_model_input(x, t)
                model_in = torch.cat([x_in, x_in]) if guided else x_in
                kwargs: dict[str, Any] = {}
                if use_cn and control_active(i, n, params.control_start, params.control_end):
                    kwargs = self._control_residuals(model_in, t, hidden, cond_map, params, guided, b)
                eps = m.unet(model_in, t, encoder_hidden_states=hidden, **kwargs).sample
                if guided:
                    e_u, e_c = eps.chunk(2)
                    eps = e_u + params.cfg_scale * (e_c - e_u)
                out = sched.step(eps, t, x, generator=gen)
                x = out.prev_sample
                x0 = getattr(out, "pred_original_sample", None)
                if x0 is None:
                    a = sched.alphas_cumprod[int(t)].to(dev)
                    if sched.config.prediction_type == "v_prediction":
                        x0 = a.sqrt() * x_in - (1 - a).sqrt() * eps
                    else:
                        x0 = (x_in - (1 - a).sqrt() * eps) / a.sqrt()
                if euler and i + 1 < n:
                    sigma = sched.sigmas[i + 1].to(dev)
                    xt = x / (sigma**2 + 1).sqrt()
                else:
                    xt = x
                last = i + 1 == n
                final = to_uint8(x) if last else None
            yield GenerationStep(
                step=i + 1,
                total=n,
                xt=to_uint8(xt),
                x0=final if final is not None else to_uint8(x0),
                images=final,
                done=last,
                seconds=time.perf_counter() - t0,
                notice=notice,
            )

    def _control_residuals(
        self,
        model_in: torch.Tensor,
        t: torch.Tensor,
        hidden: torch.Tensor,
        cond_map: torch.Tensor,
        params: GenerationParams,
        guided: bool,
        b: int,
    ) -> dict[str, Any]:
        cn = self.model.controlnet
        if params.control_mode == "controlnet" and guided:
            # guess mode: ControlNet sees only the conditional half; the unconditional gets zeros
            down, mid = cn(
                model_in[b:],
                t,
                encoder_hidden_states=hidden[b:],
                controlnet_cond=cond_map[b:],
                conditioning_scale=1.0,
                return_dict=False,
            )
            down = [torch.cat([torch.zeros_like(d), d]) for d in down]
            mid = torch.cat([torch.zeros_like(mid), mid])
        else:
            down, mid = cn(
                model_in,
                t,
                encoder_hidden_states=hidden,
                controlnet_cond=cond_map,
                conditioning_scale=1.0,
                return_dict=False,
            )
        down_s, mid_s = _mode_scales(params.control_mode, len(down), params.control_scale)
        return {
            "down_block_additional_residuals": [d * s for d, s in zip(down, down_s, strict=True)],
            "mid_block_additional_residual": mid * mid_s,
        }


# ---------------------------------------------------------------- Stable Diffusion (local)

SD_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class MissingDependencyError(ImportError):
    """A Python package the feature needs is not installed; the message says what to install."""


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def check_sd_folder(sd_folder: str | Path) -> Path:
    """Validate a diffusers-format Stable Diffusion folder; ``ValueError`` lists what is missing."""
    root = Path(sd_folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"Stable Diffusion folder {root} does not exist or is not a folder.")
    missing = [] if (root / "model_index.json").is_file() else ["model_index.json"]
    for sub in SD_SUBFOLDERS:
        d = root / sub
        if not d.is_dir():
            missing.append(f"{sub}/")
        elif sub in ("unet", "vae", "text_encoder") and not (
            (d / "config.json").is_file() and _has_weights(d)
        ):
            missing.append(f"{sub}/config.json and weights (*.safetensors)")
        elif sub == "scheduler" and not (d / "scheduler_config.json").is_file():
            missing.append("scheduler/scheduler_config.json")
        elif sub == "tokenizer" and not any(d.iterdir()):
            missing.append("tokenizer files (vocab.json, merges.txt)")
    if missing:
        raise ValueError(
            f"{root} is not a diffusers-format Stable Diffusion folder: missing {', '.join(missing)}. "
            "Use a folder saved with save_pretrained "
            "(e.g. a downloaded runwayml/stable-diffusion-v1-5 snapshot)."
        )
    return root


def check_controlnet_folder(controlnet_folder: str | Path) -> Path:
    """Validate a diffusers-format ControlNet folder (config.json + weights)."""
    root = Path(controlnet_folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"ControlNet folder {root} does not exist or is not a folder.")
    missing = [] if (root / "config.json").is_file() else ["config.json"]
    if not _has_weights(root):
        missing.append("diffusion_pytorch_model.safetensors")
    if missing:
        raise ValueError(
            f"{root} is not a diffusers-format ControlNet folder: missing {', '.join(missing)} "
            "(e.g. a downloaded lllyasviel/sd-controlnet-canny snapshot)."
        )
    return root


def _transformers_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


# Approximate SD 1.x latent → RGB (a linear map widely used for cheap previews).
_LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


class StableDiffusionGenerator:
    """A user's local Stable Diffusion + ControlNet, run by diffusers' own pipeline, offline.

    The pipeline runs in a worker thread in lock-step with this generator: its
    ``callback_on_step_end`` hands each step's latents over and waits, so one ``next()`` is
    one denoising step, and closing the generator sets ``pipe._interrupt`` (diffusers' own
    cancel flag) before the next step starts.
    """

    name = "Stable Diffusion (local)"

    def __init__(self, pipe: Any, plain_pipe: Any, device: torch.device) -> None:
        self.pipe = pipe
        self.plain_pipe = plain_pipe
        self.device = device
        self.resolution = int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))

    @classmethod
    def from_folders(
        cls, sd_folder: str | Path, controlnet_folder: str | Path, device: torch.device | str | None = None
    ) -> StableDiffusionGenerator:
        """Build from local diffusers-format folders (``local_files_only=True``: never downloads).

        Raises ``ValueError`` naming what is missing for an invalid folder, and
        :class:`MissingDependencyError` when ``transformers`` (which holds SD's CLIP text
        encoder) is not installed.
        """
        sd = check_sd_folder(sd_folder)
        cn = check_controlnet_folder(controlnet_folder)
        if not _transformers_available():
            raise MissingDependencyError(
                "Stable Diffusion needs the 'transformers' package for its CLIP text encoder: "
                "run `pip install transformers` in the app's environment, then try again."
            )
        from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionPipeline

        dev = torch.device(device) if device is not None else torch.device("cpu")
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
        try:
            controlnet = ControlNetModel.from_pretrained(str(cn), local_files_only=True, torch_dtype=dtype)
            pipe = StableDiffusionControlNetPipeline.from_pretrained(
                str(sd),
                controlnet=controlnet,
                local_files_only=True,
                torch_dtype=dtype,
                safety_checker=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"Could not load Stable Diffusion from {sd} with ControlNet {cn}: {exc}"
            ) from exc
        pipe = pipe.to(dev)
        pipe.set_progress_bar_config(disable=True)
        comps = {k: v for k, v in pipe.components.items() if k != "controlnet"}
        plain = StableDiffusionPipeline(
            **{**comps, "safety_checker": None, "feature_extractor": None}, requires_safety_checker=False
        )
        plain.set_progress_bar_config(disable=True)
        return cls(pipe, plain, dev)

    def vocabulary(self) -> tuple[str, ...] | None:
        return None  # CLIP reads any text

    def unknown_words(self, prompt: str) -> list[str]:
        return []

    def _preview(self, latents: torch.Tensor) -> np.ndarray:
        rgb = torch.einsum("bchw,cr->brhw", latents.float().cpu(), _LATENT_RGB)
        img = to_uint8(rgb.clamp(-1, 1))
        r = self.resolution
        if img.shape[1] != r:
            rep = max(1, r // img.shape[1])
            img = img.repeat(rep, axis=1).repeat(rep, axis=2)
        return img

    def generate(self, control: np.ndarray | None, params: GenerationParams) -> Iterator[GenerationStep]:
        from PIL import Image

        from engines.image_model import make_scheduler

        params.validate()
        t0 = time.perf_counter()
        ctrl, notice = _prepare_control(control, self.resolution)
        use_cn = ctrl is not None and params.control_scale > 0
        pipe = self.pipe if use_cn else self.plain_pipe
        sched_cfg = {k: v for k, v in dict(self.pipe.scheduler.config).items() if not k.startswith("_")}
        sched = make_scheduler(
            params.scheduler,
            {
                k: sched_cfg[k]
                for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type")
                if k in sched_cfg
            },
        )
        pipe.scheduler = sched
        handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
        go = threading.Semaphore(0)
        cancelled = threading.Event()

        def on_step(p: Any, i: int, t: Any, kw: dict[str, Any]) -> dict[str, Any]:
            handoff.put(("step", i, kw["latents"].detach().clone()))
            go.acquire()
            if cancelled.is_set():
                p._interrupt = True
            return kw

        call: dict[str, Any] = {
            "prompt": params.prompt,
            "negative_prompt": params.negative_prompt or None,
            "num_inference_steps": params.steps,
            "guidance_scale": params.cfg_scale,
            "num_images_per_prompt": params.batch_size,
            "generator": torch.Generator("cpu").manual_seed(int(params.seed)),
            "height": self.resolution,
            "width": self.resolution,
            "output_type": "np",
            "callback_on_step_end": on_step,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if use_cn:
            call.update(
                image=Image.fromarray(np.repeat(ctrl[..., None], 3, axis=2)),
                controlnet_conditioning_scale=float(params.control_scale),
                control_guidance_start=float(params.control_start),
                control_guidance_end=float(params.control_end),
                guess_mode=params.control_mode == "controlnet",
            )

        def worker() -> None:
            try:
                out = pipe(**call)
                handoff.put(("done", None, out.images))
            except BaseException as exc:  # handed to the consumer, raised there
                handoff.put(("error", None, exc))

        thread = threading.Thread(target=worker, name="sd-pipeline", daemon=True)
        thread.start()
        try:
            while True:
                kind, i, payload = handoff.get()
                if kind == "error":
                    raise payload
                if kind == "done":
                    images = (np.clip(payload, 0, 1) * 255).round().astype(np.uint8)
                    yield GenerationStep(
                        params.steps,
                        params.steps,
                        images,
                        images,
                        images,
                        True,
                        time.perf_counter() - t0,
                        notice,
                    )
                    return
                if i + 1 < params.steps:  # the last step's snapshot is the decoded image below
                    preview = self._preview(payload)
                    yield GenerationStep(
                        i + 1, params.steps, preview, preview, None, False, time.perf_counter() - t0, notice
                    )
                go.release()
        finally:
            cancelled.set()
            go.release()
            while thread.is_alive():  # let the pipeline run out (interrupted) so it never blocks forever
                try:
                    handoff.get(timeout=0.05)
                except queue.Empty:
                    continue
                go.release()
