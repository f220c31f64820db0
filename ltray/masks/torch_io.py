"""Conversions between numpy masks and torch: bool tensors for training, parameter shapes for
checking a loaded mask against a model. Imports torch, so it is not re-exported by ltray.masks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from ltray.masks.arrays import Mask, as_mask


def to_torch_mask(mask: Mapping[str, object], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Bool tensors on `device`, in the mask's layer order."""
    return {name: torch.from_numpy(np.ascontiguousarray(m)).to(device) for name, m in as_mask(mask).items()}


def to_numpy_mask(mask: Mapping[str, object]) -> Mask:
    """Bool numpy arrays (copied off any device), in the mask's layer order."""
    return as_mask(mask)


def parameter_shapes(model: torch.nn.Module, names: Iterable[str] | None = None) -> dict[str, tuple[int, ...]]:
    """Shapes of `model`'s parameters (all, or those in `names`, in that order) for check_mask_matches."""
    params = dict(model.named_parameters())
    if names is None:
        return {name: tuple(p.shape) for name, p in params.items()}
    names = list(names)
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"model has no parameter {missing[0]!r}")
    return {name: tuple(params[name].shape) for name in names}
