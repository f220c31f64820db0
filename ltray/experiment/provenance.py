"""What a run records about the process that drives it (provenance.json): versions, code revision
and hardware.

torch's version and CUDA build are read from the torch/version.py its build generated, without
importing torch: a driver never trains, and importing torch would cost it seconds of start and
hundreds of MB on a cluster's head node. The GPU names come from torch itself, imported only on a
machine where a GPU driver is present (no driver, no GPU that torch could name).
"""

from __future__ import annotations

import ast
import importlib.util
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import ltray
from ltray.experiment import layout

# where Linux shows a GPU driver: NVIDIA's (CUDA) and AMD's (ROCm, which torch.cuda also serves)
GPU_DRIVER_PATHS = ("/proc/driver/nvidia/gpus", "/dev/kfd")


def provenance() -> dict:
    """Versions, code revision and hardware of this process (the driver)."""
    try:  # the installed distribution's version: recording it needs no Ray import
        ray_version = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        ray_version = None
    torch_version, torch_cuda = torch_build()
    return {
        "ltray_version": ltray.__version__,
        "folder_format": layout.FORMAT_VERSION,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch_version,
        "torch_cuda": torch_cuda,
        "ray": ray_version,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_names(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def torch_build() -> tuple[str | None, str | None]:
    """(torch.__version__, torch.version.cuda) of the installed torch, (None, None) without one:
    the constants of torch/version.py, or torch's own answer where that file cannot be read."""
    torch = sys.modules.get("torch")
    if torch is None:
        constants = torch_version_file()
        if isinstance(constants.get("__version__"), str):
            return constants["__version__"], constants.get("cuda")
        try:
            import torch
        except ImportError:
            return None, None
    return torch.__version__, torch.version.cuda


def torch_version_file() -> dict:
    """The constants that torch/version.py assigns (its build generates that file), read without
    running it; {} where it cannot be read (or torch is not installed)."""
    try:
        (package,) = importlib.util.find_spec("torch").submodule_search_locations or ()
        body = ast.parse(Path(package, "version.py").read_text()).body
    except (AttributeError, OSError, SyntaxError, ValueError):
        return {}
    constants = {}
    for node in body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
            constants[target.id] = node.value.value
    return constants


def gpu_names() -> list[str]:
    """The names of the GPUs torch sees in this process (none on a Linux machine without a GPU driver)."""
    if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in GPU_DRIVER_PATHS):
        return []
    try:
        import torch
    except ImportError:
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def git_revision() -> str | None:
    """The checkout's commit (+dirty), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
