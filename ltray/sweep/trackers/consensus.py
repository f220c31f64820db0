"""The consensus as its own tracker run "consensus" (one per Tune run, in every named tracker):
each complete group's consensus sparsity per threshold and the count of follow-ups launched."""

from __future__ import annotations

import time

from ray import tune

from ltray.errors import ExperimentError
from ltray.experiment.schemas import CONSENSUS
from ltray.sweep.tune_io import is_followup, ltray_trial_id
from ltray.storage import Storage
from ltray.experiment.tables import read_table

RUN_NAME = "consensus"


class ConsensusEvents(tune.Callback):
    """One step per event: `consensus_sparsity/<group>/t<k>` and the running `groups_complete`
    when a group completes (read from the consensus table, which the consensus actor writes at
    that moment), and `followups_launched` as each follow-up trial starts."""

    def __init__(self, storage: Storage, sinks: list, poll_s: float = 2.0):
        self.storage = storage
        self.sinks = sinks
        self.poll_s = poll_s
        self.step = 0
        self.groups: set[str] = set()
        self.logged: set[tuple[str, str]] = set()
        self.launched: set[str] = set()
        self._last_read = 0.0

    def on_trial_start(self, iteration, trials, trial, **info):
        trial_id = ltray_trial_id(trial.config)
        if is_followup(trial.config) and trial_id not in self.launched:
            self.launched.add(trial_id)
            self._read_consensus()  # the group's completion comes first in the run
            self._log({"followups_launched": len(self.launched)})

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self._last_read >= self.poll_s:
            self._read_consensus()

    def on_experiment_end(self, trials, **info):
        self._read_consensus()
        for sink in self.sinks:
            sink.close()

    def _read_consensus(self) -> None:
        self._last_read = time.monotonic()
        try:
            table = read_table(self.storage, CONSENSUS)
        except ExperimentError:
            return  # being rewritten: the next poll reads it
        if table is None:
            return  # no group complete yet
        for row in table[table["leave_out"] == ""].to_dict("records"):
            key = (row["group"], row["threshold"])
            if key in self.logged:
                continue
            self.logged.add(key)
            self.groups.add(row["group"])
            self._log({f"consensus_sparsity/{row['group']}/t{row['threshold']}": float(row["sparsity"]),
                       "groups_complete": len(self.groups)})

    def _log(self, metrics: dict[str, float]) -> None:
        self.step += 1
        for sink in self.sinks:
            sink.log(metrics, self.step)

    def __getstate__(self):  # Tune may pickle callbacks: never a tracker client
        state = dict(self.__dict__)
        state["sinks"] = [s.unopened() for s in self.sinks]
        return state


class Sink:
    """A tracker run, opened at its first event (a sweep without consensus makes none)."""

    def __init__(self):
        self._run = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._run is None:
            self._run = self._open()
        self._write(metrics, step)

    def close(self) -> None:
        if self._run is not None:
            self._close()
            self._run = None

    def unopened(self) -> "Sink":
        copy = object.__new__(type(self))
        copy.__dict__.update({**self.__dict__, "_run": None})
        return copy

    def _open(self):
        raise NotImplementedError

    def _write(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError
