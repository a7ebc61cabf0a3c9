"""``playground lab``: train a 2D Lab model headless and print the panel's figures.

Parsing, files and printing only; the work is :func:`engines.lab_cli.run_lab`, so the
command and the panel cannot disagree about what a figure means.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

PROG = "playground lab"

DESCRIPTION = """\
Train one 2D Lab model on one toy data set (or on your own points, --data-in), draw
samples and score them.

Every model starts from the same N(0, I) noise for a given --seed (the sampler's x_T,
the flow's or GAN's latent), so runs with different samplers or NFE can be compared
trajectory by trajectory; the report's init_noise fingerprint shows it.

Printed (with --json, one JSON object): model, data, train_steps, train_seconds, loss
(mean of the last 50 training steps; loss_kind says which objective), sampler, nfe,
swd (sliced W2 to as many fresh target samples) next to swd_floor (the same distance
between two fresh target draws: the best any model can score at this sample size);
rf: straightness (0 = straight paths, one Euler step suffices) and with --reflow
straightness_by_round; flows: nll in nats on fresh target samples and the entropy
floor when known; mixture targets (8gaussians, 25gaussians): modes_covered, n_modes
and high_quality; GANs: the settings used (gan_loss, lr_g, lr_d, n_critic, latent_dim).
With --data-in the model trains on the file's points (rows resampled as batches) and
is scored against resampled rows of the same set; data_in and n_points are reported.
"""

EPILOG = """\
examples:
  playground lab --model ddpm --data 8gaussians --oracle --sampler heun --nfe 19
  playground lab --model rf --data moons --train-steps 2000 --reflow 1 --nfe 4
  playground lab --model realnvp --data 2spirals --train-steps 3000 --json
  playground lab --model wgan-gp --data 25gaussians --train-steps 2000 --samples-out g.npy
  playground lab --model gan --data 8gaussians --train-steps 1000 --gan-loss minimax --lr-d 4e-3
  playground lab --model realnvp --data-in my_points.csv --train-steps 2000
  playground lab --model rf --data moons --train-steps 3000 --reflow 1 --model-out rf.safetensors

Exit status: 0 on success, 2 for bad options (one line on stderr), 1 when an output
file cannot be written.
"""


# A literal, not engines.lab_cli.MODELS: building the parser must not import torch, or every
# ``playground`` command (even --version) would pay for it. A test keeps the two equal.
MODELS: tuple[str, ...] = ("ddpm", "rf", "nice", "realnvp", "glow", "nsf", "gan", "wgan", "wgan-gp")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``lab`` parser. Models, data sets and samplers are checked in :func:`run`, not
    by argparse ``choices``, so a typo gets the one-line message the issue asks for."""
    p = sub.add_parser(
        "lab", parents=[common], help="train a 2D Lab model headless and print its scores",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="{" + ",".join(MODELS) + "}",
                   help="ddpm (diffusion), rf (rectified flow), a normalizing flow or a GAN")
    p.add_argument("--data", default=None, metavar="NAME",
                   help="toy data set: 8gaussians, 25gaussians, moons, rings, swissroll, 2spirals, "
                        "checkerboard, pinwheel (or give --data-in)")
    p.add_argument("--data-in", type=Path, default=None, metavar="FILE",
                   help="train on your own point set instead of --data: .npy (an (n, 2) array) or "
                        ".csv/.txt (two numbers per line, optional x,y header), as the Lab exports")
    p.add_argument("--train-steps", type=int, default=None, metavar="N",
                   help="optimizer steps (GANs: generator steps); required unless --oracle")
    p.add_argument("--sampler", default=None,
                   help="ddpm: ddpm, ddim (default), sde, euler, heun, dpm++; rf: euler (default), heun")
    p.add_argument("--nfe", type=int, default=None, metavar="K",
                   help="model evaluations for sampling (default 50; heun uses 2 per step)")
    p.add_argument("--eta", type=float, default=None, metavar="E",
                   help="DDIM noise, 0 (deterministic) to 1 (DDPM); --sampler ddim only")
    p.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance scale: trains a class-conditional model (labels "
                        "from the data set's classes) and samples equal counts per class")
    p.add_argument("--reflow", type=int, default=0, metavar="K",
                   help="rf: K reflow rounds after training, each --train-steps long")
    p.add_argument("--oracle", action="store_true",
                   help="sample with the exact Gaussian-mixture model instead of a trained one "
                        "(ddpm: vp_eps, rf: rf_velocity; 8gaussians/25gaussians only; no training)")
    g = p.add_argument_group("GAN options (--model gan, wgan, wgan-gp)")
    g.add_argument("--gan-loss", default=None, metavar="{nonsaturating,minimax}",
                   help="--model gan only: the generator loss (default nonsaturating; minimax "
                        "saturates when D wins early)")
    g.add_argument("--lr-g", type=float, default=None, metavar="LR",
                   help="generator learning rate (default: the loss's preset, 1e-3; wgan 5e-4)")
    g.add_argument("--lr-d", type=float, default=None, metavar="LR",
                   help="discriminator / critic learning rate (default as --lr-g)")
    g.add_argument("--n-critic", type=int, default=None, metavar="K",
                   help="discriminator steps per generator step (default 1; WGANs 5)")
    g.add_argument("--latent-dim", type=int, default=None, metavar="D",
                   help="latent size of the generator (default 2: then the latent codes are the "
                        "run's shared initial noise)")
    p.add_argument("--samples", type=int, default=2000, metavar="N",
                   help="samples to draw and score (default 2000)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of everything; the same seed gives every sampler the same initial noise")
    p.add_argument("--samples-out", type=Path, default=None, metavar="FILE.npy",
                   help="write the generated samples, (N, 2) float32")
    p.add_argument("--data-out", type=Path, default=None, metavar="FILE.npy",
                   help="write the N fresh target samples they were scored against")
    p.add_argument("--model-out", type=Path, default=None, metavar="FILE.safetensors",
                   help="write the trained model; the Lab's 'Load model…' opens it (sample it, "
                        "train it further)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _check_writable(path: Path) -> str | None:
    """Refuse a missing folder before training (minutes, maybe), not after."""
    target = path.expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        return f"Cannot write {target}: the folder {folder} does not exist."
    if target.is_dir():
        return f"Cannot write {target}: it is a folder."
    return None


def _save(path: Path, array: np.ndarray) -> None:
    from engines.fileio import atomic_write

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.save(fh, array)

    atomic_write(path, write)


def _fmt(v: Any, spec: str = ".4f") -> str:
    return "n/a" if v is None else format(v, spec)


def _print_text(rep: dict[str, Any]) -> None:
    head = f"{rep['model']} on {rep['data']}"
    if rep["oracle"]:
        print(f"{head}: exact oracle (no training)")
    else:
        extra = f", discriminator {_fmt(rep['loss_d'])}" if "loss_d" in rep else ""
        if "n_points" in rep:
            head += f" ({rep['n_points']:,} points)"
        print(f"{head}: {rep['train_steps']:,} train steps in {rep['train_seconds']:.1f} s, "
              f"final loss {_fmt(rep['loss'])} ({rep['loss_kind']}){extra}")
    if "gan_loss" in rep:
        print(f"GAN: loss {rep['gan_loss']}, lr G {rep['lr_g']:g}, lr D {rep['lr_d']:g}, "
              f"{rep['n_critic']} D step(s) per G step, latent dim {rep['latent_dim']}")
    how = f"sampler {rep['sampler']}, " if rep["sampler"] else ""
    if rep.get("guidance") is not None:
        how += f"guidance {rep['guidance']:g}, "
    print(f"{how}NFE {rep['nfe']}: {rep['samples']:,} samples in {rep['sample_seconds']:.2f} s, "
          f"sliced W2 {_fmt(rep['swd'])} (two-sample floor {_fmt(rep['swd_floor'])})")
    if "straightness" in rep:
        line = f"straightness {_fmt(rep['straightness'])}"
        if "straightness_by_round" in rep:
            line += "  by reflow round: " + ", ".join(_fmt(s) for s in rep["straightness_by_round"])
        print(line)
    if "nll" in rep:
        floor = "" if rep["entropy"] is None else (
            f" (entropy floor {rep['entropy']:.4f}, gap {_fmt(rep['nll_gap'])})")
        where = "the point set" if "n_points" in rep else "fresh data"
        print(f"NLL {_fmt(rep['nll'])} nats on {where}{floor}")
    if "modes_covered" in rep:
        print(f"modes covered {rep['modes_covered']}/{rep['n_modes']}, "
              f"high-quality samples {100 * rep['high_quality']:.1f}%")
    print(f"initial noise {rep['init_noise']} (seed {rep['seed']})")


def run(args: argparse.Namespace) -> int:
    """Validate, train and sample, write files, print. Exit status 0, 1 (file) or 2 (options)."""
    import torch

    from engines.device import choose_device
    from engines.fileio import ExportError
    from engines.lab_cli import LabConfig, LabInputError, resolve, run_lab

    try:
        device = choose_device(args.device or "auto")
    except (RuntimeError, ValueError) as exc:
        return _fail(str(exc), 2)
    points = None
    if args.data_in is not None:
        from engines.toy_data import load_points

        try:
            points = load_points(args.data_in.expanduser())
        except ValueError as exc:  # names the file (and line): printed as is
            return _fail(f"--data-in: {exc}", 2)
    cfg = LabConfig(model=args.model, data=args.data, train_steps=args.train_steps, sampler=args.sampler,
                    nfe=args.nfe, eta=args.eta, guidance=args.guidance, reflow=args.reflow,
                    oracle=args.oracle, samples=args.samples, seed=args.seed, device=device,
                    points=points, data_in=None if args.data_in is None else str(args.data_in),
                    gan_loss=args.gan_loss, lr_g=args.lr_g, lr_d=args.lr_d, n_critic=args.n_critic,
                    latent_dim=args.latent_dim)
    outputs = [p for p in (args.samples_out, args.data_out, args.model_out) if p is not None]
    try:
        resolve(cfg)
    except LabInputError as exc:
        return _fail(str(exc), 2)
    if args.model_out is not None and args.oracle:
        return _fail("--model-out needs a trained model; --oracle trains none", 2)
    for path in outputs:
        problem = _check_writable(path)
        if problem:
            return _fail(problem, 1)
    # These MLPs are small (batch 256, width 64): on the CPU one thread is faster than
    # several, whose per-layer barriers stall on a busy machine (see engines/nets.py).
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        result = run_lab(cfg)
    except LabInputError as exc:
        return _fail(str(exc), 2)
    finally:
        torch.set_num_threads(threads)
    rep = result.report
    try:
        if args.samples_out is not None:
            _save(args.samples_out, result.samples)
            rep["samples_out"] = str(args.samples_out)
        if args.data_out is not None:
            _save(args.data_out, result.data)
            rep["data_out"] = str(args.data_out)
        if args.model_out is not None and result.trained is not None:
            from engines.lab_models import save_lab_model

            written = save_lab_model(
                args.model_out, model=args.model, config=result.trained[0],
                state=result.trained[1], step=int(rep.get("train_steps") or 0),
                schedule="linear", reflow_round=int(args.reflow or 0),
                straightness=rep.get("straightness"), data=rep.get("data"))
            rep["model_out"] = str(written)
    except ExportError as exc:
        return _fail(str(exc), 1)
    if args.json:
        print(json.dumps(rep))
        return 0
    _print_text(rep)
    for key in ("samples_out", "data_out", "model_out"):
        if key in rep:
            print(f"wrote {rep[key]}")
    return 0
