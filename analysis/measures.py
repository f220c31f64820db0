"""Numbers computed from mask files with ltray's own metrics (ltray.masks, ltray.consensus):
distances when similarity.csv is absent, vote histograms and shared fractions across tasks,
per-layer kept fractions of consensus masks. Masks are loaded one group at a time."""

from __future__ import annotations

from itertools import combinations, permutations

import numpy as np
import pandas as pd

from .loading import ALL_LAYERS, SIMILARITY_COLUMNS, Experiment
from .tables import plain_consensus


def _bespoke_masks(exp: Experiment, keys: list[str]):
    """Yield (key values, [(row, mask), ...]) per group of bespoke rows whose mask loads."""
    df = exp.bespoke
    if df.empty:
        return
    for key, rows in df.groupby(keys, sort=True):
        loaded = []
        for _, row in rows.sort_values(["task", "technique", "trial_id"]).iterrows():
            mask = exp.mask(exp.mask_file(row))
            if mask is not None:
                loaded.append((row, mask))
        yield key, loaded


def compute_similarity(exp: Experiment) -> pd.DataFrame:
    """similarity.csv's rows recomputed from masks: per (arch, seed, round), every pair that
    shares a task (different techniques) or a technique (different tasks)."""
    from ltray.masks import jaccard_distance, layer_jaccard

    out = []
    for (arch, seed, rnd), loaded in _bespoke_masks(exp, ["arch", "seed", "round"]):
        for (ra, ma), (rb, mb) in combinations(loaded, 2):
            same_task = ra["task"] == rb["task"]
            same_tech = ra["technique"] == rb["technique"]
            if same_task == same_tech:  # both equal: a duplicate; neither: not compared
                continue
            base = {"arch": arch, "seed": seed, "round": rnd,
                    "task_a": ra["task"], "technique_a": ra["technique"], "trial_a": ra["trial_id"],
                    "task_b": rb["task"], "technique_b": rb["technique"], "trial_b": rb["trial_id"]}
            for layer, d in layer_jaccard(ma, mb).items():
                out.append({**base, "layer": layer, "jaccard_distance": d})
            out.append({**base, "layer": ALL_LAYERS, "jaccard_distance": jaccard_distance(ma, mb)})
    return pd.DataFrame(out, columns=SIMILARITY_COLUMNS)


def task_overlap(exp: Experiment) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Across tasks, for each (arch, seed, technique, round) with masks of >= 2 tasks:
    vote histograms (how many weights survive on exactly v of the N task masks, v = 0..N) and
    shared fractions |A n B| / |A| for every ordered pair of tasks."""
    from ltray.masks.votes import VoteCounts
    from ltray.masks import shared_fraction, sparsity

    votes, shared = [], []
    for (arch, seed, tech, rnd), loaded in _bespoke_masks(exp, ["arch", "seed", "technique", "round"]):
        by_task = {}
        for row, mask in loaded:
            by_task.setdefault(row["task"], mask)  # one mask per task
        if len(by_task) < 2:
            continue
        first = next(iter(by_task.values()))
        counts = VoteCounts({name: m.shape for name, m in first.items()})
        for mask in by_task.values():
            counts.add(mask)
        hist = np.asarray(counts.histogram())
        total = int(hist.sum())
        tasks = ";".join(by_task)
        for v, c in enumerate(hist):
            votes.append({"arch": arch, "seed": seed, "technique": tech, "round": rnd,
                          "n_tasks": len(by_task), "tasks": tasks, "votes": v, "weights": int(c),
                          "fraction": c / total if total else np.nan})
        for (ta, ma), (tb, mb) in permutations(by_task.items(), 2):
            shared.append({"arch": arch, "seed": seed, "technique": tech, "round": rnd,
                           "task_a": ta, "task_b": tb, "sparsity_a": sparsity(ma),
                           "sparsity_b": sparsity(mb), "shared_fraction": shared_fraction(ma, mb)})
    return pd.DataFrame(votes), pd.DataFrame(shared)


def shared_summary(shared: pd.DataFrame) -> pd.DataFrame:
    """Mean/min/max shared fraction and mean sparsity per (arch, technique, round)."""
    if shared.empty:
        return pd.DataFrame()
    g = shared.groupby(["arch", "technique", "round"], sort=True)
    return g.agg(sparsity_mean=("sparsity_a", "mean"),
                 shared_mean=("shared_fraction", "mean"), shared_min=("shared_fraction", "min"),
                 shared_max=("shared_fraction", "max"), n_pairs=("shared_fraction", "count"),
                 n_seeds=("seed", "nunique")).reset_index()


def consensus_layers(exp: Experiment) -> pd.DataFrame:
    """Per layer of each plain consensus mask: its size (weights) and the fraction kept."""
    from ltray.masks import layer_sparsity

    out = []
    for _, row in plain_consensus(exp.consensus).iterrows():
        mask = exp.mask(row["mask_path"]) if row["mask_path"] else None
        if mask is None:
            continue
        for layer, s in layer_sparsity(mask).items():
            out.append({"group": row["group"], "recipe": row["recipe"], "arch": row["arch"],
                        "seed": row["seed"], "threshold": row["threshold"],
                        "n_sources": row["n_sources"], "layer": layer,
                        "size": int(mask[layer].size), "kept_fraction": 1.0 - s})
    return pd.DataFrame(out)
