"""Masks: the `.ltmask` file format and mask metrics, readable with numpy alone.

This package imports neither torch nor ray. Torch helpers live in `ltray.masks.effective`
(effective sparsity) and `ltray.masks.torch_io` (tensor conversion); import them explicitly.
"""

from ltray.masks.arrays import Mask, as_mask, check_same_layout, to_bool_array
from ltray.masks.format import (
    FORMAT_VERSION,
    MASK_SUFFIX,
    check_mask_matches,
    load_mask,
    load_mask_with_meta,
    read_mask_header,
    save_mask,
)
from ltray.masks.metrics import (
    count_kept,
    jaccard_distance,
    layer_jaccard,
    layer_sparsity,
    shared_fraction,
    sparsity,
    total_weights,
)

__all__ = [
    "FORMAT_VERSION",
    "MASK_SUFFIX",
    "Mask",
    "as_mask",
    "check_mask_matches",
    "check_same_layout",
    "count_kept",
    "jaccard_distance",
    "layer_jaccard",
    "layer_sparsity",
    "load_mask",
    "load_mask_with_meta",
    "read_mask_header",
    "save_mask",
    "shared_fraction",
    "sparsity",
    "to_bool_array",
    "total_weights",
]
