"""One node's part of a SLURM job's private Ray: `python -m ltray.cluster.slurm_node address|head|worker`.

Every value comes from the job: ports from a block derived from SLURM_JOB_ID (moved to the next
block when a port is taken, so two jobs, or a user's own Ray, on one node do not collide), a temp
dir under a short per-job folder (AF_UNIX socket paths must stay under 107 bytes), and the CPUs and
GPUs SLURM allocated on this node. `head`/`worker` run `ray start --block` and remove the temp dir
when it ends; they never touch any other Ray on the node. Imports no Ray.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PORT_LOW, PORT_HIGH = 20000, 32700  # above a default Ray's worker ports (10002-19999), below Linux's ephemeral range
BLOCK = 100  # ports per node: 10 services, then 90 worker ports
SOCKET_ROOM = 72  # bytes appended below the job folder: /head/session_<date>_<pid>/sockets/plasma_store
MAX_SOCKET_PATH = 107
READY_TEXT = "Ray runtime started."  # what `ray start` prints once its node is up
SERVICES = ("gcs", "node_manager", "object_manager", "metrics_export", "dashboard_agent_listen",
            "dashboard_agent_grpc", "runtime_env_agent", "ray_client_server", "dashboard")


class NodeError(RuntimeError):
    """The node cannot start its part of the job's Ray; one line for the job log."""


@dataclass(frozen=True)
class Ports:
    base: int

    def __getattr__(self, name: str) -> int:
        if name in SERVICES:
            return self.base + SERVICES.index(name)
        raise AttributeError(name)

    @property
    def workers(self) -> tuple[int, int]:
        return self.base + 10, self.base + BLOCK - 1

    def all(self) -> range:
        return range(self.base, self.base + BLOCK)


def blocks_from(job_id: int) -> list[int]:
    """Base ports to try, starting at the job's own block and wrapping around the range."""
    count = (PORT_HIGH - PORT_LOW) // BLOCK
    first = job_id % count
    return [PORT_LOW + ((first + i) % count) * BLOCK for i in range(count)]


def port_free(port: int, host: str = "") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_ports(job_id: int, is_free=port_free) -> Ports:
    for base in blocks_from(job_id):
        if all(is_free(p) for p in Ports(base).all()):
            return Ports(base)
    raise NodeError(f"no free block of {BLOCK} ports in {PORT_LOW}-{PORT_HIGH} on {socket.gethostname()}")


def job_dir(env: dict) -> Path:
    """The job's own short folder on this node: $TMPDIR/ltray-<job>.<restart> when socket paths
    fit under it, else /tmp/ltray-<job>.<restart>."""
    name = f"ltray-{env['SLURM_JOB_ID']}.{env.get('SLURM_RESTART_COUNT') or 0}"
    for parent in (env.get("LTRAY_SLURM_TMPDIR"), env.get("TMPDIR"), "/tmp"):
        if parent and len(os.path.join(parent, name)) + SOCKET_ROOM <= MAX_SOCKET_PATH:
            return Path(parent) / name
    raise NodeError(f"LTRAY_SLURM_TMPDIR={env.get('LTRAY_SLURM_TMPDIR')}: too long for Ray's socket paths "
                    f"({MAX_SOCKET_PATH} bytes); use a short folder such as /tmp")


def allocated(env: dict) -> tuple[int, int]:
    """(CPUs, GPUs) SLURM gave the job on this node."""
    cpus = int(env.get("SLURM_CPUS_ON_NODE") or os.cpu_count() or 1)
    gpus = env.get("SLURM_GPUS_ON_NODE")
    if gpus:
        return cpus, int(gpus)
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    return cpus, len([d for d in visible.split(",") if d.strip()]) if visible.strip() else 0


def node_ip(hostname: str | None = None, env: dict | None = None) -> str:
    """The address other nodes reach this one at: $LTRAY_NODE_IP, else the host name's first
    non-loopback IPv4 address, else the one on the default route, else 127.0.0.1."""
    env = os.environ if env is None else env
    if env.get("LTRAY_NODE_IP"):
        return env["LTRAY_NODE_IP"]
    try:
        infos = socket.getaddrinfo(hostname or socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    for *_, sockaddr in infos:
        if not sockaddr[0].startswith("127."):
            return sockaddr[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only asks the kernel for a route
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def ray_start_args(role: str, ports: Ports, temp_dir: Path, ip: str, cpus: int, gpus: int,
                   head_address: str = "") -> list[str]:
    """`ray start` arguments of one node; every port explicit, so none falls on a default."""
    low, high = ports.workers
    args = ["start", "--block", "--disable-usage-stats", "--node-ip-address", ip, "--temp-dir", str(temp_dir),
            "--num-cpus", str(cpus), "--num-gpus", str(gpus),
            "--node-manager-port", str(ports.node_manager), "--object-manager-port", str(ports.object_manager),
            "--metrics-export-port", str(ports.metrics_export),
            "--dashboard-agent-listen-port", str(ports.dashboard_agent_listen),
            "--dashboard-agent-grpc-port", str(ports.dashboard_agent_grpc),
            "--runtime-env-agent-port", str(ports.runtime_env_agent),
            "--min-worker-port", str(low), "--max-worker-port", str(high)]
    if role == "head":
        return args + ["--head", "--port", str(ports.gcs), "--ray-client-server-port", str(ports.ray_client_server),
                       "--include-dashboard", "false"]
    return args + ["--address", head_address]


def wait_for_head(address: str, timeout_s: float, pid: int | None = None, ready: Path | None = None) -> None:
    """Until the head answers at `address` (and, on the head's node, has written `ready`); NodeError
    after `timeout_s` or once process `pid` (the head's launcher) has ended."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready is not None and not ready.exists():
                raise OSError("not started yet")
            with socket.create_connection((host, int(port)), timeout=2):
                return
        except OSError:
            if pid is not None and not _alive(pid):
                raise NodeError(f"the job's Ray head ended before it answered at {address}") from None
            if time.monotonic() > deadline:
                raise NodeError(f"the job's Ray head at {address} did not answer within {timeout_s:.0f} s") from None
            time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def ready_file(env: dict, role: str) -> Path:
    """Exists while this node's `ray start` has started Ray and still runs."""
    return job_dir(env) / f"{role}.ready"


def run_ray(args: list[str], temp_dir: Path, ready: Path, attempts: int = 3, startup_s: float = 120.0) -> int:
    """`ray start --block` until it ends or this process is told to stop; then the job's folder goes.
    `ready` is written once Ray says it started. A start that fails within `startup_s` (Ray gives
    its raylet 30 s to register, which a loaded node can miss) is tried again, up to `attempts` times."""
    ray = Path(sys.executable).with_name("ray")
    log = temp_dir / "ray-start.log"
    stopping, proc = [], None

    def stop(signum, _frame):
        stopping.append(signum)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)  # `ray start --block` ends the Ray processes it started

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    for attempt in range(1, attempts + 1):
        temp_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(log, "ab") as out:
            offset = out.tell()
            proc = subprocess.Popen([str(ray if ray.exists() else "ray"), *args], stdout=out,
                                    stderr=subprocess.STDOUT)
        code = None
        while code is None:
            try:
                code = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                if not ready.exists() and READY_TEXT in log.read_bytes()[offset:].decode(errors="replace"):
                    ready.touch()
        ready.unlink(missing_ok=True)
        if stopping:
            break
        lines = log.read_text(errors="replace").strip().splitlines()
        print(f"ltray slurm: ray start on {socket.gethostname()} ended by itself ({code}): "
              f"{lines[-1] if lines else 'no output'}", file=sys.stderr, flush=True)
        if time.monotonic() - started > startup_s or attempt == attempts:
            break
        print(f"ltray slurm: starting Ray again ({attempt + 1} of {attempts})", file=sys.stderr, flush=True)
    shutil.rmtree(temp_dir, ignore_errors=True)
    try:
        temp_dir.parent.rmdir()  # the job's folder, once no other role of this job uses it
    except OSError:
        pass
    return 0 if stopping else (code or 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.cluster.slurm_node",
                                description="Start this node's part of a SLURM job's private Ray.")
    p.add_argument("role", choices=["address", "head", "worker", "wait"],
                   help="address: print the head's host:port (run on the head's node); head/worker: run "
                        "`ray start --block`; wait: until the head has started (run on the head's node)")
    p.add_argument("--address", default="", help="the head's host:port (worker, wait)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the head (worker, wait)")
    p.add_argument("--pid", type=int, help="wait: stop waiting once this process (the head's launcher) ends")
    args = p.parse_args(argv)
    env = dict(os.environ)
    try:
        if "SLURM_JOB_ID" not in env:
            raise NodeError("SLURM_JOB_ID is not set: run this inside a SLURM job (the script `ltray slurm` writes)")
        job_id = int(env["SLURM_JOB_ID"])
        if args.role == "address":
            print(f"{node_ip()}:{pick_ports(job_id).gcs}")
            return 0
        if args.role == "wait":
            wait_for_head(args.address, args.timeout, args.pid, ready_file(env, "head"))
            return 0
        if args.role == "worker":
            wait_for_head(args.address, args.timeout)
            ports = pick_ports(job_id)
        else:
            port = int(args.address.rpartition(":")[2]) if args.address else pick_ports(job_id).gcs
            ports = Ports(port)  # the block `address` chose (its first port is the head's GCS port)
        cpus, gpus = allocated(env)
        temp_dir = job_dir(env) / ("head" if args.role == "head" else "worker")
        print(f"ltray slurm: {args.role} on {socket.gethostname()} ({node_ip()}): {cpus} CPUs, {gpus} GPUs, ports "
              f"{ports.base}-{ports.base + BLOCK - 1}, temp dir {temp_dir}", flush=True)
        return run_ray(ray_start_args(args.role, ports, temp_dir, node_ip(), cpus, gpus, args.address), temp_dir,
                       ready_file(env, args.role))
    except NodeError as e:
        print(f"ltray slurm: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
