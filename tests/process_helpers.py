"""Processes by pid and start time (a pid can be reused): what a driver started, and whether it is
gone, read from /proc; and a driver's stdout read up to the line where it waits."""

from __future__ import annotations

import time
import subprocess
from pathlib import Path


def proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat as fields: pid, state, ppid, ... (the command name left out), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return [text[:text.index("(")].strip()] + text[text.rindex(")") + 2:].split()


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every living descendant of `root`."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := proc_stat(int(entry.name))) and st[1] != "Z":
            children.setdefault(int(st[2]), []).append((int(entry.name), st[20]))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def alive(procs: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """The ones still running (a zombie waiting for init to reap it has ended)."""
    return {(pid, start) for pid, start in procs if (st := proc_stat(pid)) and st[1] != "Z" and st[20] == start}


def wait_until_gone(procs: set[tuple[int, str]], timeout_s: float = 90) -> set[tuple[int, str]]:
    """Those of `procs` still alive after `timeout_s` (none, as soon as all have ended)."""
    deadline = time.monotonic() + timeout_s
    while (left := alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling for processes to end, with a deadline
    return left


def cmdlines(procs) -> str:
    out = []
    for pid, _ in procs:
        try:
            out.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes().replace(bytes(1), b' ')[:200]!r}")
        except OSError:
            pass
    return "\n".join(out)


def wait_for_line(driver: subprocess.Popen, text: str) -> list[str]:
    """Read the driver's stdout up to the line `text` (the driver waits there; no timing involved)."""
    seen = []
    for line in driver.stdout:
        seen.append(line)
        if line.strip() == text:
            return seen
    raise AssertionError(f"the driver ended before {text!r}: {''.join(seen)[-2000:]}{driver.stderr.read()[-3000:]}")
