"""Drivers as a user meets them: while a sweep runs, a second driver (fresh or --resume) is refused
with one line; SIGTERM and Ctrl-C stop it cleanly (one line, exit 143 / 130, no traceback, no
Tune advice, its local Ray and temp dir gone); `ltray.status` says interrupted; the last --resume
finishes the sweep with every round and follow-up exactly once, without training a finished round
or trial again. (A driver killed with SIGKILL, then --resume: test_s3.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ltray.orchestration.plan import build_plan
from tests.sweep_helpers import SMALL, TINY_SWEEP, assert_complete_and_unique, short_tmpdir, tiny_sweep
from tests.waiting import wait_for

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]
# the small tiny sweep (3 trajectories, 10 follow-ups) with 1024 training samples a round: each
# phase below stops the driver once it has trained a round, and the sweep must still be training
# when it does (the first driver is held with SIGSTOP while the refused second one starts)
SWEEP = {**TINY_SWEEP, **SMALL, "data": {**TINY_SWEEP["data"], "max_train_samples": 1024}}


def _driver(cmd, env) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _done(exp: Path) -> int:
    return len(list(exp.glob("trials/*/done.json")))


def _masks(exp: Path) -> int:
    return len(list(exp.glob("masks/**/*.ltmask")))


def _wait_for(exp: Path, done: int, driver: subprocess.Popen, timeout_s: float = 300, count=_done) -> None:
    deadline = time.monotonic() + timeout_s
    while count(exp) < done:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.3)


def _session_alive(session: int) -> bool:
    try:
        os.killpg(session, 0)
    except ProcessLookupError:
        return False
    return True


def _stopped(driver: subprocess.Popen, sig: int, tmp_parent: str) -> tuple[int, str, str]:
    driver.send_signal(sig)  # the driver alone, as a terminal or `kill` would
    out, err = driver.communicate(timeout=120)
    # the local Ray it started goes down with it (its last processes may take a moment to exit)
    wait_for(lambda: not _session_alive(driver.pid), 30, "the stopped driver's session to end", interval_s=0.1)
    assert not [p for p in os.listdir(tmp_parent) if p.startswith("ltray-ray-")], "temp dir left behind"
    return driver.returncode, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err and "Tuner.restore" not in err
    return lines[0]


def test_concurrent_drivers_signals_and_resume(tmp_path):
    from ltray.experiment.progress import experiment_progress
    from ltray.storage import LocalStorage

    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump({**SWEEP, "storage": str(tmp_path / "exp")}))
    exp = tmp_path / "exp" / "tiny"
    plan = build_plan(tiny_sweep(tmp_path / "exp", **SMALL, data=SWEEP["data"]))
    cmd = [sys.executable, "-m", "ltray.sweep", str(sweep_file), "--address", "local", "--progress-interval", "5"]

    def env():
        parent = short_tmpdir("lts-")
        return {**os.environ, "LTRAY_RAY_TMPDIR": parent, "RAY_AUTH_MODE": "disabled"}, parent

    first_env, first_tmp = env()
    first = _driver(cmd, first_env)
    try:
        _wait_for(exp, 1, first, count=_masks)  # it trains
        # held while the second driver starts, so that it cannot finish the sweep meanwhile
        # however slowly the second one starts; it stays alive and holds its lease
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env()[0], capture_output=True, text=True,
                                    timeout=300)
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert second.returncode == 2 and "being run by another driver" in _one_line(second.stderr), second.stderr
        assert first.poll() is None, "the first driver finished before it could be stopped"
        code, out, err = _stopped(first, signal.SIGTERM, first_tmp)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert code == 143 and "continue with --resume" in _one_line(err), (code, err, out[-3000:])
    assert f"ltray sweep 'tiny': experiment folder {exp}" in out  # ltray's own progress, not Tune's
    assert json.loads((exp / "driver.json").read_text())["state"] == "interrupted"
    assert experiment_progress(LocalStorage(exp)).state == "interrupted"

    again_env, again_tmp = env()
    again = _driver(cmd + ["--resume"], again_env)
    try:
        _wait_for(exp, _masks(exp) + 1, again, count=_masks)  # it trains again
        code, _, err = _stopped(again, signal.SIGINT, again_tmp)
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)
    assert code == 130 and "continue with --resume" in _one_line(err), err

    done_before = {p.parent.name for p in exp.glob("trials/*/done.json")}
    assert len(done_before) < len(plan.trajectories) + plan.max_followups(), "nothing left to resume"
    finished = {}
    for results in exp.glob("trials/*/results.json"):
        for row in json.loads(results.read_text())["rounds"]:
            st = (exp / row["mask_path"]).stat()
            finished[row["mask_path"]] = (st.st_ino, st.st_mtime_ns)
    assert finished, "no round was finished before the last --resume"

    last_env, last_tmp = env()
    last = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=last_env, capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stderr[-3000:]
    assert_complete_and_unique(exp, plan)
    assert json.loads((exp / "driver.json").read_text())["state"] == "finished"
    assert not [p for p in os.listdir(last_tmp) if p.startswith("ltray-ray-")]
    for rel, before in finished.items():  # finished rounds were not trained again
        st = (exp / rel).stat()
        assert (st.st_ino, st.st_mtime_ns) == before, rel
    relaunched = [p.name for p in sorted((exp / "tune").glob("run-*"))[-1].iterdir() if p.is_dir()]
    assert not set(relaunched) & done_before  # finished trials were not launched again
    assert "pret_a_porter" in last.stdout  # the summary is printed
