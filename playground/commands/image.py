"""``playground image``: sketch (or photo) → control map → image, headless, same engines as the panel."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

SCHEDULER_CHOICES = ("ddim", "euler", "dpm++")
CONTROL_MODE_CHOICES = ("balanced", "prompt", "controlnet")
RESIZE_CHOICES = ("just_resize", "crop_and_resize", "resize_and_fill")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "image", parents=[common], help="generate an image from a sketch's edges and a prompt",
        description="Edge map of --control (Canny, or the sketch as is with --scribble), then the "
                    "bundled ControlNet model (or a local Stable Diffusion + ControlNet with --sd and "
                    "--controlnet) generates an image that follows it. The PNG carries every parameter.")
    p.add_argument("--control", type=Path, default=None,
                   help="sketch or photo (PNG/JPEG/WebP); omitted or blank: no control (ControlNet off)")
    pre = p.add_mutually_exclusive_group()
    pre.add_argument("--canny", nargs=2, type=float, metavar=("LOW", "HIGH"), default=None,
                     help="Canny thresholds in 0..255 (default 100 200)")
    pre.add_argument("--scribble", action="store_true", help="use the sketch as is (lines detected)")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                   help="scribble polarity: black-on-white sketches are inverted automatically")
    p.add_argument("--resize", choices=RESIZE_CHOICES, default="just_resize",
                   help="how the control map is fitted to the model's square resolution")
    p.add_argument("--prompt", required=True, help="what to draw, e.g. 'a red house under a night sky'")
    p.add_argument("--negative", default="", help="negative prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=5.0, help="classifier-free guidance scale")
    p.add_argument("--control-scale", type=float, default=1.0,
                   help="ControlNet conditioning scale; 0 switches the ControlNet off entirely")
    p.add_argument("--control-start", type=float, default=0.0,
                   help="fraction of steps before control starts")
    p.add_argument("--control-end", type=float, default=1.0,
                   help="fraction of steps after which control stops")
    p.add_argument("--control-mode", choices=CONTROL_MODE_CHOICES, default="balanced",
                   help="balanced, prompt (prompt more important) or controlnet (ControlNet more important)")
    p.add_argument("--scheduler", choices=SCHEDULER_CHOICES, default="ddim")
    p.add_argument("--batch", type=int, default=1, help="images per run (FILE.png, FILE-2.png, ...)")
    p.add_argument("--model-dir", type=Path, default=None, help="bundled model folder (default assets/image)")
    p.add_argument("--sd", type=Path, default=None, help="local diffusers-format Stable Diffusion 1.5 folder")
    p.add_argument("--controlnet", type=Path, default=None, help="local diffusers-format ControlNet folder")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--json", action="store_true", help="print the parameters and timings as one JSON object")
    p.set_defaults(handler=run)


def _fail(message: str, code: int) -> int:
    print(f"playground image: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from engines import image_io
    from engines.device import choose_device
    from engines.fileio import ExportError
    from engines.image_gen import BundledGenerator, GenerationParams, StableDiffusionGenerator
    from engines.image_preprocess import canny, is_blank, resize_control, scribble

    if (args.sd is None) != (args.controlnet is None):
        return _fail("--sd and --controlnet go together", 2)
    if args.out.suffix.lower() != ".png":
        return _fail("--out must be a .png file (it carries the parameters as PNG text)", 2)
    if not args.out.parent.is_dir():
        return _fail(f"cannot write {args.out}: the folder {args.out.parent} does not exist", 1)
    params = GenerationParams(
        prompt=args.prompt, negative_prompt=args.negative, seed=args.seed, steps=args.steps,
        cfg_scale=args.cfg, control_scale=args.control_scale, control_start=args.control_start,
        control_end=args.control_end, control_mode=args.control_mode, scheduler=args.scheduler,
        batch_size=args.batch)
    try:
        params.validate()
    except ValueError as exc:
        return _fail(str(exc), 2)
    device = choose_device(args.device or "auto")
    t0 = time.perf_counter()
    try:
        if args.sd is not None:
            generator: Any = StableDiffusionGenerator.from_folders(args.sd, args.controlnet, device=device)
        else:
            generator = BundledGenerator.load(args.model_dir, device=device)
    except (ValueError, OSError, ImportError) as exc:
        return _fail(str(exc), 1)
    load_seconds = time.perf_counter() - t0

    notices: list[str] = []
    control = None
    control_desc = "none"
    if args.control is not None:
        try:
            image, notice = image_io.load_image(args.control)
        except (ValueError, OSError) as exc:
            return _fail(str(exc), 1)
        if notice:
            notices.append(notice)
        if args.scribble:
            invert = {"auto": None, "yes": True, "no": False}[args.invert]
            raw = scribble(image, invert=invert)
            control_desc = f"scribble (invert {args.invert}), {args.resize}"
        else:
            low, high = args.canny if args.canny is not None else (100.0, 200.0)
            raw = canny(image, low, high)
            control_desc = f"canny {low:g} {high:g}, {args.resize}"
        control = resize_control(raw, generator.resolution, args.resize)
        if is_blank(control):
            control = None
    unknown = generator.unknown_words(args.prompt)
    if unknown:
        notices.append(f"unknown words (ignored by the model): {', '.join(unknown)}")

    t1 = time.perf_counter()
    last = None
    for step in generator.generate(control, params):
        last = step
        if step.notice and step.notice not in notices:
            notices.append(step.notice)
    seconds = time.perf_counter() - t1
    if last is None or last.images is None:
        return _fail("the generator produced no image", 1)

    meta = dict(params.to_metadata())
    meta.update({"model": generator.name, "control": control_desc, "software": "Generative Playground"})
    written: list[str] = []
    try:
        for i, img in enumerate(np.asarray(last.images)):
            target = args.out if i == 0 else args.out.with_name(f"{args.out.stem}-{i + 1}.png")
            image_io.save_png_with_metadata(target, img, meta)
            written.append(str(target))
    except ExportError as exc:
        return _fail(str(exc), 1)

    report = {"params": {k.removeprefix("gp_"): v for k, v in params.to_metadata().items()},
              "model": generator.name, "resolution": generator.resolution, "control": control_desc,
              "control_used": control is not None, "load_seconds": load_seconds, "seconds": seconds,
              "seconds_per_step": seconds / max(params.steps, 1), "out": written, "notices": notices}
    if args.json:
        print(json.dumps(report))
    else:
        for n in notices:
            print(f"note: {n}")
        print(f"wrote {', '.join(written)} ({generator.resolution}×{generator.resolution}, {params.steps} "
              f"steps in {seconds:.2f} s, {generator.name})")
    return 0
