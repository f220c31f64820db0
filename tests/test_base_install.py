"""README's base install (`pip install ltray`, no extras) as a user gets it: a fresh venv holding
ltray (`pip install --no-deps .`, not editable) and only the base dependencies, where torch,
torchvision and Ray cannot be imported. There `ltray sweep --dry-run` prints the plan, `ltray
status` reads an experiment folder and masks can be read; a command that needs the sweep extra
says so in one line (exit 2) and writes nothing.

The base dependencies are this environment's own installed copies, linked into a folder the venv
reads through a .pth file: only the distributions that pyproject.toml's base `dependencies`
require (transitively), so nothing else leaks in, and no package index is needed for them."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ltray.cluster.pins import tomllib
from tests.build_helpers import build_wheel

ROOT = Path(__file__).resolve().parents[1]
BASE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
FIXTURE = ROOT / "tests" / "fixtures" / "format1" / "tiny-v1-interrupted"


def closure(requirements: list[str]) -> set[str]:
    """Names of the installed distributions that `requirements` need, transitively (no extras)."""
    env = default_environment()
    seen, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({**env, "extra": ""})):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in md.requires(name) or []]
    return seen


def link_distributions(names: set[str], folder: Path) -> None:
    """Symlink every top-level file or folder of each distribution (its packages, its .dist-info,
    bundled libraries) into `folder`."""
    folder.mkdir()
    for name in names:
        dist = md.distribution(name)
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if top != "__pycache__" and not (folder / top).exists():
                (folder / top).symlink_to(dist.locate_file(top))


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("base-install")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    deps = tmp / "base-deps"
    link_distributions(closure(BASE), deps)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "ltray-base-deps.pth").write_text(f"{deps}\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                              "--no-deps", str(build_wheel(tmp / "dist"))], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def run(venv: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LTRAY_STORAGE")}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_venv_is_a_base_install(base_venv, tmp_path):
    code = ("import importlib.util as u, ltray; "
            "print(ltray.__file__); "
            "print(' '.join(m for m in ('torch', 'torchvision', 'ray', 'matplotlib') if u.find_spec(m))); "
            "import numpy, pandas, pyarrow, pydantic, yaml")
    out = run(base_venv, "python", "-c", code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, heavy = (out.stdout.splitlines() + [""])[:2]
    assert Path(where).is_relative_to(base_venv), where  # the installed copy, not the checkout
    assert heavy == "", f"importable in the base venv: {heavy}"


def test_dry_run_status_and_masks_without_the_extras(base_venv, tmp_path):
    dry = run(base_venv, "ltray", "sweep", str(ROOT / "sweeps" / "demo.yaml"), "--dry-run",
              "--storage", str(tmp_path / "exp"), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "bespoke trajectories: 8" in dry.stdout and "consensus groups: 1" in dry.stdout, dry.stdout
    status = run(base_venv, "ltray", "status", str(FIXTURE), cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "consensus groups complete: 1/1" in status.stdout
    mask = next(FIXTURE.glob("masks/**/*.ltmask"))
    read = run(base_venv, "python", "-c", f"from ltray.masks import load_mask; m = load_mask({str(mask)!r}); "
               "print(len(m), sum(int(v.size) for v in m.values()))", cwd=tmp_path)
    assert read.returncode == 0, read.stderr[-3000:]
    layers, weights = map(int, read.stdout.split())
    assert layers > 0 and weights > 0


@pytest.mark.parametrize("args", [["sweep", "{demo}", "--storage", "{tmp}/exp"], ["check", "{cluster}"]])
def test_a_command_that_needs_the_sweep_extra_says_so(base_venv, tmp_path, args):
    args = [a.format(demo=ROOT / "sweeps" / "demo.yaml", tmp=tmp_path, cluster=ROOT / "cluster.yaml") for a in args]
    out = run(base_venv, "ltray", *args, cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith(f"ltray {args[0]}: needs ") and lines[0].endswith("pip install 'ltray[sweep]'")
    assert not (tmp_path / "exp").exists()  # nothing half-written


def test_the_torch_free_registry_knows_emnist_as_torchvision_does():
    """The dataset registry counts EMNIST's classes without torchvision; the counts are torchvision's."""
    from torchvision.datasets import EMNIST

    from ltray.config import DataConfig
    from ltray.data.registry import EMNIST_CLASSES, get_dataset

    assert set(EMNIST_CLASSES) == set(EMNIST.splits)
    for split in EMNIST.splits:
        assert get_dataset("emnist").num_classes(DataConfig(emnist_split=split)) == \
            len(EMNIST.classes_split_dict[split]), split
