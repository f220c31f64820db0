"""`python -m ltray.sweep SWEEP.yaml [--resume] [--dry-run] [--storage LOCATION] [--name NAME] ...`.

Exit status: 0 done; 1 trials failed after their retries, or damaged files need a --resume;
2 a user error (bad sweep file, unusable storage, a busy experiment), with one line;
130 / 143 interrupted by Ctrl-C / SIGTERM (continue with --resume).
"""

from __future__ import annotations

import argparse
import os
import sys

from ltray.errors import ConfigError, LtrayError, missing_extra_of
from ltray.sweep.signals import StopSignals, pause_point
from ltray.storage import StorageError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ltray.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="sweep file (YAML)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--take-over", action="store_true",
                   help="with --resume: take the experiment over from a driver that is dead but whose lease "
                        "has not expired yet")
    p.add_argument("--strict-plugins", action="store_true",
                   help="with --resume: refuse to continue when a plugin's source code changed since the last run "
                        "(default: one warning line)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan; do not start Ray")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a private local Ray)")
    p.add_argument("--storage", help="where experiment folders go: a path or an s3:// / gs:// URI (overrides "
                                     "$LTRAY_STORAGE and the sweep file)")
    p.add_argument("--name", help="experiment name (overrides the sweep file)")
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    p.add_argument("--num-gpus", type=int, help="GPUs of a local Ray (default: detected)")
    p.add_argument("--dashboard", action="store_true", help="start the Ray dashboard with a local Ray")
    p.add_argument("--progress-interval", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between progress lines (default: 30)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines, only the end")
    p.add_argument("-v", "--verbose", action="store_true", help="Ray Tune's own status tables instead of "
                                                                "ltray's progress lines")
    return p.parse_args(argv)


def check_local_resources(sweep, source: str, address: str | None, num_cpus: int | None,
                          num_gpus: int | None) -> None:
    """A trial that asks a private local Ray for more than the machine has would stay pending
    forever; say so before anything starts. (A cluster's capacity is not knowable offline.)"""
    address = address or os.environ.get("RAY_ADDRESS")
    ray = sys.modules.get("ray")
    if (address and address != "local") or (ray is not None and ray.is_initialized()):
        return
    cpus = num_cpus if num_cpus is not None else os.cpu_count() or 1
    if num_gpus is not None:
        gpus = num_gpus
    else:
        from ltray.sweep.ray_compat import local_gpu_count

        gpus = local_gpu_count()
    for arch in sweep.grid.archs:
        key = arch if arch in sweep.resources else "default"
        r = sweep.resources_for(arch)
        for kind, asked, have in (("cpu", r.cpu, cpus), ("gpu", r.gpu, gpus)):
            if asked > have:
                raise ConfigError(f"{source}: resources.{key}.{kind}: a {arch} trial asks for {kind}={asked:g} but "
                                  f"the local Ray has {have} {kind.upper()}(s), so it would never start; "
                                  "lower it, or run on a cluster with --address")


def main(argv=None) -> int:
    args = parse_args(argv)
    with StopSignals() as stop:  # from here to the last line printed: a stop is one line and 130/143
        context = _Context()
        try:
            return _run(args, stop, context)
        except BaseException as e:
            stop.hold()  # the run has ended: a signal now (a second Ctrl-C) must not cut its one line
            return _ended_by(e, stop, context)


def _ended_by(e: BaseException, stop: StopSignals, context: _Context) -> int:
    """The one line and the exit status for what ended the run; a bug in ltray keeps its traceback."""
    if isinstance(e, KeyboardInterrupt):
        stop.note(e)
        where = f" {context.storage.uri}" if context.storage is not None else ""
        print(f"\ninterrupted; the experiment folder{where} is whole: continue with --resume", file=sys.stderr)
        return stop.exit_status
    if isinstance(e, StorageError):  # storage full or unwritable: every file on it is still whole
        print(f"error: {e}; the experiment folder stays readable: fix the storage (space, permissions, "
              "credentials), then continue with --resume", file=sys.stderr)
        return 2
    if isinstance(e, LtrayError):
        if context.verbose and getattr(e, "user_traceback", ""):
            print(e.user_traceback, file=sys.stderr, end="")  # raised inside a plugin: where, for its author
        print(f"error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, ModuleNotFoundError) and (line := missing_extra_of(e, "ltray sweep", "sweep")):
        print(line, file=sys.stderr)  # a base install (no sweep extra)
        return 2
    if isinstance(e, BrokenPipeError):  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if isinstance(e, OSError) or _is_ray_error(e):  # Ray's and the system's failures: say what failed, no advice
        text = " ".join(str(e).split())[:300]
        print(f"error: the run stopped: {type(e).__name__}: {text}; the experiment folder is whole: fix the "
              "cause and continue with --resume", file=sys.stderr)
        return 1
    raise e  # a bug in ltray (or SystemExit): its traceback is what a report needs


class _Context:
    storage = None  # the opened experiment folder, once there is one: the interrupted line names it
    verbose = False  # -v: an error raised inside a plugin shows its traceback


def _run(args, stop: StopSignals, context: _Context) -> int:
    from ltray.storage import open_storage
    from ltray.orchestration.dry_run import format_plan
    from ltray.orchestration.load import load_sweep
    from ltray.orchestration.location import check_data_root, experiment_location
    from ltray.orchestration.plan import build_plan
    from ltray.orchestration.plugin_check import check_plugins

    context.verbose = args.verbose
    sweep = load_sweep(args.sweep, {"name": args.name})
    check_plugins(sweep, args.sweep)
    location = experiment_location(sweep.name, sweep.storage, args.storage)
    check_data_root(sweep)
    sweep = sweep.model_copy(update={"storage": location.storage})
    plan = build_plan(sweep)
    if args.dry_run:
        print(format_plan(plan, location.experiment))
        return 0
    if args.take_over and not args.resume:
        raise ConfigError("--take-over: only with --resume (a fresh run has no driver to take over from)")
    pause_point("plan")
    check_local_resources(sweep, args.sweep, args.address, args.num_cpus, args.num_gpus)
    from ltray.sweep.trackers import check_trackers

    check_trackers(sweep.loggers, args.sweep)
    from ltray.orchestration.opening import open_experiment
    from ltray.sweep.progress import Reporter
    from ltray.sweep.run import run_sweep

    storage = context.storage = open_storage(location.experiment)
    notes = open_experiment(plan, storage, args.resume, strict_plugins=args.strict_plugins, take_over=args.take_over)
    # the reporter also keeps ltray's gauges and the lease's ETA and running trials fresh; with -v
    # Tune's tables are the console and the reporter's lines go nowhere
    reporter = Reporter(plan, storage, location, interval_s=args.progress_interval, quiet=args.quiet,
                        silent=args.verbose)
    if not args.verbose:
        reporter.notes(notes)
    else:
        print(f"experiment folder: {storage.uri} (storage from {location.source})", flush=True)
        for note in notes:
            print(note if note.startswith("warning: ") else f"note: {note}", flush=True)
    result = run_sweep(plan, storage, resume=args.resume, take_over=args.take_over, address=args.address,
                       num_cpus=args.num_cpus, num_gpus=args.num_gpus, dashboard=args.dashboard,
                       verbose=1 if args.verbose else 0, reporter=reporter, stop=stop)
    return finish(storage, result)


def _is_ray_error(e: BaseException) -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and isinstance(e, (ray.exceptions.RayError,))


def finish(storage, result) -> int:
    """Print the summary and the report path; the exit status says what is left to do."""
    from ltray.experiment.records import TrialRecord, scan_trials
    from ltray.experiment import layout
    from ltray.orchestration.summary import write_summary

    print(write_summary(storage), flush=True)
    pause_point("summary")
    print(f"\nexperiment folder: {storage.uri}  (report: ltray analysis {storage.uri})")
    failed = sorted(t for t, names in scan_trials(storage).items()
                    if layout.TRIAL_ERROR in names and layout.TRIAL_DONE not in names)
    status = 0
    for problem in result.problems:
        print(f"error: {problem}", file=sys.stderr)
        status = 1
    if failed:
        first = TrialRecord(storage, failed[0]).error() or ""
        print(f"error: {len(failed)} trial(s) failed after their retries ({', '.join(failed[:5])}"
              f"{', ...' if len(failed) > 5 else ''}); {failed[0]}: {first}; fix the cause and continue with "
              "--resume (python -m ltray.status shows every failure)", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
