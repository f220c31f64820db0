"""Pieces of the plugin tests: a tiny plugin module written into a temp dir, and wheels built by
hand (a zip with its dist-info) that pip installs into a temp dir, so entry points are real."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

GOOD_PLUGIN = '''
import torch
from torch import nn
from ltray.data import Dataset
from ltray.models import Architecture
from ltray.pruning import Technique


def _build(num_classes, image_size):
    return nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, 16), nn.ReLU(), nn.Linear(16, num_classes))


arch = Architecture(build=_build, in_channels=1, image_size=8)


def _load(split):
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    images = torch.randint(0, 256, (40, 1, 8, 8), generator=g).to(torch.uint8)
    return images, torch.randint(0, 3, (40,), generator=g)


ds = Dataset(load=_load, classes=3, channels=1, side=8)


def _compute(weights, masks, fraction, seed, round, dim, context):
    out = {}
    for n, m in masks.items():
        alive = m.reshape(-1).nonzero().squeeze(1)
        k = round_half(fraction * alive.numel())
        new = m.clone()
        scores = (weights[n] * m).abs().reshape(-1)[alive]
        new.view(-1)[alive[torch.topk(scores, k, largest=False).indices]] = False
        out[n] = new
    return out


def round_half(x):
    return int(x + 0.5)


tech = Technique(name="mine", compute=_compute)
'''


def write_plugin(folder: Path, module: str, extra: str = "") -> Path:
    """`folder/module.py`: the good plugin, then `extra` (which may redefine any of it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(GOOD_PLUGIN + extra)
    return path


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str],
               entry_points: dict[str, dict[str, str]]) -> Path:
    """A pure-Python wheel with these files and entry points (no build backend needed)."""
    dist = f"{name}-{version}.dist-info"
    eps = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items())
                  for group, names in entry_points.items())
    content = {**files,
               f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
               f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: ltray-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
               f"{dist}/entry_points.txt": eps}
    record = []
    for path, text in content.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    content[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in content.items():
            z.writestr(path, text)
    return wheel


def pip_install_target(wheel: Path, target: Path) -> None:
    """`pip install --no-deps --target`: installed for whoever puts `target` on sys.path."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
