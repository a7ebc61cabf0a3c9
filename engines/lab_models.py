"""Saving and loading the 2D Lab's trained models: safetensors weights plus JSON metadata.

Why a file format of its own: a trained model is the user's work, and training again is
not free on a laptop CPU. Why safetensors: a model file someone hands to the app is data,
never code -- ``torch.load`` would unpickle it. One file holds the weights (numpy arrays,
exactly the ``state`` the training snapshots carry) and, in the header's metadata, the
model key, the architecture ``config`` (enough to rebuild the network), the step reached and
a few facts the views need (VP schedule, reflow round, the data it was trained on).

Every engine can take a rebuilt model back (``diffusion_train_job(net=...)``,
``fm_train_job(net=...)``, ``flow_train_job(flow)``, ``gan_train_job(params, gan)``), so a
loaded model can be sampled at once and trained further (:func:`engines.lab_views.lab_train_job`
with ``resume``).

Pure numpy/torch: never imports Qt.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.fileio import atomic_write

__all__ = [
    "FORMAT",
    "MAX_FILE_BYTES",
    "LabModelError",
    "LabModelFile",
    "load_lab_model",
    "loaded_snapshot",
    "rebuild",
    "save_lab_model",
]

FORMAT = "playground-lab-model"
VERSION = "1"
#: The Lab's nets are kilobytes to a few megabytes; anything far larger is not one of ours.
MAX_FILE_BYTES = 256 * 1024 * 1024


class LabModelError(ValueError):
    """A model file that cannot be used; the message says why, for the user."""


@dataclass(frozen=True)
class LabModelFile:
    """What a model file holds: ``model`` (a key of :data:`engines.lab_views.MODELS`), its
    family, the architecture ``config``, the weights ``state``, the ``step`` reached and
    ``meta`` (``schedule``, ``reflow_round``, ``data``, ... as saved)."""

    model: str
    family: str
    config: dict[str, Any]
    state: dict[str, np.ndarray]
    step: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def rebuild(fam: str, config: dict[str, Any], state: dict[str, np.ndarray]) -> torch.nn.Module:
    """The trained network of family ``fam`` from its config and numpy weights."""
    if fam in ("diffusion", "rf"):
        from engines.nets import net_from_state

        net = net_from_state(config, state)
        return net.train()
    if fam == "flow":
        from engines.flows import build_flow

        flow = build_flow(**config)
        flow.load_state_numpy(state)
        return flow
    if fam == "gan":
        from engines.gans import gan_from_state

        return gan_from_state(config, state)
    raise ValueError(f"no network to rebuild for family {fam!r}")


def save_lab_model(
    path: str | Path,
    *,
    model: str,
    config: dict[str, Any],
    state: dict[str, np.ndarray],
    step: int = 0,
    **meta: Any,
) -> Path:
    """Write one model file atomically (an existing file stays intact if anything fails;
    an unwritable target raises :class:`engines.fileio.ExportError` with a clear message).

    ``meta`` values must be JSON-serialisable (numbers, strings, lists); numpy arrays such as
    a drawn data set are not stored (only ``data``'s name, if it has one).
    """
    from safetensors.numpy import save_file

    from engines.lab_views import MODELS, family

    if model not in MODELS or family(model) == "exact":
        raise ValueError(f"{model!r} is not a trainable Lab model")
    if not state:
        raise ValueError("no weights to save yet: train the model first")
    tensors = {str(k): np.ascontiguousarray(v) for k, v in state.items()}
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "config": json.dumps(config),
        "step": str(int(step)),
        "meta": json.dumps({k: v for k, v in meta.items() if _jsonable(v)}),
    }
    target = Path(path)
    if target.suffix != ".safetensors":
        target = target.with_name(target.name + ".safetensors")
    return atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def load_lab_model(path: str | Path) -> LabModelFile:
    """Read and check a model file; any problem is a :class:`LabModelError` saying what.

    The weights are checked by rebuilding the network from them, so a file that loads here
    samples and trains.
    """
    from safetensors import SafetensorError, safe_open

    from engines.lab_views import MODELS, family

    p = Path(path).expanduser()
    name = p.name
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise LabModelError(f"Cannot read {name}: {exc.strerror or exc}.") from exc
    if size > MAX_FILE_BYTES:
        raise LabModelError(f"{name} is {size / 2**20:.0f} MB: far too large for a Lab model "
                            f"(at most {MAX_FILE_BYTES // 2**20} MB).")
    try:
        with safe_open(str(p), framework="np") as f:
            header = f.metadata() or {}
            state = {k: np.array(f.get_tensor(k)) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise LabModelError(f"{name} is not a safetensors model file ({exc}).") from exc
    if header.get("format") != FORMAT:
        raise LabModelError(f"{name} is a safetensors file, but not a Lab model "
                            "(no 'playground-lab-model' header).")
    if header.get("version") != VERSION:
        raise LabModelError(f"{name} is a Lab model of format version {header.get('version')!r}; "
                            f"this app reads version {VERSION}.")
    model = header.get("model", "")
    if model not in MODELS or family(model) == "exact":
        raise LabModelError(f"{name} names an unknown model {model!r}.")
    try:
        config = json.loads(header.get("config", ""))
        meta = json.loads(header.get("meta", "{}"))
        step = int(header.get("step", "0"))
    except (ValueError, TypeError) as exc:
        raise LabModelError(f"{name} has a damaged header ({exc}).") from exc
    if not isinstance(config, dict) or not isinstance(meta, dict):
        raise LabModelError(f"{name} has a damaged header (config or meta is not a mapping).")
    fam = family(model)
    if not all(np.all(np.isfinite(v)) for v in state.values() if v.dtype.kind == "f"):
        raise LabModelError(f"{name} holds NaN or infinite weights: nothing useful to sample.")
    try:
        rebuild(fam, config, state)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise LabModelError(f"{name}: its weights do not fit its architecture ({exc}).") from exc
    return LabModelFile(model, fam, config, state, max(step, 0), meta)


def loaded_snapshot(
    f: LabModelFile,
    *,
    extent: tuple[float, float, float, float] = (-4.0, 4.0, -4.0, 4.0),
    n: int = 1000,
    seed: int = 0,
    mixture: Any = None,
):
    """A :class:`engines.lab_views.LabTrainSnapshot` for a loaded model, so the panel can
    show it as if it had just trained it: flows and GANs come with samples and their heat
    map (flow density, critic), GANs with the manifold; diffusion and RF are sampled by the
    panel's own sampling controls. Curves start empty (a file keeps weights, not history).
    ``mixture`` (the target's :class:`engines.gmm.GaussianMixture`, if it is one): GANs get
    their mode-coverage readout against it."""
    from engines import lab_views as lv

    empty = np.zeros(0)
    samples = np.zeros((0, 2), np.float32)
    extras: dict[str, Any] = {}
    xlim, ylim = (float(extent[0]), float(extent[1])), (float(extent[2]), float(extent[3]))
    net = rebuild(f.family, f.config, f.state)
    rng = np.random.default_rng(seed)
    if f.family == "flow":
        net.eval()
        with torch.no_grad():
            samples = net.sample(n, rng=rng)  # type: ignore[operator]
            extras.update(heatmap=net.density_grid(xlim, ylim, 100), extent=tuple(extent))  # type: ignore[operator]
    elif f.family == "gan":
        from engines.gans import critic_grid, generator_manifold, generator_push, mode_coverage

        kind = lv.GAN_LOSS_OF.get(f.model, "nonsaturating")
        with torch.no_grad():
            samples = net.sample(n, rng)  # type: ignore[operator]
        pts, push = generator_push(net, kind, net.latent(200, rng))  # type: ignore[arg-type,operator]
        extras.update(heatmap=critic_grid(net, kind, xlim, ylim, 100), extent=tuple(extent),  # type: ignore[arg-type]
                      manifold=generator_manifold(net), push_points=pts, push=push)  # type: ignore[arg-type]
        if mixture is not None:
            cov = mode_coverage(np.asarray(samples), mixture)
            extras.update(modes_hit=cov.modes_hit, n_modes=cov.n_modes, high_quality=cov.high_quality)
    meta = f.meta
    straight = meta.get("straightness")
    if not (isinstance(straight, (int, float)) and math.isfinite(straight)):
        straight = None
    return lv.LabTrainSnapshot(
        model=f.model, step=f.step, loss_steps=empty, loss=empty,
        loss_d=empty if f.family == "gan" else None, floor=None, quality_steps=empty,
        quality=empty, samples=np.asarray(samples, np.float32), fresh=True,
        lr=float(meta.get("lr", 0.0) or 0.0), batch_size=int(meta.get("batch_size", 0) or 0),
        steps_per_s=0.0, config=f.config, state=f.state,
        schedule=str(meta.get("schedule", "linear")),
        straightness=None if straight is None else float(straight),
        reflow_round=int(meta.get("reflow_round", 0) or 0), **extras,
    )

