"""Custom Ray metrics (exported as `ray_ltray_*` on each node's metrics port) for the dashboard.

Created lazily inside the process that records them; a no-op outside a Ray worker/driver.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def _metrics():
    from ray.util.metrics import Counter, Gauge, Histogram

    return {
        "masks_received": Counter("ltray_masks_received", "Masks registered by the consensus actor",
                                  tag_keys=("arch", "technique")),
        "rounds_finished": Counter("ltray_rounds_finished", "Training rounds finished by trials",
                                   tag_keys=("arch", "technique", "kind")),
        "groups_complete": Gauge("ltray_consensus_groups_complete", "Consensus groups with all sources in"),
        "consensus_sparsity": Gauge("ltray_consensus_sparsity", "Sparsity of a group's consensus ticket",
                                    tag_keys=("group",)),
        "round_seconds": Histogram("ltray_round_seconds", "Wall-clock seconds of one training round",
                                   boundaries=[1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
                                   tag_keys=("arch", "technique")),
        "followups": Gauge("ltray_followups", "Follow-up trials by state", tag_keys=("state",)),
    }


def record_round(arch: str, technique: str, kind: str, seconds: float) -> None:
    m = _metrics()
    m["rounds_finished"].inc(1, tags={"arch": arch, "technique": technique, "kind": kind})
    m["round_seconds"].observe(seconds, tags={"arch": arch, "technique": technique})


def record_mask(arch: str, technique: str) -> None:
    _metrics()["masks_received"].inc(1, tags={"arch": arch, "technique": technique})


def record_consensus(groups_complete: int, sparsity_by_group: dict[str, float]) -> None:
    m = _metrics()
    m["groups_complete"].set(groups_complete)
    for group, value in sparsity_by_group.items():
        m["consensus_sparsity"].set(value, tags={"group": group})


def record_followups(pending: int, running: int, done: int) -> None:
    m = _metrics()
    for state, value in (("pending", pending), ("running", running), ("done", done)):
        m["followups"].set(value, tags={"state": state})
