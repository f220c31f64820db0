"""Benchmark 5: the driver's Ray-free parts at full-sweep scale, training replaced by instant fake
work. Builds the plan of sweeps/full.yaml, feeds a ConsensusAggregator tiny LeNet-shaped masks
(written beforehand) for ~100 and ~1,200 trajectories x N rounds, and times each mask message,
each ready_followups() call, the similarity flush, memory (tracemalloc), and the Tune searcher's
own bookkeeping (Ray replaced by a stub). The aggregator before its fix runs side by side.
Run: python bench/driver_scale.py
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import _common as C  # noqa: I001 (puts the repository on sys.path)
import numpy as np
import pandas as pd

from ltray.masks import save_mask
from ltray.sweep.aggregator import ConsensusAggregator
from ltray.sweep.load import load_sweep
from ltray.sweep.plan import Plan, build_plan

import _before_aggregator

FULL = C.ROOT / "sweeps" / "full.yaml"
LENET = {"conv1.weight": (6, 1, 3, 3), "conv2.weight": (16, 6, 3, 3), "fc1.weight": (120, 400),
         "fc2.weight": (84, 120), "fc3.weight": (10, 84)}  # 59,778 weights, 7.5 kB packed
SCALES = {"small": (["lenet"], [0, 1]), "full": (None, None)}  # (archs, seeds) of full.yaml's grid


def sub_plan(sweep, archs, seeds, rounds) -> Plan:
    grid = sweep.grid.model_copy(update={k: v for k, v in (("archs", archs), ("seeds", seeds)) if v})
    return build_plan(sweep.model_copy(update={"grid": grid, "rounds": rounds}))


def write_masks(plan: Plan, rounds: int, root: Path) -> list[tuple[str, int, str]]:
    """Nested random masks (round r keeps 0.8^r) per trajectory; the messages in arrival order."""
    names = list(LENET)
    sizes = [int(np.prod(s)) for s in LENET.values()]
    for i, t in enumerate(plan.trajectories):
        scores = np.random.default_rng(i).random(sum(sizes))
        for r in range(rounds):
            flat = scores < 0.8 ** r
            parts = np.split(flat, np.cumsum(sizes)[:-1])
            mask = {n: p.reshape(LENET[n]) for n, p in zip(names, parts)}
            save_mask(root / "masks" / t.trial_id / f"round_{r:02d}.ltmask", mask)
    return [(t.trial_id, r, f"masks/{t.trial_id}/round_{r:02d}.ltmask")
            for r in range(rounds) for t in plan.trajectories]


def fresh_dir(base: Path, masks_from: Path, name: str) -> Path:
    d = base / name
    d.mkdir()
    (d / "masks").symlink_to(masks_from / "masks")
    return d


def feed(plan: Plan, messages, dirs: dict[str, Path], classes: dict, poll_every: int) -> dict:
    """Send every message to each implementation in turn (the order alternates per message)."""
    aggs = {name: classes[name](dirs[name], plan) for name in classes}
    per_msg = {name: [] for name in aggs}
    per_poll = {name: [] for name in aggs}
    returned = {name: 0 for name in aggs}
    names = list(aggs)
    for i, msg in enumerate(messages):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            aggs[name].add_mask(*msg)
            per_msg[name].append(time.perf_counter() - t0)
        if (i + 1) % poll_every == 0:
            for name in order:
                t0 = time.perf_counter()
                returned[name] = len(aggs[name].ready_followups())
                per_poll[name].append(time.perf_counter() - t0)
    final = {name: [] for name in names}  # every group complete: the cost during the follow-up phase
    for i in range(5):
        for name in (names if i % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            returned[name] = len(aggs[name].ready_followups())
            final[name].append(time.perf_counter() - t0)
    flush = {}
    for name in names:
        t0 = time.perf_counter()
        aggs[name].flush()
        flush[name] = time.perf_counter() - t0
    return {"aggs": aggs, "per_msg": per_msg, "per_poll": per_poll, "final": final, "flush": flush,
            "followups": returned}


def memory(plan: Plan, messages, base: Path, masks_from: Path, cls, tag: str) -> tuple[float, float]:
    """(MB held after all messages, peak MB) of one aggregator, by tracemalloc."""
    d = fresh_dir(base, masks_from, f"mem-{tag}")
    gc.collect()
    tracemalloc.start()
    agg = cls(d, plan)
    for msg in messages:
        agg.add_mask(*msg)
    agg.ready_followups()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del agg
    return current / 2**20, peak / 2**20


def check_same(old, new, exp_old: Path, exp_new: Path) -> None:
    """The fixed aggregator writes what the old one wrote."""
    a = pd.DataFrame(old.similarity_rows)
    b = pd.DataFrame(new.similarity_rows)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert old.consensus_rows == new.consensus_rows
    assert old.ready_followups() == new.ready_followups()
    for path in sorted((exp_old / "consensus").rglob("*.ltmask")):
        assert path.read_bytes() == (exp_new / path.relative_to(exp_old)).read_bytes(), path


def searcher_bookkeeping(plan: Plan, agg, exp: Path) -> dict:
    """SweepSearcher.suggest / on_trial_complete over the whole grid with a stub for Ray and the
    actor (its poll answers with the aggregator's ready_followups at once)."""
    import ltray.sweep.searcher as S

    stub_ref = SimpleNamespace
    saved = (S.ray, S.get_actor, S.metrics)
    S.ray = SimpleNamespace(wait=lambda refs, timeout=0: (refs, []), get=lambda ref: ref.value)
    S.get_actor = lambda _exp: SimpleNamespace(
        ready_followups=SimpleNamespace(remote=lambda: stub_ref(value=agg.ready_followups())))
    S.metrics = SimpleNamespace(record_followups=lambda *a: None)  # Ray's metrics export is not ours
    try:
        searcher = S.SweepSearcher(exp, [t.to_tune() for t in plan.trajectories], {"exp_dir": str(exp)},
                                   poll_interval_s=0.0)
        suggest, complete, live, n = [], [], [], 0
        while True:
            t0 = time.perf_counter()
            cfg = searcher.suggest(f"tune{n}")
            suggest.append(time.perf_counter() - t0)
            if cfg is None and not live:
                cfg = searcher.suggest(f"tune{n}")  # the poll's answer is picked up on the next call
            if cfg is S.Searcher.FINISHED or (cfg is None and not live):
                break
            if cfg is not None:
                live.append(f"tune{n}")
                n += 1
            if cfg is None or len(live) >= 256:  # max_concurrent of full.yaml: finish the oldest
                t0 = time.perf_counter()
                searcher.on_trial_complete(live.pop(0))
                complete.append(time.perf_counter() - t0)
        return {"trials": n, "suggest": suggest, "complete": complete}
    finally:
        S.ray, S.get_actor, S.metrics = saved


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per trajectory (>= 3: the groups vote on round 2)")
    ap.add_argument("--poll-every", type=int, default=50, help="mask messages between ready_followups() calls")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    info = C.machine("cpu")
    print(C.machine_line(info))
    t0 = time.perf_counter()
    load_sweep(FULL)  # the first call imports torch and torchvision (the checks need the registries)
    cold = time.perf_counter() - t0
    load_t = C.interleaved({"load": lambda: load_sweep(FULL)}, 5, warmup=0)["load"]
    sweep = load_sweep(FULL)
    plan_t = C.interleaved({"plan": lambda: build_plan(sweep)}, 5, warmup=0)["plan"]
    plan_full = build_plan(sweep)
    plan_s = {"cold": cold, "load": C.median(load_t), "plan": C.median(plan_t)}
    print(f"sweeps/full.yaml: {len(plan_full.trajectories):,} trajectories x {sweep.rounds} rounds, "
          f"{len(plan_full.groups)} groups, <= {plan_full.max_followups():,} follow-ups; first load_sweep "
          f"{cold:.2f} s (imports), then {plan_s['load'] * 1e3:.0f} ms; build_plan {plan_s['plan'] * 1e3:.0f} ms")
    results = {}
    # tmpfs when there is one: the journal's fsync is a disk's cost, measured separately below
    base = Path(tempfile.mkdtemp(prefix="ltray-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        for scale, (archs, seeds) in SCALES.items():
            plan = sub_plan(sweep, archs, seeds, args.rounds)
            masks_root = base / f"masks-{scale}"
            messages = write_masks(plan, args.rounds, masks_root)
            if scale == "small":  # warm-up, not timed: first-call costs (imports, caches) of this process
                feed(plan, messages, {n: fresh_dir(base, masks_root, f"warm-{n}") for n in ("before", "after")},
                     {"before": _before_aggregator.ConsensusAggregator, "after": ConsensusAggregator}, args.poll_every)
            dirs = {name: fresh_dir(base, masks_root, f"{scale}-{name}") for name in ("before", "after")}
            run = feed(plan, messages, dirs, {"before": _before_aggregator.ConsensusAggregator,
                                              "after": ConsensusAggregator}, args.poll_every)
            check_same(run["aggs"]["before"], run["aggs"]["after"], dirs["before"], dirs["after"])
            mem = {name: memory(plan, messages, base, masks_root, cls, f"{scale}-{name}") for name, cls in
                   (("before", _before_aggregator.ConsensusAggregator), ("after", ConsensusAggregator))}
            journal = {name: (dirs[name] / "actor" / "journal.jsonl").stat().st_size for name in dirs}
            book = searcher_bookkeeping(plan, run["aggs"]["after"], dirs["after"])
            pairs = len(run["aggs"]["after"].similarity_pairs)
            n_rows = sum(len(p[3]) for p in run["aggs"]["after"].similarity_pairs)
            del run["aggs"]  # free them before the next scale
            results[scale] = {"trajectories": len(plan.trajectories), "messages": len(messages),
                              "groups": len(plan.groups), "run": run, "mem": mem, "journal": journal,
                              "book": book, "pairs": pairs, "rows": n_rows}
            report(scale, results[scale])
        fsync_ms = fsync_cost()
        results["full_rows"] = full_similarity_rows(plan_full)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if not args.no_write:
        write(info, results, plan_full, sweep, plan_s, fsync_ms, args)
    return results


def full_similarity_rows(plan_full: Plan) -> int:
    """similarity.csv's rows at the end of full.yaml: pairs sharing a task or technique per
    (arch, seed, round), times each architecture's layers + '__all__'."""
    from ltray.models import build_skeleton, mask_layers

    sweep = plan_full.sweep
    tasks, techniques = len(sweep.grid.tasks), len(sweep.grid.techniques)
    pairs = tasks * techniques * (tasks - 1 + techniques - 1) // 2
    rows = 0
    for arch in sweep.grid.archs:
        layers = len(mask_layers(build_skeleton(arch, 10)))  # shapes only: VGG11 has 129M weights
        rows += len(sweep.grid.seeds) * sweep.rounds * pairs * (layers + 1)
    return rows


def fsync_cost() -> float:
    """(median, max) ms per fsync of a small append on the disk under tempfile's default dir (the old
    journal paid one per mask)."""
    with tempfile.NamedTemporaryFile("a") as f:
        times = []
        for _ in range(20):
            f.write("x" * 200 + "\n")
            f.flush()
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - t0)
    return C.median(times) * 1e3, max(times) * 1e3


def us(values) -> str:
    return f"{C.median(values) * 1e6:,.0f}" if values else "-"


def report(scale: str, r: dict) -> None:
    run = r["run"]
    for name in ("before", "after"):
        msg, poll = run["per_msg"][name], run["per_poll"][name]
        print(f"{scale:5s} {name:6s} {r['trajectories']:5d} traj {r['messages']:6d} msgs: "
              f"msg median {us(msg)} us mean {np.mean(msg) * 1e6:,.0f} us total {sum(msg):.2f} s; "
              f"ready_followups median {us(poll)} us, all groups complete {us(run['final'][name])} us "
              f"({run['followups'][name]} configs); "
              f"flush {run['flush'][name] * 1e3:.0f} ms; memory {r['mem'][name][0]:.1f} MB "
              f"(peak {r['mem'][name][1]:.1f}); journal {r['journal'][name] / 1e6:.2f} MB")
    b = r["book"]
    print(f"{scale:5s} searcher: {b['trials']} trials, suggest median {us(b['suggest'])} us "
          f"(max {max(b['suggest']) * 1e3:.1f} ms), on_trial_complete median {us(b['complete'])} us")


def write(info, results, plan_full, sweep, plan_s, fsync_ms, args) -> None:
    full_rows = results.pop("full_rows")
    rows = []
    for scale, r in results.items():
        run = r["run"]
        for name in ("before", "after"):
            msg, poll = run["per_msg"][name], run["per_poll"][name]
            mem_now, mem_peak = r["mem"][name]
            rows.append([f"{r['trajectories']:,} x {args.rounds}", name, us(msg), f"{np.mean(msg) * 1e6:,.0f}",
                         f"{sum(msg):.2f}", f"{us(run['final'][name])} ({run['followups'][name]:,})",
                         f"{run['flush'][name] * 1e3:,.0f}",
                         f"{mem_now:.1f} ({1e3 * mem_now / r['messages']:.1f} kB/mask)",
                         f"{r['journal'][name] / r['messages']:,.0f}"])
    small, full = results["small"], results["full"]
    growth = {name: C.median(full["run"]["per_msg"][name]) / C.median(small["run"]["per_msg"][name])
              for name in ("before", "after")}
    growth_mean = {name: np.mean(full["run"]["per_msg"][name]) / np.mean(small["run"]["per_msg"][name])
                   for name in ("before", "after")}
    speedup = {s: C.median(results[s]["run"]["per_msg"]["before"]) / C.median(results[s]["run"]["per_msg"]["after"])
               for s in results}
    book_rows = [[f"{r['trajectories']:,}", r["book"]["trials"], us(r["book"]["suggest"]),
                  f"{max(r['book']['suggest']) * 1e3:.1f}", us(r["book"]["complete"])] for r in results.values()]
    ok = growth["after"] <= 1.5
    flush_rate = full["run"]["flush"]["after"] / (full["rows"]) * 1e6
    summary = [{"benchmark": "5. driver: median time per mask message, 1,176 vs 98 trajectories (flat = 1)",
                "goal": "flat per item", "result": f"x{growth['after']:.2f} (before the fix: x{growth['before']:.2f})",
                "status": C.status(ok)}]
    body = f"""Command: `python bench/driver_scale.py` (one pass; every mask message goes to the old and the new
aggregator in turn, alternating which goes first). Measured {C.machine_line(info)}.

`sweeps/full.yaml`: {len(plan_full.trajectories):,} trajectories x {sweep.rounds} rounds, {len(plan_full.groups)} consensus
groups, at most {plan_full.max_followups():,} follow-ups. `load_sweep` takes {plan_s['cold']:.1f} s the first time in a process
(it imports torch and torchvision for the registry checks), then {plan_s['load'] * 1e3:.0f} ms; `build_plan` {plan_s['plan'] * 1e3:.0f} ms.
Fake work: every trajectory of a plan gets nested random LeNet-shaped masks (59,778 weights, round r keeps 0.8^r),
written with `save_mask` beforehand (not timed); {args.rounds} rounds per trajectory (the groups vote on round 2). Plans:
full.yaml's grid with 1 architecture x 2 seeds ({small['trajectories']} trajectories, {small['groups']} groups) and the whole
grid ({full['trajectories']:,} trajectories, {full['groups']} groups): the same 49 trials per (architecture, seed), so the
work per mask is the same and any growth is overhead. Experiment folder on tmpfs; a journal `fsync` costs
{fsync_ms[0]:.1f} ms (median of 20, up to {fsync_ms[1]:.1f} ms; 4.4 ms in an earlier probe while other jobs used the disk) on
this machine's disk, which the old aggregator paid on every message (see below).
*Before*: `ltray/sweep/aggregator.py` as committed (`bench/_before_aggregator.py`); *after*: the tree's.
Both give identical similarity rows, consensus rows, consensus masks and follow-up configs (checked).

| trajectories x rounds | aggregator | us/message (median) | us/message (mean) | total s | ready_followups us, all groups complete (configs returned) | flush ms | memory after all messages | journal bytes/message |
|---|---|---|---|---|---|---|---|---|
""" + "\n".join("| " + " | ".join(str(c) for c in row) + " |" for row in rows) + f"""

Growth of the time per message from {small['trajectories']} to {full['trajectories']:,} trajectories (medians; means in brackets,
which a few slow messages of a shared machine can sway): before x{growth['before']:.2f} (x{growth_mean['before']:.2f}), after
x{growth['after']:.2f} (x{growth_mean['after']:.2f}); the fix is x{speedup['small']:.1f} faster per message (medians) at
{small['trajectories']} trajectories and x{speedup['full']:.1f} at {full['trajectories']:,}. Memory per mask is flat after the fix as long
as the packed masks fit the 256 MB cache (these tiny ones all do; real VGG11 masks, 16 MB each, would hit the cap and be
re-read from their files instead). A warm-up pass (not timed) runs first. `ready_followups()` returns every follow-up of every complete group (the searcher
drops those it launched), so its cost follows the number of configs it returns, not the plan.

Searcher bookkeeping (`SweepSearcher.suggest` / `on_trial_complete` over the whole grid, 256 trials live, Ray and the
actor replaced by a stub that answers each poll at once with the aggregator's follow-ups; microseconds):

{C.table(["trajectories", "trials emitted", "suggest median us", "suggest max ms", "on_trial_complete median us"], book_rows)}

What was slow, and the fix (`ltray/sweep/aggregator.py`, `ltray/masks/packed.py`):
- `_similarity` scanned every trial of the plan for each mask (O(trials) per message, O(n^2) per sweep): partners now
  come from an index by (arch, seed, round), visited in plan order so rows come out in the same order.
- masks were unpacked to bool arrays (8x their file size) and cached 256 at a time whatever their size (256 VGG11
  masks = 33 GB): they now stay packed as read (votes and Jaccard distances are bitwise passes and popcounts), in a
  cache bounded to 256 MB.
- every journal line carried its similarity rows as dicts (labels repeated per layer): it now carries the layer
  names once and the distances; old journals still replay. In memory, similarity is one tuple per pair, and
  `flush()` builds columns (not a dict per row) and skips the write when nothing changed.
- still to wire (not in my files): at the end of `full.yaml`, similarity.csv has {full_rows:,} rows; at the rate measured
  here ({flush_rate:.1f} us per row, CSV and Parquet) one flush would take ~{full_rows * flush_rate / 1e6:.0f} s, and the actor
  flushes every 10 s (`actor.py`) and on every callback flush (`callback.py`, every 30 s). `ConsensusAggregator.maybe_flush()`
  (new) writes only when 20x the last write's duration has passed; `ConsensusActor.add_mask` should call
  `self.agg.maybe_flush()` instead of its own 10-s timer, and the callback's periodic `actor.flush.remote()` a
  `maybe_flush` method; the final `flush()` of `run.py` stays unconditional.
- every journal line was fsynced (see above; more on NFS): now at most once a second; the OS keeps what
  was written if the actor dies, and a machine crash loses at most a second of lines, which the driver re-sends on
  `--resume`.
- `ready_followups()` rebuilt every complete group's follow-up configs (pydantic models and hashes) on every poll;
  it now rebuilds a group's only when one of its sources reported a new round.
- found on the way: masks of one architecture on tasks with other class counts (emnist 47, cifar100 100 in
  `full.yaml`) differ in the output layer, and the old `layer_jaccard` raised on such a pair, so the actor failed
  on those masks; similarity now covers the layers both masks have with the same shape."""
    C.update_section("bench-driver", "5. Scale of the driver", body, summary)


if __name__ == "__main__":
    main()
