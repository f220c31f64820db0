"""The batch script `ltray slurm` writes, run by a real one-node SLURM (tests/slurm_cluster.py):
a tiny sweep finishes; a run signalled before its time limit stops cleanly, requeues itself,
resumes and finishes with nothing retrained; a Ray already running on the node neither stops
the job nor is touched by it.

SLURM sends `--signal=B:TERM@<lead>` to the batch shell at the lead time before the limit, to
within its 30 s scheduling tick; time limits are whole minutes. The requeue case sends that very
signal itself (`scancel --batch --signal=TERM`, the same signal to the same shell) once a round is
finished, so it lands mid-sweep every time. A requeued job is held for about two minutes
(BeginTime); the test releases it at once with `scontrol update StartTime=now`, as an administrator
could. Runs as root; `make test-slurm`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ltray.orchestration.plan import build_plan
from tests.cluster_helpers import start_head
from tests.waiting import wait_for
from tests.slurm_cluster import Unavailable, start_slurm
from tests.sweep_helpers import SMALL, TINY_SWEEP, assert_complete_and_unique, tiny_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slurm]
ROOT = Path(__file__).resolve().parents[1]
ONE_TRAJECTORY = dict(grid={**TINY_SWEEP["grid"], "tasks": ["plain"], "techniques": ["global_unstructured"]},
                      consensus=[], rounds=2)


@pytest.fixture(scope="module")
def slurm():
    try:
        cluster = start_slurm()
    except Unavailable as e:
        pytest.skip(f"no local SLURM: {e}")
    yield cluster
    cluster.stop()


def write_job(tmp_path: Path, overrides: dict, *flags: str) -> tuple[Path, Path, object]:
    """A sweep file, its sbatch script and its plan; the experiment goes under tmp_path/exp."""
    sweep = {**TINY_SWEEP, **overrides}
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))
    script = tmp_path / "job.sbatch"
    subprocess.run([sys.executable, "-m", "ltray.cli", "slurm", str(sweep_file), "--time", "30",
                    "--cpus-per-node", str(os.cpu_count() or 1), "--storage", str(tmp_path / "exp"),
                    "--log", str(tmp_path / "job-%j.out"), "--progress-interval", "5", "-o", str(script), *flags],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    plan = build_plan(tiny_sweep(tmp_path / "exp", **overrides))
    return script, tmp_path / "exp" / "tiny", plan


def finished(slurm, job_id: int, timeout_s: float = 400) -> dict:
    """Wait for the job to end, releasing a requeue hold (SLURM's is about 2 minutes) early. Not
    at once: slurmd refuses to launch ("already killed") a run whose credential dates from the
    same second as its record of the last run's end, so the hold is released 3 s after the job
    was first seen held."""
    held_since = None

    def done():
        nonlocal held_since
        job = slurm.job(job_id)
        if job["JobState"] == "PENDING" and job.get("Reason") == "BeginTime":
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since >= 3:
                slurm.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")
        return job if job["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL") else None

    return wait_for(done, timeout_s, f"job {job_id} to end", interval_s=1)


def job_log(tmp_path: Path, job_id: int) -> str:
    return (tmp_path / f"job-{job_id}.out").read_text(errors="replace")


def no_job_processes(job_id: int) -> bool:
    """No process of the job's Ray is left (they all run with the job's temp dir in their arguments)."""
    out = subprocess.run(["ps", "-ww", "-eo", "args="], capture_output=True, text=True).stdout
    return not any(f"/ltray-{job_id}." in line for line in out.splitlines())


def finished_rounds(exp: Path) -> list[str]:
    """Mask paths of the rounds the experiment folder records as finished (trials/*/results.json)."""
    return [row["mask_path"] for results in exp.glob("trials/*/results.json")
            for row in json.loads(results.read_text())["rounds"]]


def test_tiny_sweep_runs_through_the_batch_script(slurm, tmp_path):
    script, exp, plan = write_job(tmp_path, ONE_TRAJECTORY)
    job_id = slurm.submit(script)
    job = finished(slurm, job_id)
    log = job_log(tmp_path, job_id)
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
    assert f"ltray sweep 'tiny': experiment folder {exp}" in log  # the job log is ltray's progress lines
    assert "sweep exited with status 0" in log and "requeue" not in log
    assert_complete_and_unique(exp, plan)
    assert json.loads((exp / "driver.json").read_text())["state"] == "finished"
    assert wait_for(lambda: no_job_processes(job_id), 30, "the job's Ray to go")
    assert not list(Path("/tmp").glob(f"ltray-{job_id}.*")), "the job's Ray temp dir is left behind"


def test_signalled_run_requeues_and_resumes_with_nothing_retrained(slurm, tmp_path):
    script, exp, plan = write_job(tmp_path, SMALL, "--max-requeues", "2")
    job_id = slurm.submit(script)
    # the first run trains until a round is finished, then gets SLURM's pre-limit signal
    wait_for(lambda: finished_rounds(exp) or slurm.job(job_id)["JobState"] not in ("PENDING", "RUNNING"),
             300, "a finished round")
    assert slurm.job(job_id)["JobState"] == "RUNNING", job_log(tmp_path, job_id)[-3000:]
    slurm.run("scancel", "--batch", "--signal=TERM", str(job_id))
    held = wait_for(lambda: (job := slurm.job(job_id))["JobState"] == "PENDING" and job, 120, "the requeue")
    assert held["Restarts"] == "1"
    done_before = {p.parent.name for p in exp.glob("trials/*/done.json")}
    assert len(done_before) < len(plan.trajectories) + plan.max_followups(), "the sweep ended before the signal"
    kept = {}
    for rel in finished_rounds(exp):
        st = (exp / rel).stat()
        kept[rel] = (st.st_ino, st.st_mtime_ns)
    assert kept, "no round was finished before the signal"
    assert json.loads((exp / "driver.json").read_text())["state"] == "interrupted"

    job = finished(slurm, job_id)  # releases the requeue hold
    log = job_log(tmp_path, job_id)
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", (  # SLURM's account too, when it failed
        f"{job}\n{log[-3000:]}\nslurmd.log: {slurm.log('slurmd.log')}")
    assert "requeue 1 of at most 2" in log and f"job {job_id} run 2" in log
    assert log.count("interrupted; the experiment folder") == 1  # the sweep's one line at exit 143
    assert_complete_and_unique(exp, plan)  # every round and follow-up exactly once
    for rel, before in kept.items():  # finished rounds were not trained again
        st = (exp / rel).stat()
        assert (st.st_ino, st.st_mtime_ns) == before, rel
    relaunched = [p.name for p in sorted((exp / "tune").glob("run-*"))[-1].iterdir() if p.is_dir()]
    assert not set(relaunched) & done_before  # finished trials were not launched again
    assert json.loads((exp / "driver.json").read_text())["state"] == "finished"


def test_a_foreign_ray_on_the_node_neither_stops_the_job_nor_is_stopped(slurm, tmp_path):
    foreign = start_head("lfr-", "--num-cpus", "1")
    try:
        before = set(foreign.pids())
        script, exp, plan = write_job(tmp_path, ONE_TRAJECTORY)
        job_id = slurm.submit(script)
        job = finished(slurm, job_id)
        log = job_log(tmp_path, job_id)
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
        assert_complete_and_unique(exp, plan)
        assert foreign.address not in log  # the job used its own Ray
        assert before <= set(foreign.pids()), "the job stopped processes of the other Ray"
        assert "Node status" in foreign.status()  # and that Ray still answers
    finally:
        foreign.stop()
