"""The bundled image model's training set: procedurally drawn scenes with prompts and control maps.

Why procedural: the app ships its own model and must not download a data set, and a tiny
CPU-trained model can only learn a small world. So the world is small and fully known: a sky
whose colours give the time of day (day / sunset / night), a horizon and ground, optional
mountains, an optional sun or moon, and one object (circle, square, triangle, house or tree)
in a named colour at the left, middle or right. Every scene comes with a prompt from a fixed
vocabulary ("a red house on the left under a night sky with the moon and mountains") and a
control map. Being generated, the set is also an evaluation set with exact answers: the
object's mask lets :mod:`scripts.eval_image` check that "red" really made it red.

Scenes are drawn with PIL at 4× the model resolution and box-downsampled (anti-aliasing for
free); control maps are the Canny edges of that drawing (:func:`engines.image_preprocess.canny`
then :func:`~engines.image_preprocess.resize_control`, exactly the panel's path) or, for a share
of examples, a scribble: wobbly hand-drawn-looking outlines of some of the scene's parts, so
hand sketches in the panel are in distribution too. Everything is deterministic from the seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from engines.image_preprocess import canny, resize_control

RESOLUTION = 32
SUPERSAMPLE = 4

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (35, 70, 230),
    "yellow": (245, 220, 30),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "orange": (245, 130, 20),
    "purple": (140, 40, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "house", "tree")
TIMES: tuple[str, ...] = ("day", "sunset", "night")
POSITIONS: dict[str, tuple[str, ...]] = {
    "left": ("on", "the", "left"),
    "middle": ("in", "the", "middle"),
    "right": ("on", "the", "right"),
}

# Sky top and bottom colours, ground, mountains, and the sun/moon per time of day.
_SKY = {
    "day": ((60, 120, 215), (165, 205, 245)),
    "sunset": ((70, 40, 120), (250, 150, 70)),
    "night": ((5, 6, 25), (25, 35, 80)),
}
_GROUND = {"day": (115, 150, 85), "sunset": (100, 80, 65), "night": (30, 35, 45)}
_MOUNTAIN = {"day": (125, 125, 150), "sunset": (85, 60, 95), "night": (50, 50, 75)}
_LIGHT = {
    "day": ("sun", (255, 235, 90)),
    "sunset": ("sun", (255, 110, 40)),
    "night": ("moon", (235, 235, 205)),
}

VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *("a", *COLOURS, *SHAPES, "on", "in", "the", "left", "middle", "right", "under"),
            *(*TIMES, "sky", "with", "sun", "moon", "and", "mountains"),
        ]
    )
)
MAX_TOKENS = 16


@dataclass(frozen=True)
class Scene:
    """One drawn example with everything the trainer and the evaluator need."""

    image: np.ndarray  # (R, R, 3) uint8
    prompt: str
    control: np.ndarray  # (R, R) uint8 {0, 255}, white lines on black
    mask: np.ndarray  # (R, R) bool, the named object's coloured part
    colour: str
    shape: str
    time: str
    position: str
    control_kind: str  # "canny" or "scribble"


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    j = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(rgb, j, strict=True))  # type: ignore[return-value]


def _shape_polys(shape: str, cx: float, base: float, s: float) -> dict[str, list]:
    """Polygons/ellipses (hi-res pixel units) of an object standing on ``base`` centred at ``cx``.

    Returns named parts: ``body`` carries the named colour; ``extra`` parts (roof, trunk)
    have their own colours. Each entry is ("poly", points) or ("ellipse", box).
    """
    h = s
    if shape == "circle":
        return {"body": [("ellipse", (cx - h / 2, base - h, cx + h / 2, base))]}
    if shape == "square":
        return {
            "body": [
                (
                    "poly",
                    [(cx - h / 2, base - h), (cx + h / 2, base - h), (cx + h / 2, base), (cx - h / 2, base)],
                )
            ]
        }
    if shape == "triangle":
        return {"body": [("poly", [(cx, base - h), (cx + h / 2, base), (cx - h / 2, base)])]}
    if shape == "house":
        wall = 0.6 * h
        body = [
            (
                "poly",
                [
                    (cx - h / 2.4, base - wall),
                    (cx + h / 2.4, base - wall),
                    (cx + h / 2.4, base),
                    (cx - h / 2.4, base),
                ],
            )
        ]
        roof = [("poly", [(cx - h / 2, base - wall), (cx, base - h), (cx + h / 2, base - wall)])]
        return {"body": body, "roof": roof}
    if shape == "tree":
        trunk_h = 0.35 * h
        trunk = [
            (
                "poly",
                [
                    (cx - h / 12, base - trunk_h),
                    (cx + h / 12, base - trunk_h),
                    (cx + h / 12, base),
                    (cx - h / 12, base),
                ],
            )
        ]
        crown = [("ellipse", (cx - h / 2.6, base - h, cx + h / 2.6, base - trunk_h + h / 10))]
        return {"trunk": trunk, "body": crown}
    raise ValueError(f"unknown shape {shape!r}")


def _draw_parts(draw: ImageDraw.ImageDraw, parts: list, fill: object) -> None:
    for kind, geom in parts:
        if kind == "ellipse":
            draw.ellipse(geom, fill=fill)
        else:
            draw.polygon(geom, fill=fill)


def _wobbly_outline(
    draw: ImageDraw.ImageDraw, kind: str, geom: object, rng: np.random.Generator, width: int
) -> None:
    """Outline drawn like a hand would: a jittered polyline, slightly overshooting."""
    if kind == "ellipse":
        x0, y0, x1, y1 = geom  # type: ignore[misc]
        t = np.linspace(0, 2 * np.pi, 40) + rng.uniform(0, 2 * np.pi)
        pts = np.stack(
            [(x0 + x1) / 2 + (x1 - x0) / 2 * np.cos(t), (y0 + y1) / 2 + (y1 - y0) / 2 * np.sin(t)], 1
        )
    else:
        corners = np.asarray(geom, dtype=float)
        corners = np.concatenate([corners, corners[:1]])
        segs = [np.linspace(corners[i], corners[i + 1], 8, endpoint=False) for i in range(len(corners) - 1)]
        pts = np.concatenate([*segs, corners[-1:]])
    pts = pts + rng.normal(0, 0.9, size=pts.shape)
    draw.line([tuple(p) for p in pts], fill=255, width=width, joint="curve")


def make_scene(rng: np.random.Generator, resolution: int = RESOLUTION, scribble_prob: float = 0.35) -> Scene:
    """Draw one random scene (deterministic given ``rng``'s state)."""
    big = resolution * SUPERSAMPLE
    time = TIMES[int(rng.integers(len(TIMES)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    position = list(POSITIONS)[int(rng.integers(len(POSITIONS)))]
    has_mountains = bool(rng.random() < 0.5)
    has_light = bool(rng.random() < 0.6)
    horizon = big * rng.uniform(0.55, 0.72)

    # Sky: vertical gradient.
    top, bottom = (np.asarray(_jitter(c, rng, 12), dtype=float) for c in _SKY[time])
    ramp = np.linspace(0.0, 1.0, big)[:, None, None]
    sky = (top * (1 - ramp) + bottom * ramp).repeat(big, axis=1)
    canvas = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    mask_img = Image.new("L", (big, big), 0)
    mask_draw = ImageDraw.Draw(mask_img)
    outline_parts: list[tuple[str, list]] = []

    light_name, light_rgb = _LIGHT[time]
    if has_light:
        r = big * rng.uniform(0.06, 0.09)
        lx = big * rng.uniform(0.12, 0.88)
        ly = horizon - big * 0.06 if time == "sunset" else big * rng.uniform(0.1, 0.3)
        box = (lx - r, ly - r, lx + r, ly + r)
        draw.ellipse(box, fill=_jitter(light_rgb, rng, 10))
        outline_parts.append(("light", [("ellipse", box)]))
    if has_mountains:
        pts = [(0.0, horizon)]
        n_peaks = int(rng.integers(1, 4))
        xs = np.sort(rng.uniform(0.1, 0.9, n_peaks)) * big
        for x in xs:
            pts.append((float(x), float(horizon - big * rng.uniform(0.15, 0.3))))
        pts += [(float(big), horizon)]
        # valleys between peaks so the ridge reads as mountains
        ridge = [pts[0]]
        for a, b in itertools.pairwise(pts[1:]):
            ridge.append(a)
            if b[0] < big:
                ridge.append(((a[0] + b[0]) / 2, horizon - big * rng.uniform(0.02, 0.08)))
        ridge.append(pts[-1])
        draw.polygon(ridge, fill=_jitter(_MOUNTAIN[time], rng, 10))
        outline_parts.append(("mountains", [("line", ridge)]))
    draw.rectangle((0, horizon, big, big), fill=_jitter(_GROUND[time], rng, 10))
    outline_parts.append(("horizon", [("line", [(0.0, horizon), (float(big), horizon)])]))

    size = big * rng.uniform(0.32, 0.5)
    cx = {"left": 0.25, "middle": 0.5, "right": 0.75}[position] * big + big * rng.uniform(-0.06, 0.06)
    base = horizon + (big - horizon) * rng.uniform(0.35, 0.85)
    parts = _shape_polys(shape, cx, base, size)
    body_rgb = _jitter(COLOURS[colour], rng, 12)
    if "trunk" in parts:
        _draw_parts(draw, parts["trunk"], _jitter((110, 70, 35), rng, 10))
    _draw_parts(draw, parts["body"], body_rgb)
    _draw_parts(mask_draw, parts["body"], 255)
    if "roof" in parts:
        roof_rgb = (90, 40, 30) if colour != "black" else (120, 60, 40)
        _draw_parts(draw, parts["roof"], _jitter(roof_rgb, rng, 10))
    for name in ("trunk", "body", "roof"):
        if name in parts:
            outline_parts.append((name, parts[name]))

    image = np.asarray(canvas.resize((resolution, resolution), Image.Resampling.BOX))
    mask = np.asarray(mask_img.resize((resolution, resolution), Image.Resampling.BOX)) > 200

    if rng.random() < scribble_prob:
        control_kind = "scribble"
        sk = Image.new("L", (big, big), 0)
        sk_draw = ImageDraw.Draw(sk)
        width = int(rng.integers(2, SUPERSAMPLE + 2))
        for name, geoms in outline_parts:
            if name in ("light", "mountains", "horizon") and rng.random() < 0.25:
                continue  # people leave parts out
            for kind, geom in geoms:
                if kind == "line":
                    pts = np.asarray(geom, dtype=float) + rng.normal(0, 0.9, size=(len(geom), 2))
                    sk_draw.line([tuple(p) for p in pts], fill=255, width=width, joint="curve")
                else:
                    _wobbly_outline(sk_draw, kind, geom, rng, width)
        control = resize_control(np.asarray(sk), resolution, "just_resize")
    else:
        control_kind = "canny"
        low = float(rng.uniform(20, 80))  # the user's threshold is unknown: cover a range
        edges = canny(np.asarray(canvas), low, 2 * low)
        control = resize_control(edges, resolution, "just_resize")

    words = ["a", colour, shape, *POSITIONS[position], "under", "a", time, "sky"]
    extras = ([f"the {light_name}"] if has_light else []) + (["mountains"] if has_mountains else [])
    prompt = " ".join(words) + (" with " + " and ".join(extras) if extras else "")
    return Scene(image.copy(), prompt, control, mask, colour, shape, time, position, control_kind)


def make_example(
    rng: np.random.Generator, resolution: int = RESOLUTION
) -> tuple[np.ndarray, str, np.ndarray]:
    """(image (R, R, 3) uint8, prompt, control (R, R) uint8) — the trainer's unit."""
    scene = make_scene(rng, resolution)
    return scene.image, scene.prompt, scene.control


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for example ``index`` of the set with ``seed``: examples are addressable."""
    return np.random.default_rng([int(seed), int(index)])


class SceneDataset(torch.utils.data.Dataset):
    """A fixed-size, index-addressable view: example i is always the same picture.

    ``seed`` separates the training set (seed 0) from held-out sets (the evaluator uses
    another seed), so evaluation never sees a training picture.
    """

    def __init__(self, length: int, seed: int = 0, resolution: int = RESOLUTION) -> None:
        self.length = int(length)
        self.seed = int(seed)
        self.resolution = int(resolution)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str, torch.Tensor]:
        image, prompt, control = make_example(scene_rng(self.seed, index), self.resolution)
        return to_model_image(image), prompt, to_model_control(control)


def to_model_image(image: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 → (..., 3, H, W) float in [−1, 1], the diffusion model's pixel space."""
    t = torch.from_numpy(np.ascontiguousarray(image)).float().div(127.5).sub(1.0)
    return t.movedim(-1, -3)


def to_model_control(control: np.ndarray) -> torch.Tensor:
    """(..., H, W) uint8 → (..., 1, H, W) float in [0, 1], the ControlNet's input."""
    return torch.from_numpy(np.ascontiguousarray(control)).float().div(255.0).unsqueeze(-3)


def batches(
    batch_size: int, seed: int = 0, rank: int = 0, resolution: int = RESOLUTION
) -> Iterator[tuple[torch.Tensor, list[str], torch.Tensor]]:
    """An endless stream of fresh batches; each (seed, rank) pair draws its own examples.

    Drawing new scenes forever (rather than epochs over a fixed list) means the model never
    sees the same picture twice, which is the cheapest regulariser there is. Under DDP each
    rank passes its rank so the ranks see different data (what a DistributedSampler does).
    """
    rng = np.random.default_rng([int(seed), 7919, int(rank)])
    while True:
        scenes = [make_example(rng, resolution) for _ in range(batch_size)]
        images = to_model_image(np.stack([s[0] for s in scenes]))
        controls = to_model_control(np.stack([s[2] for s in scenes]))
        yield images, [s[1] for s in scenes], controls
