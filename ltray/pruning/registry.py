"""The technique registry and `prune`, the one entry point: weights + previous mask -> new mask.

Pure: no model mutation, no I/O, no global RNG. The caller passes exactly the tensors to prune
(e.g. without the output layer); each returned mask is a subset of the one passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from ltray.errors import ConfigError, unknown_key_message
from ltray.pruning.amount import check_fraction

if TYPE_CHECKING:  # the registry itself is torch-free: a sweep file's names are checked without torch
    from torch import Tensor

    Masks = dict[str, Tensor]
    # (weights, masks, fraction, seed, round, dim) -> new masks
    Compute = Callable[[Mapping[str, Tensor], Mapping[str, Tensor], float, int, int, int], Masks]


@dataclass(frozen=True)
class Technique:
    name: str
    structured: bool  # removes whole slices along `dim`
    random: bool  # ignores the weights; depends only on (seed, round, layer name, shape)
    description: str
    compute: Compute


def _global_l1(weights, masks, fraction, seed, round, dim) -> Masks:
    from ltray.pruning import unstructured

    return unstructured.global_l1(weights, masks, fraction)


def _l1_unstructured(weights, masks, fraction, seed, round, dim) -> Masks:
    from ltray.pruning import unstructured

    return {k: unstructured.l1_layer(weights[k], masks[k], fraction) for k in weights}


def _random_unstructured(weights, masks, fraction, seed, round, dim) -> Masks:
    from ltray.pruning import unstructured
    from ltray.pruning.rng import random_scores

    return {
        k: unstructured.prune_lowest(random_scores(m.shape, seed, round, k, m.device), m, fraction)
        for k, m in masks.items()
    }


def _ln_structured(n: float) -> Compute:
    def compute(weights, masks, fraction, seed, round, dim) -> Masks:
        from ltray.pruning import structured

        return {k: structured.ln_layer(weights[k], masks[k], fraction, n, dim, k) for k in weights}

    return compute


def _random_structured(weights, masks, fraction, seed, round, dim) -> Masks:
    from ltray.pruning import structured
    from ltray.pruning.rng import random_scores

    out = {}
    for k, m in masks.items():
        structured.check_dim(m.shape, dim, k)
        scores = random_scores((m.shape[dim],), seed, round, k, m.device)
        out[k] = structured.random_layer(scores, m, fraction, dim, k)
    return out


TECHNIQUES: dict[str, Technique] = {
    t.name: t
    for t in [
        Technique("global_unstructured", False, False, "lowest |w| over all given layers pooled", _global_l1),
        Technique("l1_unstructured", False, False, "lowest |w| per layer", _l1_unstructured),
        Technique("random_unstructured", False, True, "random weights per layer", _random_unstructured),
        Technique("l1_structured", True, False, "channels of lowest L1 norm per layer", _ln_structured(1)),
        Technique("l2_structured", True, False, "channels of lowest L2 norm per layer", _ln_structured(2)),
        Technique("linf_structured", True, False, "channels of lowest max |w| (n=+inf)", _ln_structured(math.inf)),
        Technique(
            "lneginf_structured", True, False, "channels of lowest min |w| (n=-inf)", _ln_structured(-math.inf)
        ),
        Technique("random_structured", True, True, "random channels per layer", _random_structured),
    ]
}


def get_technique(name: str) -> Technique:
    try:
        return TECHNIQUES[name]
    except KeyError:
        raise ConfigError(unknown_key_message("pruning technique", name, TECHNIQUES)) from None


def prune(
    technique: str,
    weights: Mapping[str, Tensor],
    mask: Mapping[str, Tensor],
    *,
    fraction: float,
    seed: int,
    round: int,
    dim: int = 1,
) -> Masks:
    """One pruning step: remove `fraction` of what survives in `mask` (per layer, or pooled for
    global_unstructured). `round` and `seed` only feed the random techniques' generators."""
    tech = get_technique(technique)
    fraction = check_fraction(fraction)
    _check_inputs(weights, mask)
    return tech.compute(weights, mask, fraction, int(seed), int(round), int(dim))


def _check_inputs(weights: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> None:
    """Same keys, same shapes, bool masks: anything else is a caller's bug."""
    import torch

    if set(weights) != set(mask):
        raise ValueError(f"weights and mask name different layers: {sorted(set(weights) ^ set(mask))}")
    for k, w in weights.items():
        m = mask[k]
        if m.dtype != torch.bool or m.shape != w.shape:
            raise ValueError(f"mask of {k!r} must be a bool tensor of shape {tuple(w.shape)}, "
                             f"got {m.dtype} {tuple(m.shape)}")
