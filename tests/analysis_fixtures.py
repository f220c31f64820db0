"""Synthetic experiment folders for the analysis tests: a tiny fake architecture (32 prunable
weights) with hand-chosen masks whose overlaps can be counted by hand, written as real .ltmask
files with the rounds/consensus/similarity tables and plan.json of docs/experiment-folder.md.

Weights are numbered 0..31 in mask order: layer a.weight (4x5) holds 0..19, b.weight (3x4) 20..31.
A bespoke mask keeps a contiguous run of indices, shifted by 2 per technique and 1 per seed
(mod 32), so every (technique, seed) sees the same overlaps between tasks:

    round 0: all 32 kept;  round 1 (50% sparse): t1 0..15, t2 8..23, t3 12..27
    round 2 (75% sparse): t1 0..7, t2 4..11, t3 6..13
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ltray.masks import save_mask

ARCH = "tiny"
SHAPES = {"a.weight": (4, 5), "b.weight": (3, 4)}
N_WEIGHTS = 32
TASKS = ("t1", "t2", "t3")
TECHNIQUES = ("global_unstructured", "l1_unstructured")
KEPT = {  # round -> task -> kept indices before the technique/seed shift
    0: {t: range(0, 32) for t in TASKS},
    1: {"t1": range(0, 16), "t2": range(8, 24), "t3": range(12, 28)},
    2: {"t1": range(0, 8), "t2": range(4, 12), "t3": range(6, 14)},
}
GROUP_NAME = "c"
SOURCE_ROUND = 1
FRACTION = 0.5  # per-round pruning fraction of the fixture (sparsity 1 - 0.5**r)
# follow-up test accuracies: (kind, target, source) -> per seed
FOLLOWUP_ACC = {
    ("pret_a_porter", "t1", ""): (0.80, 0.82), ("transfer", "t1", "t1"): (0.85, 0.87),
    ("pret_a_porter", "t2", ""): (0.70, 0.74), ("transfer", "t2", "t2"): (0.70, 0.70),
    ("pret_a_porter", "t3", ""): (0.60, 0.60), ("transfer", "t3", "t3"): (0.65, 0.61),
    ("pret_a_porter", "t4", ""): (0.50, 0.52), ("transfer", "t4", "t1"): (0.45, 0.47),
    ("transfer", "t1", "t2"): (0.78, 0.76),
    ("random", "t1", ""): (0.30, 0.30), ("random", "t4", ""): (0.20, 0.22),
}
LOO_ACC = 0.79  # seed 0, consensus of t2 and t3 trained on t1


def indices_mask(indices) -> dict[str, np.ndarray]:
    flat = np.zeros(N_WEIGHTS, bool)
    flat[list(indices)] = True
    return {"a.weight": flat[:20].reshape(4, 5), "b.weight": flat[20:].reshape(3, 4)}


def kept(task: str, technique: str, seed: int, rnd: int) -> set[int]:
    shift = 2 * TECHNIQUES.index(technique) + seed
    return {(i + shift) % N_WEIGHTS for i in KEPT[rnd][task]}


def trial_id(task, technique, seed) -> str:
    return f"bespoke-{task}-{ARCH}-{technique}-s{seed}-0000abcd"


def group_id(seed: int, technique: str = TECHNIQUES[0]) -> str:
    return f"{GROUP_NAME}-{ARCH}-s{seed}-{technique}-r{SOURCE_ROUND}"


def bespoke_acc(task: str, technique: str, seed: int, rnd: int) -> float:
    return 0.9 - 0.05 * rnd - 0.01 * TASKS.index(task) - 0.02 * TECHNIQUES.index(technique) + 0.01 * seed


def _row(**kw) -> dict:
    base = {"effective_sparsity": kw.get("sparsity"), "train_loss": 0.5, "val_acc": kw.get("test_acc"),
            "seconds": 1.0, "group": "", "threshold": "", "source": "", "source_round": "",
            "held_out": False, "leave_one_out": False}
    return {**base, **kw}


def jaccard(a: set, b: set) -> float:
    union = a | b
    return 1 - len(a & b) / len(union) if union else 0.0


def build_experiment(root: Path, seeds=(0, 1), rounds=(0, 1, 2), tasks=TASKS, techniques=TECHNIQUES,
                     consensus: bool = True, followups: bool = True, similarity: bool = True,
                     plan: bool = True, planned_rounds: int = 3) -> Path:
    """Write an experiment folder at `root`; the flags leave parts out (a running experiment)."""
    root.mkdir(parents=True, exist_ok=True)
    rows, sim_rows = [], []
    for seed in seeds:
        for tech in techniques:
            for task in tasks:
                tid = trial_id(task, tech, seed)
                for rnd in rounds:
                    rel = f"masks/{tid}/round_{rnd:02d}.ltmask"
                    save_mask(root / rel, indices_mask(kept(task, tech, seed, rnd)))
                    rows.append(_row(trial_id=tid, kind="bespoke", dataset=task, arch=ARCH, technique=tech,
                                     seed=seed, round=rnd, sparsity=1 - len(KEPT[rnd][task]) / N_WEIGHTS,
                                     test_acc=bespoke_acc(task, tech, seed, rnd), mask_path=rel))
        for rnd in rounds:  # pairs sharing a task or a technique, per layer and whole network
            trials = [(task, tech) for tech in techniques for task in tasks]
            for (ta, ka), (tb, kb) in combinations(trials, 2):
                if (ta == tb) == (ka == kb):
                    continue
                a, b = kept(ta, ka, seed, rnd), kept(tb, kb, seed, rnd)
                base = {"arch": ARCH, "seed": seed, "round": rnd, "task_a": ta, "technique_a": ka,
                        "trial_a": trial_id(ta, ka, seed), "task_b": tb, "technique_b": kb,
                        "trial_b": trial_id(tb, kb, seed)}
                sim_rows.append({**base, "layer": "a.weight", "jaccard_distance": jaccard(
                    {i for i in a if i < 20}, {i for i in b if i < 20})})
                sim_rows.append({**base, "layer": "b.weight", "jaccard_distance": jaccard(
                    {i for i in a if i >= 20}, {i for i in b if i >= 20})})
                sim_rows.append({**base, "layer": "__all__", "jaccard_distance": jaccard(a, b)})
    cons_rows = []
    if consensus:
        cons_rows = _write_consensus(root, seeds)
        pd.DataFrame(cons_rows).to_csv(root / "consensus.csv", index=False)
    if consensus and followups:
        rows += _followup_rows(seeds)
    pd.DataFrame(rows).to_csv(root / "rounds.csv", index=False)
    if similarity:
        pd.DataFrame(sim_rows).to_csv(root / "similarity.csv", index=False)
    if plan:
        doc = {"trajectories": [{"trial_id": trial_id(t, k, s), "task": t, "arch": ARCH, "technique": k,
                                 "seed": s, "rounds": planned_rounds}
                                for s in seeds for k in techniques for t in tasks],
               "groups": [{"group": group_id(s), "sources": list(TASKS), "source_round": SOURCE_ROUND,
                           "thresholds": [3, 2], "loo_thresholds": [2]} for s in seeds]}
        (root / "plan.json").write_text(json.dumps(doc))
    (root / "sweep.yaml").write_text(f"name: fixture\ngrid:\n  archs: [{ARCH}]\n")
    return root


def _write_consensus(root: Path, seeds) -> list[dict]:
    """Plain consensus at thresholds 3 (intersection) and 2 for every seed; seed 0 also has the
    leave-one-out consensus without t1 (t2 and t3, threshold 2)."""
    tech, out = TECHNIQUES[0], []
    for seed in seeds:
        masks = [kept(t, tech, seed, SOURCE_ROUND) for t in TASKS]
        variants = [(3, "", TASKS), (2, "", TASKS)] + ([(2, "t1", TASKS[1:])] if seed == 0 else [])
        for k, leave_out, sources in variants:
            sets = [m for t, m in zip(TASKS, masks) if t in sources]
            keep = {i for i in range(N_WEIGHTS) if sum(i in m for m in sets) >= k}
            suffix = f"-loo-{leave_out}" if leave_out else ""
            rel = f"consensus/{group_id(seed)}/t{k}{suffix}.ltmask"
            save_mask(root / rel, indices_mask(keep))
            s = 1 - len(keep) / N_WEIGHTS
            out.append({"group": group_id(seed), "name": GROUP_NAME, "arch": ARCH, "seed": seed,
                        "technique": tech, "source_round": SOURCE_ROUND, "threshold": k,
                        "leave_out": leave_out, "n_sources": len(sources), "sources": ";".join(sources),
                        "sparsity": s, "equivalent_rounds": np.log(1 - s) / np.log(1 - FRACTION),
                        "mask_path": rel})
    return out


def _followup_rows(seeds) -> list[dict]:
    rows = []
    for seed in seeds:
        g = group_id(seed)
        for (kind, target, source), accs in FOLLOWUP_ACC.items():
            rnd = 2 if kind == "transfer" else SOURCE_ROUND
            tid = f"{kind}-{g}-t3-{source}-{target}"
            rows.append(_row(trial_id=tid, kind=kind, dataset=target, arch=ARCH, technique=TECHNIQUES[0],
                             seed=seed, round=0, sparsity=0.875, test_acc=accs[seed], mask_path="",
                             group=g, threshold=3, source=source, source_round=rnd,
                             held_out=target == "t4"))
        if seed == 0:
            rows.append(_row(trial_id=f"pret_a_porter-{g}-t2-loo-t1", kind="pret_a_porter", dataset="t1",
                             arch=ARCH, technique=TECHNIQUES[0], seed=0, round=0, sparsity=0.625,
                             test_acc=LOO_ACC, mask_path="", group=g, threshold=2, source="t1",
                             source_round=SOURCE_ROUND, held_out=False, leave_one_out=True))
    return rows


def fake_initial_weights(arch: str, num_classes: int, seed: int, image_size) -> dict[str, np.ndarray]:
    """Initial weights of the tiny architecture: layer a holds -9.5..9.5, layer b 2 * (-5.5..5.5)
    (the same for every seed), so kept values can be worked out by hand."""
    assert arch == ARCH, arch
    return {"a.weight": (np.arange(20.0) - 9.5).reshape(4, 5),
            "b.weight": 2 * (np.arange(12.0) - 5.5).reshape(3, 4)}
