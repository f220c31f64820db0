"""Custom Ray metrics (exported as `ray_ltray_*` on each node's metrics port) for Grafana.

Every series carries the `experiment` label, so sweeps sharing a cluster stay apart. Ray drops a
gauge ~20 s after it was last set, so the processes that own gauges re-set them on a timer.
Created lazily inside the process that records them.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def _metrics():
    from ray.util.metrics import Counter, Gauge, Histogram

    exp = ("experiment",)
    return {
        "masks_received": Counter("ltray_masks_received", "Masks registered by the consensus actor",
                                  tag_keys=exp + ("arch", "technique")),
        "rounds_finished": Counter("ltray_rounds_finished", "Training rounds finished by trials",
                                   tag_keys=exp + ("arch", "technique", "kind")),
        "groups_complete": Gauge("ltray_consensus_groups_complete", "Consensus groups with all sources in",
                                 tag_keys=exp),
        "consensus_sparsity": Gauge("ltray_consensus_sparsity", "Sparsity of a group's consensus ticket",
                                    tag_keys=exp + ("group",)),
        "round_seconds": Histogram("ltray_round_seconds", "Wall-clock seconds of one training round",
                                   boundaries=[1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
                                   tag_keys=exp + ("arch", "technique")),
        "followups": Gauge("ltray_followups", "Follow-up trials by state", tag_keys=exp + ("state",)),
        "progress": Gauge("ltray_progress", "Share of the planned rounds and follow-up trials finished, in [0, 1]",
                          tag_keys=exp),
        "eta_seconds": Gauge("ltray_eta_seconds", "Estimated seconds until the sweep finishes", tag_keys=exp),
        "trials_running": Gauge("ltray_trials_running", "Trials running, by the device they train on (gpu or cpu: their rows, else their share)",
                                tag_keys=exp + ("device",)),
    }


def record_round(experiment: str, arch: str, technique: str, kind: str, seconds: float) -> None:
    m = _metrics()
    m["rounds_finished"].inc(1, tags={"experiment": experiment, "arch": arch, "technique": technique, "kind": kind})
    m["round_seconds"].observe(seconds, tags={"experiment": experiment, "arch": arch, "technique": technique})


def record_mask(experiment: str, arch: str, technique: str) -> None:
    _metrics()["masks_received"].inc(1, tags={"experiment": experiment, "arch": arch, "technique": technique})


def record_consensus(experiment: str, groups_complete: int, sparsity_by_group: dict[str, float]) -> None:
    m = _metrics()
    m["groups_complete"].set(groups_complete, tags={"experiment": experiment})
    for group, value in sparsity_by_group.items():
        m["consensus_sparsity"].set(value, tags={"experiment": experiment, "group": group})


def record_followups(experiment: str, pending: int, running: int, done: int) -> None:
    m = _metrics()
    for state, value in (("pending", pending), ("running", running), ("done", done)):
        m["followups"].set(value, tags={"experiment": experiment, "state": state})


def record_progress(experiment: str, fraction: float, eta_seconds: float | None,
                    running_by_device: dict[str, int]) -> None:
    m = _metrics()
    m["progress"].set(fraction, tags={"experiment": experiment})
    if eta_seconds is not None:
        m["eta_seconds"].set(eta_seconds, tags={"experiment": experiment})
    for device, count in running_by_device.items():
        m["trials_running"].set(count, tags={"experiment": experiment, "device": device})
