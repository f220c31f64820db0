"""Mask statistics: kept counts, sparsity and the similarity of two masks (numpy only).

All functions count with np.count_nonzero on bool arrays, so they stay fast on ImageNet-sized
masks. Two-mask functions raise ValueError when layer names or shapes differ.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ltray.masks.arrays import as_mask, check_same_layout


def count_kept(mask: Mapping[str, object]) -> int:
    """Number of surviving (True) weights over all layers."""
    return sum(int(np.count_nonzero(m)) for m in as_mask(mask).values())


def total_weights(mask: Mapping[str, object]) -> int:
    """Number of weights the mask covers, kept or not."""
    return sum(int(np.size(m)) for m in as_mask(mask).values())


def sparsity(mask: Mapping[str, object]) -> float:
    """Fraction of all weights masked out (0.0 for a mask with no weights)."""
    total = total_weights(mask)
    return 1.0 - count_kept(mask) / total if total else 0.0


def layer_sparsity(mask: Mapping[str, object]) -> dict[str, float]:
    """Per-layer fraction of weights masked out (0.0 for an empty layer)."""
    out = {}
    for name, m in as_mask(mask).items():
        out[name] = 1.0 - np.count_nonzero(m) / m.size if m.size else 0.0
    return out


def jaccard_distance(a: Mapping[str, object], b: Mapping[str, object]) -> float:
    """Whole-network 1 - |A n B| / |A u B| with all layers pooled; 0.0 when both are empty."""
    a, b = _pair(a, b)
    inter = union = 0
    for name in a:
        inter += int(np.count_nonzero(a[name] & b[name]))
        union += int(np.count_nonzero(a[name] | b[name]))
    return 1.0 - inter / union if union else 0.0


def layer_jaccard(a: Mapping[str, object], b: Mapping[str, object]) -> dict[str, float]:
    """Per-layer Jaccard distance, in a's layer order; 0.0 for a layer empty in both."""
    a, b = _pair(a, b)
    out = {}
    for name in a:
        union = int(np.count_nonzero(a[name] | b[name]))
        inter = int(np.count_nonzero(a[name] & b[name]))
        out[name] = 1.0 - inter / union if union else 0.0
    return out


def shared_fraction(a: Mapping[str, object], b: Mapping[str, object]) -> float:
    """|A n B| / |A|: the share of A's surviving weights that also survive in B.

    Asymmetric on purpose: it reads as "B keeps x% of A's ticket" (the paper's "share 6-10% of
    their unpruned weights"). 0.0 when A keeps nothing.
    """
    a, b = _pair(a, b)
    kept_a = sum(int(np.count_nonzero(m)) for m in a.values())
    inter = sum(int(np.count_nonzero(a[name] & b[name])) for name in a)
    return inter / kept_a if kept_a else 0.0


def _pair(a, b):
    a, b = as_mask(a), as_mask(b)
    check_same_layout(a, b)
    return a, b
