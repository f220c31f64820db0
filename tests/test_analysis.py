"""`ltray analysis` (`ltray_analysis`) on synthetic experiment folders (tests/analysis_fixtures.py): the report
builds, figures are real images, tables have the expected rows, and numbers match values worked
out by hand from the fixture's masks (see the fixture's docstring for the kept index sets)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg

import numpy as np
import pandas as pd
import pytest

from ltray_analysis import Options, build_report, load_experiment
from ltray.experiment.layout import FORMAT_VERSION
from ltray_analysis import report as report_module
from ltray_analysis import tickets
from ltray_analysis.__main__ import main
from ltray_analysis.initweights import initial_weight_distributions
from ltray_analysis.measures import compute_similarity, task_overlap
from ltray_analysis.figures_accuracy import remaining_ticks
from analysis_fixtures import (FOLLOWUP_ACC, LOO_ACC, TECHNIQUES, build_demo_like, build_experiment,
                               demo_followup_acc, fake_initial_weights)

GLOBAL, L1 = TECHNIQUES
DPI = 30  # small images keep the tests fast
FULL_FIGURES = {
    "accuracy_tiny_p1", "distance_to_reference_tiny_p1", "distance_pairs_p1", "distance_tasks_tiny",
    "shared_fraction_p1", "votes_tiny_p1", "consensus_rounds", "consensus_layers_p1",
    "followups_c-tiny-global_unstructured-r1_t3", "initial_weights_p1",
}


def _opts(**kw) -> Options:
    return Options(dpi=DPI, strict=True, init_weights=fake_initial_weights, **kw)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = build_experiment(tmp_path_factory.mktemp("full") / "exp")
    return root, build_report(root, opts=_opts())


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """A running experiment: one seed, rounds 0-1 of 3, no consensus, no similarity.csv."""
    root = build_experiment(tmp_path_factory.mktemp("partial") / "exp", seeds=(0,), rounds=(0, 1),
                            consensus=False, followups=False, similarity=False)
    return root, build_report(root, opts=_opts())


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Shaped and formatted like `make demo`'s folder (one seed, 4 grid tasks, 3 sources, 5
    targets with 2 held out), reported through the command line with --out elsewhere."""
    root = build_demo_like(tmp_path_factory.mktemp("demo") / "exp")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    out = tmp_path_factory.mktemp("demo-report")
    report = build_report(root, out, _opts())
    return root, report, before


def _table(report, name) -> pd.DataFrame:
    return pd.read_csv(report.out / "tables" / f"{name}.csv")


def _assert_real_images(paths):
    for path in paths:
        assert path.stat().st_size > 1000, path
        pixels = mpimg.imread(path)[..., :3]
        assert pixels.var() > 0, f"{path} is blank"


# ---- the report folder -------------------------------------------------------------------------

def test_full_report_has_every_figure_and_links_them(full):
    root, report = full
    assert report.out == root / "report"
    assert {p.stem for p in report.figures} == FULL_FIGURES
    _assert_real_images(report.figures)
    md = (report.out / "report.md").read_text()
    for path in report.figures + report.tables:
        assert path.relative_to(report.out).as_posix() in md
    assert "failed" not in md
    assert "| gap t4 (held out) (pp) |" in md  # the headline table is shown inline


def test_accuracy_table_is_mean_and_std_over_seeds(full):
    acc = _table(full[1], "accuracy_vs_sparsity")
    assert len(acc) == 3 * 2 * 3  # tasks x techniques x rounds
    row = acc[(acc.task == "t2") & (acc.technique == L1) & (acc["round"] == 1)].iloc[0]
    # seeds 0 and 1: 0.9 - 0.05 - 0.01 - 0.02 (+ 0.01 for seed 1)
    assert row.test_acc_mean == pytest.approx(0.825)
    assert row.test_acc_std == pytest.approx(np.std([0.82, 0.83], ddof=1))
    assert row.sparsity_mean == 0.5 and row.n_seeds == 2


def test_vote_histograms_match_hand_counts(full):
    votes = _table(full[1], "vote_histograms")
    # 4 (arch, seed, technique) combos x rounds 0..2 x votes 0..3
    assert len(votes) == 2 * 2 * 3 * 4
    for seed in (0, 1):
        for tech in TECHNIQUES:  # shifts move every task alike, so counts do not change
            sel = votes[(votes.seed == seed) & (votes.technique == tech)]
            by_round = {r: list(g.sort_values("votes").weights) for r, g in sel.groupby("round")}
            assert by_round[0] == [0, 0, 0, 32]
            # round 1: 28-31 nobody; 0-7, 24-27 one task; 8-11, 16-23 two; 12-15 all three
            assert by_round[1] == [4, 12, 12, 4]
            assert by_round[2] == [18, 6, 6, 2]


def test_shared_fractions_match_hand_counts(full):
    pairs = _table(full[1], "shared_fraction_pairs")
    sel = pairs[(pairs.seed == 0) & (pairs.technique == GLOBAL) & (pairs["round"] == 1)]
    got = {(a, b): v for a, b, v in zip(sel.task_a, sel.task_b, sel.shared_fraction)}
    assert got[("t1", "t2")] == pytest.approx(8 / 16)
    assert got[("t1", "t3")] == pytest.approx(4 / 16)
    assert got[("t2", "t3")] == pytest.approx(12 / 16)
    assert got[("t3", "t2")] == pytest.approx(12 / 16)
    summ = _table(full[1], "shared_fraction")
    r2 = summ[(summ.technique == GLOBAL) & (summ["round"] == 2)].iloc[0]
    # round 2, |A| = 8: t1&t2 4, t1&t3 2, t2&t3 6
    assert r2.shared_mean == pytest.approx((4 + 2 + 6) / 3 / 8)
    assert (r2.shared_min, r2.shared_max) == (2 / 8, 6 / 8)


def test_technique_and_task_distances_match_hand_counts(full):
    pairs = _table(full[1], "distance_technique_pairs")
    by_round = dict(zip(pairs["round"], pairs.distance_mean))
    # the l1 masks are the global ones shifted by 2: 16 kept -> 14 shared of 18; 8 -> 6 of 10
    assert by_round[1] == pytest.approx(1 - 14 / 18)
    assert by_round[2] == pytest.approx(1 - 6 / 10)
    tasks = _table(full[1], "distance_tasks")
    r1 = tasks[tasks["round"] == 1].set_index(["task_a", "task_b"]).distance_mean
    assert r1[("t1", "t2")] == pytest.approx(1 - 8 / 24)
    assert r1[("t3", "t1")] == pytest.approx(1 - 4 / 28)
    ref = _table(full[1], "distance_to_reference")
    assert set(ref.technique) == {L1} and set(ref.layer) == {"a.weight", "b.weight", "__all__"}


def test_similarity_from_masks_matches_similarity_csv(full):
    root, _ = full
    exp = load_experiment(root)
    computed = compute_similarity(exp)
    stored = exp.similarity

    def keyed(df):
        swap = df.trial_a > df.trial_b
        a = np.where(swap, df.trial_b, df.trial_a)
        b = np.where(swap, df.trial_a, df.trial_b)
        return pd.Series(df.jaccard_distance.to_numpy(),
                         index=pd.MultiIndex.from_arrays([a, b, df["round"], df.layer])).sort_index()

    assert len(computed) == len(stored) > 0
    pd.testing.assert_series_equal(keyed(computed), keyed(stored), check_names=False)


def test_headline_numbers(full):
    head = _table(full[1], "headline")
    assert len(head) == 2  # thresholds 3 and 2 of the one recipe
    t3 = head[head.threshold == 3].iloc[0]
    assert t3.consensus_sparsity == pytest.approx(28 / 32)  # 12..15 survive on all three
    assert t3.chance_sparsity == pytest.approx(1 - 0.5**3)  # three sources of density 16/32
    assert t3.equivalent_rounds == pytest.approx(3.0)  # 1 - 0.5**3 = 0.875
    assert t3.rounds_saved == pytest.approx(2.0)
    assert t3.gap_t1 == pytest.approx(0.81 - 0.86)
    assert t3.gap_t2 == pytest.approx(0.72 - 0.70)
    assert t3.gap_t3 == pytest.approx(0.60 - 0.63)
    assert math.isnan(t3.gap_t4)  # held out: no bespoke ticket of its own
    t2 = head[head.threshold == 2].iloc[0]
    assert t2.consensus_sparsity == 0.5 and t2.rounds_saved == pytest.approx(0.0)
    assert t2.chance_sparsity == pytest.approx(1 - (3 * 0.5**3 + 0.5**3))  # 1 - P(>= 2 of 3 keep)
    per_target = _table(full[1], "headline_per_target").set_index("target")
    assert per_target.held_out.to_dict() == {"t1": False, "t2": False, "t3": False, "t4": True}
    # t4 (held out) has only another source's ticket: t1's, 0.45 and 0.47
    assert per_target.loc["t4", "gap_other_sources"] == pytest.approx(0.51 - 0.46)
    md = (full[1].out / "report.md").read_text()
    assert "| consensus sparsity (%) | chance (%) |" in md
    assert "| tiny | c-tiny-global_unstructured-r1 | 3 of 3 | 2 | 87.5 | 87.5 | 3 | 2 | -5 | 2 | -3 | — |" in md


def test_chance_beside_every_consensus_sparsity():
    """Each consensus row's chance level comes from its own sources' densities at its source
    round and its threshold; a source whose round is missing leaves it unknown (NaN)."""
    from ltray_analysis.tables import consensus_chance

    bespoke = pd.DataFrame([
        {"task": t, "arch": "a", "technique": "g", "seed": seed, "round": r, "sparsity": s}
        for seed in (0, 1)
        for t, d in {"x": 0.6, "y": 0.7, "z": 0.8}.items()
        for r, s in {1: 1 - d, 2: 1 - d * d}.items()
        if not (seed == 1 and t == "z" and r == 2)])
    row = dict(arch="a", technique="g", leave_out="")
    consensus = pd.DataFrame([
        {**row, "seed": 0, "source_round": 1, "threshold": 3, "sources": "x;y;z"},
        {**row, "seed": 0, "source_round": 2, "threshold": 3, "sources": "x;y;z"},
        {**row, "seed": 0, "source_round": 1, "threshold": 2, "sources": "x;y;z"},
        {**row, "seed": 0, "source_round": 1, "threshold": 2, "sources": "y;z", "leave_out": "x"},
        {**row, "seed": 1, "source_round": 2, "threshold": 3, "sources": "x;y;z"},
    ])
    chance = consensus_chance(consensus, bespoke).tolist()
    assert chance[0] == pytest.approx(1 - 0.6 * 0.7 * 0.8)
    assert chance[1] == pytest.approx(1 - 0.36 * 0.49 * 0.64)
    at_least_two = 0.6 * 0.7 * 0.2 + 0.6 * 0.3 * 0.8 + 0.4 * 0.7 * 0.8 + 0.6 * 0.7 * 0.8
    assert chance[2] == pytest.approx(1 - at_least_two)
    assert chance[3] == pytest.approx(1 - 0.7 * 0.8)
    assert math.isnan(chance[4])  # z has not reported round 2 for seed 1
    assert consensus_chance(consensus, None).isna().all()


def test_followups_pool_sources_and_pair_leave_one_out(full):
    fu = _table(full[1], "followup_accuracy")
    t1 = fu[fu.task == "t1"].set_index("category")
    assert set(fu.threshold) == {3}  # the leave-one-out ticket (k = 2 of 2) sits beside k = 3 of 3
    assert t1.loc[tickets.PRET_LOO, "test_acc_mean"] == pytest.approx(LOO_ACC)
    assert t1.loc[tickets.PRET_LOO, "ticket_threshold"] == 2
    assert t1.loc[tickets.BESPOKE_OTHER, "test_acc_mean"] == pytest.approx(np.mean(FOLLOWUP_ACC["transfer", "t1", "t2"]))
    assert t1.loc[tickets.RANDOM, "test_acc_std"] == pytest.approx(0.0)
    assert fu[fu.task == "t4"].held_out.all()


def test_consensus_layer_fractions(full):
    layers = _table(full[1], "consensus_layers")
    s0 = layers[layers.seed == 0].set_index(["threshold", "layer"]).kept_fraction
    assert s0[(3, "a.weight")] == pytest.approx(4 / 20) and s0[(3, "b.weight")] == 0.0
    assert s0[(2, "a.weight")] == pytest.approx(12 / 20)  # 8..23 kept: 12 in a, 4 in b
    assert s0[(2, "b.weight")] == pytest.approx(4 / 12)
    assert set(layers["size"]) == {20, 12}


def test_initial_weights_of_kept_weights(full):
    summary = _table(full[1], "initial_weights").set_index("series")
    cons = summary.loc["consensus (≥ 3 of 3 votes)"]
    # the intersection keeps weights 12..15 of layer a, initial values 2.5..5.5
    std_a = np.std(np.arange(20.0))
    assert cons.n_weights == 4
    assert cons.mean_abs == pytest.approx(np.mean([2.5, 3.5, 4.5, 5.5]) / std_a)
    bespoke = [s for s in summary.index if s.startswith("bespoke")]
    # round 2 (75%) is the bespoke round closest to the consensus' 87.5%
    assert bespoke == ["bespoke (t1 r2, t2 r2, t3 r2)"]
    assert summary.loc[bespoke[0], "n_weights"] == 3 * 8
    assert summary.loc["all weights (dense)", "n_weights"] == 32


def test_initial_weights_with_a_real_architecture(tmp_path):
    """Figure 7 through ltray.models.build_model: LeNet's initial weights for seed 0."""
    pytest.importorskip("torch")
    from ltray.masks import save_mask
    from ltray.models import build_model

    params = {n: p.detach().numpy() for n, p in build_model("lenet", 10, 0).named_parameters()}
    rng = np.random.default_rng(0)
    mask = {n: rng.random(p.shape) < 0.2 for n, p in params.items() if n.endswith("weight")}
    save_mask(tmp_path / "consensus/g/t2.ltmask", mask)
    pd.DataFrame([{"group": "g-lenet-s0-global_unstructured-r1", "name": "g", "arch": "lenet", "seed": 0,
                   "technique": "global_unstructured", "source_round": 1, "threshold": 2, "leave_out": "",
                   "n_sources": 2, "sources": "a;b", "sparsity": 0.8, "equivalent_rounds": 7.2,
                   "mask_path": "consensus/g/t2.ltmask"}]).to_csv(tmp_path / "consensus.csv", index=False)
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / "experiment.json").write_text(json.dumps({"format": FORMAT_VERSION}))
    hist, summary, notes = initial_weight_distributions(load_experiment(tmp_path))
    kept = summary.set_index("series").loc["consensus (≥ 2 of 2 votes)", "n_weights"]
    assert kept == sum(int(m.sum()) for m in mask.values())
    assert any("no bespoke masks" in n for n in notes)
    assert np.isclose((hist[hist.series == "consensus (≥ 2 of 2 votes)"].density * np.diff(hist.bin_left)[0]).sum(), 1.0,
                      atol=0.02)


# ---- partial and broken folders ------------------------------------------------------------------

def test_partial_folder_builds_with_notes(partial):
    root, report = partial
    _assert_real_images(report.figures)
    assert {p.stem for p in report.figures} == {
        "accuracy_tiny_p1", "distance_to_reference_tiny_p1", "distance_pairs_p1", "distance_tasks_tiny",
        "shared_fraction_p1", "votes_tiny_p1"}
    md = (report.out / "report.md").read_text()
    for note in ("No consensus masks yet", "One seed only", "similarity.csv is absent",
                 "No follow-up trials", "bespoke rounds done: 12 of 18 planned"):
        assert note in md, note
    assert len(_table(report, "accuracy_vs_sparsity")) == 3 * 2 * 2
    votes = _table(report, "vote_histograms")
    assert list(votes[(votes.technique == GLOBAL) & (votes["round"] == 1)].sort_values("votes").weights) == [
        4, 12, 12, 4]


def test_folder_with_only_a_plan_builds(tmp_path):
    (tmp_path / "plan.json").write_text('{"trajectories": [], "groups": []}')
    (tmp_path / "experiment.json").write_text(json.dumps({"format": FORMAT_VERSION}))
    report = build_report(tmp_path, tmp_path / "out", _opts())
    md = (tmp_path / "out" / "report.md").read_text()
    assert report.figures == [] and "No rounds recorded yet" in md and "No bespoke rounds" in md


GARBAGE_PLANS = {
    "a list": "[1, 2]", "trajectories not a list": '{"trajectories": 3}',
    "rounds a word": '{"trajectories": [{"rounds": "many"}]}', "rounds true": '{"trajectories": [{"rounds": true}]}',
    "threshold a word": '{"groups": [{"group": "g", "thresholds": ["all"]}]}',
    "20,000-deep": "[" * 20_000 + "]" * 20_000, "not JSON": "{not json", "not UTF-8": b"\xff\xfe garbage",
}


def _with_plan(partial, tmp_path, plan) -> Path:
    import shutil

    root = tmp_path / "exp"
    shutil.copytree(partial[0], root, ignore=shutil.ignore_patterns("report"))
    assert "12 of 18 planned" in (partial[1].out / "report.md").read_text()  # the good plan is used
    (root / "plan.json").write_bytes(plan if isinstance(plan, bytes) else plan.encode())
    return root


@pytest.mark.parametrize("plan", GARBAGE_PLANS.values(), ids=GARBAGE_PLANS.keys())
def test_garbage_plan_is_noted_and_ignored(plan, partial, tmp_path):
    """A plan.json that is not a plan is left out with a note, never used (its counts would be
    wrong) and never a crash."""
    exp = load_experiment(_with_plan(partial, tmp_path, plan))
    assert exp.plan is None and len(exp.rounds) > 0
    [note] = [n for n in exp.notes if "plan.json" in n]
    assert note.startswith("plan.json is not an ltray plan (") and note.endswith("); ignored.") and len(note) < 200


def test_a_folder_with_a_garbage_plan_still_reports(partial, tmp_path):
    """The whole report of a partial folder with a garbage plan: every figure, no planned counts."""
    report = build_report(_with_plan(partial, tmp_path, GARBAGE_PLANS["20,000-deep"]), tmp_path / "out",
                          _opts())  # strict: a failing section would raise
    md = (report.out / "report.md").read_text()
    assert "planned" not in md and "- bespoke rounds done: 12; consensus masks: 0" in md
    [note] = [n for n in report.notes if "plan.json" in n]
    assert note.startswith("plan.json is not an ltray plan (")
    assert {p.stem for p in report.figures} == {p.stem for p in partial[1].figures}


def test_corrupt_mask_is_noted_not_fatal(tmp_path):
    root = build_experiment(tmp_path / "exp", seeds=(0,), rounds=(1,), techniques=(GLOBAL,),
                            consensus=False, similarity=False)
    bad = next((root / "masks").glob("bespoke-t3-*/round_01.ltmask"))
    bad.write_bytes(b"not a mask")
    exp = load_experiment(root)
    votes, _ = task_overlap(exp)
    assert set(votes.n_tasks) == {2} and votes.weights.sum() == 32
    assert any(str(bad) in n for n in exp.notes)


def test_failing_section_becomes_a_note(tmp_path, monkeypatch, partial):
    def broken(ctx, sec):
        raise RuntimeError("boom")

    monkeypatch.setattr(report_module, "SECTIONS", [("Broken", broken)])
    build_report(partial[0], tmp_path / "out", Options(dpi=DPI))
    assert "this section failed (RuntimeError: boom)" in (tmp_path / "out" / "report.md").read_text()


# ---- command line ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_cli_rejects_non_experiment_with_one_line(tmp_path, capsys, make):
    path = tmp_path / "x"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("hi")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err


def test_cli_subprocess_exit_code_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "analysis", str(tmp_path / "nope")], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0


def test_parquet_only_rounds_table(tmp_path):
    root = build_experiment(tmp_path / "exp", seeds=(0,), rounds=(0, 1), consensus=False, similarity=False)
    pd.read_csv(root / "rounds.csv").to_parquet(root / "rounds.parquet")
    (root / "rounds.csv").unlink()
    exp = load_experiment(root)
    assert len(exp.bespoke) == 3 * 2 * 2 and exp.rounds.held_out.dtype == bool


def test_cli_writes_report_to_out(partial, tmp_path, capsys):
    figures = tmp_path / "r" / "figures"
    figures.mkdir(parents=True)
    (figures / "old.png").write_bytes(b"x")  # written by an earlier build, listed in its manifest
    (figures / "mine.png").write_bytes(b"x")  # someone else's file
    (tmp_path / "r" / ".report-files.json").write_text('["figures/old.png"]')
    assert main([str(partial[0]), "--out", str(tmp_path / "r"), "--dpi", str(DPI),
                 "--reference", L1]) == 0
    assert "report written to" in capsys.readouterr().out
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"per-layer distance to {L1}" in md
    assert (figures / "distance_to_reference_tiny_p1.png").is_file()
    assert not (figures / "old.png").exists() and (figures / "mine.png").exists()


# ---- a folder in the sweep runner's exact formats, shaped like the demo ---------------------------

DEMO_FIGURES = {
    "accuracy_tiny_p1", "distance_to_reference_tiny_p1", "distance_pairs_p1", "distance_tasks_tiny",
    "shared_fraction_p1", "votes_tiny_p1", "consensus_rounds", "consensus_layers_p1",
    "followups_c-tiny-global_unstructured-r1_t2", "followups_c-tiny-global_unstructured-r1_t3",
    "initial_weights_p1",
}


def test_demo_like_folder_reports_everything_and_writes_nothing_into_it(demo):
    root, report, before = demo
    assert {p.stem for p in report.figures} == DEMO_FIGURES
    _assert_real_images(report.figures)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # --out: read-only
    md = (report.out / "report.md").read_text()
    assert "failed" not in md and "missing" not in md
    assert "bespoke rounds done: 24 of 24 planned (8 trajectories)" in md
    assert "follow-up trials with results: 53" in md


def test_demo_like_empty_cells_load_as_missing_not_as_values(demo):
    exp = load_experiment(demo[0])
    b, f = exp.bespoke, exp.followups
    assert len(b) == 4 * 2 * 3 and len(f) == 53
    assert b.threshold.isna().all() and b.source_round.isna().all()
    assert (b.group == "").all() and (b.source == "").all()
    assert not b.held_out.any() and not b.leave_one_out.any()
    assert set(f.threshold) == {2.0, 3.0} and f.held_out.sum() == 2 * 2 * 5  # t4, t5: 5 each
    assert f.mask_path.str.endswith("/ticket.ltmask").all()
    assert b.mask_path.str.match(r"masks/.+/round_0[0-2]\.ltmask$").all()


def test_demo_like_one_seed_has_no_spread_anywhere(demo):
    report = demo[1]
    fu = _table(report, "followup_accuracy")
    # three other sources' tickets per target, but one seed: no std (it would be over sources)
    other = fu[(fu.category == tickets.BESPOKE_OTHER) & (fu.task == "t1") & (fu.threshold == 3)].iloc[0]
    assert other.n == 2 and other.n_seeds == 1 and math.isnan(other.test_acc_std)
    assert other.test_acc_mean == pytest.approx((0.84 + 0.82) / 2)  # t2's and t3's tickets
    assert fu.test_acc_std.isna().all()
    assert _table(report, "accuracy_vs_sparsity").test_acc_std.isna().all()
    md = (report.out / "report.md").read_text()
    assert md.count("One seed only") == 3  # headline, figure 1, figure 6
    assert "±1 std" not in md.split("## 2.")[0] + md.split("## 6.")[1]


def test_demo_like_headline_uses_own_trajectory_for_held_out_grid_task(demo):
    per = _table(demo[1], "headline_per_target").set_index(["threshold", "target"])
    # k = 3 (87.5% sparse): t4's trajectory round closest in sparsity is round 2 (75%),
    # accuracy 0.9 - 0.10 - 0.03 = 0.77; its prêt-à-porter ticket 0.82 - 0.02 - 0.01 = 0.79
    t4 = per.loc[(3, "t4")]
    assert t4.held_out and t4.bespoke_same_task_from == "trajectory round"
    assert t4.acc_bespoke_same_task == pytest.approx(0.77) and t4.gap == pytest.approx(0.02)
    # k = 2 (50%): round 1 (50%), 0.9 - 0.05 - 0.03 = 0.82 vs 0.82 - 0.01
    assert per.loc[(2, "t4")].gap == pytest.approx(-0.01)
    t5 = per.loc[(3, "t5")]  # held out and not in the grid: no bespoke ticket of its own
    assert t5.held_out and math.isnan(t5.gap) and t5.acc_random == pytest.approx(0.58)
    t1 = per.loc[(3, "t1")]  # a source: its retrained ticket (0.88) vs prêt-à-porter 0.87
    assert t1.bespoke_same_task_from == "retrained ticket" and t1.gap == pytest.approx(-0.01)
    assert t1.acc_pret_a_porter_loo == pytest.approx(demo_followup_acc("pret_a_porter", 3, "t1", loo=True))
    assert math.isnan(per.loc[(2, "t1")].acc_pret_a_porter_loo)  # LOO sits beside the intersection
    md = (demo[1].out / "report.md").read_text()
    assert "| gap t4 (held out)† (pp) | gap t5 (held out) (pp) |" in md
    assert "| tiny | c-tiny-global_unstructured-r1 | 3 of 3 | 1 | 87.5 | 87.5 | 3 | 2 | -1 | " in md


def test_demo_like_followup_categories(demo):
    fu = _table(demo[1], "followup_accuracy")
    t3 = fu[fu.threshold == 3]
    cats = t3.groupby("task").category.agg(set).to_dict()
    base = {tickets.PRET, tickets.BESPOKE_OTHER, tickets.RANDOM}
    assert cats["t1"] == base | {tickets.PRET_LOO, tickets.BESPOKE_SAME}
    assert cats["t4"] == base | {tickets.BESPOKE_TRAJ} and cats["t5"] == base
    traj = t3[t3.category == tickets.BESPOKE_TRAJ].iloc[0]
    assert str(traj.source_rounds) == "2" and traj.held_out
    assert tickets.PRET_LOO not in set(fu[fu.threshold == 2].category)


def test_remaining_ticks_stay_few_and_inside_the_range():
    assert remaining_ticks(41.0) == [100, 80, 60, 50, 40]
    for lo in (1.15, 0.2, 0.011):
        ticks = remaining_ticks(lo)
        assert 4 <= len(ticks) <= 8 and ticks[0] == 100 and min(ticks) >= lo * 0.95
        assert all(a / b >= 1.2 for a, b in zip(ticks, ticks[1:]))
