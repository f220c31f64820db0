"""Everything ltray relies on that Ray does not promise: its private modules and the process-wide
settings (environment variables) that steer Ray and Tune. Each is adapted here, once, so a Ray
upgrade touches one file, and every setting is scoped: `tune_settings` restores what it changed."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def process_env(values: Mapping[str, str], *, keep_existing: frozenset[str] = frozenset()) -> Iterator[None]:
    """Set environment variables for the duration of a block and restore them afterwards.
    Names in `keep_existing` are set only where the user has not set them."""
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if name in keep_existing and saved[name] is not None:
            continue
        os.environ[name] = value
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def tune_settings(max_pending_trials: int, *, legacy_output: bool, tracker_loggers_only: bool) -> contextlib.AbstractContextManager:
    """Tune's process-wide switches for one `Tuner.fit`:
    - how many trials may wait for a placement group (the sweep's `max_concurrent`);
    - no warning about slow experiment-checkpoint syncs (ltray keeps its own resume state);
    - Ctrl-C is ltray's (one line, exit 130), not Tune's;
    - the legacy output engine, which at verbose 0 prints nothing (ltray's reporter speaks);
    - Tune's automatic logger callbacks off: the sweep file's `loggers:` is the one switch."""
    values = {"TUNE_MAX_PENDING_TRIALS_PG": str(max_pending_trials),
              "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
              "TUNE_DISABLE_SIGINT_HANDLER": "1"}
    if legacy_output:
        values["RAY_AIR_NEW_OUTPUT"] = "0"
    if tracker_loggers_only:
        values["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    return process_env(values, keep_existing=frozenset({"TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"}))


def in_ray_worker() -> bool:
    """Whether this process is one of Ray's workers (running a task or an actor), not a driver."""
    import ray
    from ray._private import worker

    return worker.global_worker.mode == ray.WORKER_MODE


@contextlib.contextmanager
def driver_signal_handlers() -> Iterator[None]:
    """While this process starts or joins Ray: no C++ failure-signal handler in the driver. Ray's
    (absl's) would print a native stack dump for a SIGTERM that arrives before ltray's handler is
    back, where a stop is one line. Python's faulthandler prints a crash's traceback instead. The
    switch is read once, when ray.init creates the driver's core worker; a user's
    RAY_DISABLE_FAILURE_SIGNAL_HANDLER wins."""
    import faulthandler

    from ray._private import ray_constants

    before = ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER
    if "RAY_DISABLE_FAILURE_SIGNAL_HANDLER" not in os.environ:
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
        if not faulthandler.is_enabled():
            faulthandler.enable()
    try:
        yield
    finally:
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = before


def local_ray_env() -> contextlib.AbstractContextManager:
    """A private local Ray: no token authentication unless the user chose a mode, and every
    service on 127.0.0.1. Ray resolves 'localhost' to the machine's reachable address unless
    clustering is off; this is the switch Ray itself uses on single-machine platforms (read at
    call time in this process, and by child processes through the environment).

    Trials run at the driver's niceness: the raylet starts workers at nice 15 by default
    (`RAY_worker_niceness`), where a trial's thread only gets the CPU time that every other
    process of the machine leaves over; on a shared machine that made the same training ~20%
    slower inside Tune than run directly (BENCHMARKS.md, benchmark 3). A user's own value wins."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    return process_env({"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                        ray_constants.RAY_WORKER_NICENESS: "0"},
                       keep_existing=frozenset({"RAY_AUTH_MODE", ray_constants.RAY_WORKER_NICENESS}))


def restore_cluster_mode() -> None:
    """Undo `local_ray_env`'s in-process switch once the private Ray is shut down."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1") != "0"


def local_gpu_count() -> int:
    """The GPUs a private local Ray started here would register: Ray's own detection (NVML),
    capped by CUDA_VISIBLE_DEVICES, as `ray.init` resolves it (no torch import in the driver)."""
    from ray._private.accelerators import get_accelerator_manager_for_resource

    manager = get_accelerator_manager_for_resource("GPU")
    count = manager.get_current_node_num_accelerators()
    visible = manager.get_current_process_visible_accelerator_ids()
    return count if visible is None else min(count, len(visible))


def local_start_timed_out(error: BaseException) -> bool:
    """Whether `ray.init` failed because the new local node did not register within the fixed
    time Ray allows it (Ray raises a bare Exception with this text, ray/_private/node.py)."""
    return type(error) is Exception and "timed out during startup" in str(error)


def cluster_on_this_machine() -> str | None:
    """The address of a live cluster that `ray start` launched on this machine, if any."""
    try:
        from ray._private.utils import read_ray_address  # the file `ray start` writes
    except ImportError:
        return None
    address = read_ray_address()
    if not address:
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return address
    except (OSError, ValueError):
        return None  # a stale file left by a cluster that is gone


def dashboard_url() -> str | None:
    """The connected Ray's dashboard address, best effort (Ray has no public API for it)."""
    try:
        import ray

        return ray._private.worker.global_worker.node.address_info.get("webui_url") or None
    except Exception:  # noqa: BLE001
        return None


def autoscaler_validate() -> tuple | None:
    """Ray's (prepare_config, validate_config) for offline cluster-file checks, or None when this
    Ray does not have them where ltray knows to look."""
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError:
        return None
    return prepare_config, validate_config


@contextlib.contextmanager
def quiet_autoscaler_checks() -> Iterator[None]:
    """Ray's config check logs INFO lines about the defaults it fills in; a check prints findings only."""
    log = logging.getLogger("ray.autoscaler._private.util")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
