"""What one trial does, without Ray: replay the rows it already has, then train what is left
(the rest of a trajectory, or one ticket) and record every round in its TrialRecord. The Tune
trainable (`trainable.py`) only adapts this to `tune.report`; tests call it directly.
"""

from __future__ import annotations

from typing import Callable

import torch

from ltray.config import TicketConfig, TrajectoryConfig
from ltray.errors import ExperimentError
from ltray.experiment.labels import TrialKind
from ltray.experiment.records import TrialRecord, make_row, read_mask
from ltray.orchestration.plan import TrialSpec
from ltray.training import TrajectoryState, run_trajectory, train_ticket
from ltray.training.device import describe_device

Report = Callable[[dict, bool], None]  # each row, and whether it was trained just now


def run_trial_work(spec: TrialSpec, record: TrialRecord, *, device: torch.device, root: str,
                   download: bool, report: Report) -> None:
    try:
        rows = record.rows()
    except ExperimentError:
        rows = []  # damaged rows: the trial is trained again and its rows rewritten
    for row in rows:  # idempotent downstream: keyed by (trial_id, round)
        report(row, False)
    if record.done:
        return
    common = dict(root=root, download=download, device=device)
    row_of = lambda result: make_row(spec.trial_id, spec.kind, spec.labels,  # noqa: E731
                                     {**result.as_dict(), "device": describe_device(device)})
    if spec.kind is TrialKind.BESPOKE:
        _trajectory(spec.config, record, rows, row_of, report, common)
    elif not rows or not record.storage.exists(rows[0]["mask_path"]):
        _ticket(spec.config, record, row_of, report, common)
    record.mark_done()


def _trajectory(cfg: TrajectoryConfig, record: TrialRecord, rows: list[dict], row_of, report: Report,
                common: dict) -> None:
    state = _state(record, cfg)
    if state is not None and state.next_round >= cfg.rounds:
        return  # finished before the completion marker was written

    def on_round(result, next_state: TrajectoryState) -> None:
        nonlocal rows
        row = row_of(result)
        rows = record.add_row(rows, row)  # rows first: a crash before the state only repeats this round
        record.save_state(next_state.to_bytes())
        report(row, True)

    run_trajectory(cfg, record, state=state, on_round=on_round, **common)


def _state(record: TrialRecord, cfg: TrajectoryConfig) -> TrajectoryState | None:
    data = record.state_bytes()
    if data is None:
        return None
    try:
        state = TrajectoryState.from_bytes(data, record.describe("state"))
    except ExperimentError:
        return None  # a damaged resume state: start the trajectory again (bit-identical on CPU)
    return state if state.config_key == cfg.key() else None


def _ticket(cfg: TicketConfig, record: TrialRecord, row_of, report: Report, common: dict) -> None:
    mask = read_mask(record.storage, str(cfg.mask_path))[0].unpack()
    result = train_ticket(cfg, mask=mask, on_mask=record.save_ticket, **common)
    row = row_of(result)
    record.write_rows([row])
    report(row, True)
