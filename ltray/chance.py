"""The chance level of a consensus: the sparsity a k-of-N vote would reach if the N source masks
were independent draws, each keeping a weight with its own density (1 - sparsity). A consensus
sparser than this means the tasks agree less than chance; less sparse, that they share weights.

numpy only, like ltray.consensus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ltray.consensus import Threshold, resolve_threshold


def chance_sparsity(densities: Sequence[float], k: Threshold = "all") -> float:
    """1 - P(at least k of N independent masks keep a weight), the Poisson-binomial tail; for the
    intersection ('all') that is 1 - prod(densities), e.g. 0.893 for five 36%-sparse masks."""
    d = np.asarray(densities, dtype=np.float64)
    if d.ndim != 1 or np.any((d < 0) | (d > 1)) or np.any(np.isnan(d)):
        raise ValueError(f"densities must be a list of numbers in [0, 1], got {densities!r}")
    k = resolve_threshold(k, len(d))
    votes = np.zeros(len(d) + 1)  # votes[j] = P(exactly j masks keep the weight)
    votes[0] = 1.0
    for p in d:
        votes[1:] = votes[1:] * (1 - p) + votes[:-1] * p
        votes[0] *= 1 - p
    return float(1.0 - votes[k:].sum())


def layerwise_chance_sparsity(masks: Sequence[Mapping[str, np.ndarray]], k: Threshold = "all") -> float:
    """The same null, matched per layer: independent masks with each source's per-layer density
    (global pruning spares small layers, so this is a stricter null than the whole-network one)."""
    if not masks:
        raise ValueError("chance needs at least 1 source mask, got none")
    total = sum(np.size(m) for m in masks[0].values())
    kept = 0.0
    for name, first in masks[0].items():
        densities = [float(np.count_nonzero(m[name])) / np.size(first) for m in masks]
        kept += (1.0 - chance_sparsity(densities, k)) * np.size(first)
    return 1.0 - kept / total
