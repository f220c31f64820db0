"""Benchmark 3: the same LeNet trajectory (mnist_subset, 3 rounds x 1 epoch, 1 thread) run directly
with ltray.training.run_trajectory vs as the one Tune trial of a one-trajectory sweep
(ltray.sweep.run.run_sweep on a private local Ray with num_cpus=1), interleaved.
Run: python bench/ray_overhead.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: I001 (puts the repository on sys.path)
import pandas as pd
import torch

from ltray.orchestration.load import parse_sweep
from ltray.orchestration.plan import build_plan
from ltray.training import run_trajectory

GOAL = 0.10
ROUNDS, EPOCHS = 3, 1


def sweep_config(storage: Path, name: str):
    """A one-trajectory sweep, built in code: LeNet on mnist_subset, the paper's recipe but 1 epoch."""
    return parse_sweep({
        "name": name, "storage": str(storage),
        "grid": {"tasks": ["mnist_subset"], "archs": ["lenet"], "techniques": ["global_unstructured"],
                 "seeds": [0]},
        "rounds": ROUNDS, "train": {"epochs": EPOCHS}, "resources": {"lenet": {"cpu": 1, "gpu": 0}},
        "max_concurrent": 1, "max_failures": 0,
    }, "<bench>")


def direct(storage: Path, i: int) -> dict:
    """run_trajectory in a fresh process, as a trial gets one (imports are done before the clock
    starts, as in a Tune worker; data caches and the allocator start cold in both)."""
    out = subprocess.run([sys.executable, __file__, "--direct-child", str(storage), str(i)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def direct_child(storage: Path, i: int) -> None:
    torch.set_num_threads(1)
    cfg = build_plan(sweep_config(storage, f"direct{i}")).trajectories[0].config
    t0 = time.perf_counter()
    results = run_trajectory(cfg, storage / f"direct{i}", root="data", device="cpu")
    wall = time.perf_counter() - t0
    print(json.dumps({"wall": wall, "rounds": sum(r.seconds for r in results)}))


def tune(storage: Path, i: int) -> dict:
    from ltray.experiment import layout
    from ltray.storage import open_storage
    from ltray.orchestration.location import experiment_location
    from ltray.orchestration.opening import open_experiment
    from ltray.sweep.run import run_sweep

    sweep = sweep_config(storage, f"tune{i}")
    t0 = time.perf_counter()
    plan = build_plan(sweep)  # what `python -m ltray.sweep` does, without the argument parsing
    location = experiment_location(sweep.name, sweep.storage)
    folder = open_storage(location.experiment)
    open_experiment(plan, folder, resume=False)
    run_sweep(plan, folder, address="local", num_cpus=1, verbose=0)
    wall = time.perf_counter() - t0
    exp = Path(location.experiment)
    rounds = pd.read_csv(exp / layout.csv("rounds"))
    results = sorted(exp.glob(f"{layout.TUNE}/run-*/*/result.json"))
    last = json.loads(results[0].read_text().splitlines()[-1])
    return {"wall": wall, "rounds": float(rounds["seconds"].sum()), "trial": float(last["time_total_s"])}


def cpu_busy(since: tuple[float, float] | None = None):
    """Cores busy on the whole machine (all processes) since `since`, from /proc/stat; or a reading."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, total = fields[3] + fields[4], sum(fields[:8])
    if since is None:
        return idle, total
    d_idle, d_total = idle - since[0], total - since[1]
    return (os.cpu_count() or 1) * (1 - d_idle / d_total) if d_total else 0.0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--direct-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.direct_child:
        return direct_child(Path(args.direct_child[0]), int(args.direct_child[1]))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    torch.set_num_threads(1)  # what the trial gets for cpu: 1
    info = C.machine("cpu")
    print(C.machine_line(info))
    storage = Path(tempfile.mkdtemp(prefix="ltray-bench-ray-"))
    ray_tmp = tempfile.mkdtemp(prefix="lbr-", dir="/tmp")  # Ray's sessions: short (socket paths), removed after
    os.environ["LTRAY_RAY_TMPDIR"] = ray_tmp
    runs = {"direct": [], "tune": []}
    try:
        for i in range(args.repeats):
            for name in (("direct", "tune") if i % 2 == 0 else ("tune", "direct")):
                before = cpu_busy()
                res = (direct if name == "direct" else tune)(storage, i)
                res["busy_cores"] = cpu_busy(before)
                runs[name].append(res)
                print(f"repeat {i} {name:6s} " + " ".join(f"{k} {v:.2f}" for k, v in res.items()))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    for r in runs["direct"]:
        r["outside"] = r["wall"] - r["rounds"]
    for r in runs["tune"]:
        r["outside"] = r["trial"] - r["rounds"]
    med = {name: {k: C.median([r[k] for r in rs]) for k in rs[0]} for name, rs in runs.items()}
    in_rounds = med["tune"]["rounds"] / med["direct"]["rounds"] - 1
    outside = (med["tune"]["outside"] - med["direct"]["outside"]) / med["direct"]["wall"]
    per_trial = med["tune"]["trial"] / med["direct"]["wall"] - 1
    end_to_end = med["tune"]["wall"] / med["direct"]["wall"] - 1
    print(f"overhead: rounds' seconds {100 * in_rounds:+.1f}%, outside the rounds {100 * outside:+.1f}% of the "
          f"direct wall, trial time_total_s vs direct wall {100 * per_trial:+.1f}%, end to end incl. Ray start "
          f"{100 * end_to_end:+.1f}%")
    summary = [{"benchmark": "3. Ray overhead per trial (Tune's time_total_s vs run_trajectory wall), LeNet",
                "goal": f"<= {100 * GOAL:.0f}%", "result": f"{100 * per_trial:+.1f}% ({100 * outside:+.1f}% outside "
                f"the rounds, {100 * in_rounds:+.1f}% inside)", "status": C.status(per_trial <= GOAL)}]
    if not args.no_write:
        write(info, runs, med, in_rounds, outside, per_trial, end_to_end, summary, args)
    return med


def write(info, runs, med, in_rounds, outside, per_trial, end_to_end, summary, args) -> None:
    busy = {name: C.median([r["busy_cores"] for r in rs]) for name, rs in runs.items()}
    rows = [
        ["sum of the rounds' `seconds` (rounds.csv / RoundResult)", f"{med['direct']['rounds']:.2f}",
         f"{med['tune']['rounds']:.2f}", f"{100 * in_rounds:+.1f}%"],
        ["outside the rounds: data, model, rows, resume states, reports (overhead as a share of the direct wall)",
         f"{med['direct']['outside']:.2f}", f"{med['tune']['outside']:.2f}", f"{100 * outside:+.1f}%"],
        ["the trial: `run_trajectory` wall vs Tune's `time_total_s`", f"{med['direct']['wall']:.2f}",
         f"{med['tune']['trial']:.2f}", f"{100 * per_trial:+.1f}%"],
        ["end to end: `run_trajectory` wall vs `run_sweep` wall", f"{med['direct']['wall']:.2f}",
         f"{med['tune']['wall']:.2f}", f"{100 * end_to_end:+.1f}%"],
    ]
    body = f"""Command: `python bench/ray_overhead.py` ({args.repeats} interleaved repeats, median). Measured {C.machine_line(info)}.

One LeNet trajectory on mnist_subset, {ROUNDS} rounds x {EPOCHS} epoch (crop+flip, batch 32), 1 torch thread. *Direct*:
`ltray.training.run_trajectory` in a fresh Python process (timed after its imports, like a Tune worker's function;
data caches and the allocator start cold in both), mask files written. *Tune*: the same trajectory as the only trial of a sweep built in code, `run_sweep(plan, num_cpus=1)`
on a private local Ray (tmp storage), which also writes the trial's mask, rows and resume state on the experiment's storage every round (Tune keeps no checkpoint).

{C.table(["what is compared", "direct s", "Tune s", "overhead"], rows)}

What each line includes: the rounds' `seconds` time each round from writing its mask to computing the next
mask (training, evaluation, pruning), not the per-round report; Tune's `time_total_s` is the trial's own clock,
from its function's start to its last report (data loading, model building, every round and every report and
file it writes), i.e. the per-trial overhead the goal is about, excluding the trial process's start; the end-to-end
line adds starting and stopping Ray, the consensus actor, the trial's worker process (importing torch there) and
writing the tables and summary, a fixed cost per sweep rather than per trial.
Goal: <= {100 * GOAL:.0f}% per trial (the third line). In seconds, a trial inside Tune took
{med['tune']['trial'] - med['direct']['wall']:+.2f} s more than directly. Both clocks include torch's one-time import of
`torch._dynamo` when the process builds its first optimizer, so on this small trajectory much of the denominator
is that import; the difference in seconds is the number to read. A trial's worker imports what trains (torch,
`ltray.training`) when it loads the trainable, as Tune creates the trial, before the trial's clock starts
(`ltray/sweep/trainable.py`; the driver never imports torch). With those imports inside the trial's function
instead, this benchmark read +1.19 s, +94.9% per trial (2026-12-04, Intel Xeon, 2 cores): a cost of the worker's
start, which the direct run does not time either, counted on the trial's clock.

The machine's {os.cpu_count()} cores were {busy['direct']:.1f} busy on average (all processes, /proc/stat) during the direct runs and
{busy['tune']:.1f} during the Tune runs. Inside a round the trial runs the same code with the same single torch thread as the
direct run (the trainable does nothing until the round ends), so a longer round inside Tune is time the trial's thread
waited for a core; the bookkeeping Ray and ltray add per trial is the line "outside the rounds".

Where the time went (profiled 2026-12-03 with py-spy and /proc on the shared 2-core machine, load 6-10). The rounds
cost the same CPU in both: the trajectory's thread CPU time (`time.thread_time`) was 2.97-3.13 s directly and
3.08-3.10 s inside a Tune trial. `py-spy record --threads --idle` of the trial's process (12 s, 200 Hz) shows nothing
that competes with the training thread: its top frames are torch's `_engine_run_backward` (385 samples),
`_max_pool2d` (207), `Conv2d._conv_forward` (178) and `Linear.forward` (44), then `Condition.wait` in Tune's
`_report_training_result` (22 per-round reports, 414 after the last round waiting for Tune to stop the trial);
Tune's main thread waits in `_TrainSession.get_next` -> `Queue.get` (969, idle, waking every 0.2 s) and
`Worker.main_loop` (448, idle), Ray's `PythonGCThread` is idle. Per-thread CPU from /proc over 8 s of training: the
training thread 4.81 s, every other thread of the trial's process under 0.02 s, and the whole rest of the Ray
session (driver and its Tune loop, raylet, GCS, agents, consensus actor) 0.57 CPU-s during a 10 s trial. What
differed is priority: the raylet starts every worker at nice 15 (`RAY_worker_niceness`), where the scheduler gives
the trial's thread a weight of 36 against 1024 for any nice-0 process, i.e. only the CPU time the rest of the
machine leaves over; the direct run had nice 0. ltray's private local Ray now starts its workers at nice 0
(`ray_compat.local_ray_env`; a user's `RAY_worker_niceness` wins), so a trial competes on the same terms as a direct
run; a `ray start` cluster keeps Ray's default (set `RAY_worker_niceness=0` in the node's environment to change it)."""
    C.update_section("bench-ray", "3. Ray overhead", body, summary)


if __name__ == "__main__":
    main()
