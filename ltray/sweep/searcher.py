"""The Tune searcher: emits the grid's trajectories, then, as consensus groups complete, their
follow-up trials (pret-a-porter tickets and baselines) into the same running experiment.

It never blocks Tune's event loop: the actor is polled with a fire-and-forget call whose reply is
picked up by `ray.wait(timeout=0)` on a later `suggest`. Trials already finished on disk are never
emitted, so a resumed sweep neither retrains nor relaunches anything.

The sweep ends when every grid trial has ended and the actor has answered a poll sent after the
last one did. That answer must count every mask of the grid: the callback's `add_mask` calls are
not enough, since Ray retries them after an actor restart in no particular order (a poll can
overtake them). So each poll carries the masks of the grid trials that ended since the last answer
(registering one twice is a no-op), and the answer is computed after them.
"""

from __future__ import annotations

import time
from collections import deque

import ray
from ray.tune.search import Searcher

from ltray.orchestration.plan import TrialSpec
from ltray.sweep import metrics
from ltray.sweep.actor import get_actor
from ltray.sweep.tune_io import RunSettings, trial_config


class SweepSearcher(Searcher):
    def __init__(self, settings: RunSettings, trajectories: list[TrialSpec], done: set[str],
                 poll_interval_s: float = 1.0):
        super().__init__(metric=None, mode=None)
        self.settings = settings  # where the experiment and the data are: part of every trial's config
        self.grid = deque(t for t in trajectories if t.trial_id not in done)
        self.grid_open = {t.trial_id for t in self.grid}  # not yet terminated
        self.followups: deque[TrialSpec] = deque()
        self.queued: set[str] = set()
        self.emitted: set[str] = set(done)
        self.live: dict[str, str] = {}  # Tune trial id -> ltray trial id
        self.followups_done = 0
        self.poll_interval_s = poll_interval_s
        self._actor = None
        self._ref = None
        self._epoch = 0  # bumps when a grid trial terminates; a poll sent after it sees all its masks
        self._ref_epoch = -1
        self._seen_epoch = -1
        self._last_poll = 0.0
        self._masks: dict[str, list[tuple[str, int, str]]] = {}  # running grid trial -> its masks so far
        self._unconfirmed: list[tuple[str, int, str]] = []  # ended grid trials' masks, for the next poll
        self._in_flight: list[tuple[str, int, str]] = []  # ... and those the outstanding poll carries

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def suggest(self, trial_id: str):
        self._collect()
        queue = self.followups or self.grid  # follow-ups first: they were waiting on the grid
        if queue:
            spec = queue.popleft()
            self.live[trial_id] = spec.trial_id
            self.emitted.add(spec.trial_id)
            self.publish()
            return trial_config(spec, self.settings)
        if not self.grid_open and self._seen_epoch == self._epoch and self._ref is None:
            return Searcher.FINISHED  # the actor has seen every mask the grid will ever send
        self._send_poll()
        return None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        tid = self.live.get(trial_id)
        if tid in self.grid_open and result.get("mask_path") and "round" in result:
            self._masks.setdefault(tid, []).append((tid, int(result["round"]), str(result["mask_path"])))

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        tid = self.live.pop(trial_id, None)
        if tid in self.grid_open:
            self.grid_open.discard(tid)
            self._unconfirmed += self._masks.pop(tid, [])
            self._epoch += 1
        elif tid is not None and not error:
            self.followups_done += 1
        self.publish()

    def _collect(self) -> None:
        """Pick up the actor's reply to the last poll, if it has arrived (never blocks)."""
        if self._ref is None:
            return
        ready, _ = ray.wait([self._ref], timeout=0)
        if not ready:
            return
        for spec in ray.get(self._ref):
            if spec.trial_id not in self.emitted and spec.trial_id not in self.queued:
                self.followups.append(spec)
                self.queued.add(spec.trial_id)
        self._seen_epoch = self._ref_epoch
        self._ref = None
        self._in_flight = []

    def _send_poll(self) -> None:
        if self._ref is not None:
            return
        due = time.monotonic() - self._last_poll >= self.poll_interval_s
        if due or self._seen_epoch != self._epoch:
            if self._actor is None:
                self._actor = get_actor(self.settings.experiment_uri)
            self._in_flight, self._unconfirmed = self._in_flight + self._unconfirmed, []
            self._ref = self._actor.ready_followups.remote(self._in_flight)
            self._ref_epoch = self._epoch
            self._last_poll = time.monotonic()

    def publish(self) -> None:
        running = sum(1 for t in self.live.values() if t not in self.grid_open)
        metrics.record_followups(self.settings.experiment, len(self.followups), running, self.followups_done)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: finished trials on disk and the actor's journal are the state."""

    def restore(self, checkpoint_path: str) -> None:
        """See `save`: a resumed sweep rebuilds the searcher from the experiment folder."""

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_actor"] = None
        state["_ref"] = None
        return state
