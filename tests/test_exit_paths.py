"""Every way a driver ends is honest: a SIGTERM or Ctrl-C before Ray starts, or while Ray's own
SIGTERM handler is in place, is one line and exit 143 / 130, and what had started of the local
Ray goes. The moments are reached without racing: LTRAY_PAUSE_AT makes the driver say
'paused at NAME' on stdout and wait there for the signal. (A SIGTERM in the last second, after
the summary, and a SIGKILLed driver's local Ray: test_signals.py, in its chain of drivers.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from ltray.sweep.signals import StopSignals, Stopped
from tests.process_helpers import alive, cmdlines, descendants, wait_for_line, wait_until_gone
from tests.sweep_helpers import short_tmpdir

ROOT = Path(__file__).resolve().parents[1]


def one_round(storage: Path) -> dict:
    return {"name": "exits", "storage": str(storage),
            "grid": {"tasks": ["mnist_subset"], "archs": ["lenet"], "techniques": ["global_unstructured"],
                     "seeds": [0]},
            "rounds": 1, "train": {"epochs": 1},
            "data": {"crop": False, "flip": False, "max_train_samples": 64},
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
    maps: str  # the driver's memory map at the pause: the libraries it had loaded


def stopped_at(tmp_path: Path, pause_at: str, sig: int = signal.SIGTERM, timeout_s: float = 120) -> StoppedDriver:
    """A one-round driver, stopped by `sig` where it waits at `pause_at`."""
    driver, ray_parent = start_driver(tmp_path, one_round(tmp_path / "exp"), pause_at=pause_at)
    try:
        wait_for_line(driver, f"paused at {pause_at}")
        procs = descendants(driver.pid)
        names = cmdlines(procs)
        maps = Path(f"/proc/{driver.pid}/maps").read_text()
        driver.send_signal(sig)
        _, err = driver.communicate(timeout=timeout_s)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    return StoppedDriver(driver.returncode, err, procs, names, ray_parent, maps)


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
    code, err, _, _, ray_parent, _ = stopped_at(tmp_path, "plan", sig, timeout_s=60)
    assert code == status, err
    assert "interrupted" in one_line(err) and "continue with --resume" in err
    assert not os.listdir(ray_parent)  # Ray had not started


# ---- with a private local Ray -----------------------------------------------------------------
@pytest.mark.ray
def test_sigterm_while_ray_starts_is_one_line_and_143(tmp_path):
    """ray.init replaces SIGTERM's handler with its own sys.exit(15) until ltray's is back: a SIGTERM
    then (the driver waits right after ray.init, Ray's handler still in place) stops the run like
    any other, and what had started of the local Ray goes."""
    code, err, procs, names, ray_parent, maps = stopped_at(tmp_path, "ray_started")
    assert "raylet" in names  # Ray had started when the signal came
    # by then the driver has opened the folder (provenance.json) and started Ray without torch:
    # a driver never trains (seconds of its start, and memory on a cluster's head node)
    assert "libtorch" not in maps and "_raylet" in maps
    assert code == 143, err[-3000:]
    assert "interrupted" in one_line(err) and "continue with --resume" in err
    assert not wait_until_gone(procs, timeout_s=30), cmdlines(alive(procs))
    assert not os.listdir(ray_parent), "the private Ray's temp dir was left behind"
