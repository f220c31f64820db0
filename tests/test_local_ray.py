"""A locally started Ray listens on the loopback interface only (no dashboard unless asked); a
start that Ray gives up on because its node did not register in time (a busy machine) is made
once more from scratch, after what had started of the first is gone."""

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
def test_local_ray_binds_to_loopback_only_and_a_start_that_timed_out_is_made_again(monkeypatch):
    import ray

    from ltray.sweep.ray_compat import local_start_timed_out
    from ltray.sweep.run import _connect

    real_init, first = ray.init, {}

    def init_timing_out_once(*args, **kwargs):
        if first:
            return real_init(*args, **kwargs)
        # as Ray's first start would leave it: a process of the session writing into its temp dir
        first["temp_dir"] = kwargs["_temp_dir"]
        log = open(os.path.join(kwargs["_temp_dir"], "raylet.out"), "w")
        first["proc"] = subprocess.Popen(["sleep", "600"], stdout=log)
        log.close()
        raise Exception("The current node timed out during startup. This could happen because some of the "
                        "raylet failed to startup or the GCS has become overloaded.")

    monkeypatch.setattr(ray, "init", init_timing_out_once)
    session = _connect("local", 1, 0, dashboard=False)
    try:
        assert first["proc"].wait(timeout=30) is not None  # the first start's process was ended
        assert not os.path.exists(first["temp_dir"]) and session.temp_dir != first["temp_dir"]
        assert ray.is_initialized()
        assert not local_start_timed_out(RuntimeError("timed out during startup"))  # only Ray's own failure
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
