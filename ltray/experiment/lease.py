"""One driver per experiment: a lease file (driver.json) that names the driver running the sweep
and carries its heartbeat, on any storage (local disk, NFS, object stores: no locks needed).

A driver claims the lease by writing it with a fresh token, waits SETTLE_S and reads it back:
of two drivers racing, the last writer wins and the other refuses. A lease is held while its
heartbeat is younger than LEASE_TIMEOUT_S, or while its driver's process is alive on this host.
The heartbeat also tells `ltray.status` whether the sweep is running, finished or interrupted.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.storage import Storage, StorageError

HEARTBEAT_S = 10.0
LEASE_TIMEOUT_S = 90.0  # a driver silent this long is taken for dead
SETTLE_S = 1.0
RUNNING, FINISHED, INTERRUPTED, FAILED = "running", "finished", "interrupted", "failed"


@dataclass
class LeaseInfo:
    token: str
    host: str
    pid: int
    started: float  # epoch seconds
    heartbeat: float
    state: str = RUNNING
    ray_address: str = ""
    progress: dict = field(default_factory=dict)  # the driver's counts, ETA and running trials

    @property
    def age_s(self) -> float:
        return max(0.0, time.time() - self.heartbeat)

    def alive(self, timeout_s: float = LEASE_TIMEOUT_S) -> bool:
        """Whether the driver may still be running (and so holds the lease)."""
        if self.state != RUNNING:
            return False
        if self.host == socket.gethostname():
            return _pid_alive(self.pid) and self.age_s < max(timeout_s, 3 * HEARTBEAT_S) * 10
        return self.age_s < timeout_s

    def who(self) -> str:
        return f"pid {self.pid} on {self.host}, started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_unclaimed(storage: Storage, take_over: bool = False) -> LeaseInfo | None:
    """The experiment's lease, unless a live driver holds it (ExperimentError, unless `take_over`).
    A resume checks this before it changes anything in the folder, and again when it claims it."""
    current = read_lease(storage)
    if current is not None and current.alive() and not take_over:
        raise ExperimentError(f"{storage.describe(layout.LEASE)}: the experiment is being run by another driver "
                              f"({current.who()}, last heartbeat {current.age_s:.0f} s ago); wait for it to "
                              "finish, or if it is dead, continue with --resume --take-over")
    return current


def read_lease(storage: Storage) -> LeaseInfo | None:
    """The lease on the folder, or None (none, or unreadable: a damaged lease holds nothing)."""
    try:
        data = storage.read_bytes_or_none(layout.LEASE)
    except StorageError:
        return None
    if data is None:
        return None
    try:
        doc = json.loads(data)
        info = LeaseInfo(**{k: doc[k] for k in LeaseInfo.__dataclass_fields__ if k in doc})
        if not isinstance(info.progress, dict) or not isinstance(info.heartbeat, (int, float)):
            return None
        return info
    except (ValueError, TypeError, KeyError, RecursionError, AttributeError):
        return None


class LeaseLost(ExperimentError):
    """Another driver took the experiment over while this one ran."""


class Lease:
    def __init__(self, storage: Storage, ray_address: str = ""):
        self.storage = storage
        self.info = LeaseInfo(token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(),
                              started=time.time(), heartbeat=time.time(), ray_address=ray_address)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def acquire(self, take_over: bool = False) -> LeaseInfo | None:
        """Claim the experiment; return the previous holder's lease when it was taken over."""
        where = self.storage.describe(layout.LEASE)
        current = check_unclaimed(self.storage, take_over)
        self._write()
        time.sleep(SETTLE_S)
        now = read_lease(self.storage)
        if now is None or now.token != self.info.token:
            other = f" ({now.who()})" if now is not None else ""
            raise ExperimentError(f"{where}: another driver{other} claimed the experiment at the same time; "
                                  "only one may run it")
        return current if current is not None and current.state == RUNNING else None

    def _write(self) -> None:
        self.info.heartbeat = time.time()
        self.storage.write_text(layout.LEASE, json.dumps(asdict(self.info), indent=1))

    def renew(self) -> None:
        """Write a heartbeat; LeaseLost if another driver holds the lease now."""
        now = read_lease(self.storage)
        if now is not None and now.token != self.info.token:
            self.lost = True
            raise LeaseLost(f"{self.storage.describe(layout.LEASE)}: another driver ({now.who()}) took over "
                            "this experiment; this one stops")
        self._write()

    def start_heartbeat(self, on_lost=None, interval_s: float = HEARTBEAT_S) -> None:
        def beat():
            while not self._stop.wait(interval_s):
                try:
                    self.renew()
                except LeaseLost:
                    if on_lost is not None:
                        on_lost()
                    return
                except StorageError:
                    continue  # a passing storage fault: the next beat retries

        self._thread = threading.Thread(target=beat, name="ltray-heartbeat", daemon=True)
        self._thread.start()

    def release(self, state: str) -> None:
        """Stop the heartbeat and record how the run ended (finished, interrupted, failed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lost:
            return
        self.info.state = state
        try:
            now = read_lease(self.storage)
            if now is None or now.token == self.info.token:
                self._write()
        except StorageError:
            pass  # the lease goes stale by itself
