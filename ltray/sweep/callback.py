"""Driver-side Tune callback: turns reported rounds into table rows and feeds mask paths (never
tensors) to the consensus actor. Every step is idempotent, so replays after a restart are harmless."""

from __future__ import annotations

import time

from ray import tune

from ltray.experiment.labels import TrialKind
from ltray.experiment.records import TrialRecord
from ltray.experiment.tables import RoundsTable
from ltray.storage import Storage
from ltray.sweep.actor import get_actor
from ltray.sweep.tune_io import ltray_trial_id, row_of_result


def _tune_error_file(trial) -> str:
    """Where Tune keeps the trial's traceback (the driver's staging copy of the trial's folder)."""
    try:
        return str(trial.error_file or "") or "Tune's trial folder"
    except Exception:  # noqa: BLE001
        return "Tune's trial folder"


class ResultsCallback(tune.Callback):
    def __init__(self, storage: Storage, table: RoundsTable, actor_flush_s: float = 30.0, on_event=None):
        self.storage = storage
        self.table = table
        self.actor_flush_s = actor_flush_s
        self.on_event = on_event  # progress reporter: (kind, trial config, detail)
        self._actor = None
        self._last_actor_flush = time.monotonic()

    @property
    def actor(self):
        if self._actor is None:
            self._actor = get_actor(self.storage.uri)
        return self._actor

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = row_of_result(trial.config, result)
        if row is None:
            return
        self.table.add(row)
        if row["kind"] == TrialKind.BESPOKE:
            self.actor.add_mask.remote(row["trial_id"], int(row["round"]), row["mask_path"])
        if self.on_event is not None:
            self.on_event("round", row["trial_id"], row)

    def on_trial_error(self, iteration, trials, trial, **info):
        trial_id = ltray_trial_id(trial.config)
        if trial_id:
            message = self._failure(trial, trial_id)
            if self.on_event is not None:
                self.on_event("failed", trial_id, message)

    def on_trial_recover(self, iteration, trials, trial, **info):
        trial_id = ltray_trial_id(trial.config)
        if trial_id and self.on_event is not None:
            self.on_event("retried", trial_id, self._failure(trial, trial_id))

    def _failure(self, trial, trial_id: str) -> str:
        """The failure's one line, as the trial recorded it from its exception; a trial whose
        process died before it could (killed, out of memory, a lost node) gets a line that says
        so and where Tune keeps the details."""
        record = TrialRecord(self.storage, trial_id)
        message = record.error()
        if not message:
            message = f"its process ended before it could record an error (see {_tune_error_file(trial)})"
            record.mark_error(message)
        return message

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
