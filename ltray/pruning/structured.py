"""Structured pruning: remove whole channels, i.e. slices along `dim` (dim=1: the input channels
of a conv weight [out, in, kh, kw] or the input features of a linear weight [out, in]).

Candidates are the channels that still hold a surviving weight; round(fraction * candidates) of
them are zeroed entirely. Magnitude scores are the L_n norm of a channel's masked weights over
all other dims, as torch.nn.utils.prune.LnStructured computes them inside a PruningContainer:
n=1 (L1), n=2 (L2), n=inf (the channel's largest |w|), n=-inf (its smallest |w|).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ltray.errors import ConfigError
from ltray.pruning.amount import n_to_prune


def check_dim(shape: torch.Size, dim: int, layer: str) -> None:
    """Channels need a tensor of >= 2 dims and a dim inside it (no negative dims)."""
    if len(shape) < 2:
        raise ConfigError(f"structured pruning needs a weight of >= 2 dims; {layer!r} has shape {tuple(shape)}")
    if not 0 <= dim < len(shape):
        raise ConfigError(f"pruning dim {dim} is out of range for {layer!r} of shape {tuple(shape)}")


def alive_channels(mask: Tensor, dim: int) -> Tensor:
    """Bool per channel along `dim`: does it still hold any surviving weight?"""
    others = [d for d in range(mask.dim()) if d != dim]
    return mask.any(dim=others)


def drop_channels(mask: Tensor, dim: int, pruned: Tensor) -> Tensor:
    """A copy of `mask` with the channels at indices `pruned` along `dim` set to False."""
    new = mask.clone()
    new.index_fill_(dim, pruned, False)
    return new


def _along(dim: int, ndim: int, index) -> tuple:
    slc = [slice(None)] * ndim
    slc[dim] = index
    return tuple(slc)


def ln_layer(weight: Tensor, mask: Tensor, fraction: float, n: float, dim: int, layer: str = "") -> Tensor:
    """Prune the surviving channels of lowest L_n norm; keeps the top ones with torch.topk."""
    check_dim(weight.shape, dim, layer)
    alive = alive_channels(mask, dim)
    idx = alive.nonzero().squeeze(1)
    k = n_to_prune(fraction, idx.numel())
    if k == 0:
        return mask.clone()
    # the same boolean slice torch takes, so the norms are bit-identical to torch's
    sub = (weight * mask)[_along(dim, weight.dim(), alive)]
    others = [d for d in range(sub.dim()) if d != dim]
    norms = torch.linalg.vector_norm(sub, ord=n, dim=others)
    keep = torch.topk(norms, k=idx.numel() - k, largest=True).indices
    pruned = torch.ones(idx.numel(), dtype=torch.bool, device=idx.device)
    pruned[keep] = False
    return drop_channels(mask, dim, idx[pruned])


def random_layer(scores: Tensor, mask: Tensor, fraction: float, dim: int, layer: str = "") -> Tensor:
    """Prune the surviving channels with the lowest random `scores` (one score per channel)."""
    check_dim(mask.shape, dim, layer)
    idx = alive_channels(mask, dim).nonzero().squeeze(1)
    k = n_to_prune(fraction, idx.numel())
    if k == 0:
        return mask.clone()
    lowest = torch.topk(scores[idx], k=k, largest=False).indices
    return drop_channels(mask, dim, idx[lowest])
