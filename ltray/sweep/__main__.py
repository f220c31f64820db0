"""`python -m ltray.sweep SWEEP.yaml [--resume] [--dry-run] [--address ADDR] [--storage PATH] [--name NAME]`."""

from __future__ import annotations

import argparse
import os
import sys

from ltray.errors import ConfigError, LtrayError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ltray.sweep", description=__doc__)
    p.add_argument("sweep", help="sweep file (YAML)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--dry-run", action="store_true", help="validate and print the plan; do not start Ray")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a private local Ray)")
    p.add_argument("--storage", help="parent folder of the experiment folder (overrides the sweep file)")
    p.add_argument("--name", help="experiment name (overrides the sweep file)")
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    p.add_argument("--num-gpus", type=int, help="GPUs of a local Ray (default: detected)")
    p.add_argument("--dashboard", action="store_true", help="start the Ray dashboard with a local Ray")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-trial progress table")
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
        import torch

        gpus = torch.cuda.device_count()
    for arch in sweep.grid.archs:
        key = arch if arch in sweep.resources else "default"
        r = sweep.resources_for(arch)
        for kind, asked, have in (("cpu", r.cpu, cpus), ("gpu", r.gpu, gpus)):
            if asked > have:
                raise ConfigError(f"{source}: resources.{key}.{kind}: a {arch} trial asks for {kind}={asked:g} but "
                                  f"the local Ray has {have} {kind.upper()}(s), so it would never start; "
                                  "lower it, or run on a cluster with --address")


def failed_trials(exp) -> list[str]:
    """Trials whose last attempt failed (an error marker and no completion marker)."""
    return sorted(p.parent.name for p in exp.glob("trials/*/error.json") if not (p.parent / "done.json").exists())


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from ltray.sweep.load import load_sweep
        from ltray.sweep.plan import build_plan
        from ltray.sweep.report import format_plan

        sweep = load_sweep(args.sweep, {"storage": args.storage, "name": args.name})
        plan = build_plan(sweep)
        if args.dry_run:
            print(format_plan(plan))
            return 0
        check_local_resources(sweep, args.sweep, args.address, args.num_cpus, args.num_gpus)
        from ltray.sweep.trackers import check_trackers

        check_trackers(sweep.loggers, args.sweep)
        from ltray.sweep.run import run_sweep
        from ltray.sweep.summary import write_summary

        exp = run_sweep(plan, resume=args.resume, address=args.address, num_cpus=args.num_cpus,
                        num_gpus=args.num_gpus, dashboard=args.dashboard, verbose=0 if args.quiet else 1)
        print(f"\nexperiment folder: {exp}")
        print(write_summary(exp))
        failed = failed_trials(exp)
        if failed:
            print(f"error: {len(failed)} trial(s) failed after their retries ({', '.join(failed[:5])}"
                  f"{', ...' if len(failed) > 5 else ''}); see {exp}/trials/<trial_id>/error.json, fix the cause "
                  "and continue with --resume", file=sys.stderr)
            return 1
        return 0
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # storage full or unwritable mid-run: every file on disk is still whole
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}; the experiment folder stays readable: free space or fix "
              "permissions, then continue with --resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
