"""A sweep with `loggers: [tensorboard, mlflow, wandb]` writes runs that each tracker's own reader
gets back: one per trial, named by ltray's trial id with its labels as tags, and one run
"consensus" with the group's sparsity and the follow-ups launched. A missing extra is one line."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from ltray.errors import ConfigError
from ltray.orchestration.plan import build_plan
from ltray.sweep.trackers import check_trackers, trial_tags
from ltray.sweep.tune_io import RunSettings, trial_config
from tests.shared_head import joined
from tests.sweep_helpers import ONE_AT_A_TIME, TINY_SWEEP, run_sweep_here, tiny_sweep

pytestmark = pytest.mark.ray

TRACKED = dict(
    grid={"tasks": ["plain", "rot90"], "archs": ["lenet"], "techniques": ["global_unstructured"], "seeds": [0]},
    rounds=2,
    consensus=[{"name": "views", "sources": ["plain", "rot90"], "technique": "global_unstructured",
                "source_rounds": [1], "thresholds": ["all"], "targets": ["plain"],  # 1 follow-up
                "baselines": {"random": False, "bespoke": False}}],
    loggers=["tensorboard", "mlflow", "wandb"],
    **ONE_AT_A_TIME,
)


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    env = pytest.MonkeyPatch()
    offline = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for name, value in offline.items():
        env.setenv(name, value)
    for name in ("MLFLOW_TRACKING_URI", "WANDB_PROJECT", "MLFLOW_ALLOW_FILE_STORE",
                 "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"):
        env.delenv(name, raising=False)  # restored afterwards, whatever the sweep set
    sweep = tiny_sweep(tmp_path_factory.mktemp("exp"), **TRACKED)
    plan = build_plan(sweep)
    try:
        with joined(env_vars=offline):  # W&B's actors run on the cluster's workers
            exp = run_sweep_here(plan)
    finally:
        env.undo()
    rounds = pd.read_csv(exp / "rounds.csv")
    consensus = pd.read_csv(exp / "consensus.csv")
    return exp, plan, rounds, consensus


def labels_of(rounds: pd.DataFrame) -> dict[str, dict[str, str]]:
    """What each trial's tags must say, from ltray's own table."""
    out = {}
    for tid, rows in rounds.groupby("trial_id"):
        row = rows.iloc[0]
        out[tid] = {"kind": row["kind"], "task": row["task"], "arch": row["arch"],
                    "technique": row["technique"], "seed": str(int(row["seed"]))}
    return out


def test_sweep_ran_follow_ups(logged):
    exp, plan, rounds, consensus = logged
    assert set(rounds["kind"]) == {"bespoke", "pret_a_porter"}
    assert len(consensus[consensus.leave_out.isna()]) == 1


def test_tensorboard_runs_read_back(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp, plan, rounds, consensus = logged
    (run_dir,) = (exp / "tune").glob("run-001-*")
    expected = labels_of(rounds)
    for tid, labels in expected.items():
        acc = EventAccumulator(str(run_dir / tid), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        got_rounds = [e.value for e in acc.Scalars("ray/tune/round")]
        assert got_rounds == sorted(rounds[rounds.trial_id == tid]["round"].astype(float).tolist())
        val = [e.value for e in acc.Scalars("ray/tune/val_acc")]
        assert val == pytest.approx(rounds[rounds.trial_id == tid].sort_values("round")["val_acc"].tolist())
        (text,) = acc.Tensors("ltray/labels/text_summary")  # tensorboardX's name for it
        shown = text.tensor_proto.string_val[0].decode()
        assert f"trial_id: {tid}" in shown
        assert all(f"{k}: {v}" in shown for k, v in labels.items())
    acc = EventAccumulator(str(run_dir / "consensus"), size_guidance={"scalars": 0})
    acc.Reload()
    row = consensus[consensus.leave_out.isna()].iloc[0]
    (spars,) = acc.Scalars(f"consensus_sparsity/{row.group}/t{row.threshold}")
    assert spars.value == pytest.approx(row.sparsity)
    assert [e.value for e in acc.Scalars("groups_complete")] == [1]
    followups = sorted(t for t, lab in expected.items() if lab["kind"] != "bespoke")
    launched = acc.Scalars("followups_launched")
    assert [e.value for e in launched] == list(range(1, len(followups) + 1))
    assert spars.step < launched[0].step  # the group completes before its follow-ups start


def test_mlflow_runs_read_back(logged):
    from mlflow.tracking import MlflowClient

    exp, plan, rounds, consensus = logged
    store = exp / "mlflow"
    assert store.is_dir()  # the default store: files under the experiment folder
    client = MlflowClient(store.as_uri())
    experiment = client.get_experiment_by_name(plan.sweep.name)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    expected = labels_of(rounds)
    assert set(runs) == set(expected) | {"consensus"}
    for tid, labels in expected.items():
        run = runs[tid]
        assert run.info.status == "FINISHED"
        assert {k: run.data.tags.get(k) for k in labels} == labels
        assert run.data.tags["trial_id"] == tid and run.data.tags["tune_run"].startswith("run-001-")
        history = client.get_metric_history(run.info.run_id, "round")
        assert sorted(m.value for m in history) == sorted(rounds[rounds.trial_id == tid]["round"].astype(float))
        mine = rounds[rounds.trial_id == tid].sort_values("round").iloc[-1]
        assert run.data.metrics["test_acc"] == pytest.approx(mine.test_acc)
    cons = runs["consensus"]
    row = consensus[consensus.leave_out.isna()].iloc[0]
    assert cons.data.metrics[f"consensus_sparsity/{row.group}/t{row.threshold}"] == pytest.approx(row.sparsity)
    assert cons.data.metrics["groups_complete"] == 1
    assert cons.data.metrics["followups_launched"] == sum(1 for lab in expected.values() if lab["kind"] != "bespoke")


def test_wandb_offline_runs(logged):
    """W&B 0.31 ships no reader for offline `.wandb` files; the run records are protobuf, whose
    strings are stored as written, so each trial's name and tags are found in exactly one file."""
    exp, plan, rounds, consensus = logged
    files = sorted((exp / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    expected = labels_of(rounds)
    assert len(files) == len(expected) + 1  # + consensus
    data = [f.read_bytes() for f in files]
    for tid, labels in expected.items():
        (blob,) = [d for d in data if tid.encode() in d]
        assert all(f"{k}:{v}".encode() in blob for k, v in labels.items())
    (cons,) = [d for d in data if b"kind:consensus" in d]
    assert b"groups_complete" in cons and b"followups_launched" in cons


def test_only_named_trackers_write(logged, tmp_path):
    """Tune's automatic TensorBoard logger is off when `loggers` does not name it."""
    exp, plan, rounds, consensus = logged
    (run_dir,) = (exp / "tune").glob("run-001-*")
    assert list(run_dir.glob("*/events.out.tfevents.*"))
    assert list(run_dir.glob("*/progress.csv"))  # Tune's CSV/JSON loggers stay


def test_trial_tags_come_from_the_plan():
    sweep = tiny_sweep("/tmp", **TRACKED)
    (first, *_) = build_plan(sweep).trajectories
    settings = RunSettings(experiment_uri="/tmp/x", experiment="x", data_root="/tmp", download=False)
    tags = trial_tags(trial_config(first, settings))
    assert tags == {"trial_id": first.trial_id, "kind": "bespoke", "task": "plain", "arch": "lenet",
                    "technique": "global_unstructured", "seed": "0"}


def test_missing_extra_is_one_line_and_nothing_starts(monkeypatch, tmp_path, capsys):
    from ltray.sweep import trackers
    from ltray.sweep.__main__ import main

    monkeypatch.setitem(trackers.TRACKERS, "mlflow", "ltray_no_such_module")  # as if not installed
    with pytest.raises(ConfigError, match=r"^s\.yaml: loggers: mlflow is not installed; "
                                          r"pip install 'ltray\[mlflow\]'$"):
        check_trackers(["tensorboard", "mlflow"], "s.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY_SWEEP, **TRACKED, "loggers": ["mlflow"], "storage": str(tmp_path)}))
    assert main([str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {path}: loggers: mlflow is not installed; pip install 'ltray[mlflow]'"]
    assert not (tmp_path / "tiny").exists()  # no experiment folder, no Ray


def test_wandb_online_without_a_key_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    with pytest.raises(ConfigError, match=r"^s\.yaml: loggers: wandb has no API key"):
        check_trackers(["wandb"], "s.yaml")
