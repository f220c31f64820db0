"""A locally started Ray listens on the loopback interface only (no dashboard unless asked)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.ray


def _descendants(root: int) -> set[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss to list sockets")
def test_local_ray_binds_to_loopback_only():
    from ltray.sweep.run import _connect

    session = _connect("local", 1, 0, dashboard=False)
    try:
        pids = _descendants(os.getpid()) | {os.getpid()}
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
        ours = [line for line in listening if any(f"pid={p}," in line for p in pids)]
        assert ours, "a local Ray should listen on some port"
        for line in ours:
            local = line.split()[3]
            host = re.sub(r":\d+$", "", local).strip("[]")
            assert host in {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, line
    finally:
        session.close()  # Ray, its temp dir and the process-wide settings it made
