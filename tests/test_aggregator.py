"""The consensus aggregator without Ray: similarity rows against the bool-mask metrics, consensus
masks against the vote oracle, replay of its journal (old and new line formats), follow-up configs
as sources report rounds, and masks whose output layers differ."""

import json

import numpy as np
import pytest

from ltray.experiment import layout
from ltray.experiment.journal import Journal
from ltray.storage import LocalStorage
from ltray.masks import layer_jaccard, load_mask, save_mask
from ltray.orchestration.aggregator import ConsensusAggregator as _Aggregator
from ltray.orchestration.plan import build_plan

from tests.mask_helpers import LENET, fake_masks
from tests.sweep_helpers import tiny_sweep, vote_consensus

def ConsensusAggregator(exp, plan):  # noqa: N802 - reads like the class it builds
    return _Aggregator(LocalStorage(exp), plan)


@pytest.fixture
def setup(tmp_path):
    plan = build_plan(tiny_sweep(tmp_path))
    exp = tmp_path / "exp"
    return plan, exp, fake_masks(exp, plan, 3)


def expected_similarity(exp, plan, msgs):
    """Brute force with the bool-mask metrics: every earlier mask of the same arch, seed and round
    that shares a task or technique, partners in plan order."""
    labels = {t.trial_id: t.labels for t in plan.trajectories}
    rows, seen = [], {}
    for trial, r, rel in msgs:
        me, mask = labels[trial], load_mask(exp / rel)
        for other in labels:
            lab = labels[other]
            if (other, r) not in seen or (lab.task != me.task and lab.technique != me.technique):
                continue
            theirs = seen[(other, r)]
            d = layer_jaccard(mask, theirs)
            inter = sum(int(np.count_nonzero(mask[n] & theirs[n])) for n in mask)
            union = sum(int(np.count_nonzero(mask[n] | theirs[n])) for n in mask)
            d["__all__"] = 1 - inter / union
            rows += [(trial, other, r, layer, pytest.approx(v)) for layer, v in d.items()]
        seen[(trial, r)] = mask
    return rows


def as_tuples(agg):
    return [(r["trial_a"], r["trial_b"], r["round"], r["layer"], r["jaccard_distance"]) for r in agg.similarity.rows()]


def test_similarity_consensus_and_replay(setup):
    plan, exp, msgs = setup
    agg = ConsensusAggregator(exp, plan)
    completed = [g for m in msgs for g in agg.add_mask(*m)]
    assert completed == [plan.groups[0].group_id]
    assert as_tuples(agg) == expected_similarity(exp, plan, msgs)
    g = plan.groups[0]
    sources = {task: load_mask(exp / layout.trajectory_mask(tid, g.source_round)) for task, tid in g.source_trials.items()}
    k = g.thresholds[0]
    got = load_mask(exp / g.consensus_path(k))
    want = vote_consensus(list(sources.values()), k)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    for task in g.sources:  # leave-one-out: the others' consensus
        others = [m for t, m in sources.items() if t != task]
        loo = load_mask(exp / g.loo_path(g.loo_thresholds[0], task))
        want = vote_consensus(others, g.loo_thresholds[0])
        assert all(np.array_equal(loo[n], want[n]) for n in want)
    agg.flush()
    # a restarted aggregator replays its journal into the same state
    again = ConsensusAggregator(exp, plan)
    assert as_tuples(again) == as_tuples(agg)
    assert again.rounds == agg.rounds and again.complete == agg.complete
    assert again.ready_followups() == agg.ready_followups()
    assert again.add_mask(*msgs[-1]) == []  # already registered: nothing changes


def test_journal_records_of_one_dict_per_row_replay(setup):
    plan, exp, msgs = setup
    agg = ConsensusAggregator(exp, plan)
    for m in msgs:
        agg.add_mask(*m)
    rows = agg.similarity.rows()
    records = Journal(LocalStorage(exp), layout.JOURNAL).replay().records
    (exp / "actor").rename(exp / "actor-new")
    old = Journal(LocalStorage(exp), layout.JOURNAL)
    old.replay()
    for rec in records:  # rewritten as format 1 wrote them: one dict per similarity row
        rec.pop("sim", None), rec.pop("layers", None)
        rec["similarity"] = [r for r in rows if r["trial_a"] == rec["trial"] and r["round"] == rec["round"]]
        old.append(rec)
    assert ConsensusAggregator(exp, plan).similarity.rows() == rows


def test_a_mask_sent_again_adds_no_similarity_row(setup):
    plan, exp, msgs = setup
    agg = ConsensusAggregator(exp, plan)
    for m in msgs:
        agg.add_mask(*m)
    n = len(agg.similarity.pairs)
    # the journal loses the first record (a damaged record is skipped): its mask is sent again
    first = sorted((exp / "actor" / "journal").iterdir())[0]
    first.write_text(first.read_text().replace('"round":0', '"round":7'))  # checksum no longer matches
    again = ConsensusAggregator(exp, plan)
    assert any("damaged" in n for n in again.notes) and again.problems == []
    for m in msgs:
        again.add_mask(*m)
    assert len(again.similarity.pairs) == n and len(again.paths) == len(msgs)
    assert sorted(as_tuples(again)) == sorted(as_tuples(agg))


def test_followups_refresh_when_a_source_reports_a_round(setup):
    plan, exp, msgs = setup
    agg = ConsensusAggregator(exp, plan)
    upto_group = [m for m in msgs if m[1] <= 1]
    for m in upto_group:
        agg.add_mask(*m)
    first = agg.ready_followups()
    assert agg.ready_followups() == first  # cached, same answer
    for m in msgs[len(upto_group):]:
        agg.add_mask(*m)
    later = agg.ready_followups()
    kinds = lambda specs: sorted(s.kind.value for s in specs)  # noqa: E731
    # transfers wait for a source round at least as sparse as the consensus: round 2 brings them
    assert kinds(later).count("transfer") > kinds(first).count("transfer")
    fresh = ConsensusAggregator(exp, plan)
    assert fresh.ready_followups() == later


def test_masks_with_another_output_layer_compare_on_shared_layers(tmp_path):
    plan = build_plan(tiny_sweep(tmp_path))
    exp = tmp_path / "exp"
    msgs = fake_masks(exp, plan, 2, out_classes={("rot90", "random_unstructured"): 47})  # not a consensus source
    agg = ConsensusAggregator(exp, plan)
    for m in msgs:
        agg.add_mask(*m)
    odd = next(t.trial_id for t in plan.trajectories
               if (t.labels.task, t.labels.technique) == ("rot90", "random_unstructured"))
    mixed = [r for r in agg.similarity.rows() if odd in (r["trial_a"], r["trial_b"])]
    assert mixed and {r["layer"] for r in mixed} == set(LENET) - {"fc3.weight"} | {"__all__"}
    assert all(0 <= r["jaccard_distance"] <= 1 for r in mixed)


def test_a_damaged_source_mask_is_a_problem_not_a_crash(tmp_path):
    plan = build_plan(tiny_sweep(tmp_path))
    exp = tmp_path / "exp"
    msgs = fake_masks(exp, plan, rounds=2)
    g = plan.groups[0]
    source = next(iter(g.source_trials.values()))
    damaged = exp / layout.trajectory_mask(source, g.source_round)
    damaged.write_bytes(damaged.read_bytes()[:-5])  # truncated
    agg = ConsensusAggregator(exp, plan)
    completed = [c for m in msgs for c in agg.add_mask(*m)]
    assert completed == [] and g.group_id not in agg.complete
    assert len(agg.problems) == 1 and str(damaged) in agg.problems[0] and "--resume" in agg.problems[0]
    assert (source, g.source_round) not in agg.paths  # not registered: a repaired mask is taken later
    save_mask(damaged, {n: np.ones(s, bool) for n, s in LENET.items()})
    assert agg.add_mask(source, g.source_round, layout.trajectory_mask(source, g.source_round)) == [g.group_id]
