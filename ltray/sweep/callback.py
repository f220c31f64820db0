"""Driver-side Tune callback: turns reported rounds into table rows and feeds mask paths (never
tensors) to the consensus actor. Every step is idempotent, so replays after a restart are harmless."""

from __future__ import annotations

import os
import re
import time

from ray import tune

from ltray.experiment.records import TrialRecord
from ltray.experiment.schemas import ROUNDS
from ltray.storage import Storage
from ltray.experiment.tables import RoundsTable
from ltray.sweep.actor import get_actor


def error_line(error_msg: str) -> str:
    """The exception's own message from Tune's error text (a traceback): its last line. ltray's
    own errors (which name what failed) lose their class path; others keep their class name."""
    lines = [line.strip() for line in str(error_msg or "").splitlines() if line.strip()]
    if not lines:
        return "failed"
    m = re.match(r"^([A-Za-z_][\w.]*): (.*)$", lines[-1])
    if m is None:
        return lines[-1]
    name, message = m.groups()
    return message if name.startswith("ltray.") else f"{name.rsplit('.', 1)[-1]}: {message}"


def _error_text(trial) -> str:
    """The trial's last error as Tune recorded it (a traceback, in the driver's staging copy of
    the trial's folder; synced to storage later), or ''."""
    try:
        path = trial.error_file
        if path and os.path.exists(path):
            with open(path, errors="replace") as f:
                return f.read()
        return trial.get_error() or ""
    except Exception:  # noqa: BLE001 - unreadable: the error stays in Tune's own files
        return ""


class ResultsCallback(tune.Callback):
    def __init__(self, storage: Storage, exp_uri: str, table: RoundsTable, actor_flush_s: float = 30.0,
                 on_event=None):
        self.storage = storage
        self.exp_uri = exp_uri
        self.table = table
        self.actor_flush_s = actor_flush_s
        self.on_event = on_event  # progress reporter: (kind, trial config, detail)
        self._actor = None
        self._last_actor_flush = time.monotonic()

    @property
    def actor(self):
        if self._actor is None:
            self._actor = get_actor(self.exp_uri)
        return self._actor

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "round" not in result or "trial_id" not in trial.config:
            return
        row = {c: result.get(c) for c in ROUNDS.names}
        row["trial_id"] = trial.config["trial_id"]  # Tune's own 'trial_id' is per run, ours is stable
        self.table.add(row)
        if row["kind"] == "bespoke":
            self.actor.add_mask.remote(row["trial_id"], int(row["round"]), row["mask_path"])
        if self.on_event is not None:
            self.on_event("round", trial.config, row)

    def on_trial_error(self, iteration, trials, trial, **info):
        trial_id = trial.config.get("trial_id")
        if trial_id:
            message = error_line(_error_text(trial))
            TrialRecord(self.storage, trial_id).mark_error(message)
            if self.on_event is not None:
                self.on_event("failed", trial.config, message)

    def on_trial_recover(self, iteration, trials, trial, **info):
        if self.on_event is not None and "trial_id" in trial.config:
            self.on_event("retried", trial.config, error_line(_error_text(trial)))

    def on_step_end(self, iteration, trials, **info):
        self.table.flush()
        if time.monotonic() - self._last_actor_flush > self.actor_flush_s:
            self.actor.maybe_flush.remote()
            self._last_actor_flush = time.monotonic()
        if self.on_event is not None:
            self.on_event("step", None, trials)

    def on_experiment_end(self, trials, **info):
        self.table.flush(force=True)

    def __getstate__(self):  # Tune pickles callbacks into its state file: no actor handle, no console
        state = dict(self.__dict__)
        state["_actor"] = None
        state["on_event"] = None
        return state
