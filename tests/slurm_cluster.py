"""A real one-node SLURM for the tests: munged, slurmctld and slurmd started as root with private
files (key, sockets, state, spool, logs under one temp dir) and private ports, this host as the
only node. Stopped by the pids it started, never by name. `start_slurm` raises Unavailable (one
line) where SLURM is not installed or cannot run here (not root, daemons that do not come up)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster_helpers import free_port

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol", "scancel")


class Unavailable(Exception):
    """SLURM cannot run here; the message is the one-line reason to skip."""


def sbin(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


@dataclass
class Slurm:
    root: Path
    env: dict
    pid_files: list[Path] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def submit(self, script: Path, env: dict | None = None) -> int:
        out = subprocess.run(["sbatch", "--parsable", str(script)], env={**self.env, **(env or {})},
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as key -> value (state, reason, restarts, exit code ...)."""
        text = self.run("scontrol", "show", "job", "--oneliner", str(job_id)).stdout
        return dict(word.split("=", 1) for word in text.split() if "=" in word)

    def log(self, name: str) -> str:
        path = self.root / "log" / name
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """End the daemons this object started, by the pids they wrote."""
        pids = []
        for pid_file in reversed(self.pid_files):
            try:
                pids.append(int(pid_file.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                continue
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def slurm_conf(root: Path, host: str, cpus: int, ctld_port: int, slurmd_port: int) -> str:
    return f"""\
ClusterName=ltraytest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/run/munge.sock
CredType=cred/munge
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
InactiveLimit=0
KillWait=30
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def start_slurm(timeout_s: float = 60) -> Slurm:
    """munged + slurmctld + slurmd on this host, private to the caller; Unavailable if they cannot run."""
    missing = [d for d in DAEMONS if not sbin(d)]
    if missing:
        raise Unavailable(f"SLURM is not installed ({', '.join(missing)} missing; Debian: apt-get install "
                          "slurm-wlm munge)")
    if os.geteuid() != 0:
        raise Unavailable("a private SLURM needs root (slurmd starts jobs as their user)")
    root = Path(tempfile.mkdtemp(prefix="lsl-", dir="/tmp"))  # short: slurmd's socket paths live below it
    for sub in ("run", "log", "state", "spool"):
        (root / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, host, os.cpu_count() or 1, free_port(), free_port()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    slurm = Slurm(root, env)
    steps = [
        [sbin("mungekey"), "--create", f"--keyfile={root}/munge.key"],
        [sbin("munged"), "--force", f"--socket={root}/run/munge.sock", f"--key-file={root}/munge.key",
         f"--pid-file={root}/run/munged.pid", f"--log-file={root}/log/munged.log", f"--seed-file={root}/run/seed"],
        [sbin("slurmctld"), "-f", str(conf)],
        [sbin("slurmd"), "-f", str(conf), "-N", host],
    ]
    try:
        for cmd in steps:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
            if proc.returncode != 0:
                raise Unavailable(f"{Path(cmd[0]).name} did not start: {(proc.stderr or proc.stdout).strip()[:200]}")
            name = Path(cmd[0]).name
            if name != "mungekey":
                slurm.pid_files.append(root / "run" / f"{name}.pid")
        deadline = time.monotonic() + timeout_s
        while True:  # the node registers with the controller and becomes idle
            out = slurm.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if out == "idle":
                return slurm
            if time.monotonic() > deadline:
                raise Unavailable(f"the SLURM node did not become idle ({out or 'no answer'}): "
                                  f"{slurm.log('slurmd.log').strip().splitlines()[-1:]}")
            time.sleep(0.5)
    except BaseException:
        slurm.stop()
        raise
