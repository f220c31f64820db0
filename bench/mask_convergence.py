"""How many epochs a round needs before the masks stop moving, for sweeps/paper-bundled.yaml.

For each epoch count, the consensus sources of the sweep are trained with its recipe (no Ray,
ltray's run_trajectory) for rounds 0 and 1, and their round-2 masks (two pruning rounds) compared:
the mean pairwise Jaccard distance between tasks, how far each task's mask moved since the previous
epoch count, the intersection's sparsity and its chance level. Not part of run_all.py (about 10
minutes on 2 idle cores with the default epoch counts, estimated; `--epochs ... 160` doubles it).
Results: docs/paper-bundled.md.

    nice -n 10 python bench/mask_convergence.py [--epochs 5 10 20 40 80] [--workers 2] [--json F]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SWEEP = Path(__file__).resolve().parent.parent / "sweeps" / "paper-bundled.yaml"


class _Enough(Exception):
    """Raised from the round callback once round 2's mask exists (round 2 is not trained)."""


def _sources(sweep_path: Path, epochs: int):
    from ltray.orchestration.load import load_sweep
    from ltray.orchestration.plan import build_plan

    sweep = load_sweep(sweep_path)
    plan = build_plan(sweep)
    group = plan.groups[0]
    configs = {}
    for task, tid in group.source_trials.items():
        cfg = plan.by_id[tid].config
        configs[task] = cfg.model_copy(update={"rounds": 3, "train": cfg.train.model_copy(update={"epochs": epochs})})
    return sweep, group, configs


def _run(job: tuple[str, str, int]) -> dict:
    """One source task at one epoch count: its round-2 mask and rounds 0-1 metrics."""
    import tempfile

    import torch

    from ltray.training import run_trajectory

    torch.set_num_threads(1)
    sweep_path, task, epochs = job
    sweep, _, configs = _sources(Path(sweep_path), epochs)
    seen: dict = {"metrics": []}

    def on_round(result, state):
        seen["metrics"].append({"round": result.round, "val_acc": result.val_acc, "test_acc": result.test_acc,
                                "train_loss": result.train_loss})
        if result.round == 1:
            seen["mask"] = state.mask
            raise _Enough

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        try:
            run_trajectory(configs[task], d, root=sweep.data_root, device="cpu", on_round=on_round)
        except _Enough:
            pass
    return {"task": task, "epochs": epochs, "mask": seen["mask"], "metrics": seen["metrics"],
            "seconds": time.perf_counter() - start}


def summarise(runs: list[dict], epoch_counts: list[int]) -> list[dict]:
    from ltray.chance import chance_sparsity, layerwise_chance_sparsity
    from ltray.consensus import consensus_mask
    from ltray.masks import jaccard_distance, sparsity

    by = {(r["epochs"], r["task"]): r for r in runs}
    tasks = sorted({r["task"] for r in runs})
    rows, previous = [], None
    for e in epoch_counts:
        masks = {t: by[(e, t)]["mask"] for t in tasks}
        pairs = [jaccard_distance(masks[a], masks[b]) for a, b in itertools.combinations(tasks, 2)]
        cons = consensus_mask(list(masks.values()), "all")
        sources = [sparsity(m) for m in masks.values()]
        row = {
            "epochs": e,
            "mean_pairwise_distance": statistics.fmean(pairs),
            "min_pairwise_distance": min(pairs), "max_pairwise_distance": max(pairs),
            "moved_since_previous": (statistics.fmean(jaccard_distance(masks[t], previous[t]) for t in tasks)
                                     if previous else None),
            "consensus_sparsity": sparsity(cons),
            "chance_sparsity": chance_sparsity([1 - s for s in sources]),
            "layerwise_chance_sparsity": layerwise_chance_sparsity(list(masks.values())),
            "val_acc_round0": statistics.fmean(by[(e, t)]["metrics"][0]["val_acc"] for t in tasks),
            "val_acc_round1": statistics.fmean(by[(e, t)]["metrics"][1]["val_acc"] for t in tasks),
            "seconds": sum(by[(e, t)]["seconds"] for t in tasks),
        }
        rows.append(row)
        previous = masks
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| epochs | mean pairwise Jaccard distance (min-max) | moved since previous | "
            "consensus sparsity | chance | chance, per layer | val acc round 0 / 1 | seconds, jobs summed |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        moved = "—" if r["moved_since_previous"] is None else f"{r['moved_since_previous']:.3f}"
        lines.append(
            f"| {r['epochs']} | {r['mean_pairwise_distance']:.3f} ({r['min_pairwise_distance']:.3f}-"
            f"{r['max_pairwise_distance']:.3f}) | {moved} | {r['consensus_sparsity']:.1%} | "
            f"{r['chance_sparsity']:.1%} | {r['layerwise_chance_sparsity']:.1%} | "
            f"{r['val_acc_round0']:.3f} / {r['val_acc_round1']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", type=Path, default=SWEEP)
    ap.add_argument("--epochs", type=int, nargs="+", default=[5, 10, 20, 40, 80])
    ap.add_argument("--workers", type=int, default=2, help="processes, one torch thread each")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    _, group, _ = _sources(args.sweep, 1)
    jobs = [(str(args.sweep), t, e) for e in sorted(args.epochs, reverse=True) for t in group.sources]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        runs = []
        for run in pool.imap_unordered(_run, jobs):
            runs.append(run)
            print(f"  {run['task']:>14} {run['epochs']:>4} epochs: {run['seconds']:.0f} s", flush=True)
    rows = summarise(runs, sorted(args.epochs))
    print(f"sources: {', '.join(group.sources)}; wall {time.perf_counter() - start:.0f} s\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
