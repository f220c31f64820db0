"""ltray's custom metrics reach Ray's Prometheus endpoint: a tiny sweep with a consensus group runs
on a local Ray with a metrics export port, and a scraper collects every `ray_ltray_*` series."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
import urllib.request

import pandas as pd
import pytest

pytestmark = pytest.mark.ray

SWEEP = {
    "name": "metrics",
    "tasks": {"plain": {"dataset": "mnist_subset"}, "rot90": {"dataset": "mnist_subset", "views": [{"rotate": 90}]}},
    "grid": {"tasks": ["plain", "rot90"], "archs": ["lenet"], "techniques": ["global_unstructured"], "seeds": [0]},
    "rounds": 2,
    "train": {"epochs": 1},
    "data": {"crop": False, "flip": False, "max_train_samples": 300},
    "resources": {"lenet": {"cpu": 1}},
    "max_concurrent": 2,
    "max_failures": 1,
    "consensus": [{"name": "pair", "sources": ["plain", "rot90"], "technique": "global_unstructured",
                   "source_rounds": [1], "thresholds": ["all"],
                   "baselines": {"random": False, "bespoke": False}}],
}
# Ray adds the `ray_` prefix; counters get `_total`, histograms `_bucket`/`_sum`/`_count`
# (monitoring/grafana-ltray.json and tests/test_cluster_check.py use these names)
EXPECTED = {
    "ray_ltray_masks_received_total", "ray_ltray_rounds_finished_total", "ray_ltray_consensus_groups_complete",
    "ray_ltray_consensus_sparsity", "ray_ltray_round_seconds_bucket", "ray_ltray_round_seconds_sum",
    "ray_ltray_round_seconds_count", "ray_ltray_followups",
}
SAMPLE = re.compile(r"^(ray_ltray_\w+)\{(.*)\} (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_samples(text: str) -> list[tuple[str, dict, float]]:
    """(series, labels, value) for every ltray sample of a Prometheus text page."""
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL.findall(m.group(2))), float(m.group(3))))
    return out


class Scraper(threading.Thread):
    """Scrapes the endpoint every second; keeps the latest sample per (series, labels).

    Scraping while the sweep runs catches series of processes that end with it (the actor is killed).
    """

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.samples: dict[tuple, tuple[str, dict, float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.scrape()

    def scrape(self) -> None:
        try:
            text = urllib.request.urlopen(self.url, timeout=5).read().decode()
        except OSError:
            return  # the agent may not listen yet
        for name, labels, value in parse_samples(text):
            key = (name, tuple(sorted((k, v) for k, v in labels.items() if k != "WorkerId")),
                   labels.get("WorkerId"))
            self.samples[key] = (name, labels, value)

    def series(self) -> set[str]:
        return {name for name, _, _ in self.samples.values()}

    def find(self, name: str) -> list[tuple[dict, float]]:
        return [(labels, value) for n, labels, value in self.samples.values() if n == name]


@pytest.fixture(scope="module")
def metrics_run(tmp_path_factory):
    import ray

    from ltray.sweep.load import parse_sweep
    from ltray.sweep.plan import build_plan
    from tests.sweep_helpers import run_sweep_here

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    port = _free_port()
    # 1 s instead of Ray's 10 s between exports from each process to the node's metrics agent
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="ltray",
             _temp_dir=tempfile.mkdtemp(prefix="ltm-", dir="/tmp"), _metrics_export_port=port,
             _system_config={"metrics_report_interval_ms": 1000}, logging_level="WARNING", log_to_driver=False)
    try:
        assert ray._private.worker._global_node.metrics_export_port == port
        scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
        scraper.start()
        sweep = parse_sweep({**SWEEP, "storage": str(tmp_path_factory.mktemp("exp"))}, "metrics.yaml")
        exp = run_sweep_here(build_plan(sweep))
        deadline = time.monotonic() + 30  # Ray exports a few seconds after the values change
        while time.monotonic() < deadline and not (EXPECTED <= scraper.series() and _counts_settled(scraper, exp)):
            time.sleep(1)
        scraper.stop.set()
        scraper.join()
        scraper.scrape()
        yield exp, scraper
    finally:
        ray.shutdown()


def _counts_settled(scraper: Scraper, exp) -> bool:
    rounds = pd.read_csv(exp / "rounds.csv")
    return sum(v for _, v in scraper.find("ray_ltray_rounds_finished_total")) >= len(rounds)


def test_every_ltray_series_is_exported(metrics_run):
    _, scraper = metrics_run
    assert EXPECTED <= scraper.series(), sorted(EXPECTED - scraper.series())


def test_series_carry_the_sweeps_labels_and_values(metrics_run):
    exp, scraper = metrics_run
    rounds = pd.read_csv(exp / "rounds.csv")
    consensus = pd.read_csv(exp / "consensus.csv")
    bespoke = rounds[rounds["kind"] == "bespoke"]

    finished = scraper.find("ray_ltray_rounds_finished_total")
    assert {(lb["arch"], lb["technique"], lb["kind"]) for lb, _ in finished} == \
        {("lenet", "global_unstructured", "bespoke"), ("lenet", "global_unstructured", "pret_a_porter")}
    by_kind = {}
    for lb, v in finished:
        by_kind[lb["kind"]] = by_kind.get(lb["kind"], 0) + v
    assert by_kind == rounds.groupby("kind").size().astype(float).to_dict()  # every round counted once

    received = scraper.find("ray_ltray_masks_received_total")
    assert {(lb["arch"], lb["technique"]) for lb, _ in received} == {("lenet", "global_unstructured")}
    # the actor is killed when the sweep ends, possibly before its last export
    assert 0 < sum(v for _, v in received) <= len(bespoke)

    assert max(v for _, v in scraper.find("ray_ltray_consensus_groups_complete")) == 1
    sparsity = scraper.find("ray_ltray_consensus_sparsity")
    assert {lb["group"] for lb, _ in sparsity} == set(consensus["group"])
    assert sparsity[0][1] == pytest.approx(consensus["sparsity"].min(), abs=1e-6)

    count = sum(v for lb, v in scraper.find("ray_ltray_round_seconds_count"))
    assert count == len(rounds)
    assert {lb["state"] for lb, _ in scraper.find("ray_ltray_followups")} == {"pending", "running", "done"}
