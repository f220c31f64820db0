"""One `ray start --head` for the whole test run, for the test files that need a cluster to run on
but not a cluster of their own (starting one costs about 8 CPU-seconds of Ray's services, and the
2-core machine has no CPU to spare).

The first process that asks starts it, under a lock in the run's temp folder, and writes where it
is next to the lock; the others (pytest-xdist's workers) read that. The run's first process (the
controller) stops it at the end of the run (conftest.py), whichever worker started it. Its temp
dir is directly in the system temp dir (Ray's socket paths are capped at 107 bytes) and goes with
it.

What the files sharing it must keep apart, they do: each sweep has its own experiment folder (so
its own consensus actor name and Tune run), each job its own submission id, and a test looks for
its own processes by its job id, never by the cluster's process tree. A test that stops, kills or
reconfigures a cluster (or needs one whose environment it sets) keeps a private one."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
from pathlib import Path

from tests.cluster_helpers import HeadNode, live_trial_pids, start_head
from tests.temp_dirs import RUN_TMPDIR, SYSTEM_TMPDIR

# the tests' sweeps take 1 CPU a trial, at most 2 at once, from up to 3 test processes side by
# side; one GPU (no CUDA behind it) for the test of a GPU share that torch cannot use
RESOURCES = ("--num-cpus", "8", "--num-gpus", "1")


def _state() -> Path:
    return Path(os.environ[RUN_TMPDIR]) / "shared-head.json"


def shared_head() -> HeadNode:
    """The run's shared cluster, started if no process of the run has started it yet."""
    state = _state()
    with open(state.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if state.exists():
            return HeadNode(**json.loads(state.read_text()))
        temp_dir = tempfile.mkdtemp(prefix="lth-", dir=os.environ.get(SYSTEM_TMPDIR, "/tmp"))
        head = start_head("lth-", *RESOURCES, temp_dir=temp_dir)
        state.write_text(json.dumps(dataclasses.asdict(head)))
        return head


def stop_shared_head() -> None:
    """End the shared cluster's processes and remove its temp dir, if the run started it."""
    state = _state()
    if state.exists():
        HeadNode(**json.loads(state.read_text())).stop()
        state.unlink()


@contextlib.contextmanager
def joined(env_vars: dict | None = None):
    """This process joined to the shared cluster as a driver for the block (its sweeps run there,
    like `ltray sweep --address`); `env_vars` go to every worker of this driver's job."""
    import ray
    from ray._private import ray_constants

    head = shared_head()
    runtime_env = {"env_vars": env_vars} if env_vars else None
    # the cluster is on 127.0.0.1 only: with clustering on, Ray would resolve that address to the
    # machine's reachable one (the switch the cluster itself got through its environment)
    saved, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    try:
        ray.init(address=head.address, namespace="ltray", runtime_env=runtime_env, logging_level="WARNING",
                 log_to_driver=False)
        yield head
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved


def job_trial_pids() -> list[int]:
    """Processes of this driver's job's live Tune trials on the shared cluster (other tests' private
    clusters may be running on this machine too, so the address is explicit)."""
    import ray

    return live_trial_pids(shared_head().dashboard, {ray.get_runtime_context().get_job_id()})
