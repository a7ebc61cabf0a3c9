"""Lab model files: what is saved comes back exactly, trains on, and bad files say why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from engines import lab_views as lv
from engines import toy_data
from engines.fileio import ExportError
from engines.jobs import ParamBox
from engines.lab_models import (
    LabModelError,
    load_lab_model,
    loaded_snapshot,
    save_lab_model,
)

TARGET = toy_data.sample("8gaussians", 300, np.random.default_rng(0))


def trained(model: str, steps: int = 60) -> lv.LabTrainSnapshot:
    last = None
    for s in lv.lab_train_job(model, ParamBox(lr=2e-3, batch_size=128), data="8gaussians",
                              target=TARGET, width=32, depth=2, max_steps=steps, quality_n=300):
        if s.state is not None:
            last = s
    assert last is not None
    return last


def save(snap: lv.LabTrainSnapshot, folder: Path, **meta) -> Path:
    return save_lab_model(folder / snap.model, model=snap.model, config=snap.config,
                          state=snap.state, step=snap.step, **meta)


@pytest.mark.parametrize("model", ["ddpm", "rf"])
def test_diffusion_and_rf_round_trip_sample_identically(model, tmp_path):
    snap = trained(model)
    path = save(snap, tmp_path, schedule=snap.schedule, reflow_round=0)
    assert path.name == f"{model}.safetensors"
    f = load_lab_model(path)
    assert (f.model, f.step, f.config) == (model, snap.step, snap.config)
    assert f.meta["schedule"] == "linear" and set(f.state) == set(snap.state)
    fam = lv.family(model)
    kw = dict(sampler="euler", nfe=10, n=300, seed=4)
    before = lv.lab_sample(fam, config=snap.config, state=snap.state, **kw).samples
    after = lv.lab_sample(fam, config=f.config, state=f.state, **kw).samples
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("model", ["glow", "gan"])
def test_flow_and_gan_round_trip_with_views(model, tmp_path):
    snap = trained(model)
    f = load_lab_model(save(snap, tmp_path))
    for key, value in snap.state.items():
        np.testing.assert_array_equal(f.state[key], value)
    view = loaded_snapshot(f, extent=(-4, 4, -4, 4), n=500, mixture=toy_data.mixture("8gaussians"))
    assert view.model == model and view.step == snap.step and view.samples.shape == (500, 2)
    assert view.heatmap is not None and view.heatmap.shape == (100, 100)
    assert np.isfinite(view.samples).all() and np.isfinite(view.heatmap).all()
    if model == "gan":
        assert view.manifold is not None and view.loss_d is not None
        assert view.push is not None and view.push.shape == (200, 2)
        assert view.n_modes == 8 and 0 <= view.modes_hit <= 8


def test_resume_carries_on_from_the_saved_weights(tmp_path):
    snap = trained("realnvp", steps=300)
    f = load_lab_model(save(snap, tmp_path))
    fresh = next(iter(lv.lab_train_job("realnvp", ParamBox(lr=2e-3, batch_size=128),
                                       data="8gaussians", target=TARGET, width=32, depth=2,
                                       max_steps=5, quality_n=300)))
    resumed = next(iter(lv.lab_train_job("realnvp", ParamBox(lr=2e-3, batch_size=128),
                                         data="8gaussians", target=TARGET, max_steps=5,
                                         quality_n=300, resume=(f.config, f.state),
                                         step_offset=f.step)))
    assert resumed.step > f.step and resumed.loss_steps[0] > f.step
    # the first steps of the resumed model are as good as where training stopped, far
    # better than a fresh model's
    assert resumed.loss[0] < snap.loss[-5:].mean() + 0.3 < fresh.loss[0]


def test_bad_files_say_why(tmp_path, monkeypatch):
    import engines.lab_models as lm

    with pytest.raises(LabModelError, match="Cannot read"):
        load_lab_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01 not a model" * 50)
    with pytest.raises(LabModelError, match="not a safetensors model file"):
        load_lab_model(junk)
    bare = tmp_path / "bare.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(bare))
    with pytest.raises(LabModelError, match="not a Lab model"):
        load_lab_model(bare)
    snap = trained("rf", steps=20)
    header = {"format": "playground-lab-model", "version": "1", "model": "rf",
              "config": json.dumps(snap.config), "step": "1", "meta": "{}"}
    broken = dict(snap.state)
    broken.pop(next(iter(broken)))
    wrong = tmp_path / "wrong.safetensors"
    save_file(broken, str(wrong), metadata=header)
    with pytest.raises(LabModelError, match="do not fit"):
        load_lab_model(wrong)
    nan_state = {k: np.full_like(v, np.nan) for k, v in snap.state.items()}
    nan_file = tmp_path / "nan.safetensors"
    save_file(nan_state, str(nan_file), metadata=header)
    with pytest.raises(LabModelError, match="NaN"):
        load_lab_model(nan_file)
    unknown = tmp_path / "unknown.safetensors"
    save_file(dict(snap.state), str(unknown), metadata={**header, "model": "vae"})
    with pytest.raises(LabModelError, match="unknown model"):
        load_lab_model(unknown)
    good = save(snap, tmp_path)
    monkeypatch.setattr(lm, "MAX_FILE_BYTES", 100)
    with pytest.raises(LabModelError, match="too large"):
        load_lab_model(good)


def test_unwritable_target_keeps_the_old_file(tmp_path):
    snap = trained("rf", steps=20)
    with pytest.raises(ExportError, match="does not exist"):
        save(snap, tmp_path / "no" / "such")
    path = save(snap, tmp_path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="no weights"):
        save_lab_model(path, model="rf", config=snap.config, state={})
    assert path.read_bytes() == before
