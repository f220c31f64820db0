"""ltray's console progress, instead of Ray Tune's tables: a header, then one line every
`interval_s` seconds and one per event that matters (a consensus group complete, follow-ups
launched, a trial retried or given up), each with the totals and an ETA (`progress_counts.py`),
written through `console.py` (a live bar on a terminal, plain lines in a job log). The reporter
also re-sets ltray's gauges while the sweep runs (Ray drops a gauge ~20 s after it was last set)
and puts its counts in the lease."""

from __future__ import annotations

import time
from collections import Counter

from ltray.sweep import metrics
from ltray.orchestration.console import Console
from ltray.orchestration.aggregator import ConsensusStatus
from ltray.sweep.ray_compat import dashboard_url
from ltray.sweep.tune_io import asks_for_gpu, group_of, is_followup, ltray_trial_id
from ltray.orchestration.progress_counts import ProgressCounts

__all__ = ["Reporter"]
POLL_S = 2.0  # the actor's status and the gauges, at most this often


class Reporter:
    def __init__(self, plan, storage, location, interval_s: float = 30.0, quiet: bool = False, out=None,
                 clock=time.monotonic, silent: bool = False):
        self.plan, self.storage, self.location = plan, storage, location
        self.interval_s = max(1.0, interval_s)
        # silent: no console output (with -v Tune's tables are the console); the gauges are still kept
        self.console = Console(out, quiet=quiet, silent=silent)
        self.clock = clock
        self.experiment = plan.sweep.name
        self.counts = ProgressCounts(plan, clock)
        self.launched: set[str] = set()
        self.groups_seen: set[str] = set()
        self.groups_launched: set[str] = set()
        self.running_ids: list[str] = []
        self.devices: Counter = Counter()
        self.searcher = None  # the run's searcher and lease, from start(): the gauges and heartbeat they carry
        self.lease = None
        self._actor, self._ref = None, None
        self._last_line = self._last_poll = clock()

    # ---- lifecycle --------------------------------------------------------------------------
    def notes(self, notes: list[str]) -> None:
        for note in notes:  # a warning (a plugin changed under a resumed run) says so itself
            self._print(note if note.startswith("warning: ") else f"note: {note}")

    def start(self, done: set[str], lease=None, searcher=None) -> None:
        """Called once Ray is up and the finished work is known (a resumed sweep starts part done).
        The lease's heartbeat carries the counts to `ltray status`; the searcher re-sets its gauges
        on the reporter's timer."""
        self.lease, self.searcher = lease, searcher
        import ray

        from ltray.experiment.records import all_rows

        for row in all_rows(self.storage)[0]:
            self.counts.count(row, new=False)
        self.counts.started = self._last_line = self.clock()
        sweep, plan, c = self.plan.sweep, self.plan, self.counts
        dashboard = dashboard_url()
        self._print(f"ltray sweep {sweep.name!r}: experiment folder {self.storage.uri} (storage from "
                    f"{self.location.source})")
        self._print(f"  Ray {ray.get_runtime_context().gcs_address}"
                    + (f", dashboard {dashboard}" if dashboard else ", no dashboard")
                    + f"; {len(plan.trajectories)} trajectories x {sweep.rounds} rounds = {c.rounds_total} "
                      f"trained rounds, {len(plan.groups)} consensus groups, up to {c.followups_total} "
                      f"follow-ups; {len(done)} trials already finished")
        self.console.open_bar(c.total, c.done)
        self._tick(force=True)

    def finish(self, status: ConsensusStatus) -> None:
        """The run is over: announce the groups the last poll missed (a fast end outruns it),
        then one last line with the totals reached."""
        self.counts.running = self.counts.pending = 0
        self.running_ids = []
        announced = len(self.groups_seen)
        self._groups(status)  # an event line carries the totals too
        if len(self.groups_seen) == announced and not self.console.quiet:
            self._print(self.counts.line())

    def close(self) -> None:
        self.console.close()

    # ---- events (from the Tune callback, on the driver's loop) ----------------------------
    def event(self, kind: str, trial_id: str | None, detail) -> None:
        if kind == "round":
            if self.counts.count(detail, new=True):
                self.console.advance()
        elif kind == "failed":
            self.counts.failed += 1
            self._event(f"trial {trial_id} gave up after its retries: {detail}", even_quiet=True)
        elif kind == "retried":
            self.counts.retried += 1
            self._event(f"trial {trial_id} failed and is retried: {detail}")
        elif kind == "step":
            self._step(detail)
        self._tick()

    def _step(self, trials) -> None:
        running = [t for t in trials if t.status == "RUNNING"]
        self.counts.running, self.counts.pending = len(running), sum(t.status == "PENDING" for t in trials)
        self.running_ids = [ltray_trial_id(t.config) or "" for t in running]
        for cfg in [t.config for t in trials if is_followup(t.config) and ltray_trial_id(t.config) not in self.launched]:
            self.launched.add(ltray_trial_id(cfg))
            group = group_of(cfg)
            if group not in self.groups_launched:  # one line per group; the rest show in the counts
                self.groups_launched.add(group)
                self._last_poll = float("-inf")  # ask the actor now: its group-complete line comes next
                self._event(f"follow-ups of {group} launched ({len(self.launched)} follow-up trials so far)")
        self.devices = Counter(self._device(t) for t in running)

    def _device(self, trial) -> str:
        """'gpu' or 'cpu': what a running trial's rows say it trains on, else what it holds."""
        seen = self.counts.device_of.get(ltray_trial_id(trial.config))
        if seen:
            return "gpu" if seen.startswith("cuda") else "cpu"
        return "gpu" if asks_for_gpu(trial.config) else "cpu"

    # ---- the consensus actor and the gauges ------------------------------------------------
    def _poll(self) -> None:
        import ray

        from ltray.sweep.actor import get_actor

        if self._ref is not None:
            ready, _ = ray.wait([self._ref], timeout=0)
            if ready:
                try:
                    self._groups(ray.get(self._ref))
                except Exception:  # noqa: BLE001 - the actor restarting: next poll
                    pass
                self._ref = None
        if self._ref is None:
            try:
                self._actor = self._actor or get_actor(self.storage.uri)
                self._ref = self._actor.status.remote()  # also makes the actor re-set its gauges
            except Exception:  # noqa: BLE001
                self._actor = None
        c, eta = self.counts, self.counts.eta()
        metrics.record_progress(self.experiment, c.done / max(1, c.total), eta, {"cpu": 0, "gpu": 0, **self.devices})
        if self.searcher is not None:
            self.searcher.publish()
        if self.lease is not None:
            self.lease.info.progress = {"eta_s": eta, "rounds_done": len(c.rounds_done),
                                        "followups_done": len(c.followups_done), "running": self.running_ids,
                                        "failed": c.failed}

    def _groups(self, status: ConsensusStatus) -> None:
        for group, sparsity in sorted(status.consensus_sparsity.items()):
            if group not in self.groups_seen:
                self.groups_seen.add(group)
                self._event(f"consensus group {group} complete: consensus sparsity {sparsity:.1%}")

    # ---- lines --------------------------------------------------------------------------------
    def _tick(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last_poll >= POLL_S:
            self._last_poll = now
            self._poll()
        if self.console.live or force or now - self._last_line >= self.interval_s:
            self._last_line = now
            self.console.show(self.counts.line())

    def _event(self, text: str, even_quiet: bool = False) -> None:
        """An event line; with -q only failures that end a trial are shown."""
        if self.console.quiet and not even_quiet:
            return
        self._print(f"{self.counts.line()}\n  {text}")
        self._last_line = self.clock()

    def _print(self, text: str) -> None:
        self.console.print(text)
