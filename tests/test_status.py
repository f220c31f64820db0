"""python -m ltray.status on a hand-made experiment folder: the counts it prints are exact."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ltray.errors import ExperimentError
from ltray.status import main, progress

ROOT = Path(__file__).resolve().parents[1]
HEADER = "trial_id,kind,dataset,arch,technique,seed,round,sparsity,group,threshold\n"


def trajectory(trial_id, arch, technique, rounds):
    return {"trial_id": trial_id, "task": "mnist", "arch": arch, "technique": technique,
            "seed": 0, "rounds": rounds, "extra_field": "ignored"}


@pytest.fixture()
def experiment(tmp_path):
    root = tmp_path / "exp"
    plan = {
        "trajectories": [trajectory("A", "lenet", "global", 3),
                         trajectory("B", "lenet", "global", 3),
                         trajectory("C", "lenet", "layerwise", 3),
                         trajectory("D", "vgg", "global", 2)],
        "groups": [{"group": "g1", "sources": ["mnist", "fashion"], "source_round": 2,
                    "thresholds": [1, 2], "n_followups": 3},
                   {"group": "g2", "sources": ["mnist", "fashion"], "source_round": 2,
                    "thresholds": [1, 2], "n_followups": 2}],
        "n_followups_max": 9,
    }
    root.mkdir()
    (root / "plan.json").write_text(json.dumps(plan))
    # A is done but its rows are not written yet; B has 2 rounds and runs; C failed after
    # round 0; D has not started; F4 is a follow-up whose row exists; the last line is torn.
    (root / "rounds.csv").write_text(
        HEADER + "B,bespoke,mnist,lenet,global,0,0,0.0,,\nB,bespoke,mnist,lenet,global,0,1,0.2,,\n"
        "B,bespoke,mnist,lenet,global,0,1,0.2,,\n"  # a duplicate row counts once
        "C,bespoke,mnist,lenet,layerwise,0,0,0.0,,\n"
        "F4,pret_a_porter,mnist,lenet,global,0,0,0.5,g1,2\nD,bespoke,mnist,vgg,global,0,1")
    (root / "consensus.csv").write_text(
        "group,threshold,leave_out\ng1,1,\ng1,2,\ng2,1,\ng2,2,mnist\n")  # g2's t2 is only LOO
    for trial_id, marker in [("A", "done.json"), ("B", None), ("C", "error.json"),
                             ("F1", "done.json"), ("F2", None), ("F3", "error.json")]:
        folder = root / "trials" / trial_id
        folder.mkdir(parents=True)
        if marker == "error.json":
            message = f"CUDA out of memory in {trial_id}\nTraceback..."
            (folder / marker).write_text(json.dumps({"message": message}))
        elif marker:
            (folder / marker).write_text("{}")
    return root


def test_counts(experiment):
    p = progress(experiment)
    rows = {(r.arch, r.technique):
            (r.done, r.total, r.started, r.failed, r.rounds_done, r.rounds_total) for r in p.rows}
    assert rows == {("lenet", "global"): (1, 2, 1, 0, 5, 6),
                    ("lenet", "layerwise"): (0, 1, 0, 1, 1, 3),
                    ("vgg", "global"): (0, 1, 0, 0, 0, 2)}
    assert (p.groups_complete, p.groups_total) == (1, 2)
    assert (p.followups_done, p.followups_started, p.followups_failed) == (2, 1, 1)
    assert (p.followups_total, p.followups_pending) == (5, 1)
    assert p.failures == [("C", "CUDA out of memory in C"), ("F3", "CUDA out of memory in F3")]


def test_done_marker_wins_over_error(experiment):
    (experiment / "trials" / "C" / "done.json").write_text("{}")  # retried and finished
    p = progress(experiment)
    layerwise = next(r for r in p.rows if r.technique == "layerwise")
    assert (layerwise.done, layerwise.failed, layerwise.rounds_done) == (1, 0, 3)
    assert [t for t, _ in p.failures] == ["F3"]


def test_printed_table(experiment, capsys):
    assert main([str(experiment)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"experiment {experiment}"
    assert out[1].split() == ["arch", "technique", "trajectories", "started", "failed", "rounds"]
    assert out[2].split() == ["lenet", "global", "1/2", "1", "0", "5/6"]
    assert out[5].split() == ["all", "1/4", "1", "1", "6/11"]
    assert "consensus groups complete: 1/2" in out
    assert "follow-ups: 2 done, 1 started, 1 failed, 1 pending (of 5)" in out
    assert "failed trials: 2" in out and "  C: CUDA out of memory in C" in out


def test_fresh_experiment_without_tables(tmp_path, capsys):
    (tmp_path / "plan.json").write_text(json.dumps(
        {"trajectories": [trajectory("A", "lenet", "global", 20)], "n_followups_max": 4}))
    p = progress(tmp_path)
    assert (p.rows[0].rounds_done, p.rows[0].rounds_total) == (0, 20)
    assert (p.groups_total, p.followups_total, p.followups_pending) == (0, 4, 4)


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "not an ltray experiment folder (no plan.json)"),
    (lambda d: (d / "plan.json").write_text("{not json"), "plan.json: (top level): Invalid JSON"),
    (lambda d: (d / "plan.json").write_text('{"trajectories": [{"trial_id": "A"}]}'),
     "plan.json: trajectories.0.task: Field required"),
])
def test_not_an_experiment(tmp_path, capsys, setup, message):
    setup(tmp_path)
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        progress(tmp_path)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_missing_folder_via_subprocess(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ltray.status", str(tmp_path / "nope")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"ltray.status: {tmp_path / 'nope'}: no such experiment folder"
    assert "Traceback" not in result.stderr
