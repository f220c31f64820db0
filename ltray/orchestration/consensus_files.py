"""A complete group's consensus files: its consensus mask at each threshold, the random ticket
with the same per-layer sparsity, the leave-one-out masks of its source targets, and their rows of
the consensus table. Written whole each time (replays rewrite identical files)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ltray.consensus import equivalent_rounds, random_ticket_like
from ltray.storage import Storage
from ltray.masks.format import mask_to_bytes
from ltray.masks.packed import PackedMask
from ltray.masks.votes import VoteCounts
from ltray.seeding import derive_seed
from ltray.experiment.plan_file import PlannedGroup


def write_group_consensus(storage: Storage, g: PlannedGroup, counts: VoteCounts,
                          own_bits: Callable[[str], np.ndarray], fraction: float) -> tuple[dict[int, float], list[dict]]:
    """Write the group's masks; return (threshold -> consensus sparsity, consensus-table rows).
    `own_bits(trial_id)` gives a source's packed mask (for its leave-one-out consensus)."""
    rows, result = [], {}
    for k in g.thresholds:
        mask = PackedMask(counts.layout, counts.consensus_packed(k))
        _save(storage, g.consensus_path(k), mask, {"group": g.group_id, "threshold": k})
        if g.random_baseline:
            rnd = random_ticket_like(mask.unpack(), derive_seed(g.seed, g.group_id, k))
            _save(storage, g.random_path(k), rnd, {"group": g.group_id, "random_of": k})
        result[k] = mask.sparsity()
        rows.append(_row(g, k, "", result[k], g.consensus_path(k), fraction))
    for k in g.loo_thresholds:
        for task, tid in g.source_trials.items():
            if task in g.targets:
                mask = PackedMask(counts.layout, counts.leave_one_out_packed(own_bits(tid), k))
                _save(storage, g.loo_path(k, task), mask, {"group": g.group_id, "leave_out": task})
                rows.append(_row(g, k, task, mask.sparsity(), g.loo_path(k, task), fraction))
    return result, rows


def _save(storage: Storage, rel: str, mask, meta: dict) -> None:
    storage.write_bytes(rel, mask_to_bytes(mask, meta, storage.describe(rel)))


def _row(g: PlannedGroup, k: int, leave_out: str, spars: float, path: str, fraction: float) -> dict:
    n = len(g.sources) - bool(leave_out)
    return {"group": g.group_id, "name": g.name, "arch": g.arch, "seed": g.seed, "technique": g.technique,
            "source_round": g.source_round, "threshold": k, "leave_out": leave_out, "n_sources": n,
            "sources": ";".join(s for s in g.sources if s != leave_out), "sparsity": spars,
            "equivalent_rounds": equivalent_rounds(spars, fraction), "mask_path": path}
