from __future__ import annotations

import pytest
import torch

from engines.device import choose_device, describe_device
from engines.jobs import GeneratorJob, ParamBox, as_job


def test_auto_and_cpu():
    dev = choose_device("auto")
    expected = "cuda" if torch.cuda.is_available() else dev.type
    assert dev.type == expected
    assert choose_device("cpu") == torch.device("cpu")
    n = torch.get_num_threads()
    assert describe_device(torch.device("cpu")) == f"CPU ({n} thread{'s' if n != 1 else ''})"


def test_unknown_and_unavailable_devices_raise():
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA was requested"):
            choose_device("cuda")


def test_param_box_versions_and_copies():
    box = ParamBox(lr=1e-3)
    snap = box.get()
    box.update(lr=1e-2, batch=64)
    assert snap == {"lr": 1e-3}  # the copy a job holds never changes under it
    assert box.get() == {"lr": 1e-2, "batch": 64}
    assert box.version == 1


def test_as_job_wraps_generators():
    job = as_job(iter([1, 2]), total=2)
    assert isinstance(job, GeneratorJob) and job.total == 2
    assert [job.step(), job.step()] == [1, 2]
    with pytest.raises(StopIteration):
        job.step()


def test_configure_threads_leaves_a_core_and_honours_the_override(monkeypatch):
    import os

    from engines.device import configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("PLAYGROUND_TORCH_THREADS", raising=False)
        assert configure_threads() == max(1, (os.cpu_count() or 1) - 1) == torch.get_num_threads()
        monkeypatch.setenv("PLAYGROUND_TORCH_THREADS", "3")
        assert configure_threads() == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
