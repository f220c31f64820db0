"""A real `ray start --head` cluster for the tests, kept private on a shared machine: its own
session (so it is stopped by killing that session's processes, never with `ray stop`), its own
temp dir, free ports for every service, loopback addresses only, and auth set explicitly.
Plus `ray job submit` / `ray job logs` / `ray status` through the CLI a user would type."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.sweep_helpers import short_tmpdir

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv: `ray` and `python` the cluster and its jobs use


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for port 0 (free_port)."""
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(size: int = 200) -> tuple[int, int]:
    """A block of `size` ports that are free right now (Ray's worker processes take one each), below
    the kernel's ephemeral range: the single ports of free_port() (one test's GCS, another's
    dashboard, tests side by side) never fall inside a block, which Ray refuses."""
    top = min(_ephemeral_low(), 60000)
    for _ in range(50):
        low = random.randrange(10000, top - size)
        try:
            for port in range(low, low + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return low, low + size - 1
    raise RuntimeError("no free block of ports")


def cluster_env(extra: dict | None = None) -> dict:
    """The environment of the cluster's processes and of the CLI calls: the venv first on PATH
    (a job's `python` is ltray's), no auth, every service on 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "LTRAY_"))}
    env.update({"PATH": f"{BIN}:{env.get('PATH', '')}", "RAY_AUTH_MODE": "disabled",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"})
    env.update(extra or {})
    return env


@dataclass
class HeadNode:
    """A `ray start --head` running in its own session; every CLI call goes to it explicitly."""

    temp_dir: str
    port: int
    dashboard_port: int
    metrics_port: int
    env: dict
    session: int = 0  # the session id (= pid of the `ray start` process, its leader)
    log: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def ray(self, *args: str, timeout: float = 120, check: bool = True, env: dict | None = None):
        """Run the `ray` CLI against this cluster."""
        proc = subprocess.run([str(BIN / "ray"), *args], capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})}, cwd=ROOT)
        if check and proc.returncode != 0:
            raise AssertionError(f"ray {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}")
        return proc

    def submit(self, entrypoint: list[str], submission_id: str, *, working_dir: str | None = None,
               env_vars: dict | None = None, timeout: float = 300, wait: bool = True) -> subprocess.CompletedProcess:
        """`ray job submit` and wait for the job to end (the CLI follows its log meanwhile), or with
        wait=False return once it is submitted."""
        args = ["job", "submit", "--address", self.dashboard, "--submission-id", submission_id]
        if not wait:
            args.append("--no-wait")
        if working_dir is not None:
            args += ["--working-dir", working_dir]
        if env_vars:
            args += ["--runtime-env-json", json.dumps({"env_vars": env_vars})]
        return self.ray(*args, "--", *entrypoint, timeout=timeout, check=False)

    def job_status(self, submission_id: str) -> str:
        from ray.job_submission import JobSubmissionClient

        return str(JobSubmissionClient(self.dashboard).get_job_status(submission_id).value)

    def job_logs(self, submission_id: str) -> str:
        """What `ray job logs` prints, read through its client in this process (the CLI would
        cost a process importing Ray: 3-4 CPU-seconds)."""
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard).get_job_logs(submission_id)

    def status(self) -> str:
        return self.ray("status", "--address", self.address).stdout

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process of this cluster's session."""
        out = subprocess.run(["ps", "-ww", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
        rows = [line.split(None, 2) for line in out.splitlines()]
        return [(int(r[0]), r[2] if len(r) > 2 else "") for r in rows if int(r[1]) == self.session]

    def pids(self) -> list[int]:
        return [pid for pid, _ in self.processes()]

    def trial_workers(self) -> set[int]:
        """Worker processes running a Tune trial (Ray titles them after the trainable's actor)."""
        return {pid for pid, args in self.processes() if "ImplicitFunc" in args}

    def stop(self) -> None:
        """End every process of this cluster's session (nothing else on the machine)."""
        for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while pids and self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_head(prefix: str, *args: str, port: int | None = None, env: dict | None = None,
               timeout: float = 120, temp_dir: str | None = None) -> HeadNode:
    """`ray start --head` with free ports and a private temp dir (`temp_dir`, else a short one this
    process removes when it ends), as the leader of a new session."""
    low, high = free_port_range()
    head = HeadNode(temp_dir=temp_dir or short_tmpdir(prefix), port=port or free_port(), dashboard_port=free_port(),
                    metrics_port=free_port(), env=cluster_env(env))
    cmd = [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(head.port),
           "--temp-dir", head.temp_dir, "--dashboard-host", "127.0.0.1", "--dashboard-port", str(head.dashboard_port),
           "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
           "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(head.metrics_port),
           "--ray-client-server-port", str(free_port()), "--min-worker-port", str(low), "--max-worker-port",
           str(high), "--disable-usage-stats", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=head.env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    head.session = proc.pid
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        head.stop()
        raise
    head.log.append(out)
    if proc.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start failed ({proc.returncode}):\n{out[-3000:]}")
    return head


def live_trial_pids(dashboard: str, job_ids: set[str]) -> list[int]:
    """Processes of the live Tune trials of these jobs on the cluster behind `dashboard`. A trial is
    an actor of Tune's function trainable, whose class Ray names `ImplicitFunc` or (seen from a
    process's second `ray.init`) `wrap_function.<locals>.ImplicitFunc`."""
    from ray.util.state import list_actors

    pids = []
    for job in sorted(job_ids):
        actors = list_actors(address=dashboard, filters=[("state", "=", "ALIVE"), ("job_id", "=", job)], detail=True,
                             limit=10_000, raise_on_missing_output=False)
        pids += [a.pid for a in actors if a.pid and a.class_name.rsplit(".", 1)[-1] == "ImplicitFunc"]
    return pids

