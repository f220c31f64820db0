"""What a running sweep has done and how long the rest will take, from the rows it reports: pure
bookkeeping (no Ray, no console), so its numbers are tested on their own. The reporter
(`progress.py`) prints them; the lease carries them to `ltray.status`; the gauges export them."""

from __future__ import annotations

import time

from ltray.experiment.labels import TrialKind
from ltray.formatting import fmt_duration


class ProgressCounts:
    def __init__(self, plan, clock=time.monotonic):
        self.clock = clock
        self.rounds_of = {t.trial_id: t.config.rounds for t in plan.trajectories}
        self.arch_of = {t.trial_id: t.labels.arch for t in plan.trajectories}
        self.rounds_total = sum(self.rounds_of.values())
        self.followups_total = plan.max_followups()
        self.rounds_done: set[tuple[str, int]] = set()
        self.followups_done: set[str] = set()
        self.failed = self.retried = 0
        self.running, self.pending = 0, 0
        self.device_of: dict[str, str] = {}  # trial -> the device its rows say it trains on
        self.work_s = 0.0  # seconds of training finished by this run, over all trials
        self.seconds: dict[str, list[float]] = {}  # bespoke:<arch> / ticket:<arch> -> round seconds
        self.started = clock()
        self._work_start: float | None = None  # when this run's first measured round began

    def count(self, row: dict, new: bool) -> bool:
        """Add a reported row (new: trained by this run); False when it was counted before."""
        trial, kind = row.get("trial_id"), row.get("kind")
        if row.get("device"):
            self.device_of[trial] = str(row["device"])
        if kind == TrialKind.BESPOKE:
            key = (trial, int(row["round"]))
            if key in self.rounds_done:
                return False
            self.rounds_done.add(key)
        elif trial not in self.followups_done:
            self.followups_done.add(trial)
        else:
            return False
        if new and row.get("seconds") is not None:
            seconds = float(row["seconds"])
            if self._work_start is None:  # the wait for Ray and the first trials is not work
                self._work_start = self.clock() - seconds
            self.work_s += seconds
            arch = row.get("arch") or self.arch_of.get(trial, "")
            self.seconds.setdefault(f"{'bespoke' if kind == 'bespoke' else 'ticket'}:{arch}", []).append(seconds)
        return True

    @property
    def done(self) -> int:
        return len(self.rounds_done) + len(self.followups_done)

    @property
    def total(self) -> int:
        return self.rounds_total + self.followups_total

    def trajectories_done(self) -> int:
        return sum(all((t, r) in self.rounds_done for r in range(n)) for t, n in self.rounds_of.items())

    def eta(self) -> float | None:
        """Seconds left: remaining rounds x their measured mean duration, over the parallelism this
        run has achieved since its first measured round began (training seconds per wall second)."""
        if not self.seconds or self.work_s <= 0 or self._work_start is None:
            return None
        elapsed = self.clock() - self._work_start
        if elapsed <= 0:
            return None
        mean = {k: sum(v) / len(v) for k, v in self.seconds.items()}
        overall = self.work_s / sum(len(v) for v in self.seconds.values())
        left = 0.0
        for trial, rounds in self.rounds_of.items():
            missing = sum((trial, r) not in self.rounds_done for r in range(rounds))
            left += missing * mean.get(f"bespoke:{self.arch_of[trial]}", overall)
        tickets = [v for k, v in mean.items() if k.startswith("ticket:")]
        per_ticket = sum(tickets) / len(tickets) if tickets else overall
        left += max(0, self.followups_total - len(self.followups_done)) * per_ticket
        return left / (self.work_s / elapsed)

    def line(self) -> str:
        return (f"[{fmt_duration(self.clock() - self.started)}] trajectories {self.trajectories_done()}/"
                f"{len(self.rounds_of)}, rounds {len(self.rounds_done)}/{self.rounds_total}, follow-ups "
                f"{len(self.followups_done)}/{self.followups_total}, running {self.running}, pending "
                f"{self.pending}, failed {self.failed}, ETA {fmt_duration(self.eta())}")
