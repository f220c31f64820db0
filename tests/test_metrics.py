"""ltray's metrics on Ray's Prometheus endpoint stay live while nothing changes, and two sweeps on
one cluster stay apart. Two sweeps (two drivers, two experiment names) run on one `ray start
--head`; once each has its consensus group, its trials are paused (SIGSTOP), so for QUIET_S no
round finishes and no value changes while both drivers run. Ray drops a gauge two export
intervals after it was last set (20 s by default; this cluster exports every EXPORT_S, so 10 s),
so a scrape after the quiet phase finds every gauge only if ltray re-sets them on a timer. A
control gauge, set once by a process that stays alive, shows the drop happens on this cluster
within the quiet phase. Then the trials run again, and one scrape holds every ltray series of
both sweeps: every series and label that monitoring/grafana-ltray.json queries must be in it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ltray.experiment import layout
from ltray.masks import load_mask, sparsity
from ltray.orchestration.load import parse_sweep
from ltray.orchestration.plan import build_plan
from tests.cluster_helpers import ROOT, live_trial_pids, start_head
from tests.waiting import wait_for

pytestmark = pytest.mark.ray

EXPORT_S = 5  # Ray's metrics export interval on the test cluster (RAY_metrics_report_interval_ms)
QUIET_S = 30  # every gauge is still there after this long without change (3 gauge lifetimes)
CONTROL = "ray_quiet_control"  # set once, never again: gone after the quiet phase
CONTROL_SCRIPT = """
import sys, ray
from ray.util.metrics import Gauge
ray.init(address=sys.argv[1], logging_level="WARNING", log_to_driver=False)
Gauge("quiet_control", "set once and never again", tag_keys=("experiment",)).set(1, tags={"experiment": "control"})
print("set", flush=True)
sys.stdin.read()  # alive, setting nothing, until the test closes stdin
"""
EXPERIMENTS = ("metrics-a", "metrics-b")
SWEEP = {
    "tasks": {"plain": {"dataset": "mnist_subset"}, "rot90": {"dataset": "mnist_subset", "views": [{"rotate": 90}]}},
    "grid": {"tasks": ["plain", "rot90"], "archs": ["lenet"], "techniques": ["global_unstructured"], "seeds": [0]},
    "rounds": 40,  # the group completes at round 1: the rest leaves time to pause, then to export
    "train": {"epochs": 1},
    "data": {"crop": False, "flip": False, "max_train_samples": 256},
    "resources": {"lenet": {"cpu": 1}},
    "max_concurrent": 2,  # both slots hold trajectories: no follow-up starts while they are paused
    "max_failures": 1,
    "consensus": [{"name": "pair", "sources": ["plain", "rot90"], "technique": "global_unstructured",
                   "source_rounds": [1], "thresholds": ["all"], "baselines": {"random": False, "bespoke": False}}],
}
# Ray adds the `ray_` prefix; counters get `_total`, histograms `_bucket`/`_sum`/`_count`
GAUGES = {"ray_ltray_progress", "ray_ltray_eta_seconds", "ray_ltray_trials_running", "ray_ltray_followups",
          "ray_ltray_consensus_groups_complete", "ray_ltray_consensus_sparsity"}
COUNTERS = {"ray_ltray_masks_received_total", "ray_ltray_rounds_finished_total", "ray_ltray_round_seconds_bucket",
            "ray_ltray_round_seconds_sum", "ray_ltray_round_seconds_count"}
SAMPLE = re.compile(r"^(ray_ltray_\w+)\{(.*)\} (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(url: str) -> str:
    return urllib.request.urlopen(url, timeout=10).read().decode()


def parse_samples(text: str) -> list[tuple[str, dict, float]]:
    """(series, labels, value) for every ltray sample of a Prometheus text page."""
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(2))), float(m.group(3))))
    return out


def progress_files(exp: Path) -> list[tuple[str, int]]:
    """The files that change when a round or a trial finishes (not the lease's heartbeat)."""
    return sorted((str(p.relative_to(exp)), p.stat().st_size) for top in (layout.TRIALS, layout.MASKS,
                                                                          layout.CONSENSUS_DIR)
                  for p in (exp / top).rglob("*") if p.is_file())


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def trial_pids(head, driver_pid: int) -> set[int]:
    """Processes running the trials of the driver `driver_pid` (its job's Tune trainable actors)."""
    from ray.util.state import list_jobs

    jobs = {j.job_id for j in list_jobs(address=head.dashboard, raise_on_missing_output=False)
            if j.driver_info is not None and int(j.driver_info.pid) == driver_pid}
    return set(live_trial_pids(head.dashboard, jobs))


def _resume(paused: dict) -> None:
    for pids in paused.values():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    paused.clear()


def rows_done(exp: Path) -> int:
    """Rounds the trials have recorded in their own files (written before they report them)."""
    return sum(len(json.loads(p.read_text())["rounds"]) for p in exp.glob(f"{layout.TRIALS}/*/{layout.TRIAL_RESULTS}"))


@pytest.fixture(scope="module")
def quiet_scrape(tmp_path_factory):
    """Both sweeps paused for QUIET_S seconds, then a scrape; then, resumed, a scrape with every
    series: (quiet samples, live samples, {name: (folder, plan)}, {name: rounds recorded when paused})."""
    tmp = tmp_path_factory.mktemp("metrics")
    head = start_head("ltm-", "--num-cpus", "4", "--num-gpus", "0",
                      env={"RAY_metrics_report_interval_ms": str(EXPORT_S * 1000)})
    url = f"http://127.0.0.1:{head.metrics_port}/metrics"
    drivers, paused = {}, {}
    control = subprocess.Popen([sys.executable, "-c", CONTROL_SCRIPT, head.address], cwd=ROOT, env=head.env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        exps = {}
        for name in EXPERIMENTS:  # both at once: their Tune runs are named apart (layout.tune_run)
            raw = {**SWEEP, "name": name, "storage": str(tmp / "exp")}
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(raw))
            exps[name] = (tmp / "exp" / name, build_plan(parse_sweep(raw, f"{name}.yaml")))
            log = open(tmp / f"{name}.log", "w")
            drivers[name] = subprocess.Popen(
                [sys.executable, "-m", "ltray.sweep", str(tmp / f"{name}.yaml"), "--address", head.address],
                cwd=ROOT, env=head.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def pause_when_grouped():
            for name, (exp, plan) in exps.items():
                if name not in paused and (exp / plan.groups[0].consensus_path(2)).is_file():
                    pids = trial_pids(head, drivers[name].pid)
                    for pid in pids:
                        os.kill(pid, signal.SIGSTOP)
                    paused[name] = pids
            for name, d in drivers.items():
                assert d.poll() is None, f"{name}: the driver ended before its trials were paused"
            return len(paused) == len(exps)

        assert control.stdout.readline() == "set\n"
        wait_for(lambda: CONTROL in scrape(url), 60, "the control gauge on the endpoint", interval_s=0.5)
        wait_for(pause_when_grouped, 240, "both sweeps to complete their consensus group", interval_s=0.2)
        a, b = paused.values()
        assert len(a) == len(b) == 2 and not a & b, paused  # each sweep's own two trajectories
        wait_for(lambda: all(_stopped(p) for pids in paused.values() for p in pids), 10, "the trials to pause",
                 interval_s=0.1)
        quiet_since = time.monotonic()
        before = {name: progress_files(exp) for name, (exp, _) in exps.items()}
        time.sleep(max(0.0, quiet_since + QUIET_S - time.monotonic()))  # the quiet phase itself
        page = scrape(url)
        assert CONTROL not in page, "a gauge set once is still exported: the quiet phase proves nothing"
        quiet = parse_samples(page)
        assert all(d.poll() is None for d in drivers.values()), "a driver ended during the quiet phase"
        assert {name: progress_files(exp) for name, (exp, _) in exps.items()} == before  # nothing changed
        recorded = {name: rows_done(exp) for name, (exp, _) in exps.items()}
        # a paused trial cannot export its counters: resume, and scrape until every series is in
        _resume(paused)

        def everything():
            samples = parse_samples(scrape(url))
            assert all(d.poll() is None for d in drivers.values()), "a driver ended before every series was seen"
            found = {(n, lb.get("experiment")) for n, lb, _ in samples}
            return samples if all((n, e) in found for n in GAUGES | COUNTERS for e in exps) else None

        live = wait_for(everything, 60, "every ltray series of both sweeps on the endpoint", interval_s=2)
        done_after = {name: rows_done(exp) for name, (exp, _) in exps.items()}
        yield quiet, live, exps, (recorded, done_after)
    finally:
        try:
            control.communicate(timeout=30)  # its stdin closed, it leaves the cluster
        except subprocess.TimeoutExpired:
            control.kill()
            control.communicate()
        _resume(paused)
        for d in drivers.values():  # interrupted like Ctrl-C: trials stop, the actor is killed
            d.send_signal(signal.SIGTERM)
        for d in drivers.values():
            try:
                d.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(d.pid, signal.SIGKILL)
                d.wait()
        head.stop()


def _of(samples, name: str, experiment: str) -> list[tuple[dict, float]]:
    return [(lb, v) for n, lb, v in samples if n == name and lb.get("experiment") == experiment]


def test_every_gauge_survives_the_quiet_phase(quiet_scrape):
    quiet, _, exps, _ = quiet_scrape
    for name in exps:  # (and a gauge set once is gone by then: checked by the fixture)
        missing = {g for g in GAUGES if not _of(quiet, g, name)}
        assert not missing, f"{name}: gauges gone after {QUIET_S} s without change: {sorted(missing)}"


def test_two_experiments_are_apart_with_their_own_values(quiet_scrape):
    quiet, live, exps, (recorded, done_after) = quiet_scrape
    for page in (quiet, live):  # every ltray series carries the label
        assert all("experiment" in lb for _, lb, _ in page)
    for series in GAUGES | COUNTERS:
        assert {lb["experiment"] for n, lb, _ in live if n == series} == set(exps), series
    for name, (exp, plan) in exps.items():
        total = len(plan.trajectories) * plan.sweep.rounds + plan.max_followups()
        (progress,) = [v for _, v in _of(quiet, "ray_ltray_progress", name)]
        reported = round(progress * total)  # rounds the driver received (no follow-up has run)
        assert progress == pytest.approx(reported / total)
        # every reported round's mask reached the actor once; a paused trial may have recorded a
        # round it had not reported yet
        assert sum(v for _, v in _of(quiet, "ray_ltray_masks_received_total", name)) == reported
        assert recorded[name] - len(plan.trajectories) <= reported <= recorded[name]
        assert 2 * len(plan.trajectories) <= reported < len(plan.trajectories) * plan.sweep.rounds  # part-way
        # the trials' own counters, once they run again: this sweep's rounds only, never the other's.
        # (Not a lower bound: a trial process stopped for a minute may have its series reset by Ray's
        # metrics agent, so a counter can restart from the rounds finished after the pause.)
        for counter in ("ray_ltray_rounds_finished_total", "ray_ltray_round_seconds_count"):
            counted = sum(v for _, v in _of(live, counter, name))
            assert 1 <= counted <= done_after[name], (counter, counted, done_after[name])
        (eta,) = [v for _, v in _of(quiet, "ray_ltray_eta_seconds", name)]
        assert eta > 0
        running = {lb["device"]: v for lb, v in _of(quiet, "ray_ltray_trials_running", name)}
        assert running == {"cpu": 2, "gpu": 0}  # the two paused trajectories
        followups = {lb["state"]: v for lb, v in _of(quiet, "ray_ltray_followups", name)}
        assert set(followups) == {"pending", "running", "done"} and followups["done"] == 0
        assert [v for _, v in _of(quiet, "ray_ltray_consensus_groups_complete", name)] == [1]
        (group,) = plan.groups
        want = sparsity(load_mask(exp / group.consensus_path(2)))
        assert {lb["group"]: v for lb, v in _of(quiet, "ray_ltray_consensus_sparsity", name)} == \
            {group.group_id: pytest.approx(want, abs=1e-6)}


def _grafana_queries() -> list[str]:
    dashboard = json.loads((ROOT / "monitoring" / "grafana-ltray.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return queries + [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]


def test_every_series_and_label_the_grafana_dashboard_queries_is_scraped(quiet_scrape):
    _, live, _, _ = quiet_scrape
    labels: dict[str, dict[str, set]] = {}
    for name, lb, _ in live:
        for k, v in lb.items():
            labels.setdefault(name, {}).setdefault(k, set()).add(v)
    for query in _grafana_queries():
        series = set(re.findall(r"\bray_ltray_\w+", query))
        used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", query))  # label matchers
        used |= {k.strip() for group in re.findall(r"\bby \(([^)]*)\)", query) for k in group.split(",")}
        used |= set(re.findall(r"label_values\(.*,\s*(\w+)\)$", query))
        assert series, query
        for s in series:
            assert s in labels, f"{s} (queried by the dashboard) is not exported"
            assert used <= set(labels[s]), f"{s} lacks labels {sorted(used - set(labels[s]))}: {query}"
            for label, values in re.findall(r"(\w+)=~\"([\w|]+)\"", query):  # literal alternatives
                assert set(values.split("|")) <= labels[s][label], (s, label, values)
