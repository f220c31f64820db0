"""The technique registry and `prune`, the one entry point: weights + previous mask -> new mask.

Pure: no model mutation, no I/O, no global RNG. The caller passes exactly the tensors to prune
(e.g. without the output layer); each returned mask is a subset of the one passed in.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import importlib

from ltray import plugins
from ltray.errors import ConfigError, unknown_key_message
from ltray.pruning.amount import check_fraction

if TYPE_CHECKING:  # the registry itself is torch-free: a sweep file's names are checked without torch
    from torch import Tensor

    from ltray.pruning.context import PruneContext

Masks = dict[str, "Tensor"]
# (weights, masks, fraction, seed, round, dim, context) -> new masks
Compute = Callable[[Mapping[str, "Tensor"], Mapping[str, "Tensor"], float, int, int, int, "PruneContext"], Masks]


def _part(module: str):
    """A pruning module that needs torch, imported when a technique first runs."""
    return importlib.import_module(f"ltray.pruning.{module}")


def _lazy(module: str, name: str) -> Compute:
    def compute(*args):
        return getattr(_part(module), name)(*args)

    compute.__name__ = name
    return compute


@dataclass(frozen=True)
class Technique:
    """A pruning technique; also the public contract of a user's technique (see docs/plugins.md).

    `compute(weights, masks, fraction, seed, round, dim, context)` gets the weights to prune and
    their current bool masks (same names and shapes) and returns new bool masks: the same names
    and shapes, each a subset of the one given, `fraction` of the survivors removed (per layer,
    or of the pooled survivors when `pooled`). It must be deterministic given its arguments and
    must not change them; `context` (ltray.pruning.PruneContext) gives the model, data and loss.
    """

    name: str
    structured: bool = False  # removes whole slices along `dim`
    random: bool = False  # ignores the weights; depends only on (seed, round, layer name, shape)
    description: str = ""
    compute: Compute | None = None
    pooled: bool = False  # `fraction` applies to all layers' survivors together (global pruning)


def _global_l1(weights, masks, fraction, seed, round, dim, context) -> Masks:
    return _part("unstructured").global_l1(weights, masks, fraction)


def _l1_unstructured(weights, masks, fraction, seed, round, dim, context) -> Masks:
    unstructured = _part("unstructured")
    return {k: unstructured.l1_layer(weights[k], masks[k], fraction) for k in weights}


def _random_unstructured(weights, masks, fraction, seed, round, dim, context) -> Masks:
    unstructured, random_scores = _part("unstructured"), _part("rng").random_scores
    return {
        k: unstructured.prune_lowest(random_scores(m.shape, seed, round, k, m.device), m, fraction)
        for k, m in masks.items()
    }


def _ln_structured(n: float) -> Compute:
    def compute(weights, masks, fraction, seed, round, dim, context) -> Masks:
        structured = _part("structured")
        return {k: structured.ln_layer(weights[k], masks[k], fraction, n, dim, k) for k in weights}

    return compute


def _random_structured(weights, masks, fraction, seed, round, dim, context) -> Masks:
    structured, random_scores = _part("structured"), _part("rng").random_scores
    out = {}
    for k, m in masks.items():
        structured.check_dim(m.shape, dim, k)
        scores = random_scores((m.shape[dim],), seed, round, k, m.device)
        out[k] = structured.random_layer(scores, m, fraction, dim, k)
    return out


TECHNIQUES: dict[str, Technique] = {
    t.name: t
    for t in [
        Technique("global_unstructured", False, False, "lowest |w| over all given layers pooled", _global_l1,
                  pooled=True),
        Technique("l1_unstructured", False, False, "lowest |w| per layer", _l1_unstructured),
        Technique("random_unstructured", False, True, "random weights per layer", _random_unstructured),
        Technique("l1_structured", True, False, "channels of lowest L1 norm per layer", _ln_structured(1)),
        Technique("l2_structured", True, False, "channels of lowest L2 norm per layer", _ln_structured(2)),
        Technique("linf_structured", True, False, "channels of lowest max |w| (n=+inf)", _ln_structured(math.inf)),
        Technique(
            "lneginf_structured", True, False, "channels of lowest min |w| (n=-inf)", _ln_structured(-math.inf)
        ),
        Technique("random_structured", True, True, "random channels per layer", _random_structured),
        Technique("snip", False, False, "lowest |gradient x w| on training batches, pooled", _lazy("saliency", "snip"),
                  pooled=True),
        Technique("synflow", False, False, "lowest synaptic flow |w x dR/dw|, iterative and data-free, pooled",
                  _lazy("saliency", "synflow"), pooled=True),
    ]
}


def get_technique(name: str) -> Technique:
    """A built-in technique, else a plugin's (import path or entry point; imports it)."""
    if name in TECHNIQUES:
        return TECHNIQUES[name]
    tech = _plugin_technique(name)
    if tech is None:
        raise ConfigError(unknown_key_message("pruning technique", name, TECHNIQUES))
    return tech


def is_technique(name: str) -> bool:
    """A built-in name, an import path or an entry point; imports nothing."""
    return name in TECHNIQUES or plugins.is_known("technique", name)


@functools.cache
def _plugin_technique(name: str) -> Technique | None:
    tech = plugins.resolve("technique", name, Technique, "ltray.pruning.Technique")
    if tech is None:
        return None
    if not callable(tech.compute):
        raise plugins.PluginError(f"{name}: Technique.compute is {type(tech.compute).__name__}, not a function")
    compute = tech.compute

    def guarded(*args) -> Masks:
        try:
            return compute(*args)
        except Exception as e:  # noqa: BLE001 - whatever the user's technique raises
            raise plugins.user_error(f"{name}: compute", e) from None

    return dataclasses.replace(tech, name=name, compute=guarded)


def prune(
    technique: str,
    weights: Mapping[str, Tensor],
    mask: Mapping[str, Tensor],
    *,
    fraction: float,
    seed: int,
    round: int,
    dim: int = 1,
    context: PruneContext | None = None,
) -> Masks:
    """One pruning step: remove `fraction` of what survives in `mask` (per layer, or pooled for
    pooled techniques). `round` and `seed` feed the random techniques' generators; `context`
    gives data-dependent techniques the model and data."""
    tech = get_technique(technique)
    fraction = check_fraction(fraction)
    _check_inputs(weights, mask)
    context = context if context is not None else _part("context").NoContext()
    return tech.compute(weights, mask, fraction, int(seed), int(round), int(dim), context)


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
