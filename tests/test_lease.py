"""One driver per experiment: the lease in driver.json refuses a second driver with one line,
frees itself when its driver dies (a dead pid here, a silent heartbeat elsewhere), can be taken
over on purpose, and tells a driver that lost it. Works on any Storage (no locks)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from ltray.errors import ExperimentError
from ltray.experiment import lease as lease_module
from ltray.experiment.lease import Lease, LeaseLost, read_lease
from ltray.storage import LocalStorage
from tests.waiting import wait_for


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(lease_module, "SETTLE_S", 0.05)


def _foreign(storage, **kw):
    doc = {"token": "other", "host": "another-host", "pid": 1, "started": time.time() - 100,
           "heartbeat": time.time(), "state": "running", **kw}
    storage.write_text("driver.json", json.dumps(doc))


def test_a_second_driver_is_refused_with_one_line(tmp_path):
    storage = LocalStorage(tmp_path)
    first = Lease(storage)
    first.acquire()
    with pytest.raises(ExperimentError) as refused:
        Lease(storage).acquire()
    text = str(refused.value)
    assert "\n" not in text and str(tmp_path / "driver.json") in text
    assert f"pid {first.info.pid} on {socket.gethostname()}" in text and "--take-over" in text
    first.release("finished")
    assert read_lease(storage).state == "finished"
    assert Lease(storage).acquire() is None  # a finished run holds nothing


def test_a_dead_driver_frees_its_lease(tmp_path):
    storage = LocalStorage(tmp_path)
    _foreign(storage, host=socket.gethostname(), pid=2**22 + 7)  # this host, no such process
    assert Lease(storage).acquire().token == "other"  # taken over: the previous holder is returned
    _foreign(storage, heartbeat=time.time() - 3600)  # another host, silent for an hour
    assert Lease(storage).acquire().token == "other"


def test_take_over_and_the_lost_lease(tmp_path):
    storage = LocalStorage(tmp_path)
    _foreign(storage)  # alive elsewhere
    with pytest.raises(ExperimentError, match="being run by another driver"):
        Lease(storage).acquire()
    mine = Lease(storage)
    mine.acquire(take_over=True)
    assert read_lease(storage).token == mine.info.token
    _foreign(storage)  # someone else took it back
    with pytest.raises(LeaseLost, match="took over this experiment"):
        mine.renew()
    mine.release("interrupted")
    assert read_lease(storage).token == "other"  # a driver that lost its lease writes nothing more


def test_two_drivers_racing_one_wins(tmp_path, monkeypatch):
    storage = LocalStorage(tmp_path)
    a, b = Lease(storage), Lease(storage)
    real_sleep = time.sleep

    def b_claims_while_a_settles(seconds):  # b writes between a's claim and a's read-back
        if read_lease(storage).token == a.info.token:
            b._write()
        real_sleep(seconds)

    monkeypatch.setattr(lease_module.time, "sleep", b_claims_while_a_settles)
    with pytest.raises(ExperimentError, match="claimed the experiment at the same time"):
        a.acquire()
    assert read_lease(storage).token == b.info.token


def test_heartbeat_and_a_damaged_lease(tmp_path):
    storage = LocalStorage(tmp_path)
    lease = Lease(storage)
    lease.acquire()
    first = read_lease(storage).heartbeat
    lease.start_heartbeat(interval_s=0.1)
    wait_for(lambda: read_lease(storage).heartbeat > first, 30, "the heartbeat to renew the lease", interval_s=0.05)
    lease.release("finished")
    storage.write_text("driver.json", "{garbage")
    assert read_lease(storage) is None  # a damaged lease holds nothing
    Lease(storage).acquire()
