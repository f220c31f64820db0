"""Pruning: pure functions from weights and the previous mask to a new, smaller mask.

Techniques (`TECHNIQUES`, picked by name in `prune`):
  global_unstructured  lowest |w| pooled over every given layer (paper technique 1)
  l1_unstructured      lowest |w| per layer (2)
  random_unstructured  random weights per layer (3)
  l1_structured        channels with the lowest L1 norm per layer (4)
  l2_structured        channels with the lowest L2 norm per layer (5)
  linf_structured      n=+inf: channels whose MAXIMUM |w| is lowest (the paper's figure captions, L_inf)
  lneginf_structured   n=-inf: channels whose MINIMUM |w| is lowest (the paper's text, L_-inf, and the
                       authors' earlier code) (6)
  random_structured    random channels per layer (7)
  snip                 lowest |gradient x w| on training batches, pooled (Lee et al. 2019)
  synflow              lowest synaptic flow, iterative and data-free, pooled (Tanaka et al. 2020)

Semantics follow torch.nn.utils.prune's PruningContainer: each step removes round(fraction * n)
of the n units (weights, or channels along `dim`) that still survive, per layer or, for global,
pooled; scores are computed on the masked weights, so pruned units are never re-selected. Ties
in magnitude are broken by torch.topk on the flattened survivors (unstructured: k smallest;
structured: the top n - k are kept), exactly as torch's pruning does on the same device.
Random techniques draw from a CPU generator seeded by sha256(seed, round, layer name): the
same seed removes the same weights on every task.
"""

from ltray.pruning.registry import TECHNIQUES, Technique, get_technique, is_technique, prune

__all__ = ["TECHNIQUES", "PruneContext", "Technique", "TensorContext", "get_technique", "is_technique", "prune"]


def __getattr__(name: str):
    """The contexts need torch: imported on first use, so the registry stays torch-free."""
    if name in ("PruneContext", "TensorContext"):
        from ltray.pruning import context

        return getattr(context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
