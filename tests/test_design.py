"""The layout is the design (docs/design.md): Ray lives only in the Ray shell (`ltray/sweep/`) and
`ltray/cluster/`, and imports only point down, from the commands to the core. Both are read from
the source's syntax trees, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY_ROOMS = {"sweep", "cluster"}
# rooms from the bottom up: a module may import its own room and rooms of a lower rank
RANK = {
    "ltray": 0, "errors": 0, "formatting": 0, "seeding": 0,
    "fileio": 1, "yamlio": 1, "plugins": 1,
    "storage": 2,
    "config": 3, "masks": 3, "models": 3, "pruning": 3,
    "consensus": 4, "data": 4,
    "chance": 5, "experiment": 5,
    "training": 6,
    "orchestration": 7, "status": 7, "analysis": 7,
    "sweep": 8,
    "cluster": 9,  # checks cluster files with Ray's own validator, through the shell's ray_compat
    "cli": 10,
}


def modules():
    """(room, path) of every module of ltray and of the analysis folder (`ltray_analysis`)."""
    for path in sorted((ROOT / "ltray").rglob("*.py")):
        parts = path.relative_to(ROOT / "ltray").with_suffix("").parts
        yield ("ltray" if parts == ("__init__",) else parts[0]), path
    for path in sorted((ROOT / "analysis").glob("*.py")):
        yield "analysis", path


def imported(path: Path):
    """Absolute module names a file imports, wherever the import statement sits."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "ltray_analysis":
        return "analysis"
    if parts[0] != "ltray":
        return None
    return parts[1] if len(parts) > 1 else "ltray"


def test_every_room_has_a_rank():
    assert {room for room, _ in modules()} <= set(RANK)


def test_ray_is_imported_only_in_the_ray_shell():
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for room, path in modules() if room not in RAY_ROOMS
                 for name in imported(path) if name == "ray" or name.startswith("ray.")]
    assert offenders == []


def test_ray_private_apis_stay_in_one_compatibility_module():
    """Ray's private modules change between releases; one file adapts to them."""
    allowed = {ROOT / "ltray" / "sweep" / "ray_compat.py", ROOT / "ltray" / "cluster" / "schema.py"}
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for _, path in modules() if path not in allowed
                 for name in imported(path) if re.match(r"ray(\.\w+)*\._", name)]
    assert offenders == []


def test_imports_point_down():
    upward = []
    for room, path in modules():
        for name in imported(path):
            target = room_of(name)
            if target is not None and target != room and RANK[target] >= RANK[room]:
                upward.append(f"{path.relative_to(ROOT)} ({room}) imports {name} ({target})")
    assert upward == []


def test_the_design_page_names_modules_that_exist():
    """docs/design.md is the map: every module or folder it names is there."""
    text = (ROOT / "docs" / "design.md").read_text()
    named = set(re.findall(r"`((?:ltray|analysis|tests)/[\w/]*?(?:\.py|/))`", text))
    assert len(named) > 40, named  # the scan finds the map's names
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert missing == []
