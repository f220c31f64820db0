"""A sweep's progress from its experiment folder alone (plan.json, the trials' own files, the
consensus masks and the driver's lease): what `ltray.status` shows. Finished rounds are counted
from each trial's results, not from the rounds table, so an interrupted sweep reads right.
Reads only what it needs: one listing of trials/ and consensus/, and the results of unfinished
trials. No Ray: safe to run anywhere the folder is reachable, while the sweep writes to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment.folder import check_readable
from ltray.experiment.lease import FAILED, FINISHED, INTERRUPTED, RUNNING, LeaseInfo, read_lease
from ltray.experiment.plan_file import PlanFile, read_plan_file
from ltray.experiment.records import TrialRecord, scan_trials
from ltray.experiment.schemas import ROUNDS
from ltray.storage import Storage
from ltray.experiment.tables import device_counts, read_table


@dataclass
class Slice:
    """Progress of one (arch, technique) slice of the trajectories."""

    arch: str
    technique: str
    done: int = 0
    total: int = 0
    running: int = 0
    interrupted: int = 0  # started, not finished, not running now
    failed: int = 0
    rounds_done: int = 0
    rounds_total: int = 0


@dataclass
class Progress:
    state: str  # running, finished, interrupted, failed, or "not started"
    lease: LeaseInfo | None
    slices: list[Slice]
    groups_complete: int
    groups_total: int
    followups: dict[str, int]  # done, running, interrupted, failed, pending, total
    failures: list[tuple[str, str]] = field(default_factory=list)  # (trial_id, error line)
    devices: dict[str, int] = field(default_factory=dict)  # device -> rounds trained on it
    notes: list[str] = field(default_factory=list)

    @property
    def eta_s(self) -> float | None:
        if self.state != RUNNING or self.lease is None:
            return None
        return self.lease.progress.get("eta_s")


def sweep_state(lease: LeaseInfo | None) -> str:
    if lease is None:
        return "not started"
    if lease.state == RUNNING:
        return RUNNING if lease.alive() else INTERRUPTED
    return lease.state if lease.state in (FINISHED, INTERRUPTED, FAILED) else INTERRUPTED


def experiment_progress(storage: Storage) -> Progress:
    check_readable(storage)
    plan = read_plan_file(storage)
    trials = scan_trials(storage)
    lease = read_lease(storage)
    state = sweep_state(lease)
    running = set(lease.progress.get("running", [])) if lease is not None and state == RUNNING else set()
    notes: list[str] = []

    def status_of(tid: str) -> str:
        names = trials.get(tid, set())
        if layout.TRIAL_DONE in names:
            return "done"
        if tid in running:
            return "running"
        if layout.TRIAL_ERROR in names:
            return "failed"
        return "interrupted" if names else "pending"

    slices: dict[tuple[str, str], Slice] = {}
    for t in plan.trajectories:
        s = slices.setdefault((t.arch, t.technique), Slice(t.arch, t.technique))
        s.total += 1
        s.rounds_total += t.rounds
        status = status_of(t.trial_id)
        if status == "done":
            s.done += 1
            s.rounds_done += t.rounds
            continue
        if status != "pending":
            s.rounds_done += _finished_rounds(storage, t.trial_id, t.rounds, notes)
        if status in ("running", "interrupted", "failed"):
            setattr(s, status, getattr(s, status) + 1)
    trajectory_ids = {t.trial_id for t in plan.trajectories}
    followups = {k: 0 for k in ("done", "running", "interrupted", "failed")}
    for tid in set(trials) | (running - trajectory_ids):
        if tid not in trajectory_ids:
            followups[status_of(tid)] = followups.get(status_of(tid), 0) + 1
    planned = sum(g.n_followups for g in plan.groups) or plan.n_followups_max
    started = sum(followups.values())
    followups["total"] = max(planned, started)
    followups["pending"] = followups["total"] - started
    failures = sorted((tid, TrialRecord(storage, tid).error() or "") for tid in trials if status_of(tid) == "failed")
    return Progress(state=state, lease=lease, slices=sorted(slices.values(), key=lambda x: (x.arch, x.technique)),
                    groups_complete=_groups_complete(storage, plan), groups_total=len(plan.groups),
                    followups=followups, failures=failures, devices=_devices(storage, notes), notes=notes)


def _finished_rounds(storage: Storage, trial_id: str, rounds: int, notes: list[str]) -> int:
    try:
        rows = TrialRecord(storage, trial_id).rows()
    except ExperimentError as e:
        notes.append(f"{e} (python -m ltray.status --verify lists every damaged file)")
        return 0
    return len({r["round"] for r in rows if 0 <= r["round"] < rounds})


def _groups_complete(storage: Storage, plan: PlanFile) -> int:
    written = set(storage.walk(layout.CONSENSUS_DIR))
    prefix = len(layout.CONSENSUS_DIR) + 1
    return sum(all(layout.consensus_mask(g.group_id, k)[prefix:] in written for k in g.thresholds)
               for g in plan.groups if g.thresholds)


def _devices(storage: Storage, notes: list[str]) -> dict[str, int]:
    try:
        table = read_table(storage, ROUNDS)
    except ExperimentError as e:
        notes.append(f"{e}; devices not shown")
        return {}
    if table is None or table.empty:
        return {}
    return device_counts(table["device"])
