"""Before a resume: repair what `ltray.experiment.verify` found, so that nothing damaged is
silently used, dropped or duplicated. Each repair is one line for the user.

A trajectory retrained from round r keeps its rows before r and gets a resume state for round r
rebuilt from the round-r mask on disk (and the rewind weights of its last state where its rewind
needs them); round 0, or a rewind that cannot be rebuilt, starts it over.
"""

from __future__ import annotations

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment.records import TrialRecord, read_mask
from ltray.storage import Storage
from ltray.experiment.verify import FORGET, REBUILT, RETRAIN, Damage
from ltray.orchestration.plan import Plan


def repair(storage: Storage, plan: Plan, damage: list[Damage]) -> list[str]:
    notes = []
    for d in damage:
        if d.action == FORGET:
            TrialRecord(storage, d.trial).forget()
        elif d.action == RETRAIN:
            spec = plan.by_id.get(d.trial)
            start = _rewind(storage, spec.config, TrialRecord(storage, d.trial), d.round) if spec else 0
            d = Damage(d.path, d.problem, d.action, d.trial, start)
        elif d.path.startswith(layout.CONSENSUS_DIR) or d.path.endswith((layout.CSV, layout.PARQUET)):
            storage.delete(d.path)  # rewritten from the votes and the trials' files
            if d.path.endswith(layout.CSV):
                storage.delete(d.path[: -len(layout.CSV)] + layout.PARQUET)
        notes.append(f"repaired: {d.describe()}" if d.action != REBUILT else f"damaged: {d.describe()}")
    return notes


def remove_unfinished_writes(storage: Storage) -> list[str]:
    """Remove the temporary files of writers killed mid-write: nothing reads them, and no writer of
    the experiment is alive while a resume opens it."""
    leftovers = storage.unfinished_writes()
    for rel in leftovers:
        storage.delete(rel)
    if not leftovers:
        return []
    return [f"removed {len(leftovers)} unfinished write(s) that stopped writers left: {', '.join(leftovers)}"]


def _rewind(storage: Storage, cfg, record: TrialRecord, start: int) -> int:
    """Make the trajectory continue at round `start`; return the round it really continues at."""
    from ltray.training import TrajectoryState

    old = None
    data = record.state_bytes()
    if data is not None:
        try:
            old = TrajectoryState.from_bytes(data, record.describe(layout.TRIAL_STATE))
        except ExperimentError:
            old = None
    needs_weights = cfg.train.rewind != "init"
    if start > 0 and (cfg.train.rewind == "none" or (needs_weights and (old is None or old.rewind_weights is None))):
        start = 0  # the weights this rewind needs at `start` are not kept: start over
    try:
        rows = record.rows()
    except ExperimentError:
        rows, start = [], 0
    state = None
    if start > 0:
        try:
            mask = read_mask(storage, layout.trajectory_mask(record.trial_id, start))[0].unpack()
        except Exception:  # noqa: BLE001 - a damaged earlier mask: start over
            mask, start = None, 0
        if mask is not None:
            state = TrajectoryState(next_round=start, mask=mask,
                                    rewind_weights=old.rewind_weights if needs_weights and old else None,
                                    config_key=cfg.key())
    record.write_rows([r for r in rows if r["round"] < start])
    if state is not None:
        record.save_state(state.to_bytes())
    else:
        storage.delete(layout.trial_file(record.trial_id, layout.TRIAL_STATE))
    storage.delete(layout.trial_file(record.trial_id, layout.TRIAL_DONE))
    return start
