"""A sweep whose experiment folder is an s3:// URI on a real S3-compatible server (moto): a driver
killed mid-sweep, its --resume, then ltray.status, --verify and analysis on the URI. No node
needs a shared mount: trials, the consensus actor and the driver all read and write the bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ltray.experiment import layout
from ltray.experiment.records import read_mask, scan_trials
from ltray.experiment.schemas import ROUNDS
from ltray.storage import open_storage
from ltray.experiment.tables import read_table
from ltray.orchestration.plan import build_plan
from tests.s3_server import make_bucket, s3_server
from tests.sweep_helpers import SMALL, TINY_SWEEP, short_tmpdir, tiny_sweep, vote_consensus

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
URI = "s3://ltray-e2e/experiments"


@pytest.fixture(scope="module")
def bucket():
    with s3_server() as endpoint:
        make_bucket(endpoint, "ltray-e2e")
        yield endpoint


def _done(storage) -> set[str]:
    return {t for t, names in scan_trials(storage).items() if layout.TRIAL_DONE in names}


def _mtimes(storage, rels) -> dict[str, tuple]:
    infos = storage.fs.get_file_info([storage._path(r) for r in rels])
    return {r: (i.size, i.mtime) for r, i in zip(rels, infos)}


def test_killed_driver_resumed_on_s3_loses_nothing(bucket, tmp_path, capsys):
    from ltray_analysis.__main__ import main as analysis_main
    from ltray.status import main as status_main

    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump({**TINY_SWEEP, **SMALL, "storage": "relative/ignored"}))
    exp = open_storage(f"{URI}/tiny")
    env = {**os.environ, "LTRAY_RAY_TMPDIR": short_tmpdir("lts-"), "LTRAY_STORAGE": URI}
    cmd = [sys.executable, "-m", "ltray.sweep", str(sweep_file), "--address", "local", "--progress-interval", "5"]
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(_done(exp)) < 2:
            assert driver.poll() is None, driver.stdout.read()
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        first_log = driver.communicate()[0]
    assert f"experiment folder {URI}/tiny (storage from $LTRAY_STORAGE)" in first_log
    done_before = _done(exp)
    plan = build_plan(tiny_sweep("unused", **SMALL))
    finished = [m for t in done_before if t in plan.by_id for m in
                (layout.trajectory_mask(t, r) for r in range(plan.sweep.rounds))]
    before = _mtimes(exp, finished)
    assert finished and all(size for size, _ in before.values())

    resumed = subprocess.run(cmd + ["--resume"], cwd=ROOT, env={**env, "LTRAY_RAY_TMPDIR": short_tmpdir("ltt-")},
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert _mtimes(exp, finished) == before  # finished rounds were not trained again

    rounds = read_table(exp, ROUNDS)
    assert not rounds.duplicated(["trial_id", "round"]).any()
    assert len(rounds[rounds.kind != "bespoke"]) == plan.max_followups()
    for t in plan.trajectories:
        assert sorted(rounds[rounds.trial_id == t.trial_id]["round"]) == list(range(plan.sweep.rounds))
    (group,) = plan.groups
    sources = [read_mask(exp, layout.trajectory_mask(tid, group.source_round))[0].unpack()
               for tid in group.source_trials.values()]
    for k in group.thresholds:
        got = read_mask(exp, group.consensus_path(k))[0].unpack()
        want = vote_consensus(sources, k)
        assert all(np.array_equal(got[n], want[n]) for n in want)
    (run_dir,) = [n for n in exp.list_dir(layout.TUNE) if n.startswith("run-002-")]
    run2 = exp.list_dir(f"{layout.TUNE}/{run_dir}")
    assert run2 and not set(run2) & done_before  # Tune's files are in the bucket too; nothing relaunched
    assert not any(p.startswith("/") for p in rounds["mask_path"])  # masks name no machine path

    capsys.readouterr()
    assert status_main([f"{URI}/tiny"]) == 0
    out = capsys.readouterr().out
    n = len(plan.trajectories)
    assert f"experiment {URI}/tiny: finished" in out and f"{n}/{n}" in out
    assert status_main(["--verify", f"{URI}/tiny"]) == 0
    assert "every file checked is whole" in capsys.readouterr().out
    assert analysis_main([f"{URI}/tiny"]) == 0
    assert f"report written to {URI}/tiny/report/report.md" in capsys.readouterr().out
    assert exp.is_file("report/report.md") and any(n.endswith(".png") for n in exp.walk("report/figures"))


@pytest.mark.parametrize("storage, names", [
    ("s3://no-such-bucket/experiments", "s3://no-such-bucket/experiments/tiny"),
    ("s3:///experiments", "s3:///experiments"),
])
def test_a_bucket_that_cannot_be_used_is_one_line_and_exit_2(bucket, tmp_path, capsys, storage, names):
    from ltray.sweep.__main__ import main

    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump(TINY_SWEEP))
    capsys.readouterr()
    assert main([str(sweep_file), "--storage", storage]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], err
    assert "Traceback" not in out + err
