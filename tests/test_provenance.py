"""provenance.json's torch entries are torch's own, read without importing torch in the driver;
GPU names are asked of torch only where a GPU driver is present."""

from __future__ import annotations

import torch

from ltray.experiment import provenance
from ltray.experiment.provenance import gpu_names, torch_build, torch_version_file


def test_torch_version_file_says_what_torch_says():
    constants = torch_version_file()
    assert (constants["__version__"], constants["cuda"]) == (torch.__version__, torch.version.cuda)
    assert torch_build() == (torch.__version__, torch.version.cuda)
    assert provenance.provenance()["torch"] == torch.__version__


def test_gpu_names_come_from_torch_only_where_a_gpu_driver_is(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU {i}")
    monkeypatch.setattr(provenance, "GPU_DRIVER_PATHS", (str(tmp_path / "no-driver"),))
    assert gpu_names() == []
    monkeypatch.setattr(provenance, "GPU_DRIVER_PATHS", (str(tmp_path),))
    assert gpu_names() == ["GPU 0"]
