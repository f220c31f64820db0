"""The closing summary: pret-a-porter vs bespoke vs random tickets per target task, from the
rounds table."""

from __future__ import annotations

import pandas as pd

from ltray.experiment import layout
from ltray.experiment.ids import GroupId
from ltray.experiment.schemas import ROUNDS
from ltray.storage import Storage
from ltray.experiment.tables import read_table
from ltray.experiment.tickets import FOLLOWUP_KINDS, PRET, TICKET_KINDS, ticket_kind


def summary_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture x consensus name x threshold x target; test accuracy averaged over seeds.

    Columns: pret_a_porter (consensus ticket), loo (leave-one-out consensus, where run),
    bespoke_own (the target's own bespoke ticket at the matched sparsity), bespoke_other (mean over
    the other sources' bespoke tickets), random, and the tickets' mean sparsity.
    """
    f = rounds[rounds["kind"].isin(FOLLOWUP_KINDS)].copy()
    if f.empty:
        return pd.DataFrame()
    f["name"] = [GroupId.parse(g).name for g in f["group"]]
    f["leave_one_out"] = f["leave_one_out"].fillna(False).astype(bool)
    f["held_out"] = f["held_out"].fillna(False).astype(bool)
    f["column"] = [ticket_kind(k, s, d, loo) for k, s, d, loo in zip(f["kind"], f["source"], f["task"],
                                                                      f["leave_one_out"])]
    keys = ["arch", "name", "threshold", "task", "held_out"]
    acc = f.pivot_table(index=keys, columns="column", values="test_acc", aggfunc="mean")
    spars = f[f["column"].eq(PRET)].groupby(keys)["sparsity"].mean()
    table = acc.join(spars.rename("sparsity")).reset_index()
    table["threshold"] = table["threshold"].astype(int)
    order = keys + ["sparsity"] + [c for c in TICKET_KINDS if c in table.columns]
    return table[order].rename(columns={"task": "target"})


def write_summary(storage: Storage) -> str:
    """Write summary.csv and summary.txt; return the text to print."""
    rounds = read_table(storage, ROUNDS)
    if rounds is None:
        return "no results yet"
    table = summary_table(rounds)
    if table.empty:
        text = "no follow-up trials finished: no consensus group was complete"
    else:
        text = table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
    storage.write_text(layout.SUMMARY_CSV, table.to_csv(index=False))
    storage.write_text(layout.SUMMARY_TXT, text + "\n")
    return text
