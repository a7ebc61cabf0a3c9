"""``playground lab``, run in-process through ``playground.cli.main`` (small, fast settings).

Training runs are a few hundred steps on 1,000 samples: enough to tell a working model
from a broken one on the 2-core CI machine, not to reach the figures quoted in the README.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engines import lab_cli, toy_data
from playground.cli import main
from playground.commands import lab as lab_command


def lab(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["lab", "--device", "cpu", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def lab_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = lab(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_model_list_matches_the_engine():
    assert lab_command.MODELS == lab_cli.MODELS


def test_oracle_ddpm_reaches_the_two_sample_floor(capsys):
    rep = lab_json(capsys, "--model", "ddpm", "--data", "8gaussians", "--oracle", "--sampler", "dpm++",
                   "--nfe", "25", "--samples", "1000")
    assert rep["oracle"] and rep["train_steps"] == 0 and rep["nfe"] == 25
    # Two 1000-point draws of 8gaussians are ~0.14 +- 0.05 apart: the oracle is within noise.
    assert rep["swd"] < rep["swd_floor"] + 0.08, rep
    assert rep["modes_covered"] == 8 and rep["high_quality"] > 0.95
    # One DDIM step from pure noise lands on the posterior mean: far from the data.
    bad = lab_json(capsys, "--model", "ddpm", "--data", "8gaussians", "--oracle", "--nfe", "1",
                   "--samples", "1000")
    assert bad["swd"] > 3 * rep["swd"]


def test_rf_trains_and_reflow_straightens(capsys):
    rep = lab_json(capsys, "--model", "rf", "--data", "8gaussians", "--train-steps", "300",
                   "--reflow", "1", "--samples", "1000", "--nfe", "20")
    for key in ("loss", "straightness", "train_seconds", "swd", "swd_floor"):
        assert isinstance(rep[key], float) and math.isfinite(rep[key]), key
    assert rep["train_seconds"] > 0 and rep["nfe"] == 20 and rep["sampler"] == "euler"
    s1, s2 = rep["straightness_by_round"]
    assert s1 > 0.3  # independent coupling: curved paths (the exact 1-RF has ~2 here)
    assert s2 < 0.3 * s1  # one reflow round straightens them
    assert rep["straightness"] == pytest.approx(s2)
    assert rep["swd"] < 1.0 and rep["modes_covered"] >= 6


def test_text_output_names_the_figures(capsys):
    code, out, err = lab(capsys, "--model", "rf", "--data", "8gaussians", "--oracle", "--samples", "300",
                         "--nfe", "5")
    assert code == 0, err
    assert "sliced W2" in out and "two-sample floor" in out and "straightness" in out
    assert "modes covered" in out


def test_flow_prints_nll_and_entropy_floor(capsys):
    rep = lab_json(capsys, "--model", "realnvp", "--data", "8gaussians", "--train-steps", "150",
                   "--samples", "1000")
    assert rep["nfe"] == 1 and rep["sampler"] is None
    assert rep["entropy"] == pytest.approx(2.83, abs=0.02)
    assert math.isfinite(rep["nll"]) and rep["nll"] > rep["entropy"] - 0.1
    assert rep["nll_gap"] == pytest.approx(rep["nll"] - rep["entropy"])
    assert rep["nll"] < 6.0  # an untrained flow (N(0, I) on data of radius 2.8) is far worse


def test_gan_prints_modes_covered(capsys):
    rep = lab_json(capsys, "--model", "wgan-gp", "--data", "8gaussians", "--train-steps", "60",
                   "--samples", "1000")
    assert rep["n_modes"] == 8 and 0 <= rep["modes_covered"] <= 8
    assert 0.0 <= rep["high_quality"] <= 1.0
    assert math.isfinite(rep["loss"]) and math.isfinite(rep["loss_d"])


def test_guidance_trains_a_conditional_model(capsys):
    rep = lab_json(capsys, "--model", "rf", "--data", "8gaussians", "--train-steps", "100",
                   "--guidance", "1.5", "--samples", "400", "--nfe", "10")
    assert rep["guidance"] == 1.5 and math.isfinite(rep["loss"]) and math.isfinite(rep["swd"])
    # With the exact class-conditional oracle, guidance w = 1 is plain conditional sampling of
    # equal class counts: every mode is hit.
    ora = lab_json(capsys, "--model", "ddpm", "--data", "8gaussians", "--oracle", "--guidance", "1",
                   "--sampler", "heun", "--nfe", "19", "--samples", "400")
    assert ora["modes_covered"] == 8 and ora["high_quality"] > 0.95


def test_samples_and_data_out(capsys, tmp_path: Path):
    s_out, d_out = tmp_path / "s.npy", tmp_path / "d.npy"
    rep = lab_json(capsys, "--model", "rf", "--data", "25gaussians", "--oracle", "--nfe", "10",
                   "--samples", "500", "--samples-out", str(s_out), "--data-out", str(d_out))
    s, d = np.load(s_out), np.load(d_out)
    assert s.shape == (500, 2) and d.shape == (500, 2)
    assert s.dtype == np.float32 and d.dtype == np.float32
    assert rep["samples_out"] == str(s_out) and rep["data_out"] == str(d_out)
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary files


def test_same_seed_same_output(capsys, tmp_path: Path):
    args = ["--model", "ddpm", "--data", "8gaussians", "--train-steps", "40", "--samples", "200",
            "--nfe", "5", "--seed", "3"]
    a = lab_json(capsys, *args, "--samples-out", str(tmp_path / "a.npy"))
    b = lab_json(capsys, *args, "--samples-out", str(tmp_path / "b.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert a["loss"] == b["loss"] and a["swd"] == b["swd"]
    c = lab_json(capsys, *args[:-1], "4")
    assert c["init_noise"] != a["init_noise"]


def test_every_sampler_starts_from_the_same_noise(capsys):
    """Same seed: identical initial noise for every sampler (and model), trajectory entry 0."""
    digests = set()
    for sampler in ("ddpm", "ddim", "sde", "euler", "heun", "dpm++"):
        rep = lab_json(capsys, "--model", "ddpm", "--data", "8gaussians", "--oracle", "--sampler", sampler,
                       "--nfe", "3", "--samples", "300", "--seed", "11")
        digests.add(rep["init_noise"])
    rf = lab_json(capsys, "--model", "rf", "--data", "8gaussians", "--oracle", "--sampler", "heun",
                  "--nfe", "4", "--samples", "300", "--seed", "11")
    digests.add(rf["init_noise"])
    assert len(digests) == 1

    trajs = []
    for model, sampler in (("ddpm", "ddpm"), ("ddpm", "dpm++"), ("rf", "euler")):
        cfg = lab_cli.LabConfig(model=model, data="8gaussians", oracle=True, sampler=sampler, nfe=2,
                                samples=300, seed=11)
        res = lab_cli.run_lab(cfg, return_trajectory=True)
        assert res.trajectory is not None
        np.testing.assert_array_equal(res.trajectory[0], res.x_init)
        np.testing.assert_array_equal(res.trajectory[-1], res.samples)
        trajs.append(res.trajectory)
    np.testing.assert_array_equal(trajs[0][0], trajs[1][0])
    np.testing.assert_array_equal(trajs[0][0], trajs[2][0])
    assert not np.array_equal(trajs[0][-1], trajs[1][-1])  # different samplers, different ends
    assert lab_cli.noise_digest(trajs[0][0]) == rf["init_noise"]


def test_gan_settings_reach_the_engine_and_the_report(capsys):
    base = ["--model", "gan", "--data", "8gaussians", "--train-steps", "30", "--samples", "300"]
    mm = lab_json(capsys, *base, "--gan-loss", "minimax", "--lr-g", "2e-4", "--lr-d", "5e-4",
                  "--n-critic", "2", "--latent-dim", "3")
    assert (mm["gan_loss"], mm["lr_g"], mm["lr_d"], mm["n_critic"], mm["latent_dim"]) == (
        "minimax", 2e-4, 5e-4, 2, 3)
    ns = lab_json(capsys, *base)
    assert (ns["gan_loss"], ns["lr_g"], ns["lr_d"], ns["n_critic"], ns["latent_dim"]) == (
        "nonsaturating", 1e-3, 1e-3, 1, 2)
    # the losses really differ: minimax log(1 - D(G(z))) < 0 < non-saturating -log D(G(z))
    assert mm["loss"] < 0.0 < ns["loss"]
    assert math.isfinite(mm["swd"])
    wgan = lab_json(capsys, "--model", "wgan", "--data", "8gaussians", "--train-steps", "5",
                    "--samples", "200")
    assert (wgan["gan_loss"], wgan["lr_g"], wgan["n_critic"]) == ("wgan", 5e-4, 5)  # its preset
    code, out, err = lab(capsys, *base, "--gan-loss", "minimax", "--n-critic", "3")
    assert code == 0, err
    assert "GAN: loss minimax, lr G 0.001, lr D 0.001, 3 D step(s) per G step, latent dim 2" in out
    flow = lab_json(capsys, "--model", "nice", "--data", "8gaussians", "--train-steps", "5",
                    "--samples", "200")
    assert "gan_loss" not in flow


def _shifted_ring(n: int = 500) -> np.ndarray:
    """A user's point set unlike any named set (and far from the N(0, I) a model starts at)."""
    a = np.random.default_rng(0).uniform(0, 2 * np.pi, n)
    return (np.stack([np.cos(a), np.sin(a)], axis=1) + np.array([2.0, -1.5])).astype(np.float32)


@pytest.mark.parametrize(
    ("model", "steps", "suffix"),
    [("ddpm", 200, ".csv"), ("rf", 200, ".npy"), ("glow", 100, ".csv"), ("gan", 200, ".npy")],
)
def test_data_in_trains_on_a_point_file(capsys, tmp_path: Path, model: str, steps: int, suffix: str):
    path = tmp_path / f"ring{suffix}"
    toy_data.save_points(path, _shifted_ring())
    rep = lab_json(capsys, "--model", model, "--data-in", str(path), "--train-steps", str(steps),
                   "--samples", "500", "--samples-out", str(tmp_path / "s.npy"))
    assert rep["data"] == rep["data_in"] == str(path) and rep["n_points"] == 500
    assert "modes_covered" not in rep  # a point set has no known modes
    # An untrained model (about N(0, I)) is ~1.8 away in sliced W2; trained on the file, close.
    assert rep["swd"] < 0.8, rep
    samples = np.load(tmp_path / "s.npy")
    np.testing.assert_allclose(np.median(samples, axis=0), [2.0, -1.5], atol=0.5)
    if model == "glow":
        assert rep["entropy"] is None and rep["nll_gap"] is None and math.isfinite(rep["nll"])


def test_data_in_errors(capsys, tmp_path: Path):
    good = tmp_path / "pts.npy"
    toy_data.save_points(good, _shifted_ring(50))
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,oops\n")
    cases = [
        (["--model", "rf", "--data", "moons", "--data-in", str(good), "--train-steps", "5"], "not both"),
        (["--model", "rf", "--data-in", str(good), "--oracle"], "named data set"),
        (["--model", "ddpm", "--data-in", str(good), "--train-steps", "5", "--guidance", "1"],
         "named data set"),
        (["--model", "rf", "--data-in", str(bad), "--train-steps", "5"], "bad.csv, line 3"),
        (["--model", "rf", "--data-in", str(tmp_path / "none.npy"), "--train-steps", "5"], "none.npy"),
    ]
    for args, needle in cases:
        code, out, err = lab(capsys, *args)
        assert code == 2 and out == "", args
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "rf", "--data", "nosuch", "--train-steps", "10"], "unknown data set"),
        (["--model", "vae", "--data", "moons", "--train-steps", "10"], "unknown model"),
        (["--model", "rf", "--data", "moons", "--train-steps", "10", "--seed", "-1"], "--seed"),
        (["--model", "ddpm", "--data", "moons", "--oracle"], "Gaussian-mixture"),
        (["--model", "ddpm", "--data", "8gaussians", "--oracle", "--nfe", "0"], "--nfe must be >= 1"),
        (["--model", "rf", "--data", "8gaussians", "--oracle", "--sampler", "ddpm"], "does not apply to rf"),
        (["--model", "ddpm", "--data", "8gaussians", "--oracle", "--sampler", "rk4"], "unknown diffusion"),
        (["--model", "ddpm", "--data", "8gaussians"], "--train-steps is required"),
        (["--model", "realnvp", "--data", "8gaussians", "--oracle"], "ddpm or rf only"),
        (["--model", "gan", "--data", "8gaussians", "--train-steps", "5", "--reflow", "1"], "rf only"),
        (["--model", "ddpm", "--data", "8gaussians", "--oracle", "--sampler", "heun", "--eta", ".5"],
         "ddim only"),
        (["--model", "ddpm", "--data", "8gaussians", "--oracle", "--eta", "2"], "--eta must be in"),
        (["--model", "ddpm", "--data", "8gaussians", "--oracle", "--samples", "0"], "--samples"),
        (["--model", "rf", "--train-steps", "10"], "--data NAME"),
        (["--model", "realnvp", "--data", "8gaussians", "--train-steps", "5", "--lr-g", "1e-3"],
         "GAN models"),
        (["--model", "ddpm", "--data", "8gaussians", "--oracle", "--latent-dim", "3"], "GAN models"),
        (["--model", "wgan", "--data", "8gaussians", "--train-steps", "5", "--gan-loss", "minimax"],
         "--model gan only"),
        (["--model", "gan", "--data", "8gaussians", "--train-steps", "5", "--gan-loss", "lsgan"],
         "unknown --gan-loss"),
        (["--model", "gan", "--data", "8gaussians", "--train-steps", "5", "--n-critic", "0"],
         "--n-critic must be"),
        (["--model", "gan", "--data", "8gaussians", "--train-steps", "5", "--lr-d", "-1"],
         "--lr-d must be"),
        (["--model", "wgan-gp", "--data", "8gaussians", "--train-steps", "5", "--latent-dim", "0"],
         "--latent-dim must be"),
    ],
)
def test_bad_input_is_a_one_line_error(capsys, args: list[str], needle: str):
    code, out, err = lab(capsys, *args)
    assert code == 2
    assert out == ""
    assert needle in err and err.count("\n") == 1 and err.startswith("playground lab: ")
    assert "Traceback" not in err


def test_unwritable_output_fails_cleanly(capsys, tmp_path: Path):
    target = tmp_path / "missing" / "s.npy"
    code, out, err = lab(capsys, "--model", "rf", "--data", "8gaussians", "--oracle", "--samples", "50",
                         "--samples-out", str(target))
    assert code == 1 and out == ""
    assert "does not exist" in err and "Traceback" not in err
    assert not target.parent.exists()
    code, _, err = lab(capsys, "--model", "rf", "--data", "8gaussians", "--oracle", "--samples", "50",
                       "--data-out", str(tmp_path))
    assert code == 1 and "is a folder" in err


def test_help_describes_the_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lab", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("--oracle", "--reflow", "--samples-out", "straightness", "swd_floor", "dpm++",
                 "--data-in", "--gan-loss", "--lr-g", "--lr-d", "--n-critic", "--latent-dim"):
        assert word in text


@pytest.mark.parametrize("model", ["rf", "glow", "gan"])
def test_model_out_opens_in_the_lab(capsys, tmp_path: Path, model):
    """A headless run's model file loads as the Lab loads it and draws the same samples."""
    from engines import lab_views as lv
    from engines.lab_models import load_lab_model, loaded_snapshot

    out = tmp_path / f"{model}.safetensors"
    s_out = tmp_path / "s.npy"
    rep = lab_json(capsys, "--model", model, "--data", "8gaussians", "--train-steps", "60",
                   "--samples", "300", "--model-out", str(out), "--samples-out", str(s_out))
    assert rep["model_out"] == str(out) and out.stat().st_size > 0
    f = load_lab_model(out)
    assert f.model == model and f.step == 60 and f.meta["data"] == "8gaussians"
    if model == "rf":
        again = lv.lab_sample("rf", config=f.config, state=f.state, sampler="euler",
                              nfe=rep["nfe"], n=300, seed=0).samples
        np.testing.assert_allclose(again, np.load(s_out), atol=1e-4)  # same noise, same model
    else:
        assert loaded_snapshot(f, n=300).samples.shape == (300, 2)


def test_model_out_needs_a_trained_model(capsys, tmp_path: Path):
    code, _, err = lab(capsys, "--model", "rf", "--data", "8gaussians", "--oracle",
                       "--model-out", str(tmp_path / "m.safetensors"))
    assert code == 2 and "--model-out needs a trained model" in err
