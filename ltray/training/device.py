"""Which device a trial trains on, honestly: a trial given a GPU share that cannot use CUDA fails
with one line (node, what torch reports, the driver its CUDA build needs) instead of silently
training on the CPU; each result row records the device it ran on."""

from __future__ import annotations

import os
import socket

import torch

from ltray.errors import LtrayError

# the oldest NVIDIA driver each CUDA major release runs on (CUDA minor-version compatibility)
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
FALLBACK_ENV = "LTRAY_ALLOW_CPU_FALLBACK"  # simulated clusters with fake GPU resources only


class DeviceError(LtrayError):
    """A GPU share on a node where torch cannot use CUDA."""


def cuda_problem() -> str | None:
    """Why torch cannot use CUDA here, or None when it can."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    if torch.cuda.is_available():
        return None
    try:
        torch.cuda.init()
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/AssertionError variants
        reason = str(e).strip().splitlines()[0]
    else:
        reason = "no CUDA device is visible"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    major = int(torch.version.cuda.split(".")[0])
    need = f"; torch {torch.__version__} is built for CUDA {torch.version.cuda}, which needs an NVIDIA driver " \
           f">= {MIN_DRIVER[major]}" if major in MIN_DRIVER else ""
    return f"{reason}{need}" + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "")


def claim_device(cpus: float, gpus: float) -> torch.device:
    """Threads follow the CPU share; a GPU share gets CUDA (its memory capped to the share)."""
    torch.set_num_threads(max(1, int(cpus)))
    if gpus <= 0:
        return torch.device("cpu")
    problem = cuda_problem()
    if problem is not None:
        if os.environ.get(FALLBACK_ENV) == "1":
            return torch.device("cpu")
        raise DeviceError(f"node {socket.gethostname()}: the trial holds gpu={gpus:g} but torch cannot use CUDA: "
                          f"{problem}")
    if gpus < 1:
        torch.cuda.set_per_process_memory_fraction(gpus)
    return torch.device("cuda", torch.cuda.current_device())


def describe_device(device: torch.device) -> str:
    """'cpu' or 'cuda:<i> (<GPU model>)', as result rows record it."""
    if device.type != "cuda":
        return "cpu"
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
