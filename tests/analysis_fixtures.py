"""Synthetic experiment folders for the analysis tests, in exactly the sweep runner's formats
(as in a real `make demo` folder): masks/<trial>/round_XX.ltmask and ticket.ltmask, consensus
masks with -loo- and -random variants, rounds.csv with empty cells where bespoke rows have no
follow-up fields, plan.json groups with group_id/sources/source_trials/targets. A tiny fake
architecture (32 prunable weights) with hand-chosen masks keeps every overlap countable by hand.

Weights are numbered 0..31 in mask order: layer a.weight (4x5) holds 0..19, b.weight (3x4) 20..31.
A bespoke mask keeps a contiguous run of indices, shifted by 2 per technique and 1 per seed
(mod 32), so every (technique, seed) sees the same overlaps between tasks:

    round 0: all 32 kept;  round 1 (50% sparse): t1 0..15, t2 8..23, t3 12..27, t4 16..31
    round 2 (75% sparse): t1 0..7, t2 4..11, t3 6..13, t4 24..31

The consensus group's sources are t1, t2, t3 (source round 1), thresholds 3 and 2 of 3.
"""

from __future__ import annotations

import hashlib
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ltray.experiment.layout import FORMAT_VERSION
from ltray.experiment.schemas import ROUNDS
from ltray.masks import save_mask

ARCH = "tiny"
SHAPES = {"a.weight": (4, 5), "b.weight": (3, 4)}
N_WEIGHTS = 32
TASKS = ("t1", "t2", "t3")  # the consensus sources (and the default grid)
DEMO_TASKS = ("t1", "t2", "t3", "t4")  # grid of the demo-shaped folder: t4 is held out
DEMO_TARGETS = ("t1", "t2", "t3", "t4", "t5")  # t5: held out, no trajectory of its own
TECHNIQUES = ("global_unstructured", "l1_unstructured")
KEPT = {  # round -> task -> kept indices before the technique/seed shift
    0: {t: range(0, 32) for t in DEMO_TASKS},
    1: {"t1": range(0, 16), "t2": range(8, 24), "t3": range(12, 28), "t4": range(16, 32)},
    2: {"t1": range(0, 8), "t2": range(4, 12), "t3": range(6, 14), "t4": range(24, 32)},
}
GROUP_NAME = "c"
SOURCE_ROUND = 1
THRESHOLDS = (3, 2)  # 'all' resolves to 3; its leave-one-out threshold is 2 of 2
ROUNDS_COLUMNS = ROUNDS.names  # rounds.csv's columns, in the runner's order
FRACTION = 0.5  # per-round pruning fraction of the fixture (sparsity 1 - 0.5**r)
# follow-up test accuracies of the default folder, all at threshold 3:
# (kind, target, source) -> per seed
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


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def trial_id(task, technique, seed) -> str:
    return f"bespoke-{task}-{ARCH}-{technique}-s{seed}-{_hash(f'{task}{technique}{seed}')}"


def group_id(seed: int, technique: str = TECHNIQUES[0]) -> str:
    return f"{GROUP_NAME}-{ARCH}-s{seed}-{technique}-r{SOURCE_ROUND}"


def followup_id(kind: str, seed: int, k: int, target: str, source: str = "", rnd: int = 0,
                loo: bool = False) -> str:
    """The runner's follow-up trial ids: kind-group-t<k>-[loo-<task> | <source>-r<round>-]target."""
    g = group_id(seed)
    if loo:
        body = f"{g}-t{k}-loo-{target}"
    elif kind == "transfer":
        body = f"{g}-t{k}-{source}-r{rnd}-{target}"
    else:
        body = f"{g}-t{k}-{target}"
    return f"{kind}-{body}-{_hash(kind + body)}"


def bespoke_acc(task: str, technique: str, seed: int, rnd: int) -> float:
    return (0.9 - 0.05 * rnd - 0.01 * DEMO_TASKS.index(task) - 0.02 * TECHNIQUES.index(technique)
            + 0.01 * seed)


def round_sparsity(task: str, rnd: int) -> float:
    return 1 - len(KEPT[rnd][task]) / N_WEIGHTS


def _row(**kw) -> dict:
    """A rounds.csv row; follow-up fields stay empty (None -> empty cell) unless given."""
    base = {"effective_sparsity": kw.get("sparsity"), "train_loss": 0.5, "val_acc": kw.get("test_acc"),
            "seconds": 1.0, "group": None, "threshold": None, "source": None, "source_round": None,
            "held_out": None, "leave_one_out": None, "device": "cpu"}
    return {**base, **kw}


def jaccard(a: set, b: set) -> float:
    union = a | b
    return 1 - len(a & b) / len(union) if union else 0.0


def consensus_kept(seed: int, k: int, sources=TASKS) -> set[int]:
    masks = [kept(t, TECHNIQUES[0], seed, SOURCE_ROUND) for t in sources]
    return {i for i in range(N_WEIGHTS) if sum(i in m for m in masks) >= k}


def build_experiment(root: Path, seeds=(0, 1), rounds=(0, 1, 2), tasks=TASKS, techniques=TECHNIQUES,
                     consensus: bool = True, followups: bool = True, similarity: bool = True,
                     plan: bool = True, planned_rounds: int = 3, full_followups: bool = False,
                     targets=("t1", "t2", "t3", "t4")) -> Path:
    """Write an experiment folder at `root`; the flags leave parts out (a running experiment).
    `full_followups`: every follow-up the runner plans (see demo_followup_acc), else the
    hand-picked FOLLOWUP_ACC set."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        for tech in techniques:
            for task in tasks:
                tid = trial_id(task, tech, seed)
                for rnd in rounds:
                    rel = f"masks/{tid}/round_{rnd:02d}.ltmask"
                    save_mask(root / rel, indices_mask(kept(task, tech, seed, rnd)))
                    rows.append(_row(trial_id=tid, kind="bespoke", task=task, arch=ARCH, technique=tech,
                                     seed=seed, round=rnd, sparsity=round_sparsity(task, rnd),
                                     test_acc=bespoke_acc(task, tech, seed, rnd), mask_path=rel))
    if consensus:
        cons_rows = [r for seed in seeds
                     for r in _write_consensus(root, seed, loo=full_followups or seed == 0)]
        pd.DataFrame(cons_rows).to_csv(root / "consensus.csv", index=False)
    if consensus and followups:
        for seed in seeds:
            rows += (_full_followups(root, seed, targets) if full_followups
                     else _picked_followups(root, seed))
    pd.DataFrame(rows)[ROUNDS_COLUMNS].to_csv(root / "rounds.csv", index=False)
    if similarity:
        _write_similarity(root, seeds, rounds, tasks, techniques)
    if plan:
        _write_plan(root, seeds, tasks, techniques, targets, planned_rounds)
    (root / "sweep.yaml").write_text(
        f"name: fixture\ngrid:\n  archs: [{ARCH}]\nprune:\n  fraction: {FRACTION}\n")
    (root / "experiment.json").write_text(json.dumps({"format": FORMAT_VERSION, "name": "fixture"}))
    return root


def build_demo_like(root: Path, seeds=(0,)) -> Path:
    """Shaped like `make demo`'s folder: 4 grid tasks x 2 techniques, one seed, rounds 0..2; one
    consensus group of t1..t3 at thresholds 3 and 2 with leave-one-out tickets; every follow-up
    (prêt-à-porter, random, transfer) on 5 targets, t4 (in the grid) and t5 (not) held out."""
    return build_experiment(root, seeds=seeds, tasks=DEMO_TASKS, full_followups=True,
                            targets=DEMO_TARGETS)


def _write_similarity(root, seeds, rounds, tasks, techniques):
    """Pairs sharing a task or a technique, per layer and whole network."""
    out = []
    for seed in seeds:
        for rnd in rounds:
            trials = [(task, tech) for tech in techniques for task in tasks]
            for (ta, ka), (tb, kb) in combinations(trials, 2):
                if (ta == tb) == (ka == kb):
                    continue
                a, b = kept(ta, ka, seed, rnd), kept(tb, kb, seed, rnd)
                base = {"arch": ARCH, "seed": seed, "round": rnd, "task_a": ta, "technique_a": ka,
                        "trial_a": trial_id(ta, ka, seed), "task_b": tb, "technique_b": kb,
                        "trial_b": trial_id(tb, kb, seed)}
                out.append({**base, "layer": "a.weight", "jaccard_distance": jaccard(
                    {i for i in a if i < 20}, {i for i in b if i < 20})})
                out.append({**base, "layer": "b.weight", "jaccard_distance": jaccard(
                    {i for i in a if i >= 20}, {i for i in b if i >= 20})})
                out.append({**base, "layer": "__all__", "jaccard_distance": jaccard(a, b)})
    pd.DataFrame(out).to_csv(root / "similarity.csv", index=False)


def _write_plan(root, seeds, tasks, techniques, targets, planned_rounds):
    doc = {"trajectories": [{"trial_id": trial_id(t, k, s), "task": t, "arch": ARCH, "technique": k,
                             "seed": s, "rounds": planned_rounds}
                            for s in seeds for k in techniques for t in tasks],
           "groups": [{"group": group_id(s), "name": GROUP_NAME, "arch": ARCH, "seed": s,
                       "technique": TECHNIQUES[0], "source_round": SOURCE_ROUND,
                       "thresholds": list(THRESHOLDS), "loo_thresholds": [2], "targets": list(targets),
                       "random_baseline": True, "bespoke_baseline": True, "leave_one_out": True,
                       "output_rule": "error", "source_rounds_total": planned_rounds,
                       "sources": list(TASKS),
                       "source_trials": {t: trial_id(t, TECHNIQUES[0], s) for t in TASKS}}
                      for s in seeds]}
    (root / "plan.json").write_text(json.dumps(doc, indent=1))


def _write_consensus(root: Path, seed: int, loo: bool) -> list[dict]:
    """Plain consensus at thresholds 3 (intersection) and 2, their random masks, and (with
    `loo`) the leave-one-out consensus without each source (the other two, threshold 2)."""
    tech, out = TECHNIQUES[0], []
    variants = [(k, "", TASKS) for k in THRESHOLDS]
    if loo:
        variants += [(2, left, tuple(t for t in TASKS if t != left)) for left in TASKS]
    for k, leave_out, sources in variants:
        keep = consensus_kept(seed, k, sources)
        suffix = f"-loo-{leave_out}" if leave_out else ""
        rel = f"consensus/{group_id(seed)}/t{k}{suffix}.ltmask"
        save_mask(root / rel, indices_mask(keep))
        if not leave_out:  # the random ticket: as many weights, the last ones
            save_mask(root / f"consensus/{group_id(seed)}/t{k}-random.ltmask",
                      indices_mask(range(N_WEIGHTS - len(keep), N_WEIGHTS)))
        s = 1 - len(keep) / N_WEIGHTS
        out.append({"group": group_id(seed), "name": GROUP_NAME, "arch": ARCH, "seed": seed,
                    "technique": tech, "source_round": SOURCE_ROUND, "threshold": k,
                    "leave_out": leave_out or None, "n_sources": len(sources), "sources": ";".join(sources),
                    "sparsity": s, "equivalent_rounds": np.log(1 - s) / np.log(1 - FRACTION),
                    "mask_path": rel})
    return out


def _closest_round(target_sparsity: float, task: str = "t1") -> int:
    """The bespoke round matched to a consensus sparsity (ties: the earlier round)."""
    diffs = {r: abs(round_sparsity(task, r) - target_sparsity) for r in KEPT}
    return min(r for r, d in diffs.items() if d <= min(diffs.values()) + 1e-12)


def _followup(root: Path, seed: int, kind: str, k: int, target: str, acc: float, source: str = "",
              loo: bool = False, held_out: bool = False) -> dict:
    """One follow-up row and its ticket.ltmask."""
    cons_sources = tuple(t for t in TASKS if t != target) if loo else TASKS
    cons = consensus_kept(seed, k, cons_sources)
    sparsity = 1 - len(cons) / N_WEIGHTS
    rnd = SOURCE_ROUND
    if kind == "transfer":
        rnd = _closest_round(sparsity, source)
        ticket, sparsity = kept(source, TECHNIQUES[0], seed, rnd), round_sparsity(source, rnd)
    elif kind == "random":
        ticket = set(range(N_WEIGHTS - len(cons), N_WEIGHTS))
    else:
        ticket = cons
    tid = followup_id(kind, seed, k, target, source, rnd, loo)
    rel = f"masks/{tid}/ticket.ltmask"
    save_mask(root / rel, indices_mask(ticket))
    return _row(trial_id=tid, kind=kind, task=target, arch=ARCH, technique=TECHNIQUES[0], seed=seed,
                round=0, sparsity=sparsity, test_acc=acc, mask_path=rel, group=group_id(seed),
                threshold=float(k), source=(target if loo else source) or None,
                source_round=float(rnd), held_out=held_out, leave_one_out=loo)


def _picked_followups(root: Path, seed: int) -> list[dict]:
    rows = [_followup(root, seed, kind, 3, target, accs[seed], source, held_out=target == "t4")
            for (kind, target, source), accs in FOLLOWUP_ACC.items()]
    if seed == 0:
        rows.append(_followup(root, 0, "pret_a_porter", 2, "t1", LOO_ACC, loo=True))
    return rows


def demo_followup_acc(kind: str, k: int, target: str, source: str = "", loo: bool = False,
                      seed: int = 0) -> float:
    """Test accuracies of the demo-shaped folder's follow-ups, easy to add up by hand: a target
    base (t1 0.90, t2 0.88, t3 0.86, t4 0.82, t5 0.70), minus 0.02 at threshold 3, plus per kind:
    prêt-à-porter -0.01, leave-one-out -0.03, own transfer 0, other transfer -0.02 per source
    index + 1, random -0.10; plus 0.01 per seed."""
    base = dict(zip(DEMO_TARGETS, (0.90, 0.88, 0.86, 0.82, 0.70)))[target] - (0.02 if k == 3 else 0)
    if kind == "pret_a_porter":
        off = -0.03 if loo else -0.01
    elif kind == "transfer":
        off = 0.0 if source == target else -0.02 * (TASKS.index(source) + 1)
    else:
        off = -0.10
    return round(base + off + 0.01 * seed, 6)


def _full_followups(root: Path, seed: int, targets) -> list[dict]:
    """What the runner plans per threshold: a prêt-à-porter and a random ticket per target, every
    source's bespoke ticket on every target, and for the intersection (k = 3) the leave-one-out
    ticket of each source (k = 2 of the other 2) on that source."""
    rows = []
    for k in THRESHOLDS:
        for target in targets:
            held = target not in TASKS
            for kind in ("pret_a_porter", "random"):
                rows.append(_followup(root, seed, kind, k, target,
                                      demo_followup_acc(kind, k, target, seed=seed), held_out=held))
            for source in TASKS:
                rows.append(_followup(root, seed, "transfer", k, target,
                                      demo_followup_acc("transfer", k, target, source, seed=seed),
                                      source=source, held_out=held))
    for left in TASKS:
        rows.append(_followup(root, seed, "pret_a_porter", 2, left,
                              demo_followup_acc("pret_a_porter", 3, left, loo=True, seed=seed), loo=True))
    return rows


def fake_initial_weights(arch: str, num_classes: int, seed: int, image_size) -> dict[str, np.ndarray]:
    """Initial weights of the tiny architecture: layer a holds -9.5..9.5, layer b 2 * (-5.5..5.5)
    (the same for every seed), so kept values can be worked out by hand."""
    assert arch == ARCH, arch
    return {"a.weight": (np.arange(20.0) - 9.5).reshape(4, 5),
            "b.weight": 2 * (np.arange(12.0) - 5.5).reshape(3, 4)}
