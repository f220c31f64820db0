"""Surviving weights per round from layer shapes alone.

Every technique removes round(fraction * n) of the n units that survive (a layer's weights, the
pooled weights for global pruning, or a layer's channels along `dim` for structured pruning),
whatever the weights are. So how many weights survive each round follows from the shapes; this
is what the paper's Table 1 counts. `tests/test_table1.py` checks it against `prune` itself.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from ltray.pruning.amount import check_fraction, n_to_prune
from ltray.pruning.registry import get_technique
from ltray.pruning.structured import check_dim


def surviving_weights(
    shapes: Mapping[str, Sequence[int]], technique: str, rounds: int, *, fraction: float = 0.2, dim: int = 1
) -> list[int]:
    """Weights of the layers in `shapes` that survive, for ltray rounds 0..rounds (0: dense).

    Round r's mask has been pruned r times: round 1 is the paper's "iteration 0".
    """
    tech = get_technique(technique)
    fraction = check_fraction(fraction)
    if tech.pooled:
        groups = [(sum(math.prod(s) for s in shapes.values()), 1)]  # one pool of weights
    elif not tech.structured:
        groups = [(math.prod(s), 1) for s in shapes.values()]
    else:
        groups = []
        for name, shape in shapes.items():
            check_dim(torch.Size(shape), dim, name)
            groups.append((shape[dim], math.prod(shape) // shape[dim]))  # (channels, weights per channel)
    alive = [units for units, _ in groups]
    counts = []
    for r in range(rounds + 1):
        if r:
            alive = [n - n_to_prune(fraction, n) for n in alive]
        counts.append(sum(n * per_unit for n, (_, per_unit) in zip(alive, groups)))
    return counts
