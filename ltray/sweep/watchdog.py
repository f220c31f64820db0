"""A private local Ray dies with its driver, even a SIGKILLed one. Ray's GCS and raylet share the
driver's fate, but its agents (ray::DashboardAgent, ray::RuntimeEnvAgent) and workers can outlive
it. The driver starts this small process (no Ray, no torch) before Ray and holds the write end of
its stdin: when the driver ends in any way, the pipe closes, and the watchdog ends every process of
that Ray session and removes the session's private temp dir.

A process belongs to the session when its command line or one of its open files (Ray sends every
process's output to the session's logs) lies in the private temp dir; renamed processes such as
`ray::DashboardAgent` are found by their files. Only this user's processes are looked at, and
never the driver or the watchdog itself. Linux only (/proc)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["Watchdog", "session_processes"]
GRACE_S = 3.0  # SIGTERM first, then SIGKILL for what is left after this long


class Watchdog:
    """The driver's side: start it with the temp dir, `close()` when Ray has been shut down."""

    def __init__(self, temp_dir: str):
        self.temp_dir = temp_dir
        self.proc = subprocess.Popen([sys.executable, "-m", "ltray.sweep.watchdog", temp_dir, str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True)

    def close(self, timeout_s: float = 30.0) -> None:
        """Ray is shut down: the watchdog ends what is left of the session, removes its temp dir, exits."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def session_processes(temp_dir: str, exclude: set[int]) -> list[int]:
    """Pids of this user's processes whose command line or open files lie in `temp_dir`."""
    root = os.path.realpath(temp_dir).rstrip("/")
    mentions = re.compile(re.escape(root) + r"(/|\s|$)").search
    uid, found = os.getuid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            if mentions(cmdline) or _has_open_file_in(entry, root + "/"):
                found.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # gone meanwhile, or not ours to read
    return found


def _has_open_file_in(proc: Path, root: str) -> bool:
    try:
        fds = list((proc / "fd").iterdir())
    except (FileNotFoundError, PermissionError):
        return False
    for fd in fds:
        try:
            if os.readlink(fd).startswith(root):
                return True
        except OSError:
            continue
    return False


def end_session(temp_dir: str, exclude: set[int], grace_s: float = GRACE_S) -> None:
    """SIGTERM every process of the session, SIGKILL what is left after `grace_s`, remove the temp dir."""
    deadline = time.monotonic() + grace_s
    sig = signal.SIGTERM
    while pids := session_processes(temp_dir, exclude):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        time.sleep(0.1)  # polling for the processes to end, not synchronisation
    shutil.rmtree(temp_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    temp_dir, driver = argv[0], int(argv[1])
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # a Ctrl-C or `kill` of the job's group: the driver decides
    while sys.stdin.buffer.read(4096):  # until the driver closes its end or dies
        pass
    end_session(temp_dir, {os.getpid(), driver})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
