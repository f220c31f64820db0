"""Follow-up tickets as tables: each follow-up row labelled with the ticket kind it is plotted as,
bespoke tickets taken from a target's own trajectory where no retrained one exists, accuracy per
target over seeds (figure 6) and the headline table. Pure pandas; no masks, no plotting."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltray.experiment.labels import TrialKind
from ltray.experiment.plan_file import PlanFile

from .loading import group_recipe
from .tables import consensus_chance, plain_consensus
from ltray.experiment import tickets as T

PRET = "prêt-à-porter"
PRET_LOO = "prêt-à-porter, leave-one-out"
BESPOKE_SAME = "bespoke, same task"
BESPOKE_TRAJ = "bespoke, same task (its trajectory)"
BESPOKE_OTHER = "bespoke, other source tasks"
RANDOM = "random"
CATEGORIES = [PRET, PRET_LOO, BESPOKE_SAME, BESPOKE_TRAJ, BESPOKE_OTHER, RANDOM]  # plotting order


# ltray's ticket kinds (ltray.experiment.tickets, shared with the closing summary) as plotted
_NAMES = {T.PRET: PRET, T.LOO: PRET_LOO, T.BESPOKE_OWN: BESPOKE_SAME, T.BESPOKE_OTHER: BESPOKE_OTHER,
          T.RANDOM: RANDOM}


def category_of(row) -> str:
    """The ticket kind a follow-up row is plotted as."""
    return _NAMES[T.ticket_kind(row["kind"], row["source"], row["task"], bool(row["leave_one_out"]))]


def loo_threshold_map(plan: PlanFile | None) -> dict[tuple[str, int], int]:
    """(group, leave-one-out threshold) -> the plain threshold it was resolved alongside
    (plan.json lists both per group in the same order, e.g. 'all' -> N and N - 1)."""
    out = {}
    for g in plan.groups if plan is not None else []:
        for k, k_loo in zip(g.thresholds, g.loo_thresholds):
            out.setdefault((g.group_id, k_loo), k)
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


def trajectory_tickets(labelled: pd.DataFrame, bespoke: pd.DataFrame) -> pd.DataFrame:
    """Bespoke tickets of targets that have no retrained same-task ticket (held-out targets
    with their own trajectory, or bespoke baselines switched off): the round of the target's
    trajectory (same arch, seed, technique) whose sparsity is closest to the prêt-à-porter
    ticket's, as rows like `labelled`'s with category BESPOKE_TRAJ."""
    from ltray.consensus import closest_round

    if labelled.empty or bespoke is None or bespoke.empty:
        return labelled.iloc[0:0]
    b = bespoke.dropna(subset=["test_acc", "sparsity"])
    keys = ["group", "seed", "threshold", "task"]
    have_same = set(map(tuple, labelled.loc[labelled["category"] == BESPOKE_SAME, keys].values))
    out = []
    for _, p in labelled[labelled["category"] == PRET].iterrows():
        if tuple(p[keys]) in have_same:
            continue
        traj = b[(b["arch"] == p["arch"]) & (b["seed"] == p["seed"])
                 & (b["technique"] == p["technique"]) & (b["task"] == p["task"])]
        if traj.empty:
            continue
        rnd = closest_round(dict(zip(traj["round"].astype(int), traj["sparsity"])), p["sparsity"])
        t = traj[traj["round"] == rnd].iloc[0]
        out.append({**p.to_dict(), "trial_id": t["trial_id"], "kind": TrialKind.BESPOKE.value,
                    "category": BESPOKE_TRAJ, "source": p["task"], "source_round": rnd,
                    "sparsity": t["sparsity"], "test_acc": t["test_acc"],
                    "mask_path": t["mask_path"]})
        have_same.add(tuple(p[keys]))  # one per (group, seed, threshold, target)
    return pd.DataFrame(out, columns=labelled.columns)


def label_followups(followups: pd.DataFrame, plan: PlanFile | None = None,
                    bespoke: pd.DataFrame | None = None) -> pd.DataFrame:
    """Follow-up rows with results, plus their `recipe`, plotting `category`, and
    `threshold` set to the plain threshold they are compared with (`ticket_threshold`: own);
    with `bespoke`, also trajectory tickets for targets without a retrained own ticket."""
    df = followups.dropna(subset=["test_acc"]).copy()
    if df.empty:
        return df
    df["recipe"] = [group_recipe(g, s) for g, s in zip(df["group"], df["seed"])]
    df["category"] = df.apply(category_of, axis=1)
    df["ticket_threshold"] = df["threshold"]
    df["threshold"] = _panel_thresholds(df, loo_threshold_map(plan))
    traj = trajectory_tickets(df, bespoke)
    return pd.concat([df, traj], ignore_index=True) if len(traj) else df


def _rounds_text(values) -> str:
    rs = sorted({int(v) for v in values if not pd.isna(v)})
    return ";".join(map(str, rs))


def followup_summary(followups: pd.DataFrame, plan: PlanFile | None = None,
                     bespoke: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test accuracy per (arch, consensus recipe, threshold, target, category) (figure 6):
    the mean of per-seed means, and the std over seeds (NaN with one seed). Several tickets of
    one seed (other sources' transfers) are pooled into their seed's mean, so the std never
    mixes spread over sources with spread over seeds. `recipe`: the group id without its seed."""
    df = label_followups(followups, plan, bespoke)
    if df.empty:
        return pd.DataFrame()
    keys = ["arch", "recipe", "threshold", "task", "category"]
    per_seed = df.groupby(keys + ["seed"], sort=True, dropna=False).agg(
        acc=("test_acc", "mean"), tickets=("test_acc", "count"),
        ticket_threshold=("ticket_threshold", "first"), held_out=("held_out", "any"),
        sparsity=("sparsity", "mean"), rounds=("source_round", _rounds_text)).reset_index()
    out = per_seed.groupby(keys, sort=True, dropna=False).agg(
        ticket_threshold=("ticket_threshold", "first"),
        test_acc_mean=("acc", "mean"), test_acc_std=("acc", "std"),
        n=("tickets", "sum"), n_seeds=("seed", "nunique"), held_out=("held_out", "any"),
        sparsity_mean=("sparsity", "mean"),
        source_rounds=("rounds", lambda v: _rounds_text(x for s in v for x in s.split(";") if x)),
    ).reset_index()
    return out


def headline(consensus: pd.DataFrame, followups: pd.DataFrame, plan: PlanFile | None = None,
             bespoke: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Headline: per arch and consensus recipe/threshold, consensus sparsity beside its chance
    level (independent source masks of the same densities, ltray.chance), sequential rounds
    saved (equivalent_rounds - source_round) and per-target accuracy gap (prêt-à-porter minus
    the target's own bespoke ticket: retrained, else its trajectory's closest round; means over
    seeds). Returns (wide summary, long per-target)."""
    cons = plain_consensus(consensus)
    if cons.empty:
        return pd.DataFrame(), pd.DataFrame()
    cons["chance_sparsity"] = consensus_chance(cons, bespoke)
    keys = ["arch", "recipe", "technique", "source_round", "threshold", "n_sources"]
    base = cons.groupby(keys).agg(
        n_seeds=("seed", "nunique"), consensus_sparsity=("sparsity", "mean"),
        chance_sparsity=("chance_sparsity", lambda v: v.mean(skipna=False)),
        equivalent_rounds=("equivalent_rounds", "mean")).reset_index()
    base["rounds_saved"] = base["equivalent_rounds"] - base["source_round"]
    summary = followup_summary(followups, plan, bespoke)
    long_rows = []
    for _, b in base.iterrows():
        if summary.empty:
            break
        sel = summary[(summary["arch"] == b["arch"]) & (summary["recipe"] == b["recipe"])
                      & (summary["threshold"] == b["threshold"])]
        for target, tsel in sel.groupby("task", sort=True):
            acc = dict(zip(tsel["category"], tsel["test_acc_mean"]))
            pret = acc.get(PRET, np.nan)
            same_from = ("retrained ticket" if BESPOKE_SAME in acc
                         else "trajectory round" if BESPOKE_TRAJ in acc else "")
            same = acc.get(BESPOKE_SAME, acc.get(BESPOKE_TRAJ, np.nan))
            long_rows.append({
                "arch": b["arch"], "recipe": b["recipe"], "threshold": b["threshold"],
                "target": target, "held_out": bool(tsel["held_out"].any()),
                "acc_pret_a_porter": pret, "acc_pret_a_porter_loo": acc.get(PRET_LOO, np.nan),
                "acc_bespoke_same_task": same, "bespoke_same_task_from": same_from,
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
