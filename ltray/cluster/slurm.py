"""`ltray slurm SWEEP.yaml --nodes N --gpus-per-node G --time T ...`: write an sbatch script that runs
the sweep on a private Ray across the allocation, stops cleanly before the time limit, requeues
itself and resumes, at most --max-requeues times.

The script is #SBATCH lines and settings written here, then the fixed body in slurm_job.sh; each
node's part (ports, temp dir, resources) is `python -m ltray.cluster.slurm_node`. Imports no Ray.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ltray.errors import ConfigError, LtrayError
from ltray.fileio import atomic_write_text

BODY = Path(__file__).with_name("slurm_job.sh")
# SLURM's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
TIME = re.compile(r"^(?:(\d+)-(\d+)(?::(\d+))?(?::(\d+))?|(\d+)(?::(\d+))?(?::(\d+))?)$")
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:@%+=/-]+$")  # partition/account/job names SLURM accepts


def time_limit_s(text: str) -> int:
    """Seconds in a SLURM --time value; ConfigError for anything else."""
    m = TIME.match(text.strip())
    if not m:
        raise ConfigError(f"--time {text!r}: not a SLURM time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM "
                          "or D-HH:MM:SS)")
    days, dh, dm, ds, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:
        seconds = days * 86400 + dh * 3600 + (dm or 0) * 60 + (ds or 0)
    elif c is not None:
        seconds = a * 3600 + b * 60 + c
    elif b is not None:
        seconds = a * 60 + b
    else:
        seconds = a * 60
    if seconds <= 0:
        raise ConfigError(f"--time {text!r}: must be longer than 0")
    return seconds


@dataclass(frozen=True)
class SlurmJob:
    sweep: Path  # absolute
    time: str  # SLURM --time, e.g. 24:00:00
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_node: int | None = None  # None: SLURM's default for one task
    partition: str | None = None
    account: str | None = None
    storage: str | None = None  # absolute path or bucket URI; None: the sweep file's storage
    max_requeues: int = 10
    signal_lead_s: int = 600
    job_name: str = "ltray"
    output: Path | None = None  # the job log; None: <job name>-<job id>.out in the submit folder
    python: str = sys.executable
    resume: bool = False
    progress_interval_s: float = 60.0

    def check(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"--nodes {self.nodes}: must be at least 1")
        if self.gpus_per_node < 0:
            raise ConfigError(f"--gpus-per-node {self.gpus_per_node}: must be 0 or more")
        if self.cpus_per_node is not None and self.cpus_per_node < 1:
            raise ConfigError(f"--cpus-per-node {self.cpus_per_node}: must be at least 1")
        if self.max_requeues < 0:
            raise ConfigError(f"--max-requeues {self.max_requeues}: must be 0 or more")
        limit = time_limit_s(self.time)
        if not 0 < self.signal_lead_s < limit:
            raise ConfigError(f"--signal-lead {self.signal_lead_s}: must be more than 0 and less than the time "
                              f"limit ({limit} s) so the sweep has time to stop before SLURM kills it")
        for flag, value in (("--partition", self.partition), ("--account", self.account),
                            ("--job-name", self.job_name)):
            if value is not None and not SAFE_VALUE.match(value):
                raise ConfigError(f"{flag} {value!r}: only letters, digits and _.,:@%+=/- are allowed")
        if self.storage is not None and "://" not in self.storage and not self.storage.startswith("/"):
            raise ConfigError(f"--storage {self.storage!r}: an absolute path on a file system every node mounts, "
                              "or an s3:// / gs:// URI")


def sbatch_lines(job: SlurmJob) -> list[str]:
    log = job.output or Path.cwd() / "%x-%j.out"
    lines = [f"--job-name={job.job_name}", f"--nodes={job.nodes}", "--ntasks-per-node=1", f"--time={job.time}",
             "--requeue", f"--signal=B:TERM@{job.signal_lead_s}", "--open-mode=append", f"--output={log}"]
    if job.cpus_per_node is not None:
        lines.insert(3, f"--cpus-per-task={job.cpus_per_node}")
    if job.gpus_per_node:
        lines.insert(3, f"--gpus-per-node={job.gpus_per_node}")
    lines += [f"--partition={job.partition}"] if job.partition else []
    lines += [f"--account={job.account}"] if job.account else []
    return [f"#SBATCH {line}" for line in lines]


def settings(job: SlurmJob) -> list[str]:
    values = {
        "LTRAY_PYTHON": job.python,
        "LTRAY_SWEEP": str(job.sweep),
        "LTRAY_MAX_REQUEUES": str(job.max_requeues),
        "LTRAY_RESUME": "1" if job.resume else "0",
        "LTRAY_PROGRESS_INTERVAL": f"{job.progress_interval_s:g}",
        "LTRAY_WORKER_GPUS": str(job.gpus_per_node) if job.gpus_per_node else "",
    }
    lines = [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    if job.storage:
        lines.append(f"export LTRAY_STORAGE={shlex.quote(job.storage)}")
    lines.append('export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"  # token auth: see docs/slurm.md, "Security"')
    return lines


def render(job: SlurmJob) -> str:
    """The whole sbatch script."""
    job.check()
    from ltray import __version__

    head = ["#!/bin/bash", *sbatch_lines(job),
            f"# Written by `ltray slurm` (ltray {__version__}); submit with `sbatch`, watch with "
            "`tail -f` on the --output file or `ltray status` on the experiment folder.",
            "", "# ---- settings ----", *settings(job), ""]
    return "\n".join(head) + "\n" + BODY.read_text()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ltray slurm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="sweep file (YAML)")
    p.add_argument("--time", required=True, help="the job's time limit, in SLURM's form (e.g. 24:00:00, 2-00)")
    p.add_argument("--nodes", type=int, default=1, help="nodes of the allocation (default 1)")
    p.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (default 0)")
    p.add_argument("--cpus-per-node", type=int, help="CPUs per node (default: SLURM's default)")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--account", help="SLURM account")
    p.add_argument("--storage", help="experiment storage: a path on a file system every node mounts, or an "
                                     "s3:// / gs:// URI (default: $LTRAY_STORAGE when the job starts, else the "
                                     "sweep file's)")
    p.add_argument("--max-requeues", type=int, default=10, help="requeues after a time limit (default 10)")
    p.add_argument("--signal-lead", type=int, default=600, metavar="SECONDS",
                   help="SIGTERM this long before the time limit, to stop cleanly (default 600)")
    p.add_argument("--job-name", help="SLURM job name (default: ltray-<sweep name>)")
    p.add_argument("--log", help="the job log (default: <job name>-<job id>.out in this folder)")
    p.add_argument("--python", default=sys.executable, help="the Python that has ltray (default: this one)")
    p.add_argument("--resume", action="store_true", help="continue an existing experiment from the first run")
    p.add_argument("--progress-interval", type=float, default=60.0, metavar="SECONDS",
                   help="seconds between progress lines in the job log (default 60)")
    p.add_argument("-o", "--output", help="write the script here (default: standard output)")
    return p.parse_args(argv)


def job_from_args(args: argparse.Namespace) -> SlurmJob:
    from ltray.orchestration.load import load_sweep

    sweep = Path(args.sweep).resolve()
    name = load_sweep(sweep).name  # a typo found now, not after hours in the queue
    storage = args.storage
    if storage is not None and "://" not in storage:
        storage = os.path.abspath(storage)
    return SlurmJob(sweep=sweep, time=args.time, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                    cpus_per_node=args.cpus_per_node, partition=args.partition, account=args.account,
                    storage=storage, max_requeues=args.max_requeues, signal_lead_s=args.signal_lead,
                    job_name=args.job_name or f"ltray-{name}", output=Path(args.log).resolve() if args.log else None,
                    python=args.python, resume=args.resume, progress_interval_s=args.progress_interval)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        script = render(job_from_args(args))
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.output:
        atomic_write_text(args.output, script)
        os.chmod(args.output, 0o755)
        print(f"wrote {args.output}: submit with `sbatch {args.output}`")
    else:
        sys.stdout.write(script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
