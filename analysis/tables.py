"""Pure pandas aggregations of the experiment's tables: accuracy vs sparsity, distances between
techniques and tasks, plain consensus rows. Follow-up tickets and the headline table are in
analysis/tickets.py. No masks, no plotting."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .loading import ALL_LAYERS, group_recipe


def _spread(df: pd.DataFrame, keys: list[str], value: str, name: str) -> pd.DataFrame:
    """Mean, sample std (NaN for one value) and count of `value` per `keys`."""
    g = df.groupby(keys, sort=True, dropna=False)[value]
    out = pd.DataFrame({f"{name}_mean": g.mean(), f"{name}_std": g.std(ddof=1), "n": g.count()})
    return out.reset_index()


def accuracy_vs_sparsity(bespoke: pd.DataFrame) -> pd.DataFrame:
    """Bespoke test accuracy per (arch, task, technique, round), over seeds (figure 1)."""
    df = bespoke.dropna(subset=["test_acc", "sparsity"])
    if df.empty:
        return pd.DataFrame()
    keys = ["arch", "task", "technique", "round"]
    acc = _spread(df, keys, "test_acc", "test_acc").rename(columns={"n": "n_seeds"})
    sp = df.groupby(keys)["sparsity"].mean().rename("sparsity_mean").reset_index()
    return sp.merge(acc, on=keys)


def _same_task_pairs(sim: pd.DataFrame) -> pd.DataFrame:
    """Rows comparing two techniques on the same task, with the pair in sorted order."""
    df = sim[(sim["task_a"] == sim["task_b"]) & (sim["technique_a"] != sim["technique_b"])].copy()
    lo = np.where(df["technique_a"] < df["technique_b"], df["technique_a"], df["technique_b"])
    hi = np.where(df["technique_a"] < df["technique_b"], df["technique_b"], df["technique_a"])
    df["pair"] = [f"{a} vs {b}" for a, b in zip(lo, hi)]
    return df


def reference_layer_distances(sim: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per-layer distance of each technique to `reference`, over seeds and tasks (figure 2a)."""
    df = _same_task_pairs(sim)
    df = df[(df["technique_a"] == reference) | (df["technique_b"] == reference)].copy()
    if df.empty:
        return pd.DataFrame()
    df["technique"] = np.where(df["technique_a"] == reference, df["technique_b"],
                               df["technique_a"])
    return _spread(df, ["arch", "technique", "layer", "round"], "jaccard_distance", "distance")


def pair_distances(sim: pd.DataFrame) -> pd.DataFrame:
    """Whole-network distance per technique pair and round, over seeds and tasks (figure 2b)."""
    df = _same_task_pairs(sim)
    df = df[df["layer"] == ALL_LAYERS]
    if df.empty:
        return pd.DataFrame()
    return _spread(df, ["arch", "pair", "round"], "jaccard_distance", "distance")


def cross_task_distances(sim: pd.DataFrame, technique: str) -> pd.DataFrame:
    """Whole-network distance between tasks for one technique, mean over seeds, both orders."""
    df = sim[(sim["layer"] == ALL_LAYERS) & (sim["technique_a"] == technique)
             & (sim["technique_b"] == technique) & (sim["task_a"] != sim["task_b"])]
    if df.empty:
        return pd.DataFrame()
    swapped = df.rename(columns={"task_a": "task_b", "task_b": "task_a"})
    both = pd.concat([df, swapped], ignore_index=True)
    # a pair listed in both orders would count twice per seed: average per seed first
    per_seed = both.groupby(["arch", "round", "task_a", "task_b", "seed"])["jaccard_distance"]
    per_seed = per_seed.mean().reset_index()
    return _spread(per_seed, ["arch", "round", "task_a", "task_b"], "jaccard_distance",
                   "distance").rename(columns={"n": "n_seeds"})


def techniques_with_cross_task(sim: pd.DataFrame) -> list[str]:
    """Techniques that have pairs of different tasks, most pairs first."""
    df = sim[(sim["technique_a"] == sim["technique_b"]) & (sim["task_a"] != sim["task_b"])]
    return list(df["technique_a"].value_counts().index)


def plain_consensus(consensus: pd.DataFrame) -> pd.DataFrame:
    """consensus.csv rows of plain (not leave-one-out) consensus, with their `recipe`."""
    df = consensus[consensus["leave_out"] == ""].copy()
    df["recipe"] = [group_recipe(g, s) for g, s in zip(df["group"], df["seed"])]
    return df


def consensus_chance(consensus: pd.DataFrame, bespoke: pd.DataFrame | None) -> pd.Series:
    """Per consensus row, the sparsity its k-of-N vote would reach if the source masks were
    independent with the sources' densities at the source round (ltray.chance); NaN while a
    source's round is not in rounds.csv."""
    from ltray.chance import chance_sparsity

    index = {}
    if bespoke is not None and not bespoke.empty:
        b = bespoke.dropna(subset=["sparsity"])
        keys = zip(b["task"], b["arch"], b["technique"], b["seed"], b["round"].astype(int))
        index = dict(zip(keys, b["sparsity"]))
    out = []
    for row in consensus.itertuples(index=False):
        sources = [s for s in str(row.sources).split(";") if s]
        found = [index.get((s, row.arch, row.technique, row.seed, int(row.source_round))) for s in sources]
        if not sources or any(v is None or pd.isna(v) for v in found) or pd.isna(row.threshold):
            out.append(np.nan)
        else:
            out.append(chance_sparsity([1.0 - v for v in found], int(row.threshold)))
    return pd.Series(out, index=consensus.index, dtype="float64", name="chance_sparsity")
