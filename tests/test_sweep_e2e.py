"""End to end through Ray on CPU: a tiny sweep with a consensus group runs to completion, and the
files on disk show every round, exact consensus masks, and every follow-up launched exactly once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltray.experiment.schemas import CONSENSUS, ROUNDS, SIMILARITY
from ltray.masks import count_kept, load_mask, sparsity
from ltray.sweep.plan import build_plan, group_followups
from tests.sweep_helpers import (rounds_table, run_sweep_here, source_masks, start_local_ray, tiny_sweep,
                                 tune_trial_dirs, vote_consensus)

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    import ray

    sweep = tiny_sweep(tmp_path_factory.mktemp("exp"))
    plan = build_plan(sweep)
    start_local_ray()
    try:
        exp = run_sweep_here(plan)
    finally:
        ray.shutdown()
    return exp, plan


def test_every_trajectory_has_one_mask_and_row_per_round(finished):
    exp, plan = finished
    rounds = rounds_table(exp)
    for t in plan.trajectories:
        files = sorted(p.name for p in (exp / "masks" / t.trial_id).glob("*.ltmask"))
        assert files == [f"round_{r:02d}.ltmask" for r in range(plan.sweep.rounds)]
        rows = rounds[rounds.trial_id == t.trial_id]
        assert sorted(rows["round"]) == list(range(plan.sweep.rounds))
        assert (exp / "trials" / t.trial_id / "done.json").exists()
    bespoke = rounds[rounds.kind == "bespoke"]
    expected = {r: 1 - 0.8**r for r in range(plan.sweep.rounds)}
    for _, row in bespoke.iterrows():
        assert abs(row.sparsity - expected[row["round"]]) < 1e-3
        assert row.effective_sparsity >= row.sparsity - 1e-12


def test_consensus_masks_equal_the_vote_of_their_sources(finished):
    exp, plan = finished
    (group,) = plan.groups
    masks = source_masks(exp, plan, group)
    for k in group.thresholds:
        got = load_mask(exp / group.consensus_path(k))
        want = vote_consensus(list(masks.values()), k)
        assert all(np.array_equal(got[n], want[n]) for n in want)
        rnd = load_mask(exp / group.random_path(k))
        assert all(count_kept({n: rnd[n]}) == count_kept({n: got[n]}) for n in got)
        assert any(not np.array_equal(rnd[n], got[n]) for n in got)
    for k in group.loo_thresholds:
        for task in group.sources:
            others = [m for t, m in masks.items() if t != task]
            got = load_mask(exp / group.loo_path(k, task))
            want = vote_consensus(others, k)
            assert all(np.array_equal(got[n], want[n]) for n in want)
    table = pd.read_csv(exp / "consensus.csv")
    assert list(table.columns) == CONSENSUS.names
    assert len(table) == len(group.thresholds) + len(group.loo_thresholds) * len(group.sources)
    intersection = table[(table.threshold == len(group.sources)) & table.leave_out.isna()].iloc[0]
    assert pd.read_parquet(exp / "consensus.parquet")["threshold"].dtype == "Int64"
    assert intersection.sparsity == pytest.approx(sparsity(load_mask(exp / intersection.mask_path)))


def test_every_followup_was_launched_exactly_once(finished):
    exp, plan = finished
    (group,) = plan.groups
    rounds = rounds_table(exp)
    spars = {k: sparsity(load_mask(exp / group.consensus_path(k))) for k in group.thresholds}
    source_rounds = {tid: dict(zip(g["round"], g["sparsity"]))
                     for tid, g in rounds[rounds.kind == "bespoke"].groupby("trial_id")}
    expected = {t.trial_id for t in group_followups(plan.sweep, group, spars, source_rounds)}
    assert len(expected) == group.max_followups()
    followups = rounds[rounds.kind != "bespoke"]
    assert set(followups.trial_id) == expected
    assert followups.trial_id.is_unique
    launches = tune_trial_dirs(exp)
    assert sorted(t for t in launches if t in expected) == sorted(expected)
    assert set(followups.kind) == {"pret_a_porter", "random", "transfer"}
    held_out = followups[followups.dataset == "uci"]
    assert held_out.held_out.astype(str).eq("True").all()
    for tid in expected:
        assert (exp / "masks" / tid / "ticket.ltmask").exists()


def test_tables_have_the_documented_columns(finished):
    exp, _ = finished
    assert list(pd.read_csv(exp / "rounds.csv").columns) == ROUNDS.names
    assert list(pd.read_parquet(exp / "rounds.parquet").columns) == ROUNDS.names
    assert set(pd.read_csv(exp / "rounds.csv")["device"]) == {"cpu"}
    sim = pd.read_csv(exp / "similarity.csv")
    assert list(sim.columns) == SIMILARITY.names
    assert (exp / "summary.txt").read_text().strip()
    for name in ("sweep.yaml", "provenance.json", "plan.json", "experiment.json"):
        assert (exp / name).exists()


def test_random_pruning_removes_the_same_weights_on_every_task(finished):
    exp, _ = finished
    sim = pd.read_csv(exp / "similarity.csv")
    random_pairs = sim[(sim.technique_a == "random_unstructured") & (sim.technique_b == "random_unstructured")]
    assert len(random_pairs) > 0
    assert (random_pairs.jaccard_distance == 0).all()
    magnitude = sim[(sim.technique_a == "global_unstructured") & (sim.technique_b == "global_unstructured")
                    & (sim.layer == "__all__") & (sim["round"] > 0)]
    assert (magnitude.jaccard_distance > 0).all()


def test_status_reads_the_finished_experiment(finished, capsys):
    from ltray.status import main

    exp, plan = finished
    assert main([str(exp)]) == 0
    out = capsys.readouterr().out
    assert f"{len(plan.trajectories)}/{len(plan.trajectories)}" in out
