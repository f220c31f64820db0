"""`python -m ltray.status EXPERIMENT`: a sweep's progress read from its experiment folder alone
(plan.json, rounds.csv, consensus.csv, trials/<id>/done.json|error.json; see
docs/experiment-folder.md). No Ray: safe to run anywhere the folder is mounted, while the
sweep is still writing to it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ltray.errors import ExperimentError, LtrayError


class _PlanPart(BaseModel):
    # plan.json is written by the sweep runner; fields this reader does not need are ignored
    model_config = ConfigDict(extra="ignore", frozen=True)


class PlanTrajectory(_PlanPart):
    trial_id: str
    task: str
    arch: str
    technique: str
    seed: int
    rounds: int  # trained rounds including the dense round 0


class PlanGroup(_PlanPart):
    group: str
    sources: list[str] = []
    source_round: int = 0
    thresholds: list[int] = []
    n_followups: int = 0


class Plan(_PlanPart):
    trajectories: list[PlanTrajectory]
    groups: list[PlanGroup] = []
    n_followups_max: int = 0


@dataclass
class Row:
    """Progress of one (arch, technique) slice of the trajectories."""

    arch: str
    technique: str
    done: int = 0
    total: int = 0
    started: int = 0  # has a trials/<id>/ folder but no marker: running, or interrupted
    failed: int = 0
    rounds_done: int = 0
    rounds_total: int = 0


@dataclass
class Progress:
    rows: list[Row]
    groups_complete: int
    groups_total: int
    followups_done: int
    followups_started: int
    followups_failed: int
    followups_total: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, message)

    @property
    def followups_pending(self) -> int:
        started = self.followups_done + self.followups_started + self.followups_failed
        return max(self.followups_total - started, 0)


def read_plan(root: Path) -> Plan:
    path = root / "plan.json"
    try:
        return Plan.model_validate_json(path.read_text())
    except OSError as exc:
        raise ExperimentError(f"{path}: cannot read: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ExperimentError(f"{path}: {where}: {first['msg']}") from None


def read_csv_rows(path: Path) -> list[dict]:
    """Rows of a CSV that may be missing or still being written (a torn last line is skipped)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    return [row for row in rows if None not in row and None not in row.values()]


def as_int(text) -> int | None:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return None


def finished_rounds(rows: list[dict]) -> dict[str, set[int]]:
    """trial_id -> rounds with a row in rounds.csv."""
    out = defaultdict(set)
    for row in rows:
        r = as_int(row.get("round"))
        if row.get("trial_id") and r is not None:
            out[row["trial_id"]].add(r)
    return out


def consensus_thresholds(rows: list[dict]) -> dict[str, set[int]]:
    """group -> thresholds written, leave-one-out masks not counted."""
    out = defaultdict(set)
    for row in rows:
        k = as_int(row.get("threshold"))
        if row.get("group") and k is not None and not row.get("leave_out"):
            out[row["group"]].add(k)
    return out


def trial_markers(root: Path) -> tuple[set[str], dict[str, str], set[str]]:
    """(done ids, failed id -> message, ids with a folder). done.json wins over error.json:
    a trial that failed and then succeeded on retry is done."""
    done, failed, seen = set(), {}, set()
    trials = root / "trials"
    for folder in sorted(trials.iterdir()) if trials.is_dir() else []:
        if not folder.is_dir():
            continue
        seen.add(folder.name)
        if (folder / "done.json").exists():
            done.add(folder.name)
        elif (folder / "error.json").exists():
            failed[folder.name] = error_message(folder / "error.json")
    return done, failed, seen


def error_message(path: Path) -> str:
    """First line of error.json's message, if it has one."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return ""
    text = next((data[k] for k in ("message", "error") if isinstance(data, dict)
                 and isinstance(data.get(k), str)), "")
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:117] + "..." if len(line) > 120 else line


def progress(root: str | Path) -> Progress:
    """Progress of the experiment at `root`; ExperimentError when it is not one."""
    root = Path(root)
    if not root.is_dir():
        raise ExperimentError(f"{root}: no such experiment folder")
    if not (root / "plan.json").is_file():
        raise ExperimentError(f"{root}: not an ltray experiment folder (no plan.json)")
    plan = read_plan(root)
    round_rows = read_csv_rows(root / "rounds.csv")
    rounds = finished_rounds(round_rows)
    done, failed, seen = trial_markers(root)

    rows: dict[tuple[str, str], Row] = {}
    for t in plan.trajectories:
        row = rows.setdefault((t.arch, t.technique), Row(t.arch, t.technique))
        row.total += 1
        row.rounds_total += t.rounds
        if t.trial_id in done:
            row.done += 1
            row.rounds_done += t.rounds
            continue
        row.rounds_done += len({r for r in rounds.get(t.trial_id, ()) if 0 <= r < t.rounds})
        if t.trial_id in failed:
            row.failed += 1
        elif t.trial_id in seen:
            row.started += 1

    trajectory_ids = {t.trial_id for t in plan.trajectories}
    followup_rows = {r["trial_id"] for r in round_rows
                     if r.get("trial_id") and r.get("kind") not in ("", "bespoke")}
    followups = (seen | followup_rows) - trajectory_ids
    f_done = {i for i in followups if i in done or (i in followup_rows and i not in failed)}
    f_failed = {i for i in followups if i in failed} - f_done
    written = consensus_thresholds(read_csv_rows(root / "consensus.csv"))
    complete = sum(1 for g in plan.groups if g.group in written
                   and set(g.thresholds) <= written[g.group])
    planned = sum(g.n_followups for g in plan.groups) or plan.n_followups_max
    return Progress(
        rows=sorted(rows.values(), key=lambda r: (r.arch, r.technique)),
        groups_complete=complete, groups_total=len(plan.groups),
        followups_done=len(f_done), followups_started=len(followups - f_done - f_failed),
        followups_failed=len(f_failed), followups_total=max(planned, len(followups)),
        failures=sorted(failed.items()))


def format_progress(root: str | Path, p: Progress) -> str:
    """A compact table: one line per (arch, technique), a total, then groups and follow-ups."""
    total = Row("all", "", sum(r.done for r in p.rows), sum(r.total for r in p.rows),
                sum(r.started for r in p.rows), sum(r.failed for r in p.rows),
                sum(r.rounds_done for r in p.rows), sum(r.rounds_total for r in p.rows))
    table = [("arch", "technique", "trajectories", "started", "failed", "rounds")]
    for r in [*p.rows, total]:
        table.append((r.arch, r.technique, f"{r.done}/{r.total}", str(r.started), str(r.failed),
                      f"{r.rounds_done}/{r.rounds_total}"))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = [f"experiment {root}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
    lines.append(f"consensus groups complete: {p.groups_complete}/{p.groups_total}")
    lines.append(f"follow-ups: {p.followups_done} done, {p.followups_started} started, "
                 f"{p.followups_failed} failed, {p.followups_pending} pending "
                 f"(of {p.followups_total})")
    lines.append(f"failed trials: {len(p.failures)}")
    lines += [f"  {trial_id}" + (f": {message}" if message else "")
              for trial_id, message in p.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltray.status",
                                     description="Progress of a sweep, from its experiment folder.")
    parser.add_argument("experiment", metavar="EXPERIMENT", help="the experiment folder")
    args = parser.parse_args(argv)
    try:
        print(format_progress(args.experiment, progress(args.experiment)))
    except LtrayError as exc:
        print(f"ltray.status: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
