"""Installing this checkout in a test as `pip install .` would: its wheel, built with this
environment's build backend when it meets pyproject.toml's build requirements, else in pip's
isolated build environment.

pip's isolated build makes a fresh environment and installs setuptools into it for every
`pip install .`, about 4 CPU-seconds each; the test environment already has a setuptools that
qualifies (pinned in requirements/lock.txt: tensorboard and, on Python 3.12+, torch need it)."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

from ltray.cluster.pins import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _installed(requirement: str) -> bool:
    req = Requirement(requirement)
    try:
        return req.specifier.contains(md.version(req.name), prereleases=True)
    except md.PackageNotFoundError:
        return False


BUILD_REQUIRES = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
# pip's arguments for building this checkout
BUILD_ARGS = ["--no-build-isolation"] if all(_installed(r) for r in BUILD_REQUIRES) else []


def build_wheel(folder: Path) -> Path:
    """This checkout's wheel, built into `folder` (what `pip install .` installs)."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *BUILD_ARGS,
                            "--wheel-dir", str(folder), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = folder.glob("ltray-*.whl")
    return wheel
