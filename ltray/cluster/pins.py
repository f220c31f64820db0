"""The version rule: every node installs the exact torch/torchvision/ray that ltray pins.

Pins come from the pyproject.toml beside the package (a source checkout), else from the
installed distribution's metadata. A loose or different version on the cluster gives results
that do not match local runs, or pulls a multi-GB torch build.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ltray.cluster.nodes import NodeCommands
from ltray.cluster.problems import Problem, node_types_phrase

REQUIRED = ("torch", "torchvision", "ray")  # must be pinned in every node's setup commands
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PIN = re.compile(r"(?<![\w.\-/])([A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9_,\s-]*\])?==([\w.+!-]+)")
RAY_IMAGE = re.compile(r"^(?:docker\.io/)?rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)(.*)$")
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


def parse_requirements(lines, requires_python=None, source="") -> PackagePins:
    """Exact `==` pins without markers (extras such as `test` are skipped)."""
    pins = {}
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if req.marker is None and exact:
            pins[canonicalize_name(req.name)] = Pin(exact[0], frozenset(req.extras))
    return PackagePins(pins, requires_python, source)


def package_pins(pyproject: Path = PYPROJECT) -> PackagePins:
    """ltray's pins: the checkout's pyproject.toml, else the installed metadata, else none."""
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "ltray":
            return parse_requirements(project.get("dependencies", []),
                                      project.get("requires-python"), str(pyproject))
    try:
        meta = importlib.metadata.metadata("ltray")
        return parse_requirements(importlib.metadata.requires("ltray") or [],
                                  meta.get("Requires-Python"), "the installed ltray metadata")
    except importlib.metadata.PackageNotFoundError:
        return PackagePins()


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
    """rayproject/ray:<version>-py<XY> images must carry ltray's Ray and a supported Python."""
    problems = []
    for path, image in dict(img for node in nodes for img in node.images).items():
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

