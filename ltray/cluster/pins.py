"""The version rule: every node installs the exact torch/torchvision/ray that ltray is tested with.

Versions come from requirements/lock.txt beside the package (a source checkout; the same lock
`make setup` and CI install), extras and the Python range from pyproject.toml. An installed ltray
without its checkout uses the versions installed beside it. A loose or different version on the
cluster gives results that do not match local runs, or pulls a multi-GB torch build.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ltray.cluster.nodes import NodeCommands
from ltray.cluster.problems import Problem, node_types_phrase

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

REQUIRED = ("torch", "torchvision", "ray")  # must be pinned in every node's setup commands
ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "lock.txt"
PIN = re.compile(r"(?<![\w.\-/])([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9_,\s-]*\])?==([\w.+!-]+)")
RAY_IMAGE = re.compile(r"^(?:docker\.io/)?rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)(.*)$")
LTRAY_IMAGE = re.compile(r"(?:^|/)ltray:([\w.+-]+)$")  # ltray's own node image (the Dockerfile)
PY_TAG = re.compile(r"-py(\d)(\d+)")


@dataclass(frozen=True)
class Pin:
    version: str
    extras: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PackagePins:
    pins: dict[str, Pin] = field(default_factory=dict)  # canonical name -> exact pin
    requires_python: str | None = None
    source: str = ""  # where the pins were read, for messages


def parse_requirements(lines, requires_python=None, source="", extras=None) -> PackagePins:
    """Exact `==` pins whose marker holds here (lines for another Python or an extra are
    skipped); `extras` (canonical name -> extras) adds what constraints files cannot spell."""
    pins = {}
    for line in lines:
        try:
            req = Requirement(line.split(" #")[0].strip())
        except InvalidRequirement:
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact and (req.marker is None or req.marker.evaluate()):
            name = canonicalize_name(req.name)
            pins[name] = Pin(exact[0], frozenset(req.extras) | (extras or {}).get(name, frozenset()))
    return PackagePins(pins, requires_python, source)


def wanted_extras(requirements) -> dict[str, frozenset[str]]:
    """Extras ltray asks for, per required package, e.g. {'ray': {'default', 'tune'}}."""
    out: dict[str, frozenset[str]] = {}
    for line in requirements:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in REQUIRED:
            out[name] = out.get(name, frozenset()) | frozenset(req.extras)
    return out


def package_pins(pyproject: Path = PYPROJECT, lock: Path = LOCK) -> PackagePins:
    """ltray's pins: the checkout's lock + pyproject.toml, else the installed packages, else none."""
    if pyproject.is_file() and lock.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "ltray":
            reqs = project.get("dependencies", []) + [
                r for group in project.get("optional-dependencies", {}).values() for r in group]
            return parse_requirements(lock.read_text().splitlines(), project.get("requires-python"),
                                      str(lock), wanted_extras(reqs))
    return installed_pins()


def installed_pins() -> PackagePins:
    """An installed ltray without its checkout: match the versions installed beside it."""
    try:
        meta = importlib.metadata.metadata("ltray")
        reqs = importlib.metadata.requires("ltray") or []
    except importlib.metadata.PackageNotFoundError:
        return PackagePins()
    extras = wanted_extras(reqs)
    pins = {}
    for name in REQUIRED:
        try:
            pins[name] = Pin(importlib.metadata.version(name), extras.get(name, frozenset()))
        except importlib.metadata.PackageNotFoundError:
            continue
    return PackagePins(pins, meta.get("Requires-Python"), "the versions installed with ltray")


def pins_in(command: str) -> list[tuple[str, frozenset[str], str]]:
    """(canonical name, extras, version) of each `name[extras]==version` in a command."""
    return [(canonicalize_name(m[1]),
             frozenset(e.strip() for e in (m[2] or "[]")[1:-1].split(",") if e.strip()), m[3])
            for m in PIN.finditer(command)]


def pin_rules(nodes: list[NodeCommands], pins: PackagePins) -> list[Problem]:
    """Pins that differ from ltray's, and nodes that do not pin torch/torchvision/ray."""
    problems = []
    commands = dict(cmd for node in nodes for cmd in node.host + node.setup)
    for path, cmd in commands.items():
        for name, extras, version in pins_in(cmd):
            want = pins.pins.get(name)
            if want is None:
                continue
            if version != want.version:
                problems.append(Problem(path, f"{name}=={version} but ltray pins "
                                        f"{name}=={want.version} ({pins.source})"))
            elif not want.extras <= extras:
                problems.append(Problem(path, f"{name} is installed without the extras "
                                        f"[{','.join(sorted(want.extras))}] that ltray needs"))
    missing = {}  # setup_where -> {package: [node types]}
    for node in nodes:
        if any(LTRAY_IMAGE.search(image) for _, image in node.images):
            continue  # the image carries the locked stack (image_rules checks its version)
        installed = {name for _, cmd in node.setup for name, _, _ in pins_in(cmd)}
        for name in REQUIRED:
            if name in pins.pins and name not in installed:
                missing.setdefault(node.setup_where, {}).setdefault(name, []).append(node.node_type)
    for where, packages in missing.items():
        types = dict.fromkeys(t for ts in packages.values() for t in ts)
        wanted = ", ".join(f"{n}=={pins.pins[n].version}" for n in packages)
        problems.append(Problem(where, f"{node_types_phrase(types)} must install {wanted}: pin "
                                "them in a pip install setup command"))
    return problems + image_rules(nodes, pins)


def image_rules(nodes: list[NodeCommands], pins: PackagePins) -> list[Problem]:
    """rayproject/ray:<version>-py<XY> images must carry ltray's Ray and a supported Python;
    ltray's own image (<registry>/ltray:<version>) must be this ltray's version."""
    import ltray

    problems = []
    for path, image in dict(img for node in nodes for img in node.images).items():
        own = LTRAY_IMAGE.search(image)
        if own:
            if own[1] != ltray.__version__:
                problems.append(Problem(path, f"{image} is built for ltray {own[1]} but this is ltray "
                                        f"{ltray.__version__}: rebuild the image from the Dockerfile and push it "
                                        f"as ltray:{ltray.__version__}"))
            continue
        match = RAY_IMAGE.match(image)
        if not match:
            continue
        ray = pins.pins.get("ray")
        if ray and match[1] != ray.version:
            problems.append(Problem(path, f"{image} has Ray {match[1]} but ltray pins "
                                    f"ray=={ray.version}"))
        py = PY_TAG.search(match[2])
        if py and pins.requires_python and \
                f"{py[1]}.{py[2]}" not in SpecifierSet(pins.requires_python):
            problems.append(Problem(path, f"{image} has Python {py[1]}.{py[2]} but ltray needs "
                                    f"Python {pins.requires_python}"))
    return problems


def pin_summary(pins: PackagePins) -> str:
    return " ".join(f"{n}=={pins.pins[n].version}" for n in REQUIRED if n in pins.pins)

