"""Opening a folder for `--resume` (Ray-free): nothing in it changes while another driver runs the
experiment, and what writers killed mid-write left (their temporary files) is listed by
`status --verify` and removed by the resume."""

from __future__ import annotations

import json

import pytest

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment import lease as lease_module
from ltray.experiment.lease import Lease
from ltray.orchestration.opening import open_experiment
from ltray.orchestration.plan import build_plan
from ltray.storage import LocalStorage
from tests.sweep_helpers import tiny_sweep

# the names atomic writers give their temporary files (ltray.fileio), as killed writers leave them
LEFTOVERS = ["masks/bespoke-x/.round_01.ltmask.k2j4h1.tmp", ".rounds.csv.a8f0q.tmp"]


@pytest.fixture
def opened(tmp_path, monkeypatch):
    monkeypatch.setattr(lease_module, "SETTLE_S", 0.0)
    plan = build_plan(tiny_sweep(tmp_path))
    storage = LocalStorage(tmp_path / "tiny")
    open_experiment(plan, storage, resume=False)
    for rel in LEFTOVERS:
        path = storage.local_path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a fi")
    return plan, storage


def _snapshot(storage: LocalStorage) -> dict[str, bytes]:
    root = storage.local_path()
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_listings_leave_unfinished_writes_out_and_name_them_apart(opened):
    _, storage = opened
    assert storage.unfinished_writes() == sorted(LEFTOVERS)
    assert not set(LEFTOVERS) & set(storage.walk())
    assert "masks/bespoke-x" not in storage.walk() and storage.list_dir("masks/bespoke-x") == []


def test_a_resume_changes_nothing_while_another_driver_runs(opened):
    plan, storage = opened
    running = Lease(storage)
    running.acquire()  # this process: a live driver
    before = _snapshot(storage)
    with pytest.raises(ExperimentError, match="being run by another driver"):
        open_experiment(plan, storage, resume=True)
    assert _snapshot(storage) == before  # no resume recorded, nothing repaired, its writes untouched
    notes = open_experiment(plan, storage, resume=True, take_over=True)  # on purpose: it goes ahead
    assert any("removed 2 unfinished write(s)" in n for n in notes)
    running.release("interrupted")


def test_status_verify_lists_them_and_a_resume_removes_them(opened, capsys):
    from ltray.status import main as status_main

    plan, storage = opened
    assert status_main(["--verify", storage.uri]) == 0  # never read: nothing a resume relies on is damaged
    out = capsys.readouterr().out
    assert "every file checked is whole" in out
    assert "2 unfinished write(s)" in out and all(rel in out for rel in LEFTOVERS)
    notes = open_experiment(plan, storage, resume=True)
    (note,) = [n for n in notes if "unfinished write" in n]
    assert note == f"removed 2 unfinished write(s) that stopped writers left: {', '.join(sorted(LEFTOVERS))}"
    assert storage.unfinished_writes() == []
    assert json.loads(storage.read_text(layout.PROVENANCE))["resumes"]  # the resume itself went ahead
    status_main(["--verify", storage.uri])
    assert "unfinished" not in capsys.readouterr().out
