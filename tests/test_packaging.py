"""Packaging: pyproject.toml declares ranges (never `==`), requirements/lock.txt pins a version
inside every range on every supported Python, the Makefile looks for exactly those Pythons, and
the torch-free parts import neither torch nor Ray."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ltray.cluster.pins import REQUIRED, tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK = [line for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")]
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


def requirements() -> list[tuple[str, Requirement]]:
    """(extra or '', requirement) for the base dependencies and every extra."""
    out = [("", Requirement(r)) for r in PROJECT["dependencies"]]
    out += [(extra, Requirement(r)) for extra, reqs in PROJECT["optional-dependencies"].items() for r in reqs]
    return out


def environment(python: str, extra: str = "") -> dict:
    return {**default_environment(), "python_version": python, "python_full_version": f"{python}.0",
            "extra": extra}


def locked(python: str) -> dict[str, str]:
    """The lock's pins on one Python (markers evaluated for it)."""
    out = {}
    for line in LOCK:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(environment(python)):
            name = canonicalize_name(req.name)
            assert name not in out, f"{name} pinned twice for Python {python}"
            (spec,) = req.specifier
            assert spec.operator == "==", line
            out[name] = spec.version
    return out


def test_no_dependency_is_pinned_exactly():
    for extra, req in requirements():
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{extra or 'base'}: {req}"
        if req.name != "ltray":
            assert any(s.operator in ("<", "<=", "~=") for s in req.specifier), f"{req}: no upper bound"
            assert any(s.operator in (">", ">=", "~=") for s in req.specifier), f"{req}: no lower bound"


@pytest.mark.parametrize("python", SUPPORTED)
def test_ranges_admit_the_lock(python):
    pins = locked(python)
    for extra, req in requirements():
        if req.name == "ltray" or (req.marker and not req.marker.evaluate(environment(python, extra))):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} ({extra or 'base'}) is not in the lock for Python {python}"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"lock pins {name}=={pins[name]} on Python {python}, outside {req} ({extra or 'base'})"


def test_torch_torchvision_ray_are_the_same_everywhere():
    """The version rule of `ltray check` compares cluster nodes against these: one each."""
    lines = {canonicalize_name(Requirement(line).name): line for line in LOCK}
    for name in REQUIRED:
        assert Requirement(lines[name]).marker is None, lines[name]
    assert {locked(p)["torch"] for p in SUPPORTED} == {"2.14.1"}


def test_supported_pythons_agree():
    spec = SpecifierSet(PROJECT["requires-python"])
    assert [v for v in ["3.9", *SUPPORTED, "3.14"] if spec.contains(v + ".0")] == SUPPORTED
    make = re.search(r"^SUPPORTED := (.*)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1).split()
    assert sorted(make, key=lambda v: tuple(map(int, v.split(".")))) == SUPPORTED
    assert make[0] == SUPPORTED[-1]  # newest first: make picks the newest that runs


TORCH_FREE = {
    "masks": "import ltray.masks",
    "status": "import ltray.status",
    "sweep --dry-run": "import ltray.orchestration.load, ltray.orchestration.plan, ltray.orchestration.dry_run",
    "ltray --help": "import ltray.cli",
    "analysis": "import ltray_analysis.report",
}


@pytest.mark.parametrize("part", list(TORCH_FREE))
def test_torch_free_parts(part):
    """What the base install and the analysis extra run imports neither torch nor Ray (masks not
    even pandas: numpy alone), so they work without the sweep extra."""
    heavy = ["torch", "torchvision", "ray"] + ([] if part == "analysis" else ["matplotlib"])
    heavy += ["pandas", "pyarrow"] if part == "masks" else []
    code = f"import sys; {TORCH_FREE[part]}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages by hand (the analysis folder installs under another
    name), so a new subpackage that is missing from the list would be left out of a wheel."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ltray").rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {"ltray_analysis"}
    assert setuptools["package-dir"] == {"ltray_analysis": "analysis"}


def test_a_users_analysis_module_does_not_shadow_ltray_analysis(tmp_path):
    """A researcher's own `analysis.py` (or package) in the working directory is theirs: ltray's
    analysis installs as `ltray_analysis`, and `ltray analysis` runs ltray's."""
    (tmp_path / "analysis.py").write_text("raise SystemExit('the user module ran')\n")
    out = subprocess.run([str(Path(sys.executable).parent / "ltray"), "analysis", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ltray analysis")
    mine = subprocess.run([sys.executable, "-c", "import analysis, ltray_analysis; print(analysis.__file__); "
                           "print(ltray_analysis.__file__)"], cwd=tmp_path, capture_output=True, text=True)
    assert mine.returncode != 0 and "the user module ran" in mine.stderr  # theirs, where they put it
    lt = subprocess.run([sys.executable, "-c", "import ltray_analysis; print(ltray_analysis.__file__)"],
                        cwd=tmp_path, capture_output=True, text=True)
    assert Path(lt.stdout.strip()).parent == ROOT / "analysis"
