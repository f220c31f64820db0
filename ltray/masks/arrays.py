"""The mask type and its numpy-only helpers: a mask maps a parameter name to a bool array that is
True where the weight survives. Nothing here imports torch; tensors are converted duck-typed."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Mask = dict[str, np.ndarray]


def to_bool_array(value) -> np.ndarray:
    """Any array-like (numpy array, nested list, torch tensor on any device) as a bool ndarray."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    return array if array.dtype == np.bool_ else array.astype(bool)


def as_mask(mapping: Mapping[str, object]) -> Mask:
    """A plain dict of bool arrays, in the mapping's order (arrays already bool are not copied)."""
    mask: Mask = {}
    for name, value in mapping.items():
        if not isinstance(name, str):
            raise TypeError(f"mask layer names must be str, got {type(name).__name__} {name!r}")
        mask[name] = to_bool_array(value)
    return mask


def check_same_layout(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> None:
    """Raise ValueError naming the first layer that one mask lacks or whose shapes differ."""
    check_same_shapes({n: np.shape(v) for n, v in a.items()}, {n: np.shape(v) for n, v in b.items()})


def check_same_shapes(a: Mapping[str, tuple], b: Mapping[str, tuple]) -> None:
    """check_same_layout on layer shapes alone (packed masks have no arrays to ask)."""
    for name in a:
        if name not in b:
            raise ValueError(f"layer {name!r} is in the first mask but not in the second")
    for name in b:
        if name not in a:
            raise ValueError(f"layer {name!r} is in the second mask but not in the first")
    for name, shape in a.items():
        if tuple(shape) != tuple(b[name]):
            raise ValueError(f"layer {name!r} has shape {tuple(shape)} in one mask and {tuple(b[name])} in the other")
