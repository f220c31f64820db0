"""End to end through Ray on CPU: a tiny sweep with a consensus group runs to completion, and the
files on disk show every round, exact consensus masks, and every follow-up launched exactly once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltray.experiment import layout
from ltray.experiment.schemas import CONSENSUS, ROUNDS, SIMILARITY
from ltray.masks import count_kept, load_mask, sparsity
from ltray.orchestration.plan import build_plan, group_followups
from tests.sweep_helpers import (ONE_AT_A_TIME, TINY_SWEEP, rounds_table, run_sweep_here, source_masks,
                                 tiny_sweep, tune_trial_dirs, vote_consensus)

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared_ray):
    sweep = tiny_sweep(tmp_path_factory.mktemp("exp"))
    plan = build_plan(sweep)
    return run_sweep_here(plan), plan


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


def test_the_folder_holds_what_the_layout_names(finished):
    """layout.TOP_LEVEL is the folder's table of contents: a sweep writes nothing else at the top,
    and every file a finished sweep must have is there (trackers and the report are optional)."""
    exp, _ = finished
    written = {p.name for p in exp.iterdir()}
    assert written <= set(layout.TOP_LEVEL), written - set(layout.TOP_LEVEL)
    optional = {layout.MLFLOW, layout.WANDB, layout.REPORT}
    assert set(layout.TOP_LEVEL) - optional <= written, set(layout.TOP_LEVEL) - optional - written


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
    held_out = followups[followups.task == "uci"]
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


def test_damage_is_listed_then_repaired_by_resume(finished, shared_ray, tmp_path, capsys):
    """Each kind of damage in one folder: `status --verify` lists it, --resume repairs it, and the
    result equals the undamaged experiment (masks bit-identical, every table row once)."""
    import shutil

    from ltray.experiment import layout
    from ltray.experiment.journal import encode_record
    from ltray.status import main as status_main

    exp, plan = finished
    copy = tmp_path / "tiny"
    shutil.copytree(exp, copy, ignore=shutil.ignore_patterns("tune", "report"))
    (group,) = plan.groups
    sources = list(group.source_trials.values())
    others = [t.trial_id for t in plan.trajectories if t.trial_id not in sources]
    followups = sorted(p.name for p in (copy / "trials").iterdir() if not p.name.startswith("bespoke-"))
    last = plan.sweep.rounds - 1

    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))

    damage = {
        layout.trajectory_mask(others[0], last): "checksum mismatch",  # not a consensus source
        layout.ticket_mask(followups[0]): "checksum mismatch",
        layout.trajectory_mask(sources[0], last): "mask file not found",
        layout.trajectory_mask(sources[1], group.source_round): "checksum mismatch",  # truncated source
        layout.trial_file(followups[1], layout.TRIAL_RESULTS): "not valid JSON",
        group.consensus_path(group.thresholds[0]): "checksum mismatch",
        "rounds.csv": "not a readable rounds table",
    }
    flip(copy / layout.trajectory_mask(others[0], last))
    flip(copy / layout.ticket_mask(followups[0]))
    (copy / layout.trajectory_mask(sources[0], last)).unlink()
    source = copy / layout.trajectory_mask(sources[1], group.source_round)
    source.write_bytes(source.read_bytes()[:-9])
    (copy / layout.trial_file(followups[1], layout.TRIAL_RESULTS)).write_text('{"trial_id": "x", "rou')
    flip(copy / group.consensus_path(group.thresholds[0]))
    for name in ("rounds.csv", "rounds.parquet"):
        (copy / name).write_bytes(b"\x00garbage\n")
    journal = copy / layout.JOURNAL
    # the finished run compacted its journal into segments (one per periodic flush, up to 8)
    segment = sorted(p for p in journal.iterdir() if p.name.startswith("s"))[0]
    lines = segment.read_text().splitlines()
    segment.write_text("\n".join(["{garbled"] + lines[1:]) + "\n")  # its first record is lost
    (journal / "r0000009999.json").write_text(encode_record(9999, {"trial": sources[0], "round": 0}) + "\n")

    capsys.readouterr()
    assert status_main(["--verify", str(copy)]) == 1
    listed = capsys.readouterr().out
    for path, problem in damage.items():
        line = next((ln for ln in listed.splitlines() if f"  {path}:" in ln), None)
        assert line is not None and problem in line, (path, listed)
    assert "retrains" in listed and "trains" in listed and "rebuilds" in listed and "actor/journal" in listed

    resumed = build_plan(tiny_sweep(tmp_path, **ONE_AT_A_TIME))  # a runtime setting: the same experiment
    assert run_sweep_here(resumed, resume=True) == copy
    assert status_main(["--verify", str(copy)]) == 0
    for folder in ("masks", "consensus"):
        for path in sorted((exp / folder).rglob("*.ltmask")):
            rel = path.relative_to(exp)
            assert (copy / rel).read_bytes() == path.read_bytes(), rel  # retrained bit for bit
    metrics = ["trial_id", "round", "kind", "sparsity", "effective_sparsity", "train_loss", "val_acc", "test_acc"]
    key = ["trial_id", "round"]
    for table, columns in (("rounds.csv", metrics), ("consensus.csv", None), ("similarity.csv", None)):
        a, b = pd.read_csv(exp / table), pd.read_csv(copy / table)
        columns = columns or list(a.columns)
        a = a[columns].sort_values(columns).reset_index(drop=True)
        b = b[columns].sort_values(columns).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, obj=table)
    assert not pd.read_csv(copy / "similarity.csv").duplicated(
        ["trial_a", "trial_b", "round", "layer"]).any()
    assert not pd.read_csv(copy / "rounds.csv").duplicated(key).any()


def test_a_gpu_share_without_usable_cuda_fails_with_one_line(shared_ray, tmp_path, capsys):
    """A trial that holds a GPU share on a node where torch cannot use CUDA fails (instead of
    training on the CPU), and the run says why in one line; nothing is trained."""
    import yaml

    from ltray.sweep.__main__ import main

    sweep = {k: v for k, v in TINY_SWEEP.items() if k != "consensus"}
    sweep.update(name="gpu", storage=str(tmp_path), rounds=1, max_failures=0,
                 grid={**TINY_SWEEP["grid"], "tasks": ["plain"], "techniques": ["global_unstructured"]},
                 resources={"lenet": {"cpu": 1, "gpu": 0.5}})
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(sweep))
    capsys.readouterr()
    assert main([str(path), "-q"]) == 1  # on the shared cluster: a GPU resource, no CUDA
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 trial(s) failed" in err[0], err
    assert "holds gpu=0.5 but torch cannot use CUDA" in err[0] and "needs an NVIDIA driver >=" in err[0], err
    assert not list((tmp_path / "gpu" / "masks").rglob("*.ltmask"))


def test_a_trial_worker_loads_what_trains_with_the_trainable(shared_ray):
    """A Ray worker that loads the trainable (as a trial's does when Tune creates the trial, before
    the trial's clock starts) imports torch then; a driver that imports it does not (test_signals
    reads a whole run's driver memory map)."""
    import ray

    @ray.remote(num_cpus=1)
    def load_trainable() -> tuple[bool, bool, bool]:
        import sys

        from ltray.sweep.ray_compat import in_ray_worker

        before = "torch" in sys.modules
        import ltray.sweep.trainable  # noqa: F401

        return in_ray_worker(), before, "torch" in sys.modules

    fresh = {"env_vars": {"LTRAY_TEST_PROBE": "1"}}  # a worker of its own, which nothing has used
    assert ray.get(load_trainable.options(runtime_env=fresh).remote()) == (True, False, True)
