"""The driver: validate, open the experiment folder, start (or join) Ray, create the consensus
actor, resynchronise from the files on disk, and run one Tune experiment to completion."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from ltray.errors import ExperimentError
from ltray.sweep.actor import NAMESPACE, start_actor
from ltray.sweep.callback import ResultsCallback
from ltray.sweep.experiment import all_results, open_experiment
from ltray.sweep.plan import Plan
from ltray.sweep.searcher import SweepSearcher
from ltray.sweep.summary import write_summary
from ltray.sweep.tables import RoundsTable
from ltray.sweep.trackers import tracker_callbacks
from ltray.sweep.trainable import run_trial


def run_sweep(plan: Plan, *, resume: bool = False, address: str | None = None, num_cpus: int | None = None,
              num_gpus: int | None = None, dashboard: bool = False, verbose: int = 1) -> Path:
    """Run (or resume) the whole experiment; return its folder."""
    sweep = plan.sweep
    exp = open_experiment(sweep, plan, resume)
    started_ray = _connect(address, num_cpus, num_gpus, dashboard)
    actor = None
    try:
        actor = start_actor(exp, sweep)
        table = RoundsTable(exp)
        _resync(exp, actor, table)
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(sweep.max_concurrent))
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        searcher = SweepSearcher(exp, [t.to_tune() for t in plan.trajectories],
                                 {"exp_dir": str(exp), "data_root": str(Path(sweep.data_root).expanduser().resolve()),
                                  "download": sweep.download})
        trainable = tune.with_resources(run_trial, _resources)
        run_name = _run_name(exp)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=sweep.max_concurrent),
                                        num_samples=-1, reuse_actors=True, trial_name_creator=trial_name,
                                        trial_dirname_creator=trial_name),
            run_config=tune.RunConfig(
                name=run_name, storage_path=str(exp / "tune"),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                callbacks=[ResultsCallback(exp, table), *tracker_callbacks(sweep.loggers, exp, sweep.name, run_name)],
                verbose=verbose,
            ),
        )
        tuner.fit()
        ray.get(actor.flush.remote())
        table.flush(force=True)
        write_summary(exp)
        ray.kill(actor)  # detached: it would otherwise outlive the sweep
        actor = None
    finally:
        if started_ray:
            ray.shutdown()
    return exp


def trial_name(trial) -> str:
    """Tune's name and folder for a trial: ltray's stable id (Tune's default spells out the config)."""
    return trial.config.get("trial_id", trial.trial_id)


def _resources(config: dict):
    r = config["resources"]
    bundle = {"CPU": r["cpu"]}
    if r["gpu"]:
        bundle["GPU"] = r["gpu"]
    return tune.PlacementGroupFactory([bundle])


def _resync(exp: Path, actor, table: RoundsTable) -> None:
    """Rebuild the tables and re-send every mask from the trials' own files (idempotent)."""
    rows = all_results(exp)
    for row in rows:
        table.add(row)
    table.flush(force=True)
    masks = [(r["trial_id"], int(r["round"]), r["mask_path"]) for r in rows if r["kind"] == "bespoke"]
    ray.get(actor.add_masks.remote(masks))


def _run_name(exp: Path) -> str:
    runs = sorted((exp / "tune").glob("run-*")) if (exp / "tune").exists() else []
    return f"run-{len(runs) + 1:03d}"


def _connect(address: str | None, num_cpus, num_gpus, dashboard: bool) -> bool:
    """Join a cluster, else start a private local Ray; return whether this process started Ray.

    The cluster is ADDR, else $RAY_ADDRESS (set by `ray job submit`), else one started with
    `ray start` on this machine. ADDR 'local' always starts a private local Ray: its own temp dir,
    services on 127.0.0.1 only, and no dashboard unless asked.
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or _cluster_on_this_machine()
    if address and address != "local":
        try:
            ray.init(address=address, namespace=NAMESPACE)
        except ConnectionError as e:
            raise ExperimentError(f"cannot reach the Ray cluster at {address}: {e}") from None
        return True
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    _loopback_only()
    temp_dir = tempfile.mkdtemp(prefix="ltray-ray-", dir=os.environ.get("LTRAY_RAY_TMPDIR", "/tmp"))
    try:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                 dashboard_host="127.0.0.1", namespace=NAMESPACE, _temp_dir=temp_dir,
                 configure_logging=True, logging_level="WARNING", log_to_driver=False)
    except Exception as e:  # noqa: BLE001 - Ray raises many types for a failed start
        raise ExperimentError(f"could not start a local Ray in {temp_dir}: {e}; the experiment folder "
                              "exists now, so retry with --resume") from None
    return True


def _cluster_on_this_machine() -> str | None:
    """The address of a live cluster that `ray start` launched on this machine, if any."""
    try:
        from ray._private.utils import read_ray_address  # private: the file `ray start` writes
    except ImportError:
        return None
    address = read_ray_address()
    if not address:
        return None
    host, _, port = address.rpartition(":")
    import socket

    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return address
    except (OSError, ValueError):
        return None  # a stale file left by a cluster that is gone


def _loopback_only() -> None:
    """Make a local Ray use 127.0.0.1 for every service instead of the machine's network address.

    Ray resolves 'localhost' to the reachable address unless clustering is off; this is the
    switch Ray itself uses on single-machine platforms (read at call time, and by child processes
    through the environment).
    """
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
