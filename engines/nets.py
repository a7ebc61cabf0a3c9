"""Small time-conditioned MLPs shared by the diffusion and flow-matching engines.

Why one network for both: a diffusion eps/x0/v-predictor, a flow-matching velocity field and a
noise-aware classifier are all the same object in 2-D: a map ``(x, t[, class]) -> R^k``. Sharing
it means the GUI shows one architecture diagram, and one fast inference path
(:class:`FastMLP`) speeds up every sampler.

Architecture (``TimeMLP``)::

    h0 = SiLU( W_x x + W_t emb(t) + E[y] + b )     emb: fixed sinusoidal features of t in [0, 1]
    h_i = SiLU( W_i h_{i-1} + b_i )                 i = 1 .. depth-1   (width x width)
    out = W_o h_{depth-1} + b_o

``depth`` counts hidden layers, so ``width=128, depth=3`` is the "3x128" MLP of the benchmarks
(2+T -> 128 -> 128 -> 128 -> 2). The class embedding ``E`` has ``n_classes + 1`` rows: the last
row is the *null* class used for classifier-free guidance; a negative label (the convention of
:mod:`engines.gmm`'s oracles) also means "unconditional".

Why :class:`FastMLP` exists: at sampling time every particle shares the same ``t``, so
``W_t emb(t) + b`` is one vector per step, not an (N, T) matmul; folding it into the first
layer's bias removes the time-feature matmul and the ``cat`` entirely. The remaining layers run
as ``addmm`` into preallocated buffers with in-place SiLU, so a sampling step allocates nothing.

Pure torch: never imports Qt.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engines.jobs import ParamBox

__all__ = [
    "BatchFn",
    "ChunkedTrainer",
    "FastMLP",
    "TimeMLP",
    "TrainSnapshot",
    "net_from_state",
    "run_train_job",
    "sinusoidal_embedding",
    "state_to_numpy",
]


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_freq: float = 1000.0) -> torch.Tensor:
    """Fixed Fourier features ``[sin(w_k t), cos(w_k t)]`` of ``t`` (any shape) -> (..., dim).

    Frequencies are log-spaced in [1, max_freq] rad per unit t, so with t in [0, 1] the
    slowest feature is monotone over the whole range and the fastest resolves ~1/1000 steps
    (the DDPM table resolution). ``dim`` must be even.
    """
    if dim % 2:
        raise ValueError(f"time embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        torch.linspace(0.0, math.log(max_freq), half, dtype=torch.float32, device=t.device)
    )
    arg = t.to(torch.float32)[..., None] * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


class TimeMLP(nn.Module):
    """``(x, t, labels) -> R^out_dim`` with SiLU hidden layers; see the module docstring.

    ``prediction`` is metadata the diffusion engine reads ("eps", "x0" or "v" for a denoiser,
    "velocity" for flow matching, "logits" for a classifier); the network itself does not care.
    ``time_dim=0`` feeds raw ``t`` as a single feature (the plain baseline MLP).
    """

    def __init__(
        self,
        dim: int = 2,
        width: int = 128,
        depth: int = 3,
        time_dim: int = 32,
        n_classes: int = 0,
        out_dim: int | None = None,
        prediction: str = "eps",
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"need depth >= 1 and width >= 1, got depth={depth} width={width}")
        self.dim = int(dim)
        self.width = int(width)
        self.depth = int(depth)
        self.time_dim = int(time_dim)
        self.n_classes = int(n_classes)
        self.out_dim = int(out_dim if out_dim is not None else dim)
        self.prediction = prediction
        t_feats = self.time_dim if self.time_dim > 0 else 1
        self.inp = nn.Linear(self.dim + t_feats, self.width)
        self.hidden = nn.ModuleList(nn.Linear(self.width, self.width) for _ in range(depth - 1))
        self.out = nn.Linear(self.width, self.out_dim)
        self.class_emb: nn.Embedding | None = None
        if self.n_classes > 0:
            self.class_emb = nn.Embedding(self.n_classes + 1, self.width)
            # Small init: the class signal starts as a gentle bias, not a random kick that the
            # unconditional (null) branch would first have to unlearn.
            nn.init.normal_(self.class_emb.weight, std=0.1)

    @property
    def null_class(self) -> int:
        """Index of the "no label" row of the class embedding (CFG's unconditional branch)."""
        return self.n_classes

    def config(self) -> dict[str, int | str]:
        """Constructor arguments, so a frozen ``state_dict`` snapshot can be rebuilt."""
        return {
            "dim": self.dim,
            "width": self.width,
            "depth": self.depth,
            "time_dim": self.time_dim,
            "n_classes": self.n_classes,
            "out_dim": self.out_dim,
            "prediction": self.prediction,
        }

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """(N,) or (N, 1) times -> (N, T) features fed to the first layer."""
        t = t.reshape(-1)
        if self.time_dim > 0:
            return sinusoidal_embedding(t, self.time_dim)
        return t.to(torch.float32)[:, None]

    def class_rows(self, labels: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
        """(N, width) class embedding rows, null row for ``None`` or negative labels."""
        if self.class_emb is None:
            return None
        if labels is None:
            idx = torch.full((n,), self.null_class, dtype=torch.long, device=device)
        else:
            idx = torch.as_tensor(labels, device=device).to(torch.long).reshape(-1)
            if idx.numel() == 1 and n != 1:
                idx = idx.expand(n)
            idx = torch.where(idx < 0, torch.full_like(idx, self.null_class), idx)
            if bool((idx > self.null_class).any()):
                raise ValueError(f"labels must be < {self.n_classes}")
        return self.class_emb(idx)

    def input_features(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """``cat([x, emb(t)])`` (N, dim + T): what the first layer sees.

        Exposed so a trainer can build the features of many steps in one vectorised call.
        """
        n = x.shape[0]
        tt = torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1)
        if tt.numel() == 1 and n != 1:
            tt = tt.expand(n)
        return torch.cat([x.to(torch.float32), self.time_features(tt)], dim=1)

    def forward_features(
        self, feats: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Forward pass from precomputed :meth:`input_features` (and optional labels)."""
        h = self.inp(feats)
        rows = self.class_rows(labels, feats.shape[0], feats.device)
        if rows is not None:
            h = h + rows
        h = F.silu(h)
        for layer in self.hidden:
            h = F.silu(layer(h))
        return self.out(h)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | float, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_features(self.input_features(x, t), labels)


class FastMLP:
    """Inference-only, allocation-free view of a :class:`TimeMLP` for sampling loops.

    Built once per sampling run (it copies the weights, so it is a frozen snapshot that a
    training thread cannot change underneath). ``__call__(x, t, labels)`` takes one scalar
    ``t`` for all particles and returns the raw network output in a buffer that the *next*
    call overwrites: callers that keep a history (multistep solvers) must copy.

    ``dtype=torch.bfloat16`` runs the hidden layers in bfloat16 (state and output stay
    float32). On CPUs with AVX512-BF16 that doubles matmul throughput at ~1e-3 relative error
    in the output: good for a live preview of 10k particles, not for accuracy tests.
    ``chunk`` processes the particles in row blocks of that many rows, so activations stay in
    cache (~1.3x faster single-threaded at 10k particles); ``None`` = one block. The default
    ``"auto"`` chunks only when torch runs one intra-op thread: with several, every block is
    one more OpenMP barrier per layer, and on a machine shared with other busy processes
    each barrier can wait a whole scheduler slice (measured: 10x slower, not 10% faster).
    """

    def __init__(
        self,
        net: TimeMLP,
        dtype: torch.dtype = torch.float32,
        chunk: int | str | None = "auto",
    ) -> None:
        self.net_config = net.config()
        self.dtype = dtype
        if chunk == "auto":
            chunk = 2048 if torch.get_num_threads() == 1 else None
        if isinstance(chunk, str) or (chunk is not None and chunk < 1):
            raise ValueError(f"chunk must be a positive int, None or 'auto', got {chunk!r}")
        self.chunk: int | None = chunk
        self.time_dim = net.time_dim
        self.dim = net.dim
        dev = net.inp.weight.device
        self.device = dev
        with torch.no_grad():
            w_in = net.inp.weight.detach().to(torch.float32)
            # (in, out) layouts: addmm(bias, h, W) with W contiguous is MKL's fastest shape.
            self.w_x = w_in[:, : net.dim].t().contiguous().to(dtype)
            self.w_t = w_in[:, net.dim :].t().contiguous()  # float32, used once per step
            self.b_in = net.inp.bias.detach().to(torch.float32).clone()
            self.hidden = [
                (lay.weight.detach().t().contiguous().to(dtype), lay.bias.detach().to(dtype).clone())
                for lay in net.hidden
            ]
            # The output layer is the exception: (N, width) @ (width, 2) in MKL's "NN" layout is
            # ~4x slower than the same product from an (out, in) weight passed transposed.
            self.w_out_t = net.out.weight.detach().to(dtype).clone().contiguous()
            self.w_out = self.w_out_t.t()
            self.b_out = net.out.bias.detach().to(dtype).clone()
            self.class_table = (
                net.class_emb.weight.detach().to(torch.float32).clone()
                if net.class_emb is not None
                else None
            )
        self.null_class = net.n_classes
        self._bufs: dict[int, tuple[torch.Tensor, ...]] = {}
        self._per_n: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._label_cache: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)

    def _buffers(self, n: int) -> tuple[torch.Tensor, ...]:
        """Row-block work buffers (two activations, a cast input, a cast output)."""
        rows = n if self.chunk is None else min(n, self.chunk)
        if rows not in self._bufs:
            width = self.w_out.shape[0]
            dt, dev = self.dtype, self.device
            self._bufs = {
                rows: (
                    torch.empty(rows, width, dtype=dt, device=dev),
                    torch.empty(rows, width, dtype=dt, device=dev),
                    torch.empty(rows, self.dim, dtype=dt, device=dev),
                    torch.empty(rows, self.w_out.shape[1], dtype=dt, device=dev),
                )
            }
        return self._bufs[rows]

    def _full_buffers(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole-batch buffers: the float32 output and the per-particle first-layer bias."""
        if n not in self._per_n:
            width = self.w_out.shape[0]
            self._per_n = {
                n: (
                    torch.empty(n, self.w_out.shape[1], dtype=torch.float32, device=self.device),
                    torch.empty(n, width, dtype=self.dtype, device=self.device),
                )
            }
        return self._per_n[n]

    def first_bias(self, t: float) -> torch.Tensor:
        """``b + W_t emb(t)``: the whole time conditioning as one (width,) float32 vector."""
        tt = torch.tensor([float(t)], dtype=torch.float32, device=self.device)
        feats = sinusoidal_embedding(tt, self.time_dim) if self.time_dim > 0 else tt[:, None]
        return torch.addmm(self.b_in[None], feats, self.w_t)[0]

    def _class_rows(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        """(N, width) class rows, cached by tensor identity (labels are fixed per run)."""
        assert self.class_table is not None
        key, cached = self._label_cache
        if key is labels and cached is not None and cached.shape[0] == n:
            return cached
        idx = torch.as_tensor(labels, device=self.device).to(torch.long).reshape(-1)
        if idx.numel() == 1 and n != 1:
            idx = idx.expand(n)
        if idx.numel() != n:
            raise ValueError(f"labels must be an int or have N={n} entries, got {idx.numel()}")
        idx = torch.where(idx < 0, torch.full_like(idx, self.null_class), idx)
        rows = self.class_table[idx]
        self._label_cache = (labels, rows)
        return rows

    def __call__(
        self, x: torch.Tensor, t: float, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Network output (N, out_dim) float32 for all particles at one time ``t``.

        The result lives in a buffer that the next call with the same N overwrites.
        """
        n = x.shape[0]
        h1, h2, xb, ob = self._buffers(n)
        out, bias_buf = self._full_buffers(n)
        rows = h1.shape[0]
        bias = self.first_bias(t)
        low = self.dtype != torch.float32
        full_bias: torch.Tensor
        if self.class_table is not None and labels is not None:
            torch.add(self._class_rows(labels, n), bias, out=bias_buf)
            full_bias = bias_buf
        else:
            if self.class_table is not None:  # unconditional: the null row is just a bias
                bias = bias + self.class_table[self.null_class]
            full_bias = bias.to(self.dtype) if low else bias
        for s in range(0, n, rows):
            e = min(s + rows, n)
            m = e - s
            a, b = h1[:m], h2[:m]
            xs = x[s:e]
            if low:
                xb[:m].copy_(xs)
                xs = xb[:m]
            fb = full_bias if full_bias.ndim == 1 else full_bias[s:e]
            torch.addmm(fb, xs, self.w_x, out=a)
            F.silu(a, inplace=True)
            for w, bb in self.hidden:
                torch.addmm(bb, a, w, out=b)
                F.silu(b, inplace=True)
                a, b = b, a
            if low:
                torch.addmm(self.b_out, a, self.w_out, out=ob[:m])
                out[s:e].copy_(ob[:m])
            else:
                torch.addmm(self.b_out, a, self.w_out, out=out[s:e])
        return out


# ====================================================================== training helpers


def dropped_labels(
    net: TimeMLP, labels: np.ndarray, rng: np.random.Generator, p_uncond: float, k: int, b: int
) -> torch.Tensor | None:
    """Class labels for a (k, b) chunk, each replaced by the null class (-1) with probability
    ``p_uncond``: classifier-free guidance needs one network that knows p(x) and p(x | y).
    ``None`` for an unconditional net."""
    if net.n_classes <= 0:
        return None
    lab = np.array(labels, dtype=np.int64, copy=True)
    lab[rng.random(lab.shape[0]) < p_uncond] = -1
    return torch.from_numpy(lab).to(net.inp.weight.device).reshape(k, b)


def state_to_numpy(net: nn.Module) -> dict[str, np.ndarray]:
    """A frozen copy of the weights as numpy arrays (what a job snapshot may carry)."""
    return {k: v.detach().to("cpu", copy=True).numpy() for k, v in net.state_dict().items()}


def net_from_state(config: dict[str, Any], state: dict[str, np.ndarray]) -> TimeMLP:
    """Rebuild a :class:`TimeMLP` from ``net.config()`` and :func:`state_to_numpy` output."""
    net = TimeMLP(**config)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return net.eval()


# make_batches(k, batch_size) -> (features (K, B, F), targets (K, B, out) or class ids (K, B),
# labels for the class embedding (K, B) or None)
BatchFn = Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


class ChunkedTrainer:
    """AdamW on a :class:`TimeMLP`, with the random inputs of K steps built in one go.

    Why chunks: at batch 256 a 3x128 MLP step is ~1 ms, most of it per-op overhead, so the
    data draw, noising and time embedding are vectorised over the K steps of a GUI chunk
    (``make_batches``) and each step is only forward, loss, backward and a *fused* AdamW
    update. Learning rate and batch size are arguments of :meth:`run`, so a job can change
    them between chunks without rebuilding the optimizer (Adam's moments are kept).

    ``loss="mse"`` regresses targets (denoisers, velocities); ``loss="ce"`` classifies
    (targets are class ids), for the noise-aware classifier.

    ``ema > 0`` keeps an exponential moving average of the weights in :attr:`ema_net`
    (decay warmed up as ``min(ema, (1 + n)/(10 + n))``). Why: a generative model's samples
    are very sensitive to the last few noisy SGD steps (mode weights wobble from step to
    step); the average is what diffusion models are sampled from in practice.
    """

    def __init__(
        self,
        net: TimeMLP,
        make_batches: BatchFn,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        loss: str = "mse",
        ema: float = 0.0,
    ) -> None:
        if loss not in ("mse", "ce"):
            raise ValueError(f"loss must be 'mse' or 'ce', got {loss!r}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {ema}")
        self.net = net
        self.make_batches = make_batches
        self.loss_kind = loss
        params = list(net.parameters())
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
        self.steps_done = 0
        self.ema = float(ema)
        self.ema_net: TimeMLP | None = None
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.ema > 0.0:
            self.ema_net = copy.deepcopy(net).eval()
            for p in self.ema_net.parameters():
                p.requires_grad_(False)
            self._pairs = list(zip(self.ema_net.parameters(), params, strict=True))

    @property
    def sampling_net(self) -> TimeMLP:
        """The weights to sample from: the EMA copy if there is one, else the live net."""
        return self.ema_net if self.ema_net is not None else self.net

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = float(lr)

    def run(self, k: int, batch_size: int, lr: float | None = None) -> np.ndarray:
        """Do ``k`` optimisation steps; returns their losses (k,) float64."""
        if lr is not None:
            self.set_lr(lr)
        self.net.train()
        feats, targets, labels = self.make_batches(int(k), int(batch_size))
        losses = torch.empty(int(k), dtype=torch.float32)
        loss_fn = F.cross_entropy if self.loss_kind == "ce" else F.mse_loss
        for i in range(int(k)):
            self.opt.zero_grad(set_to_none=True)
            out = self.net.forward_features(feats[i], None if labels is None else labels[i])
            loss = loss_fn(out, targets[i])
            loss.backward()
            self.opt.step()
            losses[i] = loss.detach()
            if self._pairs:
                n = self.steps_done + i
                w = 1.0 - min(self.ema, (1.0 + n) / (10.0 + n))
                with torch.no_grad():
                    for e, p in self._pairs:
                        e.lerp_(p, w)
        self.steps_done += int(k)
        self.net.eval()
        return losses.numpy().astype(np.float64)


@dataclass(frozen=True)
class TrainSnapshot:
    """What a training job yields to the GUI: numbers and numpy copies only.

    ``losses`` is the tail of the per-step loss history; ``preview`` (M, 2) samples of the
    current model and ``state`` (weights as numpy, rebuild with :func:`net_from_state` and
    ``config``) arrive only on preview steps (and with the final snapshot).
    """

    step: int
    loss: float
    losses: np.ndarray
    lr: float
    batch_size: int
    steps_per_s: float
    elapsed_s: float
    preview: np.ndarray | None = None
    state: dict[str, np.ndarray] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    done: bool = False


def run_train_job(
    params: ParamBox,
    trainer: ChunkedTrainer,
    preview: Callable[[], tuple[np.ndarray, dict[str, float]]] | None,
    *,
    max_steps: int | None = None,
    preview_every: int = 500,
    chunk_s: float = 0.03,
    history: int = 2000,
    default_lr: float = 1e-3,
    default_batch: int = 256,
) -> Iterator[TrainSnapshot]:
    """The chunked training loop behind every "train" button, as a job generator.

    Each ``next()`` reads ``params`` once (``lr``, ``batch_size``, optional ``max_steps``
    and ``preview_every``), trains for about ``chunk_s`` seconds (the chunk length adapts to the
    measured step time, so pause/cancel stay instant whatever the batch size) and yields a
    :class:`TrainSnapshot`. Preview samples and a weight copy come every ``preview_every``
    steps and at the end, since sampling costs more than a chunk. ``preview()`` returns the
    samples and a dict of extra figures (e.g. straightness) for the snapshot's ``extra``.
    """
    losses_hist = np.zeros(0, dtype=np.float64)
    step_time = 1e-3
    start = time.perf_counter()
    last_preview = -1
    while True:
        p = params.get()
        lr = float(p.get("lr", default_lr))
        batch = max(1, int(p.get("batch_size", default_batch)))
        limit = p.get("max_steps", max_steps)
        every = max(1, int(p.get("preview_every", preview_every)))
        done_steps = trainer.steps_done
        if limit is not None and done_steps >= int(limit):
            return
        k = int(np.clip(chunk_s / max(step_time, 1e-6), 1, 2000))
        if limit is not None:
            k = min(k, int(limit) - done_steps)
        t0 = time.perf_counter()
        chunk_losses = trainer.run(k, batch, lr)
        dt = time.perf_counter() - t0
        step_time = 0.5 * step_time + 0.5 * dt / k
        losses_hist = np.concatenate([losses_hist, chunk_losses])[-history:]
        step = trainer.steps_done
        finished = limit is not None and step >= int(limit)
        crossed = step // every != done_steps // every or last_preview < 0
        samples = state = None
        extra: dict[str, float] = {}
        if preview is not None and (crossed or finished):
            samples, extra = preview()
            state = state_to_numpy(trainer.sampling_net)
            last_preview = step
        tail = losses_hist.copy()
        tail.setflags(write=False)
        yield TrainSnapshot(
            step=step,
            loss=float(chunk_losses.mean()),
            losses=tail,
            lr=lr,
            batch_size=batch,
            steps_per_s=k / dt if dt > 0 else float("inf"),
            elapsed_s=time.perf_counter() - start,
            preview=samples,
            state=state,
            config=trainer.net.config(),
            extra=extra,
            done=finished,
        )
        if finished:
            return
