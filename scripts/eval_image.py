"""Evaluate the bundled image model on held-out procedurally drawn scenes.

Two questions, each with a number:

1. **Does the ControlNet follow the sketch?** Edge F1 at 2 px tolerance between the edges of
   the generated image and the control map, with the ControlNet on (scale 1) and off
   (scale 0, same seed and prompt: the text-only baseline). Edges of a generated image are
   taken exactly as the training controls were: 4× bicubic upsample, Canny (thresholds 40/80),
   then :func:`engines.image_preprocess.resize_control` back to 32×32. For reference the same
   F1 is computed for the real scene (what a perfect generator could score).
2. **Does the colour word work?** For each scene the prompt's colour is swapped for another
   (same seed, same control): the mean colour inside the object's mask must move toward the
   named colour. Reported: the share of pairs where both images are nearer their own named
   colour than the other's, and the share of images whose mask colour is nearest (among the 8
   colours) to the named one.

Held-out scenes come from a seed the trainer never uses (``--seed``, default 999).

    .venv/bin/python scripts/eval_image.py [--n 48] [--steps 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engines.image_data import COLOURS, make_scene, scene_rng  # noqa: E402
from engines.image_gen import BundledGenerator, GenerationParams  # noqa: E402
from engines.image_preprocess import canny, resize_control  # noqa: E402


def edges_of(image: np.ndarray) -> np.ndarray:
    """Edges of a model-resolution image, by the same path as the training controls."""
    r = image.shape[0]
    big = cv2.resize(image, (4 * r, 4 * r), interpolation=cv2.INTER_CUBIC)
    return resize_control(canny(big, 40, 80), r, "just_resize")


def edge_f1(pred: np.ndarray, target: np.ndarray, tol: float = 2.0) -> float:
    """F1 of edge pixels matched within ``tol`` pixels (distance transform, both directions)."""
    p, t = pred > 127, target > 127
    if not p.any() and not t.any():
        return 1.0
    if not p.any() or not t.any():
        return 0.0
    dist_to_t = cv2.distanceTransform((~t).astype(np.uint8), cv2.DIST_L2, 3)
    dist_to_p = cv2.distanceTransform((~p).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((dist_to_t[p] <= tol).mean())
    recall = float((dist_to_p[t] <= tol).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _final(gen: BundledGenerator, control: np.ndarray | None, params: GenerationParams) -> np.ndarray:
    out = None
    for step in gen.generate(control, params):
        out = step.images
    assert out is not None
    return out[0]


def _nearest_colour(rgb: np.ndarray) -> str:
    names = list(COLOURS)
    d = [float(np.linalg.norm(rgb - np.asarray(COLOURS[n], float))) for n in names]
    return names[int(np.argmin(d))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="model folder (default assets/image)")
    ap.add_argument("--n", type=int, default=48, help="held-out scenes")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--scheduler", default="ddim")
    ap.add_argument("--seed", type=int, default=999, help="held-out scene seed (training never uses it)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    gen = BundledGenerator.load(args.model)
    t0 = time.time()
    f1_on: list[float] = []
    f1_off: list[float] = []
    f1_real: list[float] = []
    by_kind: dict[str, list[float]] = {"canny": [], "scribble": []}
    pair_ok: list[bool] = []
    nearest_ok: list[bool] = []
    names = list(COLOURS)
    for k in range(args.n):
        scene = make_scene(scene_rng(args.seed, k), gen.resolution)
        base = GenerationParams(
            prompt=scene.prompt, seed=k, steps=args.steps, cfg_scale=args.cfg, scheduler=args.scheduler
        )
        on = _final(gen, scene.control, base)
        off = _final(gen, scene.control, replace(base, control_scale=0.0))
        f1_on.append(edge_f1(edges_of(on), scene.control))
        f1_off.append(edge_f1(edges_of(off), scene.control))
        f1_real.append(edge_f1(edges_of(scene.image), scene.control))
        by_kind[scene.control_kind].append(f1_on[-1])

        other = names[(names.index(scene.colour) + 1 + k % (len(names) - 1)) % len(names)]
        swapped = _final(
            gen,
            scene.control,
            replace(base, prompt=scene.prompt.replace(f"a {scene.colour} ", f"a {other} ", 1)),
        )
        if scene.mask.sum() < 4:
            continue
        m_a = on[scene.mask].astype(float).mean(0)
        m_b = swapped[scene.mask].astype(float).mean(0)
        ca, cb = np.asarray(COLOURS[scene.colour], float), np.asarray(COLOURS[other], float)
        pair_ok.append(
            bool(
                np.linalg.norm(m_a - ca) < np.linalg.norm(m_b - ca)
                and np.linalg.norm(m_b - cb) < np.linalg.norm(m_a - cb)
            )
        )
        nearest_ok += [_nearest_colour(m_a) == scene.colour, _nearest_colour(m_b) == other]

    result = {
        "scenes": args.n,
        "steps": args.steps,
        "cfg": args.cfg,
        "scheduler": args.scheduler,
        "edge_f1_controlnet_on": round(float(np.mean(f1_on)), 3),
        "edge_f1_controlnet_off": round(float(np.mean(f1_off)), 3),
        "edge_f1_real_scene": round(float(np.mean(f1_real)), 3),
        "edge_f1_on_canny_controls": round(float(np.mean(by_kind["canny"])), 3) if by_kind["canny"] else None,
        "edge_f1_on_scribble_controls": round(float(np.mean(by_kind["scribble"])), 3)
        if by_kind["scribble"]
        else None,
        "colour_swap_pairs_correct": round(float(np.mean(pair_ok)), 3) if pair_ok else None,
        "colour_nearest_named": round(float(np.mean(nearest_ok)), 3) if nearest_ok else None,
        "training": gen.model.config.get("training"),
        "seconds": round(time.time() - t0, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
