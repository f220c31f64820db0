"""Shared pieces of the end-to-end sweep tests: a tiny real sweep, and
readers that check an experiment folder from its files alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ltray.masks import load_mask
from tests.temp_dirs import short_tmpdir  # noqa: F401 - the sweep tests import it from here

TINY_SWEEP = {
    "name": "tiny",
    "tasks": {
        "plain": {"dataset": "mnist_subset"},
        "rot90": {"dataset": "mnist_subset", "views": [{"rotate": 90}]},
        "inverted": {"dataset": "mnist_subset", "views": [{"invert": True}]},
        "uci": {"dataset": "digits"},
    },
    "grid": {"tasks": ["plain", "rot90", "inverted"], "archs": ["lenet"],
             "techniques": ["global_unstructured", "random_unstructured"], "seeds": [0]},
    "rounds": 3,
    "train": {"epochs": 1, "lr": 0.01, "momentum": 0.9},
    "data": {"crop": False, "flip": False, "max_train_samples": 256},
    "resources": {"lenet": {"cpu": 1}},
    "max_concurrent": 2,
    "max_failures": 3,
    "consensus": [{
        "name": "views", "sources": ["plain", "rot90", "inverted"], "technique": "global_unstructured",
        "source_rounds": [1], "thresholds": ["all"], "targets": ["plain", "rot90", "inverted", "uci"],
        "leave_one_out": True,
    }],
}


# One trial at a time, for scenarios that test something other than concurrent trials (the
# tiny sweep itself, test_multinode, test_autoscaling and test_metrics run trials side by side):
# each trial worker costs about 10 CPU-seconds of imports (torch, Ray Tune), and on the suite's
# 2 busy cores a second one makes a scenario slower, not faster.
ONE_AT_A_TIME = {"max_concurrent": 1}
# the tiny sweep with one technique, two targets and no leave-one-out: 3 trajectories, a group, 10
# follow-ups, one trial at a time
SMALL = dict(grid={**TINY_SWEEP["grid"], "techniques": ["global_unstructured"]},
             consensus=[{**TINY_SWEEP["consensus"][0], "leave_one_out": False, "targets": ["plain", "uci"]}],
             **ONE_AT_A_TIME)


def tiny_sweep(storage: Path, **overrides):
    from ltray.orchestration.load import parse_sweep

    raw = {**TINY_SWEEP, "storage": str(storage), **overrides}
    return parse_sweep(raw, "tiny.yaml")


def run_sweep_here(plan, resume: bool = False, **kw) -> Path:
    """Open the plan's experiment folder and run the sweep on the Ray this process joined."""
    from ltray.storage import open_storage
    from ltray.orchestration.location import experiment_location
    from ltray.orchestration.opening import open_experiment
    from ltray.sweep.run import run_sweep

    location = experiment_location(plan.sweep.name, plan.sweep.storage)
    storage = open_storage(location.experiment)
    open_experiment(plan, storage, resume)
    kw.setdefault("address", "local")  # never a cluster that `ray start` left on this machine
    result = run_sweep(plan, storage, resume=resume, verbose=0, **kw)
    assert not result.problems, result.problems
    return Path(location.experiment)


def rounds_table(exp: Path) -> pd.DataFrame:
    return pd.read_csv(exp / "rounds.csv")


def source_masks(exp: Path, plan, group) -> dict[str, dict]:
    return {task: load_mask(exp / "masks" / tid / f"round_{group.source_round:02d}.ltmask")
            for task, tid in group.source_trials.items()}


def vote_consensus(masks: list[dict], k: int) -> dict:
    """Independent oracle: keep a weight when at least k masks keep it."""
    return {n: np.sum([m[n] for m in masks], axis=0) >= k for n in masks[0]}


def assert_complete_and_unique(exp: Path, plan) -> pd.DataFrame:
    """Every round of every trajectory and every follow-up, each exactly once."""
    rounds = rounds_table(exp)
    assert not rounds.duplicated(["trial_id", "round"]).any()
    for t in plan.trajectories:
        assert sorted(rounds[rounds.trial_id == t.trial_id]["round"]) == list(range(plan.sweep.rounds))
    followups = rounds[rounds.kind != "bespoke"]
    assert len(followups) == plan.max_followups(), (len(followups), plan.max_followups(), sorted(followups.trial_id))
    assert followups.trial_id.is_unique, sorted(followups.trial_id)
    return rounds


def tune_trial_dirs(exp: Path) -> list[str]:
    """Names of every Tune trial folder of every run of the experiment (one per launch)."""
    return [p.name for run in sorted((exp / "tune").glob("run-*")) for p in run.iterdir() if p.is_dir()]
