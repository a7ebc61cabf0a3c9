"""Train the bundled image model (text + sketch → 32×32 image) and write it to ``assets/image``.

Data: procedurally drawn scenes (:mod:`engines.image_data`): a sky by time of day, horizon,
optional mountains and sun/moon, and one named-colour object (circle, square, triangle,
house, tree) at left/middle/right, each with its prompt and a control map (Canny edges of the
drawing, or a hand-sketch-like scribble for 35 % of examples). Fresh scenes are drawn all the
time (a pool of 4096, 8 replaced per step), so nothing is memorised.

Objective: DDPM v-prediction (linear β 1e-4…0.02, 1000 steps) with Min-SNR-5 weights, AdamW,
warm-up then cosine decay (by steps, or by ``--minutes`` of wall clock when that runs ahead),
EMA of the weights (the EMA is what is shipped). v, not ε: an ε model's clean-image guess at
high noise multiplies its errors by up to 1/√ᾱ_T ≈ 160, and after 670 ε steps the samples were
still noise; from those weights v-prediction gave recognisable scenes within 150 steps.

UNet and ControlNet are trained **jointly** here, not in two phases: the ControlNet is built
with ``ControlNetModel.from_unet`` (zero-initialised joins, so at step 0 it changes nothing)
and its residuals are multiplied by a per-example 0/1 "control on" flag (off for 30 % of
examples). The UNet therefore still learns text-only generation (that is what control
scale 0 gives), while the ControlNet learns from the first step instead of waiting for a
finished base model: on this CPU, two phases would each get half the steps. Prompts are
dropped (empty prompt) for 10 % of examples so classifier-free guidance works.

Run (what produced the shipped weights; see assets/image/README.md for the figures, measured
on a shared 2-core CPU, no GPU, one thread; ≈2.2 s per step of 32 when the machine is calm)::

    nohup .venv/bin/python scripts/train_image.py --steps 2450 --batch 32 --minutes 56 --resume \
        --out assets/image >> runs/train_image.log 2>&1 &

It uses one CPU thread (``--threads``) so the machine stays usable, CUDA when present, and
runs unchanged under ``torchrun --nproc_per_node=N`` (DDP; each rank draws its own scenes,
rank 0 logs and saves). Every ``--save-every`` seconds it writes the EMA model to ``--out``
(a usable model exists even if the run is stopped) and the full training state (weights,
EMA, AdamW moments, step) to ``--state`` as safetensors + JSON; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engines.image_data import RESOLUTION, make_example, to_model_control, to_model_image  # noqa: E402
from engines.image_model import BundledModel, default_config, min_snr_weight, v_target  # noqa: E402

POOL = int(os.environ.get("IMAGE_POOL", "4096"))
REFRESH = 8


class JointLoss(nn.Module):
    """All three networks in one module, so DDP wraps (and all-reduces) them as one."""

    def __init__(self, model: BundledModel, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.unet = model.unet
        self.controlnet = model.controlnet
        self.text_encoder = model.text_encoder
        self.register_buffer("alphas_cumprod", alphas_cumprod)

    def forward(
        self, x0: torch.Tensor, prompts: list[str], control: torch.Tensor, control_on: torch.Tensor
    ) -> torch.Tensor:
        b = x0.shape[0]
        t = torch.randint(0, self.alphas_cumprod.shape[0], (b,), device=x0.device)
        a = self.alphas_cumprod[t].view(b, 1, 1, 1)
        noise = torch.randn_like(x0)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        h = self.text_encoder(prompts)
        down, mid = self.controlnet(
            xt, t, encoder_hidden_states=h, controlnet_cond=control, conditioning_scale=1.0, return_dict=False
        )
        flag = control_on.view(b, 1, 1, 1)
        down = [d * flag for d in down]
        mid = mid * flag
        pred = self.unet(
            xt,
            t,
            encoder_hidden_states=h,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        per_example = (pred - v_target(x0, noise, a)).pow(2).mean(dim=(1, 2, 3))
        return (per_example * min_snr_weight(self.alphas_cumprod, t)).mean()


class Pool:
    """A pool of drawn scenes refreshed a few per step: fresh data at a fraction of the drawing cost."""

    def __init__(self, size: int, seed: int, rank: int, resolution: int) -> None:
        self.rng = np.random.default_rng([seed, 7919, rank])
        self.resolution = resolution
        items = [make_example(self.rng, resolution) for _ in range(size)]
        self.images = np.stack([i[0] for i in items])
        self.prompts = [i[1] for i in items]
        self.controls = np.stack([i[2] for i in items])

    def refresh(self, n: int) -> None:
        for _ in range(n):
            k = int(self.rng.integers(len(self.prompts)))
            self.images[k], self.prompts[k], self.controls[k] = make_example(self.rng, self.resolution)

    def batch(self, b: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
        idx = self.rng.integers(len(self.prompts), size=b)
        return (
            to_model_image(self.images[idx]),
            [self.prompts[i] for i in idx],
            to_model_control(self.controls[idx]),
        )


def _opt_state_tensors(
    opt: torch.optim.Optimizer, params: list[nn.Parameter]
) -> tuple[dict[str, torch.Tensor], dict]:
    index = {id(p): i for i, p in enumerate(params)}
    tensors: dict[str, torch.Tensor] = {}
    for p, st in opt.state.items():
        i = index[id(p)]
        for k, v in st.items():
            tensors[f"{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    return tensors, {}


def save_state(
    folder: Path,
    step: int,
    model: BundledModel,
    ema: list[torch.Tensor],
    opt: torch.optim.Optimizer,
    params: list[nn.Parameter],
    meta: dict,
) -> None:
    """Training state as safetensors + JSON (no pickles), written atomically file by file."""
    from safetensors.torch import save_file

    from engines.fileio import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    weights = {f"p{i}": p.detach().cpu().contiguous() for i, p in enumerate(params)}
    emas = {f"p{i}": e.detach().cpu().contiguous() for i, e in enumerate(ema)}
    moments, _ = _opt_state_tensors(opt, params)
    atomic_write(folder / "weights.safetensors", lambda p: save_file(weights, str(p)))
    atomic_write(folder / "ema.safetensors", lambda p: save_file(emas, str(p)))
    atomic_write(
        folder / "optimizer.safetensors", lambda p: save_file(moments or {"empty": torch.zeros(1)}, str(p))
    )
    atomic_write(folder / "state.json", lambda p: p.write_text(json.dumps({**meta, "step": step}, indent=1)))


def load_state(
    folder: Path, params: list[nn.Parameter], ema: list[torch.Tensor], opt: torch.optim.Optimizer
) -> dict:
    from safetensors.torch import load_file

    meta = json.loads((folder / "state.json").read_text())
    weights = load_file(str(folder / "weights.safetensors"))
    emas = load_file(str(folder / "ema.safetensors"))
    moments = load_file(str(folder / "optimizer.safetensors"))
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(weights[f"p{i}"])
            ema[i].copy_(emas[f"p{i}"])
    for i, p in enumerate(params):
        if f"{i}.exp_avg" in moments:
            opt.state[p] = {
                k.split(".", 1)[1]: v.to(p.device) for k, v in moments.items() if k.split(".", 1)[0] == str(i)
            }
            opt.state[p]["step"] = opt.state[p]["step"].float().cpu()
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--steps", type=int, default=2400, help="total optimizer steps (the LR schedule spans them)"
    )
    ap.add_argument("--batch", type=int, default=32, help="examples per step per process")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "assets" / "image", help="where the EMA model is written"
    )
    ap.add_argument(
        "--state", type=Path, default=ROOT / "runs" / "image_state", help="resumable training state"
    )
    ap.add_argument("--resume", action="store_true", help="continue from --state")
    ap.add_argument("--device", default="auto", help="auto|cpu|cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1 keeps the machine usable)")
    ap.add_argument("--save-every", type=float, default=240.0, help="seconds between checkpoints")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument(
        "--minutes",
        type=float,
        default=0.0,
        help="wall-clock budget of this process: the LR schedule runs to its end by then and the run "
        "stops and saves (a shared, busy CPU makes step counts unpredictable); 0 = steps only",
    )
    args = ap.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(f"cuda:{local_rank}" if args.device == "cuda" else args.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, args.threads))
    else:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    main_proc = rank == 0

    def log(msg: str) -> None:
        if main_proc:
            print(time.strftime("%H:%M:%S"), msg, flush=True)

    from diffusers import DDPMScheduler

    cfg = default_config()
    model = BundledModel.build(cfg, seed=args.seed)  # same init on every rank
    model.to(device)
    sched = DDPMScheduler(**cfg["schedule"])
    net = JointLoss(model, sched.alphas_cumprod.to(device))
    params = [p for p in net.parameters() if p.requires_grad]
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    start = 0
    meta: dict = {"seconds": 0.0, "examples": 0}
    if args.resume and (args.state / "state.json").is_file():
        meta = load_state(args.state, params, ema, opt)
        start = int(meta["step"])
        log(f"resumed from {args.state} at step {start}")
    # Noise and timesteps differ per rank and per (re)start; the model init above is shared.
    torch.manual_seed(args.seed * 100_003 + 1009 * rank + start)
    train_net: nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    counts = model.parameter_count()
    log(f"device {device} world {world} threads {torch.get_num_threads()} params {counts} batch {args.batch}")
    t_draw = time.time()
    pool = Pool(POOL if device.type == "cpu" else 4 * POOL, args.seed + 1000 * start, rank, RESOLUTION)
    log(f"drew the scene pool in {time.time() - t_draw:.0f} s")

    warm = 100
    t_begin = time.time()

    def step_frac(step: int) -> float:
        return min(1.0, max(0.0, (step - warm) / max(1, args.steps - warm)))

    f_begin = step_frac(start)

    def progress(step: int) -> float:
        """Schedule position in [0, 1]: by steps, or by the wall-clock budget if that is ahead."""
        frac = step_frac(step)
        if args.minutes > 0:
            frac = max(frac, f_begin + (1 - f_begin) * (time.time() - t_begin) / (60 * args.minutes))
        return min(1.0, frac)

    def lr_at(step: int) -> float:
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress(step))))

    def save(step: int) -> None:
        if not main_proc:
            return
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, e in zip(params, ema, strict=True):
                p.copy_(e)
            model.save(
                args.out,
                {
                    "training": {
                        "step": step,
                        "batch": args.batch * world,
                        "seconds": round(meta["seconds"]),
                        "device": str(device),
                        "loss_ema": round(loss_avg, 5),
                    }
                },
            )
            for p, v in zip(params, live, strict=True):
                p.copy_(v)
        save_state(args.state, step, model, ema, opt, params, {**meta, "loss_ema": loss_avg})
        log(f"saved step {step} to {args.out} and {args.state}")

    loss_avg = float(meta.get("loss_ema", 0.0)) or 0.0
    last_save = time.time()
    t_prev = time.time()
    step = start
    net.train()
    while step < args.steps and not (args.minutes > 0 and progress(step) >= 1.0):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        pool.refresh(REFRESH)
        x0, prompts, control = pool.batch(args.batch)
        b = x0.shape[0]
        gen = pool.rng
        prompts = ["" if gen.random() < 0.1 else p for p in prompts]
        control_on = torch.from_numpy((gen.random(b) >= 0.3).astype(np.float32))
        loss = train_net(x0.to(device), prompts, control.to(device), control_on.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        lv = float(loss.detach())
        if not math.isfinite(lv):
            log(f"non-finite loss at step {step}; stopping without saving")
            return 1
        loss_avg = lv if loss_avg == 0.0 else 0.98 * loss_avg + 0.02 * lv
        now = time.time()
        meta["seconds"] += now - t_prev
        meta["examples"] += b * world
        t_prev = now
        if main_proc and (step % 25 == 0 or step == start + 1):
            log(
                f"step {step}/{args.steps} loss {lv:.4f} avg {loss_avg:.4f} lr {lr_at(step):.2e} "
                f"{meta['seconds'] / max(1, step):.2f} s/step elapsed {meta['seconds'] / 60:.1f} min"
            )
        if now - last_save > args.save_every:
            save(step)
            last_save = time.time()
    save(step)
    log(f"done: {step} steps, {meta['examples']} examples, {meta['seconds'] / 60:.1f} min")
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
