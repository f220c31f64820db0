"""Unstructured pruning: remove individual weights with the lowest score among the survivors.

Scores are |w| of the masked weights (L1, per layer or pooled over layers) or random numbers.
Matches torch.nn.utils.prune.L1Unstructured inside a PruningContainer: the k lowest scores of
the flattened surviving entries, in row-major order, are chosen by torch.topk(largest=False).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from ltray.pruning.amount import n_to_prune


def prune_lowest(scores: Tensor, mask: Tensor, fraction: float) -> Tensor:
    """New mask: `mask` minus the round(fraction * survivors) surviving entries of lowest score."""
    return prune_count(scores, mask, n_to_prune(fraction, int(mask.sum())))


def prune_count(scores: Tensor, mask: Tensor, k: int) -> Tensor:
    """New mask: `mask` minus its k surviving entries of lowest score (ties: torch.topk's order)."""
    alive = mask.reshape(-1).nonzero().squeeze(1)  # flat indices of survivors, row-major
    new = mask.clone()
    if k == 0:
        return new
    lowest = torch.topk(scores.reshape(-1)[alive], k=k, largest=False).indices
    new.view(-1)[alive[lowest]] = False
    return new


def l1_layer(weight: Tensor, mask: Tensor, fraction: float) -> Tensor:
    """Prune the smallest |w| of one layer."""
    return prune_lowest((weight * mask).abs(), mask, fraction)


def global_l1(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor], fraction: float) -> dict[str, Tensor]:
    """Prune the smallest |w| pooled over all layers (in the mapping's order, as torch does)."""
    scores = {n: (weights[n] * masks[n]).abs() for n in weights}
    return global_lowest(scores, masks, n_to_prune(fraction, sum(int(masks[n].sum()) for n in weights)))


def global_lowest(scores: Mapping[str, Tensor], masks: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Prune the k lowest scores among the survivors pooled over the layers of `scores` (in its order)."""
    names = list(scores)
    pooled_scores = torch.cat([scores[n].reshape(-1) for n in names])
    pooled = torch.cat([masks[n].reshape(-1) for n in names])
    new = prune_count(pooled_scores, pooled, k)
    out, start = {}, 0
    for n in names:
        size = masks[n].numel()
        out[n] = new[start : start + size].view_as(masks[n]).clone()
        start += size
    return out
