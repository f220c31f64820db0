"""The pure sweep plan: stable trial ids, consensus groups, follow-up readiness, per-arch inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltray.errors import ConfigError
from ltray.orchestration.load import load_sweep, parse_sweep
from ltray.orchestration.plan import build_plan, group_followups
from tests.sweep_helpers import TINY_SWEEP

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


def test_shipped_sweeps_plan_the_documented_sizes():
    full = build_plan(load_sweep(SWEEPS / "full.yaml"))
    assert len(full.trajectories) == 7 * 4 * 7 * 6
    assert len(full.groups) == 4 * 6 and full.max_followups() == 24 * (7 * 2 + 5 * 7)
    demo = build_plan(load_sweep(SWEEPS / "demo.yaml"))
    assert len(demo.trajectories) == 8 and demo.max_followups() == 53
    bundled = build_plan(load_sweep(SWEEPS / "paper-bundled.yaml"))
    assert len(bundled.trajectories) == 5 and bundled.max_followups() == 6 * 2 + 5 * 6
    (group,) = bundled.groups
    assert group.thresholds == (5,) and group.source_round == 2  # the paper's: 5 of 5, after 2 rounds
    train = bundled.sweep.train
    assert (train.lr, train.batch_size, train.momentum, train.weight_decay, train.rewind) == (0.01, 32, 0, 0, "init")
    denoise = build_plan(load_sweep(SWEEPS / "denoise.yaml"))
    assert {t.labels.arch for t in denoise.trajectories} == {"lenet", "alexnet", "vgg11", "resnet18"}


def test_trial_ids_are_stable_unique_and_follow_settings():
    a, b = build_plan(parse_sweep(TINY_SWEEP)), build_plan(parse_sweep(TINY_SWEEP))
    ids = [t.trial_id for t in a.trajectories]
    assert ids == [t.trial_id for t in b.trajectories] and len(set(ids)) == len(ids)
    changed = build_plan(parse_sweep({**TINY_SWEEP, "train": {**TINY_SWEEP["train"], "lr": 0.02}}))
    assert not set(ids) & {t.trial_id for t in changed.trajectories}


def test_prune_shortcuts_reaches_every_trajectory_config():
    default = build_plan(parse_sweep(TINY_SWEEP))
    assert all(t.config.prune.prune_shortcuts is False for t in default.trajectories)  # the paper's rule
    asked = build_plan(parse_sweep({**TINY_SWEEP, "prune": {"prune_shortcuts": True}}))
    assert all(t.config.prune.prune_shortcuts is True for t in asked.trajectories)
    assert all(t.config.technique == t.labels.technique for t in asked.trajectories)
    assert not {t.trial_id for t in default.trajectories} & {t.trial_id for t in asked.trajectories}
    with pytest.raises(ConfigError, match="prune.prune_shortcuts"):
        parse_sweep({**TINY_SWEEP, "prune": {"prune_shortcuts": "sometimes"}})


def test_consensus_sources_run_first_and_thresholds_resolve():
    plan = build_plan(parse_sweep({**TINY_SWEEP, "consensus": [{**TINY_SWEEP["consensus"][0],
                                                                "thresholds": ["all", 2]}]}))
    (group,) = plan.groups
    sources = set(group.source_trials.values())
    first = [t.trial_id for t in plan.trajectories[: len(sources)]]
    assert set(first) == sources
    assert group.thresholds == (3, 2) and group.loo_thresholds == (2,)


def test_transfer_baseline_waits_for_a_round_at_least_as_sparse():
    plan = build_plan(parse_sweep(TINY_SWEEP))
    (group,) = plan.groups
    tids = list(group.source_trials.values())
    early = {tid: {0: 0.0, 1: 0.2} for tid in tids}
    kinds = {t.kind for t in group_followups(plan.sweep, group, {3: 0.3}, early)}
    assert kinds == {"pret_a_porter", "random"}  # no source has reached 30 % yet
    later = {tid: {0: 0.0, 1: 0.2, 2: 0.36} for tid in tids}
    transfers = [t for t in group_followups(plan.sweep, group, {3: 0.3}, later) if t.kind == "transfer"]
    assert len(transfers) == len(tids) * len(group.targets)
    assert {t.labels.source_round for t in transfers} == {2}  # |0.36-0.3| < |0.2-0.3|
    tie = {tid: {0: 0.0, 1: 0.2, 2: 0.4} for tid in tids}
    assert {t.labels.source_round for t in group_followups(plan.sweep, group, {3: 0.3}, tie)
            if t.kind == "transfer"} == {1}  # ties go to the earlier round


def test_per_architecture_image_sizes():
    raw = {**TINY_SWEEP, "grid": {**TINY_SWEEP["grid"], "archs": ["lenet", "alexnet"]}, "consensus": [],
           "image_sizes": {"alexnet": 64}}
    plan = build_plan(parse_sweep(raw))
    sizes = {t.labels.arch: t.config.data.image_size for t in plan.trajectories}
    assert sizes == {"lenet": None, "alexnet": 64}
    with pytest.raises(ConfigError, match="image_sizes.alexnet: 32 px is below alexnet's minimum"):
        parse_sweep({**raw, "image_sizes": {"alexnet": 32}})
