"""Sweeps submitted the README's way, `ray job submit --working-dir <dir> -- python -m ltray.sweep
...`, to a real `ray start --head` cluster. The job runs in Ray's temporary copy of the working
dir, so a relative storage is refused before anything is trained; with $LTRAY_STORAGE in the job's
env the experiment folder is where it says. A plugin package in the working dir (examples/plugin)
runs without being installed. The job's log (what the dashboard's Jobs view shows) is ltray's
progress lines and summary, not Tune's tables, and no consensus actor outlives the job."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ltray.experiment import layout
from ltray.sweep.actor import actor_name
from tests.cluster_helpers import ROOT
from tests.shared_head import shared_head
from tests.example_plugin import EXAMPLE, KINDS, SWEEP, check_analysis, check_results
from tests.waiting import wait_for

pytestmark = pytest.mark.ray

# the example plugin's sweep (examples/plugin as the working dir: the job's driver and every worker
# import the plugin from Ray's copy of it, never installed): two trajectories of two rounds, then
# one pret-a-porter ticket
N_ROWS = sum(KINDS.values())
PROGRESS = re.compile(r"^\[\d+m\d\ds\] trajectories \d/2, rounds \d/4, follow-ups \d/1, running \d, pending \d, "
                      r"failed 0, ETA (\S+)$")
ENDED = ("SUCCEEDED", "FAILED", "STOPPED")
TUNE_OUTPUT = ("Trial status", "Number of trials", "Trial name", "│", "+--", "Current time:", "Result logdir")


@pytest.fixture(scope="module")
def head():
    return shared_head()  # the jobs' ids and experiment folders are their own


def _job_copies(head) -> list[Path]:
    """Ray's unpacked copies of the jobs' working dirs on this (single-node) cluster."""
    files = Path(head.temp_dir) / "session_latest" / "runtime_resources" / "working_dir_files"
    return [p for p in files.glob("_ray_pkg_*") if p.is_dir()]


@pytest.fixture(scope="module")
def stored_job(head, tmp_path_factory):
    """Two jobs side by side: the demo sweep with its file's relative storage (refused), submitted
    without waiting, and the example plugin's sweep with $LTRAY_STORAGE and the plugin's folder as
    the working dir, followed to its end like a user would."""
    submitted = head.submit(["python", "-m", "ltray.sweep", "sweeps/demo.yaml"], "ltray-relative",
                            working_dir=str(ROOT), timeout=120, wait=False)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    tmp = tmp_path_factory.mktemp("job")
    sweep_file = tmp / "example.yaml"
    sweep_file.write_text(yaml.safe_dump(SWEEP))
    storage = tmp / "experiments"
    proc = head.submit(["python", "-m", "ltray.sweep", str(sweep_file), "--progress-interval", "10"], "ltray-stored",
                       working_dir=str(EXAMPLE), env_vars={"LTRAY_STORAGE": str(storage)}, timeout=600)
    wait_for(lambda: head.job_status("ltray-relative") in ENDED, 120, "the refused job to end", interval_s=0.5)
    return proc, storage / SWEEP["name"], head.job_logs("ltray-stored")


def test_relative_storage_in_the_jobs_copy_is_refused_before_training(head, stored_job):
    assert head.job_status("ltray-relative") == "FAILED"
    logs = head.job_logs("ltray-relative")
    errors = [line for line in logs.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, logs
    assert "'experiments' (from the sweep file) is a relative path" in errors[0]
    assert "runtime_resources" in errors[0] and "LTRAY_STORAGE" in errors[0]
    assert "Traceback" not in logs
    copies = _job_copies(head)
    assert any((c / "ltray").is_dir() for c in copies)  # the repository was uploaded
    assert not any((c / "experiments").exists() for c in copies)  # nothing written there


def test_ltray_storage_of_the_job_puts_the_experiment_folder_there(head, stored_job):
    proc, exp, _ = stored_job
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert head.job_status("ltray-stored") == "SUCCEEDED"
    assert (exp / layout.MARKER).is_file()
    rounds = pd.read_csv(exp / layout.csv("rounds"))
    assert len(rounds) == N_ROWS and not rounds.duplicated(["trial_id", "round"]).any()
    assert len(list(exp.glob(f"{layout.CONSENSUS_DIR}/pair-*/t2.ltmask"))) == 1
    assert not any((c / "experiments").exists() for c in _job_copies(head))
    check_results(exp)  # the plugin's arch, dataset and technique ran
    check_analysis(exp, exp.parent / "report")


def test_job_log_is_ltrays_progress_not_tunes_tables(stored_job):
    _, exp, logs = stored_job
    lines = logs.splitlines()
    assert f"ltray sweep 'example': experiment folder {exp} (storage from $LTRAY_STORAGE)" in lines
    assert any(line.startswith("  Ray 127.0.0.1:") and "4 trained rounds, 1 consensus groups, up to 1 follow-ups"
               in line for line in lines), logs
    etas = [m.group(1) for m in map(PROGRESS.match, lines) if m]
    assert len(etas) >= 2, logs  # the first line, then periodic and event lines
    assert any(eta != "-" for eta in etas), etas  # an ETA once rounds have been measured
    consensus = pd.read_csv(exp / layout.csv("consensus"))
    event = f"  consensus group {consensus['group'][0]} complete: consensus sparsity {consensus['sparsity'][0]:.1%}"
    assert event in lines, logs
    last = [line for line in lines if PROGRESS.match(line)][-1]
    assert "trajectories 2/2, rounds 4/4, follow-ups 1/1, running 0, pending 0" in last, logs
    assert (exp / layout.SUMMARY_TXT).read_text().splitlines()[0] in lines  # the summary table
    assert f"experiment folder: {exp}  (report: ltray analysis {exp})" in lines
    assert not [line for line in lines if any(t in line for t in TUNE_OUTPUT)], logs
    assert len(lines) <= 40, logs


def test_no_consensus_actor_outlives_the_job(head, stored_job):
    from ray.util.state import list_actors

    _, exp, _ = stored_job
    actors = list_actors(address=head.dashboard, filters=[("class_name", "=", "ConsensusActor")], detail=True,
                         raise_on_missing_output=False)
    ours = [a for a in actors if a.name == actor_name(str(exp))]
    assert len(ours) == 1 and ours[0].state == "DEAD", actors  # it existed, and was killed at the end
    # nothing of the job's is left alive (other test files' sweeps may run on the shared cluster)
    alive = list_actors(address=head.dashboard, filters=[("job_id", "=", ours[0].job_id), ("state", "!=", "DEAD")],
                        raise_on_missing_output=False)
    assert alive == [], alive
