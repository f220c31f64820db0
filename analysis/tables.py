"""Pure pandas aggregations of the experiment's tables: accuracy vs sparsity, distances between
techniques and tasks, follow-up accuracies, and the headline table. No masks, no plotting."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.loading import ALL_LAYERS, group_recipe

PRET = "prêt-à-porter"
PRET_LOO = "prêt-à-porter, leave-one-out"
BESPOKE_SAME = "bespoke, same task"
BESPOKE_OTHER = "bespoke, other source tasks"
RANDOM = "random"
CATEGORIES = [PRET, PRET_LOO, BESPOKE_SAME, BESPOKE_OTHER, RANDOM]  # plotting order


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
    keys = ["arch", "dataset", "technique", "round"]
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


def category_of(row) -> str:
    """The ticket kind a follow-up row is plotted as."""
    if row["kind"] == "pret_a_porter":
        return PRET_LOO if row["leave_one_out"] else PRET
    if row["kind"] == "transfer":
        return BESPOKE_SAME if row["source"] == row["dataset"] else BESPOKE_OTHER
    return RANDOM


def loo_threshold_map(plan: dict | None) -> dict[tuple[str, int], int]:
    """(group, leave-one-out threshold) -> the plain threshold it was resolved alongside
    (plan.json lists both per group in the same order, e.g. 'all' -> N and N - 1)."""
    out = {}
    for g in (plan or {}).get("groups") or []:
        gid = g.get("group") or g.get("group_id")
        for k, k_loo in zip(g.get("thresholds") or [], g.get("loo_thresholds") or []):
            out.setdefault((gid, int(k_loo)), int(k))
    return out


def _panel_thresholds(df: pd.DataFrame, loo_map: dict) -> list:
    """The plain-consensus threshold each row is shown with: leave-one-out tickets go beside
    the plain consensus they derive from (plan.json's pairing, else k + 1 if that exists)."""
    plain = df[~df["leave_one_out"]].groupby("group")["threshold"].agg(set).to_dict()
    out = []
    for g, k, loo in zip(df["group"], df["threshold"], df["leave_one_out"]):
        if loo and not np.isnan(k):
            k = loo_map.get((g, int(k)), k + 1 if k + 1 in plain.get(g, set()) else k)
        out.append(k)
    return out


def label_followups(followups: pd.DataFrame, plan: dict | None = None) -> pd.DataFrame:
    """Follow-up rows with results, plus their `recipe`, plotting `category`, and
    `threshold` set to the plain threshold they are compared with (`ticket_threshold`: own)."""
    df = followups.dropna(subset=["test_acc"]).copy()
    if df.empty:
        return df
    df["recipe"] = [group_recipe(g, s) for g, s in zip(df["group"], df["seed"])]
    df["category"] = df.apply(category_of, axis=1)
    df["ticket_threshold"] = df["threshold"]
    df["threshold"] = _panel_thresholds(df, loo_threshold_map(plan))
    return df


def followup_summary(followups: pd.DataFrame, plan: dict | None = None) -> pd.DataFrame:
    """Test accuracy per (arch, consensus recipe, threshold, target, category) over seeds
    (figure 6). `recipe` is the group id without its seed; other-source transfers pool sources."""
    df = label_followups(followups, plan)
    if df.empty:
        return pd.DataFrame()
    keys = ["arch", "recipe", "threshold", "dataset", "category"]
    out = df.groupby(keys, sort=True, dropna=False).agg(
        ticket_threshold=("ticket_threshold", "first"),
        test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        n=("test_acc", "count"), n_seeds=("seed", "nunique"), held_out=("held_out", "any"),
        sparsity_mean=("sparsity", "mean")).reset_index()
    return out


def plain_consensus(consensus: pd.DataFrame) -> pd.DataFrame:
    """consensus.csv rows of plain (not leave-one-out) consensus, with their `recipe`."""
    df = consensus[consensus["leave_out"] == ""].copy()
    df["recipe"] = [group_recipe(g, s) for g, s in zip(df["group"], df["seed"])]
    return df


def headline(consensus: pd.DataFrame, followups: pd.DataFrame,
             plan: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Headline: per arch and consensus recipe/threshold, consensus sparsity, sequential rounds
    saved (equivalent_rounds - source_round) and per-target accuracy gap (prêt-à-porter minus
    same-task bespoke transfer, means over seeds). Returns (wide summary, long per-target)."""
    cons = plain_consensus(consensus)
    if cons.empty:
        return pd.DataFrame(), pd.DataFrame()
    keys = ["arch", "recipe", "technique", "source_round", "threshold", "n_sources"]
    base = cons.groupby(keys).agg(
        n_seeds=("seed", "nunique"), consensus_sparsity=("sparsity", "mean"),
        equivalent_rounds=("equivalent_rounds", "mean")).reset_index()
    base["rounds_saved"] = base["equivalent_rounds"] - base["source_round"]
    summary = followup_summary(followups, plan)
    long_rows = []
    for _, b in base.iterrows():
        if summary.empty:
            break
        sel = summary[(summary["arch"] == b["arch"]) & (summary["recipe"] == b["recipe"])
                      & (summary["threshold"] == b["threshold"])]
        for target, tsel in sel.groupby("dataset", sort=True):
            acc = dict(zip(tsel["category"], tsel["test_acc_mean"]))
            pret, same = acc.get(PRET, np.nan), acc.get(BESPOKE_SAME, np.nan)
            long_rows.append({
                "arch": b["arch"], "recipe": b["recipe"], "threshold": b["threshold"],
                "target": target, "held_out": bool(tsel["held_out"].any()),
                "acc_pret_a_porter": pret, "acc_bespoke_same_task": same,
                "acc_random": acc.get(RANDOM, np.nan), "gap": pret - same,
                "acc_bespoke_other_sources": acc.get(BESPOKE_OTHER, np.nan),
                "gap_other_sources": pret - acc.get(BESPOKE_OTHER, np.nan)})
    long = pd.DataFrame(long_rows)
    wide = base.copy()
    if not long.empty:
        gaps = long.pivot_table(index=["arch", "recipe", "threshold"], columns="target",
                                values="gap", aggfunc="first", dropna=False)
        gaps.columns = [f"gap_{c}" for c in gaps.columns]
        wide = wide.merge(gaps.reset_index(), on=["arch", "recipe", "threshold"], how="left")
    return wide, long
