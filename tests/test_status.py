"""python -m ltray.status on a hand-made experiment folder: the counts come from the trials' own
files (not the rounds table), the state and ETA from the driver's lease, failures with their line."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment.lease import Lease
from ltray.experiment.progress import experiment_progress
from ltray.storage import LocalStorage
from ltray.status import main

ROOT = Path(__file__).resolve().parents[1]


def trajectory(trial_id, arch, technique, rounds):
    return {"trial_id": trial_id, "task": "mnist", "arch": arch, "technique": technique,
            "seed": 0, "rounds": rounds, "extra_field": "ignored"}


def group(gid):
    """A group launching 4 follow-ups at most: 2 thresholds x (a consensus ticket + a random one)
    for its one target (no bespoke baselines)."""
    return {"group_id": gid, "name": "g", "arch": "lenet", "seed": 0, "technique": "global", "source_round": 2,
            "source_trials": {"mnist": "A", "fashion": "B"}, "thresholds": [1, 2], "targets": ["mnist"],
            "bespoke_baseline": False}


def rows(trial_id, rounds, kind="bespoke"):
    return {"trial_id": trial_id, "rounds": [{"trial_id": trial_id, "kind": kind, "round": r, "seconds": 1.0,
                                              "mask_path": layout.trajectory_mask(trial_id, r)} for r in rounds]}


@pytest.fixture()
def experiment(tmp_path):
    root = tmp_path / "exp"
    plan = {"trajectories": [trajectory("A", "lenet", "global", 3), trajectory("B", "lenet", "global", 3),
                             trajectory("C", "lenet", "layerwise", 3), trajectory("D", "vgg", "global", 2)],
            "groups": [group("g1"), group("g2")], "n_followups_max": 8}
    root.mkdir()
    (root / "experiment.json").write_text(json.dumps({"format": layout.FORMAT_VERSION}))
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "rounds.csv").write_text("garbage, not a table\n\x00")  # status must not need it
    # A is done; B has 2 rounds and was interrupted; C failed after round 0; D has not started;
    # F1 is a finished follow-up, F2 an interrupted one, F3 a failed one
    files = {"A": rows("A", [0, 1, 2]), "B": rows("B", [0, 1]), "C": rows("C", [0]),
             "F1": rows("F1", [0], "pret_a_porter")}
    for trial_id, marker in [("A", "done.json"), ("B", None), ("C", "error.json"),
                             ("F1", "done.json"), ("F2", None), ("F3", "error.json")]:
        folder = root / "trials" / trial_id
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(files.get(trial_id, {"trial_id": trial_id, "rounds": []})))
        if marker == "error.json":
            (folder / marker).write_text(json.dumps({"error": f"CUDA out of memory in {trial_id}\nmore"}))
        elif marker:
            (folder / marker).write_text("{}")
    for k in (1, 2):  # g1 complete (both thresholds), g2 only t1
        (root / "consensus" / "g1").mkdir(parents=True, exist_ok=True)
        (root / "consensus" / "g1" / f"t{k}.ltmask").write_bytes(b"x")
    (root / "consensus" / "g2").mkdir()
    (root / "consensus" / "g2" / "t1.ltmask").write_bytes(b"x")
    return root


def test_counts_come_from_the_trials_files(experiment):
    p = experiment_progress(LocalStorage(experiment))
    slices = {(s.arch, s.technique): (s.done, s.total, s.running, s.interrupted, s.failed, s.rounds_done,
                                      s.rounds_total) for s in p.slices}
    assert slices == {("lenet", "global"): (1, 2, 0, 1, 0, 5, 6),
                      ("lenet", "layerwise"): (0, 1, 0, 0, 1, 1, 3),
                      ("vgg", "global"): (0, 1, 0, 0, 0, 0, 2)}
    assert (p.groups_complete, p.groups_total) == (1, 2)
    assert p.followups == {"done": 1, "running": 0, "interrupted": 1, "failed": 1, "total": 8, "pending": 5}
    assert p.failures == [("C", "CUDA out of memory in C"), ("F3", "CUDA out of memory in F3")]
    assert p.state == "not started"
    assert any("rounds.csv" in n for n in p.notes)  # the garbage table is said, not fatal


def test_done_marker_wins_over_error(experiment):
    (experiment / "trials" / "C" / "done.json").write_text("{}")  # retried and finished
    p = experiment_progress(LocalStorage(experiment))
    layerwise = next(s for s in p.slices if s.technique == "layerwise")
    assert (layerwise.done, layerwise.failed, layerwise.rounds_done) == (1, 0, 3)
    assert [t for t, _ in p.failures] == ["F3"]


def test_running_state_eta_and_running_trials_from_the_lease(experiment):
    storage = LocalStorage(experiment)
    lease = Lease(storage)
    lease.acquire()
    lease.info.progress = {"eta_s": 3725.0, "running": ["B", "F2"]}
    lease.renew()
    p = experiment_progress(storage)
    assert p.state == "running" and p.eta_s == 3725.0
    lenet = next(s for s in p.slices if s.technique == "global" and s.arch == "lenet")
    assert (lenet.running, lenet.interrupted) == (1, 0)
    assert (p.followups["running"], p.followups["interrupted"]) == (1, 0)
    lease.release("interrupted")
    assert experiment_progress(storage).state == "interrupted"


def test_a_dead_driver_reads_as_interrupted(experiment):
    doc = {"token": "x", "host": socket.gethostname(), "pid": 2**22 + 12345, "started": time.time(),
           "heartbeat": time.time(), "state": "running"}  # that pid does not exist
    (experiment / "driver.json").write_text(json.dumps(doc))
    assert experiment_progress(LocalStorage(experiment)).state == "interrupted"
    doc.update(host="another-host", pid=os.getpid(), heartbeat=time.time() - 3600)  # silent for an hour
    (experiment / "driver.json").write_text(json.dumps(doc))
    assert experiment_progress(LocalStorage(experiment)).state == "interrupted"


def test_printed_table(experiment, capsys):
    assert main([str(experiment)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"experiment {experiment}: not started (no driver has run it)"
    assert out[1].split() == ["arch", "technique", "trajectories", "running", "interrupted", "failed", "rounds"]
    assert out[2].split() == ["lenet", "global", "1/2", "0", "1", "0", "5/6"]
    assert out[5].split() == ["all", "1/4", "0", "1", "1", "6/11"]
    assert "consensus groups complete: 1/2" in out
    assert "follow-ups: 1 done, 0 running, 1 interrupted, 1 failed, 5 pending (of 8)" in out
    assert "failed trials: 2" in out and "  C: CUDA out of memory in C" in out


def test_watch_refreshes_until_the_sweep_stops(experiment, capsys, monkeypatch):
    """Redrawn after each interval while the driver runs; the driver ends during the second wait
    (the waits are counted, not waited: no timing involved)."""
    import ltray.status

    lease = Lease(LocalStorage(experiment))
    lease.acquire()
    waits = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            lease.release("finished")

    monkeypatch.setattr(ltray.status, "time", SimpleNamespace(sleep=wait))
    assert main([str(experiment), "--watch", "1"]) == 0
    out = capsys.readouterr().out
    assert waits == [1.0, 1.0]
    assert out.count("running (driver") == 2 and out.rstrip().count("\n") > 10
    assert f"experiment {experiment}: finished" in out


def test_fresh_experiment_without_trials(tmp_path):
    (tmp_path / "experiment.json").write_text(json.dumps({"format": layout.FORMAT_VERSION}))
    (tmp_path / "plan.json").write_text(json.dumps(
        {"trajectories": [trajectory("A", "lenet", "global", 20)], "n_followups_max": 4}))
    p = experiment_progress(LocalStorage(tmp_path))
    assert (p.slices[0].rounds_done, p.slices[0].rounds_total) == (0, 20)
    assert (p.groups_total, p.followups["total"], p.followups["pending"]) == (0, 4, 4)


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "not an ltray experiment folder (no experiment.json)"),
    (lambda d: (d / "experiment.json").write_text('{"format": 99}'), "folder format 99 was written by a newer ltray"),
    (lambda d: (d / "plan.json").write_text("{not json"), "plan.json: (top level): Invalid JSON"),
    (lambda d: (d / "plan.json").write_text('{"trajectories": [{"trial_id": "A"}]}'),
     "plan.json: trajectories.0.task: Field required"),
])
def test_not_an_experiment(tmp_path, capsys, setup, message):
    if "experiment.json" not in message:
        (tmp_path / "experiment.json").write_text(json.dumps({"format": layout.FORMAT_VERSION}))
    setup(tmp_path)
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        experiment_progress(LocalStorage(tmp_path))
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_missing_folder_via_subprocess(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ltray.status", str(tmp_path / "nope")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"ltray.status: {tmp_path / 'nope'}: no such experiment folder"
    assert "Traceback" not in result.stderr
