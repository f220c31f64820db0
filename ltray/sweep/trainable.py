"""The Tune function trainable: a thin adapter from a trial's config to the core's training code.

Each finished round is written to the trial's folder (rows, then resume state) and reported to Tune
with a small checkpoint holding only the resume state. A restarted trial first replays the rows it
already has (so the driver never misses a mask), then continues after its last finished round.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from ltray.config import TicketConfig
from ltray.errors import ExperimentError
from ltray.sweep import metrics
from ltray.sweep.experiment import TrialFiles
from ltray.sweep.plan import TrialSpec
from ltray.sweep.tables import round_row
from ltray.training import TrajectoryState, run_trajectory, train_ticket

STATE_FILE = "state.ltstate"


def run_trial(config: dict) -> None:
    spec = TrialSpec.from_tune(config)
    exp_dir = Path(config["exp_dir"])
    files = TrialFiles(exp_dir, spec.trial_id)
    device = _claim_device(spec)
    rows = files.read_results()
    for row in rows:  # idempotent downstream: keyed by (trial_id, round)
        tune.report(_metrics(row))
    if files.done.exists():
        return
    common = dict(root=config["data_root"], download=config["download"], device=device)
    if spec.kind == "bespoke":
        _run_bespoke(spec, files, rows, common)
    else:
        _run_ticket(spec, files, common)
    files.mark_done()


def _run_bespoke(spec: TrialSpec, files: TrialFiles, rows: list[dict], common: dict) -> None:
    state = _newest_state(files)
    if state is not None and state.next_round >= spec.config.rounds:
        return  # finished before the completion marker was written

    def on_round(result, next_state: TrajectoryState) -> None:
        row = _row(spec, files, result)
        nonlocal rows
        rows = [r for r in rows if r["round"] != row["round"]] + [row]
        files.write_results(rows)  # rows first: a crash before the state only repeats this round
        next_state.save(files.state)
        with tempfile.TemporaryDirectory() as d:
            Path(d, STATE_FILE).write_bytes(next_state.to_bytes())
            tune.report(_metrics(row), checkpoint=tune.Checkpoint.from_directory(d))
        metrics.record_round(spec.labels["arch"], spec.labels["technique"], spec.kind, result.seconds)

    run_trajectory(spec.config, files.mask_dir, state=state, on_round=on_round, **common)


def _run_ticket(spec: TrialSpec, files: TrialFiles, common: dict) -> None:
    cfg: TicketConfig = spec.config
    resolved = cfg.model_copy(update={"mask_path": files.exp_dir / cfg.mask_path})
    result = train_ticket(resolved, mask_out=files.mask_dir / "ticket.ltmask", **common)
    row = _row(spec, files, result)
    files.write_results([row])
    tune.report(_metrics(row))
    metrics.record_round(spec.labels["arch"], spec.labels["technique"], spec.kind, result.seconds)


def _row(spec: TrialSpec, files: TrialFiles, result) -> dict:
    m = result.as_dict()
    m["mask_path"] = os.path.relpath(m["mask_path"], files.exp_dir)
    return round_row(spec.trial_id, spec.kind, spec.labels, m)


def _metrics(row: dict) -> dict:
    """A row as Tune metrics: Tune owns the key 'trial_id' (the callback takes ours from the config).
    node_id and assigned resources say where the trial runs (node_ip cannot tell apart nodes of one host)."""
    ctx = ray.get_runtime_context()
    return {k: v for k, v in row.items() if k != "trial_id"} | {"node_id": ctx.get_node_id(),
                                                                 "assigned": ctx.get_assigned_resources()}


def _newest_state(files: TrialFiles) -> TrajectoryState | None:
    """The further of Tune's checkpoint and ltray's own copy (either can be missing)."""
    candidates = []
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            path = Path(d, STATE_FILE)
            if path.exists():
                candidates.append(TrajectoryState.load(path))
    if files.state.exists():
        try:
            candidates.append(TrajectoryState.load(files.state))
        except ExperimentError:
            pass  # a corrupt copy: fall back to Tune's checkpoint or a fresh start
    return max(candidates, key=lambda s: s.next_round, default=None)


def _claim_device(spec: TrialSpec) -> torch.device:
    """CPU threads follow the trial's CPU share; a GPU share caps this process's GPU memory."""
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    if spec.resources.gpu > 0 and torch.cuda.is_available():
        if spec.resources.gpu < 1:
            torch.cuda.set_per_process_memory_fraction(spec.resources.gpu)
        return torch.device("cuda")
    return torch.device("cpu")
