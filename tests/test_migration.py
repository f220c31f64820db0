"""Experiments survive an upgrade: a folder written by ltray 0.1.0 (format 1, kept in
tests/fixtures/format1, interrupted by a SIGKILL) is read by status and analysis as it is, is
migrated in place by --resume (even after a crash mid-migration), and its sweep then finishes
without training a finished round again. A folder written by ltray 0.2.0 (format 2, in
tests/fixtures/format2) is read as it is and migrated by --resume. Newer formats are refused with
one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment.journal import Journal
from ltray.storage import LocalStorage, open_storage
from ltray.experiment.verify import verify_experiment
from ltray.orchestration.load import load_sweep
from ltray.orchestration.plan import build_plan
from ltray.training import TrajectoryState
from tests.sweep_helpers import ONE_AT_A_TIME

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format1"
NAME = "tiny-v1-interrupted"
FIXTURE2 = Path(__file__).resolve().parent / "fixtures" / "format2"
NAME2 = "tiny-v2"  # written by ltray 0.2.0, run to its end


@pytest.fixture
def old(tmp_path) -> tuple[Path, Path]:
    """(a copy of the format-1 folder, a sweep file pointing at its parent)."""
    shutil.copytree(FIXTURE / NAME, tmp_path / NAME)
    doc = yaml.safe_load((FIXTURE / f"{NAME}.yaml").read_text())
    sweep = tmp_path / "sweep.yaml"
    # one trial at a time: a runtime setting, free to change on --resume
    sweep.write_text(yaml.safe_dump({**doc, "storage": str(tmp_path), **ONE_AT_A_TIME}))
    return tmp_path / NAME, sweep


def test_status_and_analysis_read_a_format_1_folder(old, capsys):
    from ltray_analysis.__main__ import main as analysis_main
    from ltray.status import main as status_main

    folder, _ = old
    assert status_main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "not started" in out and "3/3" in out  # no lease in format 1; every trajectory finished
    assert analysis_main([str(folder), "--out", str(folder.parent / "report")]) == 0
    assert (folder.parent / "report" / "report.md").is_file()
    assert json.loads((folder / layout.MARKER).read_text())["format"] == 1  # reading changed nothing


def test_resume_migrates_in_place_and_a_crash_mid_way_is_finished_later(old, monkeypatch):
    from ltray.orchestration import migrate as migrate_module
    from ltray.orchestration.opening import open_experiment

    folder, sweep_file = old
    plan = build_plan(load_sweep(sweep_file))
    storage = open_storage(folder)
    before = {p.name for p in (folder / "trials").iterdir()}

    def crash(*args):
        raise OSError("killed mid-migration")

    monkeypatch.setattr(migrate_module, "_convert_journal", crash)
    with pytest.raises(OSError):
        open_experiment(plan, storage, resume=True)
    assert json.loads((folder / layout.MARKER).read_text())["format"] == 1  # not marked migrated
    monkeypatch.undo()

    notes = open_experiment(plan, storage, resume=True)
    assert any(f"migrated the experiment folder from format 1 to {layout.FORMAT_VERSION}" in n for n in notes)
    assert json.loads((folder / layout.MARKER).read_text())["format"] == layout.FORMAT_VERSION
    after = {p.name for p in (folder / "trials").iterdir()}
    assert len(after) == len(before) and not after & before  # every trial renamed, none lost
    assert {t.trial_id for t in plan.trajectories} <= after
    for t in plan.trajectories:  # resume states now belong to the new configs
        state = TrajectoryState.from_bytes((folder / layout.trial_file(t.trial_id, layout.TRIAL_STATE)).read_bytes())
        assert state.config_key == t.config.key()
        rows = json.loads((folder / layout.trial_file(t.trial_id, layout.TRIAL_RESULTS)).read_text())["rounds"]
        assert [r["mask_path"] for r in rows] == [layout.trajectory_mask(t.trial_id, r) for r in range(3)]
        assert all(r["task"] == t.labels.task and "dataset" not in r for r in rows)  # format 3's word
    records = Journal(LocalStorage(folder), layout.JOURNAL).replay().records
    assert len(records) == 9 and {r["trial"] for r in records} == {t.trial_id for t in plan.trajectories}
    assert not (folder / layout.JOURNAL_V1).exists()
    assert verify_experiment(LocalStorage(folder)) == []
    stored = json.loads((folder / layout.PLAN).read_text())["groups"][0]
    assert stored["group_id"] == plan.groups[0].group_id and "group" not in stored


@pytest.fixture
def old2(tmp_path) -> tuple[Path, Path]:
    """(a copy of the format-2 folder written by ltray 0.2.0, a sweep file pointing at its parent)."""
    shutil.copytree(FIXTURE2 / NAME2, tmp_path / NAME2)
    doc = yaml.safe_load((FIXTURE2 / f"{NAME2}.yaml").read_text())
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({**doc, "storage": str(tmp_path)}))
    return tmp_path / NAME2, sweep


def test_format_2_is_read_as_it_is_and_migrated_by_resume(old2, capsys):
    from ltray_analysis.__main__ import main as analysis_main
    from ltray.experiment.plan_file import read_plan_file
    from ltray.experiment.records import TrialRecord
    from ltray.orchestration.opening import open_experiment
    from ltray.status import main as status_main

    folder, sweep_file = old2
    plan = build_plan(load_sweep(sweep_file))
    written = {p.name for p in (folder / layout.MASKS).iterdir() if p.name.startswith("bespoke-")}
    assert {t.trial_id for t in plan.trajectories} == written  # format 3 renamed fields, not trials
    storage = open_storage(folder)
    tid = plan.trajectories[0].trial_id
    assert TrialRecord(storage, tid).rows()[0]["task"] == plan.trajectories[0].labels.task  # read in today's words
    assert read_plan_file(storage).groups[0].group_id == plan.groups[0].group_id
    assert status_main([str(folder)]) == 0 and "3/3" in capsys.readouterr().out
    assert analysis_main([str(folder), "--out", str(folder.parent / "report")]) == 0
    assert "plain" in (folder.parent / "report" / "tables" / "accuracy_vs_sparsity.csv").read_text()
    assert json.loads((folder / layout.MARKER).read_text())["format"] == 2  # reading changed nothing
    notes = open_experiment(plan, storage, resume=True)
    assert any(f"from format 2 to {layout.FORMAT_VERSION}" in n for n in notes)
    rows = json.loads((folder / layout.trial_file(tid, layout.TRIAL_RESULTS)).read_text())["rounds"]
    assert rows and all("task" in r and "dataset" not in r for r in rows)
    stored = json.loads((folder / layout.PLAN).read_text())["groups"][0]
    assert stored["group_id"] == plan.groups[0].group_id and "group" not in stored
    assert json.loads((folder / layout.MARKER).read_text())["format"] == layout.FORMAT_VERSION
    assert verify_experiment(LocalStorage(folder)) == []


def test_a_newer_format_is_refused_with_one_line(old):
    from ltray.orchestration.opening import open_experiment

    folder, sweep_file = old
    (folder / layout.MARKER).write_text(json.dumps({"format": layout.FORMAT_VERSION + 1}))
    with pytest.raises(ExperimentError) as refused:
        open_experiment(build_plan(load_sweep(sweep_file)), open_storage(folder), resume=True)
    text = str(refused.value)
    assert f"folder format {layout.FORMAT_VERSION + 1}" in text and "upgrade ltray" in text and "\n" not in text


@pytest.mark.ray
def test_a_migrated_sweep_finishes_without_retraining(old, shared_ray):
    from tests.sweep_helpers import assert_complete_and_unique, run_sweep_here

    folder, sweep_file = old
    plan = build_plan(load_sweep(sweep_file))
    masks = {(p.parent.name.split("-")[1], p.name): p.stat().st_mtime_ns
             for p in (folder / "masks").rglob("round_*.ltmask")}  # (task, file) -> when it was written
    assert run_sweep_here(plan, resume=True) == folder
    assert_complete_and_unique(folder, plan)
    moved = {p.parent.name for p in (folder / "masks").rglob("round_*.ltmask")}
    assert moved == {t.trial_id for t in plan.trajectories}
    for (task, name), mtime in masks.items():  # renamed, never written again: nothing was retrained
        (new,) = (folder / "masks").glob(f"bespoke-{task}-*/{name}")
        assert new.stat().st_mtime_ns == mtime, new
    relaunched = [p.name for p in (folder / "tune").glob("run-*/*") if p.is_dir()]
    assert not any(n.startswith("bespoke-") for n in relaunched)
