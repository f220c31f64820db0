"""Write requirements/lock.txt from one `pip freeze` per supported Python.

Each freeze is the exact set a tested venv holds (`make setup PY=... VENV=...`, then
`VENV/bin/pip freeze --exclude-editable`). A package whose version is the same on every Python
gets one plain line; otherwise one line per version with a `python_version` marker. The result is
a pip constraints file: `pip install -c requirements/lock.txt -e ".[sweep,analysis,test]"`.

    python requirements/merge_freezes.py 3.10=f310.txt 3.11=f311.txt 3.13=f313.txt > requirements/lock.txt
"""

from __future__ import annotations

import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HEADER = """\
# The exact, tested set of every package `make setup`, CI and the cluster files install:
#   pip install -c requirements/lock.txt -e ".[sweep,analysis,test]"
# Regenerate with requirements/merge_freezes.py from one `pip freeze` per Python ({pythons}).
# Constraints files take no extras: `ray[default,tune]` is spelled in pyproject.toml.
"""


def read_freeze(path: str) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as spelled, version) of each `name==version` line."""
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        if spec.operator != "==":
            raise SystemExit(f"{path}: {line!r} is not an exact pin")
        out[canonicalize_name(req.name)] = (req.name, spec.version)
    return out


def marker(pythons: list[str], everywhere: list[str]) -> str:
    """A python_version marker for a contiguous or scattered subset of the supported Pythons."""
    if pythons == everywhere:
        return ""
    runs, run = [], [pythons[0]]
    for v in pythons[1:]:
        if everywhere.index(v) == everywhere.index(run[-1]) + 1:
            run.append(v)
        else:
            runs.append(run)
            run = [v]
    runs.append(run)
    parts = []
    for r in runs:
        lo, hi = r[0], r[-1]
        if lo == hi:
            parts.append(f'python_version == "{lo}"')
        elif hi == everywhere[-1]:
            parts.append(f'python_version >= "{lo}"')
        elif lo == everywhere[0]:
            parts.append(f'python_version <= "{hi}"')
        else:
            parts.append(f'(python_version >= "{lo}" and python_version <= "{hi}")')
    return " ; " + " or ".join(parts)


def merge(freezes: dict[str, dict[str, tuple[str, str]]]) -> list[str]:
    pythons = sorted(freezes, key=Version)
    names = sorted({n for f in freezes.values() for n in f})
    lines = []
    for name in names:
        by_version: dict[str, list[str]] = {}
        spelled = name
        for py in pythons:
            if name in freezes[py]:
                spelled, version = freezes[py][name]
                by_version.setdefault(version, []).append(py)
        for version, pys in sorted(by_version.items(), key=lambda kv: Version(kv[0])):
            lines.append(f"{spelled}=={version}{marker(pys, pythons)}")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    freezes = {}
    for arg in argv:
        py, _, path = arg.partition("=")
        freezes[py] = read_freeze(path)
    pythons = sorted(freezes, key=Version)
    sys.stdout.write(HEADER.format(pythons=", ".join(pythons)))
    sys.stdout.write("\n".join(merge(freezes)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
