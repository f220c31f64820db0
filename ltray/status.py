"""`python -m ltray.status EXPERIMENT [--watch [SECONDS]] [--verify]`: a sweep's state (running,
finished, interrupted), its progress and ETA, and its failed trials, read from the experiment
folder alone (a path or an s3:// / gs:// URI; see ltray.experiment.progress). No Ray.

`--verify` checks every file a resume relies on (masks and resume states by checksum, per-trial
results, the journal, the tables) and lists the damage without changing anything: exit 0 when
the folder is whole, 1 when something is damaged (a `--resume` repairs what it lists as repairable).
It also names the temporary files of writers killed mid-write (harmless; a `--resume` removes them).
"""

from __future__ import annotations

import argparse
import sys
import time

from ltray.errors import LtrayError
from ltray.formatting import fmt_duration
from ltray.experiment.progress import Progress, Slice, experiment_progress
from ltray.storage import open_storage

STATE_TEXT = {
    "running": "running",
    "finished": "finished",
    "interrupted": "interrupted (the driver stopped or died): continue with --resume",
    "failed": "stopped by an error: see the driver's output, fix it and continue with --resume",
    "not started": "not started (no driver has run it)",
}


def format_progress(where: str, p: Progress) -> str:
    """A header with the state, a table per (arch, technique), then groups, follow-ups, failures."""
    head = f"experiment {where}: {STATE_TEXT.get(p.state, p.state)}"
    if p.lease is not None and p.state == "running":
        head += f" (driver {p.lease.who()}, heartbeat {p.lease.age_s:.0f} s ago), ETA {fmt_duration(p.eta_s)}"
    total = Slice("all", "", *(sum(getattr(s, f) for s in p.slices) for f in
                               ("done", "total", "running", "interrupted", "failed", "rounds_done", "rounds_total")))
    table = [("arch", "technique", "trajectories", "running", "interrupted", "failed", "rounds")]
    for s in [*p.slices, total]:
        table.append((s.arch, s.technique, f"{s.done}/{s.total}", str(s.running), str(s.interrupted),
                      str(s.failed), f"{s.rounds_done}/{s.rounds_total}"))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [head] + ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
    lines.append(f"consensus groups complete: {p.groups_complete}/{p.groups_total}")
    f = p.followups
    lines.append(f"follow-ups: {f['done']} done, {f['running']} running, {f['interrupted']} interrupted, "
                 f"{f['failed']} failed, {f['pending']} pending (of {f['total']})")
    if p.devices:
        lines.append("devices: " + ", ".join(f"{d} ({n} rounds)" for d, n in p.devices.items()))
    lines.append(f"failed trials: {len(p.failures)}")
    lines += [f"  {trial_id}" + (f": {message}" if message else "") for trial_id, message in p.failures]
    lines += [f"note: {n}" for n in p.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltray.status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", metavar="EXPERIMENT", help="the experiment folder (path or URI)")
    parser.add_argument("--watch", nargs="?", type=float, const=5.0, metavar="SECONDS",
                        help="refresh every SECONDS (default 5) until the sweep stops; Ctrl-C to leave")
    parser.add_argument("--verify", action="store_true",
                        help="check every file by checksum and list damage; change nothing")
    args = parser.parse_args(argv)
    if args.watch is not None and not 1 <= args.watch <= 3600:
        parser.error("--watch: SECONDS must be between 1 and 3600")
    try:
        storage = open_storage(args.experiment)
        if args.verify:
            from ltray.experiment.verify import format_damage, unfinished_writes, verify_experiment

            damage = verify_experiment(storage)
            print(format_damage(storage.uri, damage, unfinished_writes(storage)))
            return 1 if damage else 0
        if args.watch is None:
            print(format_progress(storage.uri, experiment_progress(storage)))
            return 0
        return watch(storage, args.watch)
    except LtrayError as exc:
        print(f"ltray.status: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def watch(storage, interval_s: float) -> int:
    """Redraw the status every interval (clearing a terminal) until the sweep is not running."""
    tty = sys.stdout.isatty()
    while True:
        progress = experiment_progress(storage)
        if tty:
            sys.stdout.write("\x1b[H\x1b[2J")
        print(format_progress(storage.uri, progress) + ("" if tty else "\n"), flush=True)
        if progress.state != "running":
            return 0
        time.sleep(interval_s)


if __name__ == "__main__":
    sys.exit(main())
