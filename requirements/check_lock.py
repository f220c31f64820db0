"""Check that requirements/lock.txt installs on every Python the project supports, without
installing anything: for each of them pip resolves ltray's dependencies with every extra that
`make setup` installs, constrained by the lock, as binary wheels for that Python (pip's
`--dry-run --python-version`). A pin that drops a Python fails here, in CI, not for a user.

    python requirements/check_lock.py            # every supported Python (the Makefile's SUPPORTED)
    python requirements/check_lock.py 3.10 3.13  # some of them

Needs the package index (or a mirror) that `make setup` uses; reads wheel metadata only."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"


def supported_pythons() -> list[str]:
    """The Makefile's SUPPORTED list: the Pythons `make setup` accepts (README says the same)."""
    line = re.search(r"^SUPPORTED\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    return sorted(line.group(1).split(), key=lambda v: tuple(map(int, v.split("."))))


def setup_extras() -> list[str]:
    """The extras `make setup` installs (the Makefile's EXTRAS)."""
    return re.search(r"^EXTRAS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split(",")


def requirements(extras: list[str]) -> list[str]:
    """ltray's base dependencies and those of `extras`, with ltray's own `ltray[...]` expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    out, todo, seen = list(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in optional[extra]:
            own = re.fullmatch(r"ltray\[([^\]]+)\]", req.replace(" ", ""))
            if own:
                todo += own.group(1).split(",")
            else:
                out.append(req)
    return out


def pins_for(python: str) -> list[str]:
    """The lock's lines for one Python, markers evaluated for it (pip would evaluate a constraints
    file's markers for the Python it runs on, not for --python-version)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = {**default_environment(), "python_version": python, "python_full_version": f"{python}.0"}
    out = []
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                out.append(f"{req.name}{req.specifier}")
    return out


def check(python: str, reqs_file: Path, tmp: Path) -> tuple[bool, str]:
    pins = tmp / f"lock-{python}.txt"
    pins.write_text("\n".join(pins_for(python)) + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
           "--target", str(tmp / "never-written"),  # pip requires it with --python-version; --dry-run writes nothing
           "--python-version", python, "--only-binary=:all:", "-c", str(pins), "-r", str(reqs_file)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    errors = [line for line in out.stderr.splitlines() if line.startswith("ERROR")]
    return out.returncode == 0, " | ".join(errors) or out.stderr.strip()[-500:]


def main(argv: list[str]) -> int:
    pythons = argv or supported_pythons()
    with tempfile.TemporaryDirectory(prefix="ltray-lock-") as tmp:
        reqs_file = Path(tmp) / "requirements.txt"
        reqs_file.write_text("\n".join(requirements(setup_extras())) + "\n")
        failed = 0
        for python in pythons:
            ok, detail = check(python, reqs_file, Path(tmp))
            print(f"Python {python}: {'the lock resolves' if ok else 'FAILS: ' + detail}", flush=True)
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
