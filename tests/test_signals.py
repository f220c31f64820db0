"""Drivers as a user meets them, on a bucket (a real S3-compatible server, moto): one sweep,
stopped three ways and resumed each time, then finished and read back from its URI.

1. While the first driver trains, a second one (--resume) is refused with one line. SIGTERM
   stops the first: one line, exit 143, no traceback, no Tune advice; its local Ray and temp dir
   are gone, and `ltray.status` says interrupted.
2. A --resume trains again; Ctrl-C (SIGINT) stops it: one line, exit 130.
3. A --resume trains again and is killed with SIGKILL, which gives it no chance to stop its Ray:
   every process it started ends anyway and its temp dir goes.
4. The last --resume finishes the sweep (every round and follow-up exactly once, exact consensus
   masks, no finished round or trial trained again) and prints its summary; a SIGTERM after that,
   in the last second of the run, is still one line and 143, and the experiment stays finished.
Then `ltray.status`, `--verify` and `ltray analysis` read the URI. No node needs a shared mount:
trials, the consensus actor and the drivers all read and write the bucket. (SIGTERM before Ray
starts and while it starts: test_exit_paths.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ltray.experiment import layout
from ltray.experiment.records import read_mask, scan_trials
from ltray.experiment.schemas import ROUNDS
from ltray.experiment.tables import read_table
from ltray.orchestration.plan import build_plan
from ltray.storage import open_storage
from tests.process_helpers import cmdlines, comm, descendants, proc_stat, wait_for_line, wait_until_gone
from tests.s3_server import make_bucket, s3_server
from tests.sweep_helpers import SMALL, TINY_SWEEP, short_tmpdir, tiny_sweep, vote_consensus
from tests.waiting import wait_for

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
URI = "s3://ltray-drivers/experiments"
# the small tiny sweep (3 trajectories, 10 follow-ups, one trial at a time) with 1024 training
# samples a round: each of the first three drivers is stopped once it has trained a round, and
# the sweep must still be training when it is (the first driver is held with SIGSTOP while the
# refused second one starts). Its storage is $LTRAY_STORAGE's, which wins over the file's.
SWEEP = {**TINY_SWEEP, **SMALL, "data": {**TINY_SWEEP["data"], "max_train_samples": 1024},
         "storage": "relative/ignored"}


@pytest.fixture(scope="module")
def bucket():
    with s3_server() as endpoint:
        make_bucket(endpoint, "ltray-drivers")
        yield endpoint


def _driver(cmd: list[str], pause_at: str | None = None) -> tuple[subprocess.Popen, str]:
    """A driver with its own local Ray, whose temp dir goes under a fresh parent (returned)."""
    parent = short_tmpdir("lts-")
    env = {**os.environ, "LTRAY_RAY_TMPDIR": parent, "RAY_AUTH_MODE": "disabled", "LTRAY_STORAGE": URI}
    env.pop("LTRAY_PAUSE_AT", None)
    if pause_at:
        env["LTRAY_PAUSE_AT"] = pause_at
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    return driver, parent


def _masks(exp) -> int:
    return sum(1 for p in exp.walk(layout.MASKS) if p.endswith(".ltmask"))


def _done(exp) -> set[str]:
    return {t for t, names in scan_trials(exp).items() if layout.TRIAL_DONE in names}


def _trains(exp, driver: subprocess.Popen, timeout_s: float = 300) -> None:
    """Until the driver has written one more mask than there was when it started."""
    before = _masks(exp)

    def more() -> bool:
        assert driver.poll() is None, driver.communicate()
        return _masks(exp) > before

    wait_for(more, timeout_s, "the driver to train a round", interval_s=0.3)


def _session_alive(session: int) -> bool:
    try:
        os.killpg(session, 0)
    except ProcessLookupError:
        return False
    return True


def _stopped(driver: subprocess.Popen, sig: int, ray_parent: str) -> tuple[int, str, str]:
    driver.send_signal(sig)  # the driver alone, as a terminal or `kill` would
    out, err = driver.communicate(timeout=120)
    # the local Ray it started goes down with it (its last processes may take a moment to exit)
    wait_for(lambda: not _session_alive(driver.pid), 30, "the stopped driver's session to end", interval_s=0.1)
    assert not [p for p in os.listdir(ray_parent) if p.startswith("ltray-ray-")], "temp dir left behind"
    return driver.returncode, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err and "Tuner.restore" not in err
    return lines[0]


def _killed_with_sigkill(driver: subprocess.Popen, ray_parent: str, exp) -> None:
    """Once a trial trains in its worker: the processes the driver started, by pid and start time;
    then SIGKILL to the driver alone; each of them must end, and its Ray temp dir must go."""
    _trains(exp, driver)

    def trial_workers() -> list[int]:
        assert driver.poll() is None, driver.communicate()
        return [pid for pid, _ in descendants(driver.pid) if comm(pid).startswith("ray::ImplicitFu")]

    trials = wait_for(trial_workers, 60, "a trial in its worker", interval_s=0.1)
    procs = descendants(driver.pid)
    names = cmdlines(procs)
    assert len(procs) >= 5 and "raylet" in names and "gcs_server" in names, names
    # on the way: the trial trains at the driver's niceness, not Ray's default 15 for workers
    assert {proc_stat(pid)[17] for pid in trials} == {proc_stat(driver.pid)[17]}, names
    [temp_dir] = os.listdir(ray_parent)
    driver.kill()
    driver.communicate(timeout=60)
    left = wait_until_gone(procs)
    assert not left, f"processes of the killed driver's Ray still run:\n{cmdlines(left)}"
    assert not os.path.exists(os.path.join(ray_parent, temp_dir)), "the private Ray's temp dir was left behind"


def _finished_masks(exp) -> dict[str, tuple]:
    """Every mask a trial has recorded as finished -> (size, modification time) in the bucket."""
    rels = [row["mask_path"] for t, names in scan_trials(exp).items() if layout.TRIAL_RESULTS in names
            for row in json.loads(exp.read_text(f"{layout.TRIALS}/{t}/{layout.TRIAL_RESULTS}"))["rounds"]]
    infos = exp.fs.get_file_info([exp._path(r) for r in rels])
    return {r: (i.size, i.mtime) for r, i in zip(rels, infos)}


def test_drivers_stopped_three_ways_and_resumed_on_a_bucket_lose_nothing(bucket, tmp_path, capsys):
    from ltray_analysis.__main__ import main as analysis_main
    from ltray.experiment.progress import experiment_progress
    from ltray.status import main as status_main

    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump(SWEEP))
    exp = open_storage(f"{URI}/tiny")
    plan = build_plan(tiny_sweep("unused", **SMALL, data=SWEEP["data"]))
    cmd = [sys.executable, "-m", "ltray.sweep", str(sweep_file), "--address", "local", "--progress-interval", "5"]

    # 1. a second driver is refused while the first runs; SIGTERM stops the first
    first, first_tmp = _driver(cmd)
    try:
        _trains(exp, first)
        # held while the second driver starts, so that it cannot finish the sweep meanwhile
        # however slowly the second one starts; it stays alive and holds its lease
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = subprocess.run(cmd + ["--resume"], cwd=ROOT, env={**os.environ, "LTRAY_STORAGE": URI},
                                    capture_output=True, text=True, timeout=300)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert second.returncode == 2 and "being run by another driver" in _one_line(second.stderr), second.stderr
        assert first.poll() is None, "the first driver finished before it could be stopped"
        code, out, err = _stopped(first, signal.SIGTERM, first_tmp)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert code == 143 and "continue with --resume" in _one_line(err), (code, err, out[-3000:])
    # ltray's own progress, not Tune's, naming where the folder is and why
    assert f"ltray sweep 'tiny': experiment folder {URI}/tiny (storage from $LTRAY_STORAGE)" in out
    assert json.loads(exp.read_text(layout.LEASE))["state"] == "interrupted"
    assert experiment_progress(exp).state == "interrupted"

    # 2. Ctrl-C
    again, again_tmp = _driver(cmd + ["--resume"])
    try:
        _trains(exp, again)
        code, _, err = _stopped(again, signal.SIGINT, again_tmp)
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)
    assert code == 130 and "continue with --resume" in _one_line(err), err

    # 3. SIGKILL
    killed, killed_tmp = _driver(cmd + ["--resume"])
    try:
        _killed_with_sigkill(killed, killed_tmp, exp)
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)

    done_before = _done(exp)
    assert len(done_before) < len(plan.trajectories) + plan.max_followups(), "nothing left to resume"
    finished = _finished_masks(exp)
    assert finished and all(size for size, _ in finished.values()), "no round was finished before the last --resume"

    # 4. the last --resume finishes; a SIGTERM after its summary
    last, last_tmp = _driver(cmd + ["--resume"], pause_at="summary")
    try:
        shown = wait_for_line(last, "paused at summary")
        maps = Path(f"/proc/{last.pid}/maps").read_text()  # what the driver loaded in a whole run
        code, _, err = _stopped(last, signal.SIGTERM, last_tmp)
    finally:
        if last.poll() is None:
            os.killpg(last.pid, signal.SIGKILL)
    assert "pret_a_porter" in "".join(shown)  # the summary was printed
    assert "_raylet" in maps and "libtorch" not in maps  # a driver never trains: torch is the trials
    assert code == 143 and "continue with --resume" in _one_line(err), (code, err)
    assert json.loads(exp.read_text(layout.LEASE))["state"] == "finished"  # the sweep had finished

    assert _finished_masks(exp).items() >= finished.items()  # finished rounds were not trained again
    rounds = read_table(exp, ROUNDS)
    assert not rounds.duplicated(["trial_id", "round"]).any()
    assert len(rounds[rounds.kind != "bespoke"]) == plan.max_followups()
    for t in plan.trajectories:
        assert sorted(rounds[rounds.trial_id == t.trial_id]["round"]) == list(range(plan.sweep.rounds))
    assert not any(p.startswith("/") for p in rounds["mask_path"])  # masks name no machine path
    (group,) = plan.groups
    sources = [read_mask(exp, layout.trajectory_mask(tid, group.source_round))[0].unpack()
               for tid in group.source_trials.values()]
    for k in group.thresholds:
        got = read_mask(exp, group.consensus_path(k))[0].unpack()
        want = vote_consensus(sources, k)
        assert all(np.array_equal(got[n], want[n]) for n in want)
    last_run = sorted(n for n in exp.list_dir(layout.TUNE) if n.startswith("run-"))[-1]
    relaunched = exp.list_dir(f"{layout.TUNE}/{last_run}")
    assert relaunched and not set(relaunched) & done_before  # Tune's files are in the bucket; nothing relaunched

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
