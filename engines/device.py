"""Device choice, in one place, so every engine and the status bar agree.

"auto" prefers CUDA, then Apple's MPS, then the CPU. Engines receive a ``torch.device``
and never decide for themselves; the GUI and the CLI pass the user's choice through
:func:`choose_device`.
"""

from __future__ import annotations

import os

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(preference: str | None = "auto") -> torch.device:
    """Resolve a user preference to a usable device.

    An explicit ``cuda``/``mps`` request on a machine without one raises, because silently
    falling back would make a user's benchmark figures lie about where they ran.
    """
    pref = (preference or "auto").lower()
    if pref not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but torch sees no CUDA device")
    if pref == "mps" and not _mps_available():
        raise RuntimeError("MPS was requested but this torch build has no usable MPS backend")
    return torch.device(pref)


def describe_device(device: torch.device) -> str:
    """A short human label for the status bar, e.g. ``CUDA: NVIDIA H100`` or ``CPU (2 threads)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA: {torch.cuda.get_device_name(index)}"
    if device.type == "mps":
        return "MPS (Apple GPU)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"



def configure_threads(reserve: int = 1) -> int:
    """Give torch the cores minus ``reserve`` (at least one), and return the count.

    The GUI thread needs a core of its own: measured here, a 20-step generation of the
    bundled image model took 0.88 s with one torch thread but ~100 s with two while another
    process kept one core busy (OpenMP threads spin waiting for the busy core).
    ``PLAYGROUND_TORCH_THREADS`` overrides.
    """
    env = os.environ.get("PLAYGROUND_TORCH_THREADS")
    cores = os.cpu_count() or 1
    n = int(env) if env and env.isdigit() and int(env) > 0 else max(1, cores - reserve)
    torch.set_num_threads(n)
    return n
