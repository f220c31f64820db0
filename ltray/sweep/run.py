"""The driver: hold the experiment's lease, start (or join) Ray, create the consensus actor,
resynchronise from the trial files, and run one Tune experiment to completion. Whatever ends the
run (done, failed, interrupted), the consensus actor is killed (its journal keeps its state),
the lease records how it ended, and a Ray this process started is shut down."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment.ids import digest
from ltray.experiment.folder import record_devices
from ltray.experiment.labels import TrialKind
from ltray.experiment.lease import FAILED, FINISHED, INTERRUPTED, Lease
from ltray.experiment.records import all_rows, scan_trials
from ltray.storage import ObjectStorage, Storage
from ltray.experiment.tables import RoundsTable, device_counts
from ltray.sweep.actor import NAMESPACE, start_actor
from ltray.sweep.callback import ResultsCallback
from ltray.orchestration.plan import Plan
from ltray.sweep.ray_compat import (cluster_on_this_machine, driver_signal_handlers, local_ray_env,
                                    local_start_timed_out, restore_cluster_mode, tune_settings)
from ltray.sweep.searcher import SweepSearcher
from ltray.sweep.signals import StopSignals, Stopped, pause_point
from ltray.orchestration.summary import write_summary
from ltray.sweep.trackers import tracker_callbacks
from ltray.sweep.trainable import run_trial
from ltray.sweep.tune_io import RunSettings, bundle, ltray_trial_id
from ltray.sweep.watchdog import Watchdog


@dataclass
class RunResult:
    problems: list[str] = field(default_factory=list)  # the consensus actor's damaged masks and records


def run_sweep(plan: Plan, storage: Storage, *, resume: bool = False, take_over: bool = False,
              address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
              dashboard: bool = False, verbose: int = 1, reporter=None, stop: StopSignals | None = None) -> RunResult:
    """Run (or resume) the whole experiment in the opened folder `storage`. SIGTERM/SIGINT stop it
    through `stop` (the caller's, which records the signal for the exit status; else its own)."""
    lease = Lease(storage)
    lease.acquire(take_over=take_over)
    main_thread = threading.main_thread().ident
    lease.start_heartbeat(on_lost=lambda: signal.pthread_kill(main_thread, signal.SIGINT))
    state, actor, session = FAILED, None, None
    stop = stop or StopSignals()
    stop.__enter__()
    try:
        session = _connect(address, num_cpus, num_gpus, dashboard, runtime_env(plan.sweep))
        stop.install()  # ray.init installs its own SIGTERM handler: sys.exit(15)
        lease.info.ray_address = ray.get_runtime_context().gcs_address or ""
        actor = start_actor(storage.uri, plan.sweep)
        table = RoundsTable(storage)
        done = _resync(storage, actor, table)
        sweep = plan.sweep
        settings = RunSettings(experiment_uri=storage.uri, experiment=sweep.name, download=sweep.download,
                               data_root=str(sweep.data_root.expanduser().resolve()))
        searcher = SweepSearcher(settings, plan.trajectories, done)
        if reporter is not None:
            reporter.start(done, lease=lease, searcher=searcher)
        _fit(plan, storage, searcher, table, verbose, reporter)
        status = ray.get(actor.status.remote())
        if reporter is not None:
            reporter.finish(status)
        ray.get(actor.flush.remote())
        table.flush(force=True)
        record_devices(storage, device_counts(row.get("device") for row in table.rows.values()))
        write_summary(storage)
        state = FINISHED
        return RunResult(problems=status.problems)
    except KeyboardInterrupt:
        state = INTERRUPTED
        raise
    finally:
        try:
            if reporter is not None:
                reporter.close()
            if actor is not None:
                _kill(actor)
            lease.release(state)
            if session is not None:
                session.close()
        finally:
            stop.__exit__(None, None, None)


def _fit(plan: Plan, storage: Storage, searcher: SweepSearcher, table: RoundsTable, verbose: int, reporter) -> None:
    sweep = plan.sweep
    run_name = _run_name(storage)
    on_event = reporter.event if reporter is not None else None
    tuner = tune.Tuner(
        tune.with_resources(run_trial, _resources),
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=sweep.max_concurrent),
                                    num_samples=-1, reuse_actors=True, trial_name_creator=trial_name,
                                    trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(
            name=run_name, **_tune_storage(storage),
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
            callbacks=[ResultsCallback(storage, table, on_event=on_event),
                       *tracker_callbacks(sweep.loggers, storage, sweep.name, run_name)],
            verbose=verbose,
        ),
    )
    switches = tune_settings(sweep.max_concurrent, legacy_output=reporter is not None and verbose == 0,
                             tracker_loggers_only=True)
    with switches, _quiet_tune(reporter is not None):
        tuner.fit()


@contextlib.contextmanager
def _quiet_tune(quiet: bool):
    """With ltray's reporter, Tune's own log lines (a failed trial's traceback, 'Trials did not
    complete') stay out of the console: the reporter says each failure in one line, and
    trials/<id>/error.json and Tune's files keep the traceback. -v brings them back."""
    loggers = [logging.getLogger(name) for name in ("ray.tune", "ray.train", "ray.air")]
    levels = [log.level for log in loggers]
    if quiet:
        for log in loggers:
            log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def _tune_storage(storage: Storage) -> dict:
    """Tune's own files go to <experiment>/tune on the same storage (a bucket included)."""
    if isinstance(storage, ObjectStorage):
        fs, base = storage.tune_filesystem()
        return {"storage_path": f"{base}/{layout.TUNE}", "storage_filesystem": fs}
    return {"storage_path": str(storage.local_path(layout.TUNE))}


def trial_name(trial) -> str:
    """Tune's name and folder for a trial: ltray's stable id (Tune's default spells out the config)."""
    return ltray_trial_id(trial.config) or trial.trial_id


def _resources(config: dict):
    return tune.PlacementGroupFactory([bundle(config)])


def _resync(storage: Storage, actor, table: RoundsTable) -> set[str]:
    """Rebuild the tables and re-send every mask from the trials' own files (idempotent);
    return the finished trials."""
    trials = scan_trials(storage)
    rows, _ = all_rows(storage, trials)  # damaged results were repaired (or reported) when opening
    for row in rows:
        table.add(row)
    table.flush(force=True)
    masks = [(r["trial_id"], int(r["round"]), r["mask_path"]) for r in rows if r["kind"] == TrialKind.BESPOKE]
    ray.get(actor.add_masks.remote(masks))
    return {t for t, names in trials.items() if layout.TRIAL_DONE in names}


def _run_name(storage: Storage) -> str:
    runs = layout.tune_runs(storage.list_dir(layout.TUNE))
    return layout.tune_run(len(runs) + 1, digest(storage.uri)[:6]).rsplit("/", 1)[-1]


def _kill(actor) -> None:
    try:
        ray.kill(actor)  # detached: it would otherwise outlive the sweep
    except Exception:  # noqa: BLE001 - already gone, or Ray is shutting down
        pass


@dataclass
class RaySession:
    """The Ray a run uses: one already initialised in this process, a cluster it joined, or a
    private local Ray it started. `close` undoes exactly what connecting did."""

    joined: bool = False
    temp_dir: str | None = None  # a private local Ray's: stopped and removed by close()
    watchdog: Watchdog | None = None  # ends the private Ray's processes when the driver ends, however
    settings: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        if self.joined or self.temp_dir is not None:
            ray.shutdown()
        self.settings.close()
        if self.temp_dir is not None:
            restore_cluster_mode()
        if self.watchdog is not None:  # it ends what Ray left of the session and removes the temp dir
            self.watchdog.close()


def runtime_env(sweep) -> dict | None:
    """The sweep's py_modules for every worker (Ray uploads local folders and files)."""
    from ltray.plugins import import_from

    return {"py_modules": import_from(sweep.py_modules)} if sweep.py_modules else None


# Ray waits a fixed 30 s for a new local node to register; on a machine busy with other work that
# can pass while nothing is wrong, and a second start from scratch then usually succeeds
LOCAL_RAY_ATTEMPTS = 2


def _connect(address: str | None, num_cpus, num_gpus, dashboard: bool, env: dict | None = None) -> RaySession:
    """Join a cluster, else start a private local Ray (or use the Ray this process already has).

    The cluster is ADDR, else $RAY_ADDRESS (set by `ray job submit`), else one started with
    `ray start` on this machine. ADDR 'local' always starts a private local Ray: its own temp dir,
    services on 127.0.0.1 only, and no dashboard unless asked.
    """
    if ray.is_initialized():
        return RaySession()
    address = address or os.environ.get("RAY_ADDRESS") or cluster_on_this_machine()
    if address and address != "local":
        from ltray.sweep.connect import join_cluster

        session = RaySession(joined=True)
        with _starting(session):
            join_cluster(address, NAMESPACE, env)
        return session
    session = RaySession()
    session.settings.enter_context(local_ray_env())
    with _starting(session):
        for attempt in range(1, LOCAL_RAY_ATTEMPTS + 1):
            session.temp_dir = tempfile.mkdtemp(prefix="ltray-ray-", dir=os.environ.get("LTRAY_RAY_TMPDIR", "/tmp"))
            session.watchdog = Watchdog(session.temp_dir)  # before Ray starts: a driver killed in ray.init leaves nothing
            try:
                ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                         dashboard_host="127.0.0.1", namespace=NAMESPACE, _temp_dir=session.temp_dir,
                         runtime_env=env, configure_logging=True, logging_level="WARNING", log_to_driver=False)
                break
            except Exception as e:  # noqa: BLE001 - Ray raises many types for a failed start
                if attempt < LOCAL_RAY_ATTEMPTS and local_start_timed_out(e):
                    session.watchdog.close()  # what had started of this attempt goes, with its temp dir
                    continue
                raise ExperimentError(f"could not start a local Ray in {session.temp_dir}: {e}; the experiment "
                                      "folder exists now, so retry with --resume") from None
        pause_point("ray_started")  # tests: Ray's own SIGTERM handler is in place, as during ray.init
    return session


@contextlib.contextmanager
def _starting(session: RaySession) -> Iterator[None]:
    """Ray starting or joining: on any failure or stop, what had started goes. ray.init replaces
    SIGTERM's handler with its own (sys.exit(15)), and ltray's comes back only after it: a
    SIGTERM in between stops the run like any other."""
    try:
        with driver_signal_handlers():
            yield
    except BaseException as e:
        session.close()
        if isinstance(e, SystemExit) and e.code == signal.SIGTERM:
            raise Stopped(signal.SIGTERM) from None
        raise
