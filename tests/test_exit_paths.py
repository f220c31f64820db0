"""Every way a driver ends is honest: a SIGTERM or Ctrl-C at any moment of `ltray sweep`'s main
(before Ray starts, while Ray's own SIGTERM handler is in place, or in the last second, after the
run while the summary is written) is one
line and exit 143 / 130; a SIGKILLed driver that started its own local Ray leaves no process of
that Ray behind. The moments are reached without racing: LTRAY_PAUSE_AT makes the driver say
'paused at NAME' on stdout and wait there for the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from ltray.sweep.signals import StopSignals, Stopped
from tests.sweep_helpers import short_tmpdir
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]


def one_trajectory(storage: Path, rounds: int, epochs: int, samples: int) -> dict:
    return {"name": "exits", "storage": str(storage),
            "grid": {"tasks": ["mnist_subset"], "archs": ["lenet"], "techniques": ["global_unstructured"],
                     "seeds": [0]},
            "rounds": rounds, "train": {"epochs": epochs},
            "data": {"crop": False, "flip": False, "max_train_samples": samples},
            "resources": {"lenet": {"cpu": 1}}, "max_concurrent": 1, "max_failures": 0}


def start_driver(tmp_path: Path, sweep: dict, pause_at: str | None = None) -> tuple[subprocess.Popen, str]:
    sweep_file = tmp_path / "exits.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))
    ray_parent = short_tmpdir("lte-")
    env = {**os.environ, "LTRAY_RAY_TMPDIR": ray_parent, "RAY_AUTH_MODE": "disabled"}
    env.pop("LTRAY_PAUSE_AT", None)
    if pause_at:
        env["LTRAY_PAUSE_AT"] = pause_at
    cmd = [sys.executable, "-m", "ltray.sweep", str(sweep_file), "--address", "local", "--num-cpus", "1", "-q"]
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    return driver, ray_parent


def wait_for_line(driver: subprocess.Popen, text: str) -> list[str]:
    """Read the driver's stdout up to the line `text` (the driver waits there; no timing involved)."""
    seen = []
    for line in driver.stdout:
        seen.append(line)
        if line.strip() == text:
            return seen
    raise AssertionError(f"the driver ended before {text!r}: {''.join(seen)[-2000:]}{driver.stderr.read()[-3000:]}")


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


class StoppedDriver(NamedTuple):
    status: int
    err: str
    procs: set[tuple[int, str]]  # its descendants (pid, start time) at the pause
    names: str  # their command lines, read at the pause
    ray_parent: str  # the parent of its Ray temp dir


def stopped_at(tmp_path: Path, pause_at: str, sig: int = signal.SIGTERM, timeout_s: float = 120) -> StoppedDriver:
    """A one-round driver, stopped by `sig` where it waits at `pause_at`."""
    driver, ray_parent = start_driver(tmp_path, one_trajectory(tmp_path / "exp", 1, 1, 64), pause_at=pause_at)
    try:
        wait_for_line(driver, f"paused at {pause_at}")
        procs = descendants(driver.pid)
        names = cmdlines(procs)
        driver.send_signal(sig)
        _, err = driver.communicate(timeout=timeout_s)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    return StoppedDriver(driver.returncode, err, procs, names, ray_parent)


# ---- processes, by pid and start time (a pid can be reused) --------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return [text[:text.index("(")].strip()] + text[text.rindex(")") + 2:].split()  # pid, state, ppid, ...


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every living descendant of `root`."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) and st[1] != "Z":
            children.setdefault(int(st[2]), []).append((int(entry.name), st[20]))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def alive(procs: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """The ones still running (a zombie waiting for init to reap it has ended)."""
    return {(pid, start) for pid, start in procs if (st := _stat(pid)) and st[1] != "Z" and st[20] == start}


def wait_until_gone(procs: set[tuple[int, str]], timeout_s: float = 90) -> set[tuple[int, str]]:
    deadline = time.monotonic() + timeout_s
    while (left := alive(procs)) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling for processes to end, with a deadline
    return left


def cmdlines(procs) -> str:
    out = []
    for pid, _ in procs:
        try:
            out.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes().replace(bytes(1), b' ')[:200]!r}")
        except OSError:
            pass
    return "\n".join(out)


# ---- the signal context, in this process ------------------------------------------------------
def test_stop_signals_record_the_signal_and_restore_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        with pytest.raises(Stopped):
            signal.raise_signal(signal.SIGTERM)
        with stop:  # re-entered by run_sweep inside main: one record, handlers restored once
            stop.install()
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        stop.hold()  # after the first signal, later ones are counted, not raised
        signal.raise_signal(signal.SIGINT)
    assert stop.received == signal.SIGTERM and stop.exit_status == 143
    assert signal.getsignal(signal.SIGTERM) is before
    with StopSignals() as ctrl_c:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert ctrl_c.exit_status == 130


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_before_ray_starts_is_one_line(tmp_path, sig, status):
    code, err, _, _, ray_parent = stopped_at(tmp_path, "plan", sig, timeout_s=60)
    assert code == status, err
    assert "interrupted" in one_line(err) and "continue with --resume" in err
    assert not os.listdir(ray_parent)  # Ray had not started


# ---- with a private local Ray -----------------------------------------------------------------
@pytest.mark.ray
def test_sigterm_in_the_last_second_is_one_line_and_143(tmp_path):
    """After run_sweep has returned, while the summary is written: the driver still stops cleanly."""
    import json

    code, err, procs, _, ray_parent = stopped_at(tmp_path, "finish")  # procs: the lease's and Ray's are gone
    assert code == 143, err[-3000:]
    assert "interrupted" in one_line(err) and "continue with --resume" in err
    assert json.loads((tmp_path / "exp" / "exits" / "driver.json").read_text())["state"] == "finished"
    assert not wait_until_gone(procs, timeout_s=30)
    assert not os.listdir(ray_parent), "the private Ray's temp dir was left behind"


@pytest.mark.ray
def test_sigterm_while_ray_starts_is_one_line_and_143(tmp_path):
    """ray.init replaces SIGTERM's handler with its own sys.exit(15) until ltray's is back: a SIGTERM
    then (the driver waits right after ray.init, Ray's handler still in place) stops the run like
    any other, and what had started of the local Ray goes."""
    code, err, procs, names, ray_parent = stopped_at(tmp_path, "ray_started")
    assert "raylet" in names  # Ray had started when the signal came
    assert code == 143, err[-3000:]
    assert "interrupted" in one_line(err) and "continue with --resume" in err
    assert not wait_until_gone(procs, timeout_s=30), cmdlines(alive(procs))
    assert not os.listdir(ray_parent), "the private Ray's temp dir was left behind"


@pytest.mark.ray
def test_a_sigkilled_driver_leaves_no_ray_process_behind(tmp_path):
    """SIGKILL gives the driver no chance to stop its Ray: the processes it started must end anyway.
    They are recorded (by pid and start time) while the trial trains, then the driver is killed."""
    sweep = one_trajectory(tmp_path / "exp", 5, 20, 4096)  # minutes of training: it is killed as it starts
    driver, ray_parent = start_driver(tmp_path, sweep)
    try:
        def trial_running() -> list[int]:  # the trial's worker process has taken it on
            assert driver.poll() is None, driver.communicate()
            return [pid for pid, _ in descendants(driver.pid) if _comm(pid).startswith("ray::ImplicitFu")]

        trials = wait_for(trial_running, 300, "the trial to start in its worker", interval_s=0.2)
        procs = descendants(driver.pid)
        names = cmdlines(procs)
        assert len(procs) >= 5 and "raylet" in names and "gcs_server" in names, names
        # on the way: the trial trains at the driver's niceness, not Ray's default 15 for workers
        assert {_stat(pid)[17] for pid in trials} == {_stat(driver.pid)[17]}, names
        [temp_dir] = os.listdir(ray_parent)
        driver.kill()
        driver.communicate(timeout=60)
        left = wait_until_gone(procs)
    finally:
        os.killpg(driver.pid, signal.SIGKILL) if driver.poll() is None else None
    assert not left, f"processes of the killed driver's Ray still run:\n{cmdlines(left)}"
    assert not os.path.exists(os.path.join(ray_parent, temp_dir)), "the private Ray's temp dir was left behind"
