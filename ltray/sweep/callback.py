"""Driver-side Tune callback: turns reported rounds into table rows and feeds mask paths (never
tensors) to the consensus actor. Every step is idempotent, so replays after a restart are harmless."""

from __future__ import annotations

import time
from pathlib import Path

from ray import tune

from ltray.sweep.actor import get_actor
from ltray.sweep.experiment import TrialFiles, write_json
from ltray.sweep.tables import ROUND_COLUMNS, RoundsTable


class ResultsCallback(tune.Callback):
    def __init__(self, exp_dir: Path, table: RoundsTable, actor_flush_s: float = 30.0):
        self.exp_dir = Path(exp_dir)
        self.table = table
        self.actor_flush_s = actor_flush_s
        self._actor = None
        self._last_actor_flush = time.monotonic()

    @property
    def actor(self):
        if self._actor is None:
            self._actor = get_actor(self.exp_dir)
        return self._actor

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "round" not in result or "trial_id" not in trial.config:
            return
        row = {c: result.get(c) for c in ROUND_COLUMNS}
        row["trial_id"] = trial.config["trial_id"]  # Tune's own 'trial_id' is per run, ours is stable
        self.table.add(row)
        if row["kind"] == "bespoke":
            self.actor.add_mask.remote(row["trial_id"], int(row["round"]), row["mask_path"])

    def on_trial_error(self, iteration, trials, trial, **info):
        trial_id = trial.config.get("trial_id")
        if trial_id:
            write_json(TrialFiles(self.exp_dir, trial_id).error,
                        {"trial_id": trial_id, "error": str(getattr(trial, "error_msg", "") or "failed")})

    def on_step_end(self, iteration, trials, **info):
        self.table.flush()
        if time.monotonic() - self._last_actor_flush > self.actor_flush_s:
            self.actor.maybe_flush.remote()
            self._last_actor_flush = time.monotonic()

    def on_experiment_end(self, trials, **info):
        self.table.flush(force=True)

    def __getstate__(self):  # Tune may pickle callbacks: never an actor handle
        state = dict(self.__dict__)
        state["_actor"] = None
        return state
