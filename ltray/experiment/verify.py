"""Damage in an experiment folder: every file a resume relies on, checked (masks and resume
states by checksum, per-trial results, the journal, the tables, the lease), each problem with the
repair a `--resume` applies. `ltray.status --verify` lists them; `ltray.orchestration.repair` applies them.

Repairs recompute, never guess: a damaged or missing trajectory mask retrains the trajectory from
the round that produced it (bit-identical on CPU); a follow-up with damaged files is trained
again; consensus masks, tables and the journal's lost records are rebuilt from their sources.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ltray.errors import ExperimentError, MaskFileError
from ltray.experiment import layout
from ltray.experiment.folder import check_readable
from ltray.experiment.journal import Journal
from ltray.experiment.lease import read_lease
from ltray.experiment.plan_file import read_plan_file
from ltray.experiment.records import TrialRecord, read_mask, scan_trials
from ltray.experiment.schemas import SCHEMAS
from ltray.storage import Storage, StorageError
from ltray.experiment.tables import read_table

RETRAIN, FORGET, REBUILT = "retrain", "forget", "rebuilt"


@dataclass(frozen=True)
class Damage:
    path: str  # relative to the experiment folder
    problem: str
    action: str  # RETRAIN (from `round`), FORGET (train the trial again), REBUILT (recomputed by the run)
    trial: str = ""
    round: int = 0

    def describe(self) -> str:
        if self.action == RETRAIN:
            what = f"--resume retrains {self.trial} from round {self.round}"
        elif self.action == FORGET:
            what = f"--resume trains {self.trial} again"
        else:
            what = "--resume rebuilds it"
        return f"{self.path}: {self.problem}; {what}"


def _state_ok(data: bytes) -> bool:
    """The resume state's own checksum (ltray.training.state: body + SHA-256 of the body)."""
    return len(data) > 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]


def verify_experiment(storage: Storage) -> list[Damage]:
    """Every damaged file; ExperimentError when the folder cannot be resumed at all (its marker or
    plan.json is unusable)."""
    check_readable(storage)
    plan = read_plan_file(storage)
    trials = scan_trials(storage)
    damage: list[Damage] = []
    trajectories = {t.trial_id: t for t in plan.trajectories}
    for tid, t in trajectories.items():
        if tid in trials:
            damage += _check_trajectory(storage, tid, t.rounds, trials[tid])
    for tid, names in trials.items():
        if tid not in trajectories:
            damage += _check_followup(storage, tid, names)
    for rel in storage.walk(layout.CONSENSUS_DIR):
        path = f"{layout.CONSENSUS_DIR}/{rel}"
        try:
            read_mask(storage, path)
        except MaskFileError as e:
            damage.append(Damage(path, _reason(e), REBUILT))
    for problem in Journal(storage, layout.JOURNAL).replay().problems:
        path, _, what = problem.partition(": ")
        damage.append(Damage(_relative(storage, path), f"{what} (its mask is sent again)", REBUILT))
    for schema in SCHEMAS.values():
        try:
            read_table(storage, schema)
        except ExperimentError as e:
            damage.append(Damage(schema.csv, _reason(e), REBUILT))
    if storage.exists(layout.LEASE) and read_lease(storage) is None:
        damage.append(Damage(layout.LEASE, "unreadable lease", REBUILT))
    return damage


def _check_trajectory(storage: Storage, tid: str, rounds: int, names: set[str]) -> list[Damage]:
    record = TrialRecord(storage, tid)
    results = layout.trial_file(tid, layout.TRIAL_RESULTS)
    try:
        rows = record.rows()
    except ExperimentError as e:
        return [Damage(results, _reason(e), FORGET, tid)]
    have = {r["round"] for r in rows}
    done = layout.TRIAL_DONE in names
    if done and have != set(range(rounds)):
        first = min(set(range(rounds)) - have, default=0)
        return [Damage(results, f"finished, but has no row of round {first}", RETRAIN, tid, max(0, first - 1))]
    for row in sorted(rows, key=lambda r: r["round"]):
        try:
            read_mask(storage, row["mask_path"])
        except MaskFileError as e:
            return [Damage(row["mask_path"], _reason(e), RETRAIN, tid, max(0, row["round"] - 1))]
    if not done and layout.TRIAL_STATE in names:
        state = layout.trial_file(tid, layout.TRIAL_STATE)
        try:
            ok = _state_ok(storage.read_bytes(state))
        except StorageError:
            ok = False
        if not ok:
            last = max(have, default=0)
            return [Damage(state, "resume state fails its checksum", RETRAIN, tid, last)]
    return []


def _check_followup(storage: Storage, tid: str, names: set[str]) -> list[Damage]:
    results = layout.trial_file(tid, layout.TRIAL_RESULTS)
    try:
        rows = TrialRecord(storage, tid).rows()
    except ExperimentError as e:
        return [Damage(results, _reason(e), FORGET, tid)]
    if layout.TRIAL_DONE in names and not rows:
        return [Damage(results, "finished, but has no result row", FORGET, tid)]
    for row in rows:
        try:
            read_mask(storage, row["mask_path"])
        except MaskFileError as e:
            return [Damage(row["mask_path"], _reason(e), FORGET, tid)]
    return []


def _reason(error: Exception) -> str:
    """An error's message without the file name it starts with (Damage names the file)."""
    text = str(error)
    head, sep, rest = text.partition(": ")
    return rest if sep and ("/" in head or head.endswith((".ltmask", ".json", ".csv", ".parquet"))) else text


def _relative(storage: Storage, where: str) -> str:
    prefix = storage.uri.rstrip("/") + "/"
    return where[len(prefix):] if where.startswith(prefix) else where


def unfinished_writes(storage: Storage) -> list[str]:
    """Temporary files that writers killed mid-write left: harmless (never read), removed by a
    resume. None while a driver runs the experiment, whose writes in progress look the same."""
    lease = read_lease(storage)
    return [] if lease is not None and lease.alive() else storage.unfinished_writes()


def format_damage(where: str, damage: list[Damage], leftovers: Sequence[str] = ()) -> str:
    lines = [f"experiment {where}: " + (f"{len(damage)} damaged file(s)" if damage else "every file checked is whole")]
    lines += [f"  {d.describe()}" for d in damage]
    if leftovers:
        lines.append(f"  {len(leftovers)} unfinished write(s) that stopped writers left, never read (--resume "
                     f"removes them): {', '.join(leftovers)}")
    return "\n".join(lines)
