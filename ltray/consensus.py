"""Pret-a-porter tickets by consensus: the consensus mask at a vote threshold, the random
baseline with the same per-layer sparsity, and sparsity matching of bespoke tickets.

numpy only (no torch, no Ray). Rolling vote counts are ltray.masks.votes.VoteCounts, which the
consensus actor keeps per group.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ltray.masks.arrays import Mask, as_mask, check_same_layout
from ltray.masks.votes import Threshold, resolve_threshold

__all__ = ["Threshold", "closest_round", "consensus_mask", "equivalent_rounds", "random_ticket_like",
           "resolve_threshold"]


def consensus_mask(masks: Sequence[Mapping[str, object]], k: Threshold) -> Mask:
    """Keep a weight where at least k of `masks` keep it (k='all': the intersection)."""
    if not masks:
        raise ValueError("consensus needs at least 1 source mask, got none")
    arrays = [as_mask(m) for m in masks]
    for other in arrays[1:]:
        check_same_layout(arrays[0], other)
    k = resolve_threshold(k, len(arrays))
    return {name: np.sum([m[name] for m in arrays], axis=0, dtype=np.int64) >= k for name in arrays[0]}


def random_ticket_like(mask: Mapping[str, object], seed: int) -> Mask:
    """A random mask with exactly `mask`'s kept count in every layer: the random baseline.

    Each layer draws from its own numpy Generator seeded by SHA-256 of (seed, layer name), so
    the result depends only on the seed, the names and the counts (not on layer order).
    """
    out: Mask = {}
    for name, m in as_mask(mask).items():
        size, kept = m.size, int(np.count_nonzero(m))
        rng = np.random.default_rng(_layer_seed(seed, name))
        flat = np.zeros(size, bool)
        if kept > size // 2:  # draw the (fewer) pruned positions instead
            flat[:] = True
            flat[rng.choice(size, size - kept, replace=False, shuffle=False)] = False
        elif kept:
            flat[rng.choice(size, kept, replace=False, shuffle=False)] = True
        out[name] = flat.reshape(m.shape)
    return out


def _layer_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"ltray-random-ticket\0{int(seed)}\0{name}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def equivalent_rounds(sparsity: float, fraction: float) -> float:
    """How many rounds pruning `fraction` of the survivors each reaches `sparsity`:
    log(1 - sparsity) / log(1 - fraction). E.g. 0.359 at 20% per round -> 1.99."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"pruning fraction must be in (0, 1), got {fraction}")
    return math.log1p(-sparsity) / math.log1p(-fraction)


def closest_round(round_sparsity: Mapping[int, float], target: float) -> int:
    """The round whose sparsity is closest to `target` (matching a bespoke ticket to a consensus
    ticket). Rule: smallest |sparsity - target|; differences within 1e-12 count as ties (float
    noise), and a tie goes to the earlier round, i.e. the less sparse ticket."""
    if not round_sparsity:
        raise ValueError("closest_round needs at least one round")
    diffs = {r: abs(s - target) for r, s in round_sparsity.items()}
    best = min(diffs.values())
    return min(r for r, d in diffs.items() if d <= best + 1e-12)
