"""The closing summary: pret-a-porter vs bespoke vs random tickets per target task, from rounds.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ltray.fileio import atomic_write_text

FOLLOWUP_KINDS = ("pret_a_porter", "transfer", "random")


def summary_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture x consensus name x threshold x target; test accuracy averaged over seeds.

    Columns: pret_a_porter (consensus ticket), loo (leave-one-out consensus, where run),
    bespoke_own (the target's own bespoke ticket at the matched sparsity), bespoke_other (mean over
    the other sources' bespoke tickets), random, and the tickets' mean sparsity.
    """
    f = rounds[rounds["kind"].isin(FOLLOWUP_KINDS)].copy()
    if f.empty:
        return pd.DataFrame()
    f["name"] = f["group"].map(_group_name)
    f["leave_one_out"] = f["leave_one_out"].astype(str).str.lower().eq("true")
    f["held_out"] = f["held_out"].astype(str).str.lower().eq("true")
    f["column"] = f["kind"]
    f.loc[f["leave_one_out"], "column"] = "loo"
    transfer = f["kind"].eq("transfer")
    f.loc[transfer & f["source"].eq(f["dataset"]), "column"] = "bespoke_own"
    f.loc[transfer & ~f["source"].eq(f["dataset"]), "column"] = "bespoke_other"
    keys = ["arch", "name", "threshold", "dataset", "held_out"]
    acc = f.pivot_table(index=keys, columns="column", values="test_acc", aggfunc="mean")
    spars = f[f["kind"].eq("pret_a_porter") & ~f["leave_one_out"]].groupby(keys)["sparsity"].mean()
    table = acc.join(spars.rename("sparsity")).reset_index()
    table["threshold"] = table["threshold"].astype(int)
    order = keys + [c for c in ("sparsity", "pret_a_porter", "loo", "bespoke_own", "bespoke_other", "random")
                    if c in table.columns]
    return table[order].rename(columns={"dataset": "target"})


def _group_name(group_id: str) -> str:
    # group ids are '<name>-<arch>-s<seed>-<technique>-r<round>'; names may contain '-'
    return group_id.rsplit("-", 4)[0] if isinstance(group_id, str) else ""


def write_summary(exp_dir: Path) -> str:
    """Write summary.csv and summary.md; return the text to print."""
    path = Path(exp_dir) / "rounds.csv"
    if not path.exists():
        return "no results yet"
    table = summary_table(pd.read_csv(path))
    if table.empty:
        text = "no follow-up trials finished: no consensus group was complete"
    else:
        text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    atomic_write_text(Path(exp_dir) / "summary.csv", table.to_csv(index=False))
    atomic_write_text(Path(exp_dir) / "summary.txt", text + "\n")
    return text
