"""ltray's console progress, instead of Ray Tune's tables: a header, then one line every
`interval_s` seconds and one per event that matters (a consensus group complete, follow-ups
launched, a trial retried or given up), each with the totals and an ETA from measured round
times. On a terminal the periodic lines become one live tqdm bar; in a job log or a pipe they
stay plain lines, so `ray job logs` shows the same thing. The reporter also re-sets ltray's
gauges while the sweep runs (Ray drops a gauge ~20 s after it was last set)."""

from __future__ import annotations

import sys
import time
from collections import Counter

from ltray.sweep import metrics

POLL_S = 2.0  # the actor's status and the gauges, at most this often


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"


class Reporter:
    def __init__(self, plan, storage, location, interval_s: float = 30.0, quiet: bool = False, out=None,
                 clock=time.monotonic, silent: bool = False):
        self.plan, self.storage, self.location = plan, storage, location
        self.interval_s, self.quiet = max(1.0, interval_s), quiet
        self.silent = silent  # no console output (with -v Tune's tables are the console); gauges still kept
        self.out = out or sys.stdout
        self.clock = clock
        self.experiment = plan.sweep.name
        self.rounds_of = {t.trial_id: t.config.rounds for t in plan.trajectories}
        self.arch_of = {t.trial_id: t.labels["arch"] for t in plan.trajectories}
        self.rounds_total = sum(self.rounds_of.values())
        self.followups_total = plan.max_followups()
        self.rounds_done: set[tuple[str, int]] = set()
        self.followups_done: set[str] = set()
        self.launched: set[str] = set()
        self.failed = self.retried = 0
        self.running, self.pending, self.devices = 0, 0, Counter()
        self.work_s = 0.0  # seconds of training finished by this run, over all trials
        self.seconds: dict[str, list[float]] = {}  # bespoke:<arch> / ticket:<arch> -> round seconds
        self.groups_seen: set[str] = set()
        self.groups_launched: set[str] = set()
        self.searcher = None
        self.lease = None  # the driver's lease: its heartbeat carries these counts for ltray.status
        self.running_ids: list[str] = []
        self._actor, self._ref = None, None
        self._start = self._last_line = self._last_poll = clock()
        self._bar = None

    # ---- lifecycle --------------------------------------------------------------------------
    def notes(self, notes: list[str]) -> None:
        for note in notes:
            self._print(f"note: {note}")

    def start(self, done: set[str]) -> None:
        """Called once Ray is up and the finished work is known (a resumed sweep starts part done)."""
        import ray

        from ltray.experiment.records import all_rows

        for row in all_rows(self.storage)[0]:
            self._count(row, new=False)
        self._start = self._last_line = self.clock()
        sweep, plan = self.plan.sweep, self.plan
        ctx = ray.get_runtime_context()
        dashboard = _dashboard_url()
        self._print(f"ltray sweep {sweep.name!r}: experiment folder {self.storage.uri} (storage from "
                    f"{self.location.source})")
        self._print(f"  Ray {ctx.gcs_address}" + (f", dashboard {dashboard}" if dashboard else ", no dashboard")
                    + f"; {len(plan.trajectories)} trajectories x {sweep.rounds} rounds = {self.rounds_total} "
                      f"trained rounds, {len(plan.groups)} consensus groups, up to {self.followups_total} "
                      f"follow-ups; {len(done)} trials already finished")
        if self.out.isatty() and not self.quiet and not self.silent:
            from tqdm import tqdm

            self._bar = tqdm(total=self.rounds_total + self.followups_total, file=self.out, unit="round",
                             dynamic_ncols=True, initial=len(self.rounds_done) + len(self.followups_done))
        self._tick(force=True)

    def attach(self, searcher) -> None:
        self.searcher = searcher

    def finish(self, status: dict) -> None:
        """The run is over: announce the groups the last poll missed (a fast end outruns it),
        then one last line with the totals reached."""
        self.running = self.pending = 0
        self.running_ids = []
        announced = len(self.groups_seen)
        self._groups(status)  # an event line carries the totals too
        if len(self.groups_seen) == announced and not self.quiet:
            self._print(self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # ---- events (from the Tune callback, on the driver's loop) ----------------------------
    def event(self, kind: str, config: dict | None, detail) -> None:
        if kind == "round":
            if self._count(detail, new=True):
                self._advance()
        elif kind == "failed":
            self.failed += 1
            self._event(f"trial {config['trial_id']} gave up after its retries: {detail}")
        elif kind == "retried":
            self.retried += 1
            self._event(f"trial {config['trial_id']} failed and is retried: {detail}")
        elif kind == "step":
            self._step(detail)
        self._tick()

    def _count(self, row: dict, new: bool) -> bool:
        trial, kind = row.get("trial_id"), row.get("kind")
        if kind == "bespoke":
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
            self.work_s += seconds
            arch = row.get("arch") or self.arch_of.get(trial, "")
            self.seconds.setdefault(f"{'bespoke' if kind == 'bespoke' else 'ticket'}:{arch}", []).append(seconds)
        return True

    def _step(self, trials) -> None:
        running = [t for t in trials if t.status == "RUNNING"]
        self.running, self.pending = len(running), sum(t.status == "PENDING" for t in trials)
        self.running_ids = [t.config.get("trial_id", "") for t in running]
        new = [t.config for t in trials if t.config.get("kind") not in (None, "bespoke")
               and t.config.get("trial_id") not in self.launched]
        for cfg in new:
            self.launched.add(cfg["trial_id"])
            group = cfg.get("labels", {}).get("group", "")
            if group not in self.groups_launched:  # one line per group; the rest show in the counts
                self.groups_launched.add(group)
                self._last_poll = float("-inf")  # ask the actor now: its group-complete line comes next
                self._event(f"follow-ups of {group} launched ({len(self.launched)} follow-up trials so far)")
        self.devices = Counter("gpu" if t.config.get("resources", {}).get("gpu") else "cpu" for t in running)

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
        eta = self.eta()
        done = len(self.rounds_done) + len(self.followups_done)
        total = max(1, self.rounds_total + self.followups_total)
        metrics.record_progress(self.experiment, done / total, eta, {"cpu": 0, "gpu": 0, **self.devices})
        if self.searcher is not None:
            self.searcher.publish()
        if self.lease is not None:
            self.lease.info.progress = {"eta_s": eta, "rounds_done": len(self.rounds_done),
                                        "followups_done": len(self.followups_done), "running": self.running_ids,
                                        "failed": self.failed}

    def _groups(self, status: dict) -> None:
        for group, sparsity in sorted(status.get("consensus_sparsity", {}).items()):
            if group not in self.groups_seen:
                self.groups_seen.add(group)
                self._event(f"consensus group {group} complete: consensus sparsity {sparsity:.1%}")

    # ---- lines --------------------------------------------------------------------------------
    def eta(self) -> float | None:
        """Seconds left: remaining rounds x their measured mean duration, over the parallelism
        this run has achieved (training seconds per wall second)."""
        elapsed = self.clock() - self._start
        if not self.seconds or self.work_s <= 0 or elapsed <= 0:
            return None
        mean = {k: sum(v) / len(v) for k, v in self.seconds.items()}
        overall = self.work_s / sum(len(v) for v in self.seconds.values())
        left = 0.0
        for trial, rounds in self.rounds_of.items():
            missing = sum((trial, r) not in self.rounds_done for r in range(rounds))
            left += missing * mean.get(f"bespoke:{self.arch_of[trial]}", overall)
        ticket = [v for k, v in mean.items() if k.startswith("ticket:")]
        left += max(0, self.followups_total - len(self.followups_done)) * (sum(ticket) / len(ticket) if ticket
                                                                          else overall)
        return left / (self.work_s / elapsed)

    def line(self) -> str:
        done_traj = sum(all((t, r) in self.rounds_done for r in range(n)) for t, n in self.rounds_of.items())
        return (f"[{fmt_duration(self.clock() - self._start)}] trajectories {done_traj}/{len(self.rounds_of)}, "
                f"rounds {len(self.rounds_done)}/{self.rounds_total}, follow-ups "
                f"{len(self.followups_done)}/{self.followups_total}, running {self.running}, pending "
                f"{self.pending}, failed {self.failed}, ETA {fmt_duration(self.eta())}")

    def _tick(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last_poll >= POLL_S:
            self._last_poll = now
            self._poll()
        if self._bar is not None:
            self._bar.set_postfix_str(self.line().split("] ", 1)[1], refresh=False)
            self._bar.refresh()
            return
        if not self.quiet and (force or now - self._last_line >= self.interval_s):
            self._last_line = now
            self._print(self.line())

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _event(self, text: str) -> None:
        if self.quiet and "gave up" not in text:
            return
        self._print(f"{self.line()}\n  {text}")
        self._last_line = self.clock()

    def _print(self, text: str) -> None:
        if self.silent:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)


def _dashboard_url() -> str | None:
    try:
        import ray

        url = ray._private.worker.global_worker.node.address_info.get("webui_url")  # private, best effort
    except Exception:  # noqa: BLE001
        return None
    return f"http://{url}" if url and not str(url).startswith("http") else url or None
