"""The progress numbers a sweep prints (and exports, and puts in its lease), from reported rows
alone: counts, the ETA from measured rounds over the parallelism reached, and bounded output."""

from __future__ import annotations

import io

import pytest

from ltray.orchestration.console import Console
from ltray.orchestration.plan import build_plan
from ltray.sweep.progress import Reporter
from ltray.formatting import fmt_duration
from ltray.orchestration.progress_counts import ProgressCounts
from tests.sweep_helpers import tiny_sweep


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def row(trial, r, seconds=10.0, kind="bespoke", device="cpu"):
    return {"trial_id": trial, "round": r, "kind": kind, "seconds": seconds, "arch": "lenet", "device": device}


@pytest.fixture
def plan(tmp_path):
    return build_plan(tiny_sweep(tmp_path))  # 6 trajectories x 3 rounds and their follow-ups


def test_counts_and_eta(plan):
    clock = Clock()
    c = ProgressCounts(plan, clock)
    assert (c.rounds_total, c.followups_total, c.eta()) == (18, plan.max_followups(), None)
    first = plan.trajectories[0].trial_id
    assert c.count(row(first, 0), new=False)  # a round from before this run: counted, not timed
    assert not c.count(row(first, 0), new=True)  # reported again: counted once
    clock.t += 100  # the wait for Ray and the first trials is not work: two 10-s rounds, side by side,
    for trial in [t.trial_id for t in plan.trajectories[:2]]:  # end now: parallelism 2 since they began
        c.count(row(trial, 1), new=True)
    assert len(c.rounds_done) == 3 and c.work_s == 20
    left = (18 - 3) * 10 + plan.max_followups() * 10  # no ticket measured yet: the rounds' mean
    assert c.eta() == pytest.approx(left / 2)
    c.count(row("ticket-1", 0, seconds=2.0, kind="pret_a_porter"), new=True)
    assert c.eta() < left / 2  # tickets measured: their own (shorter) duration
    assert f"trajectories 0/6, rounds 3/18, follow-ups 1/{plan.max_followups()}" in c.line()
    assert "ETA " + fmt_duration(c.eta()) in c.line()


def test_fmt_duration():
    assert [fmt_duration(s) for s in (None, 5, 125, 3725, 90000)] == ["-", "0m05s", "2m05s", "1h02m", "1d01h"]


class Trial:
    def __init__(self, trial_id, status="RUNNING", kind="bespoke", gpu=0.0, group=""):
        self.status = status
        self.config = {"trial_id": trial_id, "kind": kind, "resources": {"gpu": gpu},
                       "labels": {"group": group}}


def test_reporter_prints_bounded_lines_and_one_event_per_group(plan, monkeypatch):
    clock, out = Clock(), io.StringIO()
    rep = Reporter(plan, storage=None, location=None, interval_s=30, out=out, clock=clock)
    monkeypatch.setattr(rep, "_poll", lambda: None)  # no Ray here
    trials = [t.trial_id for t in plan.trajectories]
    for i in range(120):  # two minutes of steps, a round reported every second
        clock.t += 1
        rep.event("round", trials[i % 6], row(trials[i % 6], i // 6 % 3))
        rep.event("step", None, [Trial(trials[0]), Trial(trials[1], status="PENDING")])
    periodic = out.getvalue().splitlines()
    assert len(periodic) == 4  # one line every 30 s, not one per step or round
    assert all("running 1, pending 1" in line and "ETA" in line for line in periodic)
    group = plan.groups[0].group_id
    for i in range(5):  # five follow-ups of one group start: one event line, not five
        rep.event("step", None, [Trial(f"f{i}", kind="pret_a_porter", group=group)])
    rep.event("failed", "f0", "DeviceError: no CUDA")
    text = out.getvalue()
    assert text.count(f"follow-ups of {group} launched") == 1
    assert "trial f0 gave up after its retries: DeviceError: no CUDA" in text and "failed 1" in text


def test_devices_of_running_trials_come_from_their_rows(plan, monkeypatch):
    rep = Reporter(plan, storage=None, location=None, out=io.StringIO(), clock=Clock())
    monkeypatch.setattr(rep, "_poll", lambda: None)
    a, b = plan.trajectories[0].trial_id, plan.trajectories[1].trial_id
    rep.event("round", a, row(a, 0, device="cpu"))  # holds a GPU share, trains on the CPU
    rep.event("step", None, [Trial(a, gpu=0.5), Trial(b, gpu=0.5)])
    assert rep.devices == {"cpu": 1, "gpu": 1}  # b has no row yet: its share says gpu


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_is_a_bar_on_a_terminal_and_plain_lines_elsewhere():
    line = "[0m30s] trajectories 1/6, rounds 2/18, follow-ups 0/4, running 2, pending 0, failed 0, ETA 1m00s"
    pipe = io.StringIO()
    plain = Console(pipe)
    plain.open_bar(total=22, done=0)  # not a terminal: no bar
    assert not plain.live
    plain.show(line)
    plain.print("  consensus group g complete")
    assert pipe.getvalue().splitlines() == [line, "  consensus group g complete"]

    quiet = Console(io.StringIO(), quiet=True)
    quiet.show(line)
    assert quiet.out.getvalue() == ""  # quiet: no periodic lines, only what is printed on purpose

    term = _Terminal()
    bar = Console(term)
    bar.open_bar(total=22, done=2)
    assert bar.live
    bar.advance()
    bar.show(line)
    bar.print("  follow-ups of g launched")
    bar.close()
    text = term.getvalue()
    assert "3/22" in text and "ETA 1m00s" in text  # the bar carries the counts
    assert "  follow-ups of g launched\n" in text  # events are written above it
    assert text.count("trajectories 1/6") <= text.count("\r") + 1  # redrawn in place, not one line each

    silent = Console(_Terminal(), silent=True)
    silent.open_bar(total=22, done=0)
    silent.print("x")
    assert not silent.live and silent.out.getvalue() == ""
