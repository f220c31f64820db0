"""Faults during a sweep cost at most the round in progress: a killed trial worker and a killed
consensus actor end with every round, consensus mask and follow-up exactly once, checked from the
files on disk; a full disk stops the sweep with one line. (A driver killed with SIGKILL, then
--resume: test_signals.py, in a bucket.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ltray.experiment import layout
from ltray.experiment.journal import Journal
from ltray.storage import LocalStorage
from ltray.masks import load_mask
from ltray.orchestration.plan import build_plan
from tests.mask_helpers import fake_masks
from tests.shared_head import job_trial_pids
from tests.sweep_helpers import (ONE_AT_A_TIME, SMALL, TINY_SWEEP, assert_complete_and_unique, run_sweep_here,
                                 source_masks, tiny_sweep, tune_trial_dirs, vote_consensus)

pytestmark = pytest.mark.ray


def _assert_consensus_exact(exp: Path, plan) -> None:
    for group in plan.groups:
        masks = list(source_masks(exp, plan, group).values())
        for k in group.thresholds:
            got, want = load_mask(exp / group.consensus_path(k)), vote_consensus(masks, k)
            assert all(np.array_equal(got[n], want[n]) for n in want)


def _direct_masks(plan, tmp: Path) -> dict[str, list[dict]]:
    """The same trajectories run without Ray, one torch thread, as a trial does."""
    import torch

    from ltray.training import run_trajectory

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for t in plan.trajectories:
            run_trajectory(t.config, tmp / t.trial_id, root=plan.sweep.data_root, device="cpu")
            out[t.trial_id] = [load_mask(tmp / t.trial_id / layout.round_mask_name(r)) for r in range(t.config.rounds)]
        return out
    finally:
        torch.set_num_threads(threads)


def test_killed_worker_and_actor_lose_nothing(shared_ray, tmp_path):
    import ray

    from ltray.sweep.actor import get_actor

    sweep = tiny_sweep(tmp_path / "exp", **SMALL)
    plan = build_plan(sweep)
    exp = tmp_path / "exp" / "tiny"
    killed = {"worker": None, "actor": False}

    def inject():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (killed["worker"] and killed["actor"]):
            time.sleep(0.2)
            bespoke_done = len(list(exp.glob("trials/bespoke-*/done.json")))
            started = list(exp.glob("trials/bespoke-*/results.json"))
            if killed["worker"] is None and started and bespoke_done < len(plan.trajectories):
                pids = job_trial_pids()  # this sweep's trials on the shared cluster
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed["worker"] = pids[0]
            if not killed["actor"] and len(Journal(LocalStorage(exp), layout.JOURNAL).replay().records) >= 4:
                ray.kill(get_actor(str(exp)), no_restart=False)
                killed["actor"] = True

    thread = threading.Thread(target=inject, daemon=True)
    try:
        thread.start()
        run_sweep_here(plan)
    finally:
        thread.join(timeout=5)
    assert killed["worker"] and killed["actor"], killed
    assert_complete_and_unique(exp, plan)
    _assert_consensus_exact(exp, plan)
    launches = tune_trial_dirs(exp)
    assert len(launches) == len(set(launches)) == len(plan.trajectories) + plan.max_followups()
    direct = _direct_masks(plan, tmp_path / "direct")
    for tid, masks in direct.items():
        for r, want in enumerate(masks):
            got = load_mask(exp / layout.trajectory_mask(tid, r))
            assert all(np.array_equal(got[n], want[n]) for n in want), (tid, r)


def test_the_sweep_ends_only_after_the_actor_counted_every_grid_mask(shared_ray, tmp_path):
    """After an actor restart Ray retries the callback's add_mask calls in no particular order, so
    the searcher's last poll can overtake them. Here none of them arrives at all: the searcher's
    polls alone carry the grid's masks, and the sweep does not end before every follow-up is out."""
    import ray
    from ray.tune.search import Searcher

    from ltray.sweep.actor import start_actor
    from ltray.sweep.searcher import SweepSearcher
    from ltray.sweep.tune_io import RunSettings

    plan = build_plan(tiny_sweep(tmp_path / "exp", **SMALL))
    exp = tmp_path / "exp" / "tiny"
    masks = fake_masks(exp, plan, plan.sweep.rounds)
    actor = start_actor(str(exp), plan.sweep)
    try:
        settings = RunSettings(experiment_uri=str(exp), experiment="tiny", data_root=str(tmp_path), download=False)
        searcher = SweepSearcher(settings, plan.trajectories, done=set(), poll_interval_s=0)
        for n, t in enumerate(plan.trajectories):  # each grid trial runs, reports its rounds and ends
            assert searcher.suggest(f"grid{n}")["trial_id"] == t.trial_id
            for tid, r, path in masks:
                if tid == t.trial_id:
                    searcher.on_trial_result(f"grid{n}", {"round": r, "kind": "bespoke", "mask_path": path})
            searcher.on_trial_complete(f"grid{n}")
        launched, deadline = [], time.monotonic() + 120
        while (config := searcher.suggest(f"followup{len(launched)}")) is not Searcher.FINISHED:
            assert time.monotonic() < deadline, f"the searcher neither finished nor launched: {launched}"
            if config is None:  # the actor's answer to the searcher's poll is on its way
                if searcher._ref is not None:
                    ray.wait([searcher._ref], timeout=10)
                continue
            launched.append(config["trial_id"])
            searcher.on_trial_complete(f"followup{len(launched) - 1}")
        assert len(launched) == len(set(launched)) == plan.max_followups(), launched
    finally:
        ray.kill(actor)


def test_full_disk_stops_with_one_line_and_a_readable_folder(shared_ray, tmp_path, monkeypatch, capsys):
    import errno

    from ltray import fileio
    from ltray import storage
    from ltray.sweep.__main__ import main

    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump({**TINY_SWEEP, **ONE_AT_A_TIME, "storage": str(tmp_path / "exp"),
                                          "consensus": []}))
    exp = tmp_path / "exp" / "tiny"
    calls = {"rounds": 0}

    def filling_disk(path, data):
        if Path(path).name == "rounds.csv":
            calls["rounds"] += 1
            if calls["rounds"] >= 2:  # the disk fills up halfway through the second write
                with fileio.atomic_writer(path) as f:
                    f.write(data[: len(data) // 2])
                    raise OSError(errno.ENOSPC, "No space left on device", str(path))
        fileio.atomic_write_bytes(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", filling_disk)
    assert main([str(sweep_file), "-q"]) == 2  # on the shared cluster
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "--resume" in err[0]
    assert "Traceback" not in "\n".join(err)
    readable = pd.read_csv(exp / "rounds.csv")  # the last complete version
    assert len(readable) > 0 and not readable.duplicated(["trial_id", "round"]).any()
    assert not list(exp.rglob("*.tmp"))
    for rel in readable.mask_path:
        load_mask(exp / rel)
