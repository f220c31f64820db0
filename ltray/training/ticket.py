"""Ticket training: a fixed mask trained once from the seed's initial weights on a target task,
exactly as round 0 of a trajectory trains (ltray.training.measure).

This is how pret-a-porter (consensus) tickets, random tickets and transferred bespoke tickets are
evaluated. A target with a different class count than the mask's output layer needs an explicit
`output_rule` (the paper does not say what it did).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ltray.config import TicketConfig
from ltray.errors import MaskFileError
from ltray.masks import Mask, check_mask_matches, load_mask, save_mask
from ltray.masks.torch_io import parameter_shapes
from ltray.models import output_layer_name
from ltray.training.measure import RoundResult, train_under_mask
from ltray.training.setup import default_device, prepare


def train_ticket(
    cfg: TicketConfig,
    *,
    mask: Mask | None = None,
    root: str | Path = "data",
    download: bool = False,
    device: torch.device | str | None = None,
    record_path: str | Path | None = None,
    mask_out: str | Path | None = None,
    on_mask=None,
) -> RoundResult:
    """Train `mask` (default: the file at `cfg.mask_path`) on `cfg.task` for one round.

    The mask actually trained (its output layer adapted) goes to `mask_out` (a local path) or to
    `on_mask(mask, meta) -> path`; `record_path` is the mask path reported in the result
    (defaults to what on_mask returned, `mask_out`, or the source)."""
    device = torch.device(device) if device is not None else default_device()
    setup = prepare(cfg.task, cfg.task_spec, cfg.arch, cfg.seed, cfg.data, Path(root), download, device)
    source = str(cfg.mask_path)
    mask = load_mask(cfg.mask_path) if mask is None else mask
    shapes = parameter_shapes(setup.model, setup.mask_names)
    mask = fit_output_layer(mask, shapes, output_layer_name(setup.model), cfg.output_rule, source)
    check_mask_matches(mask, shapes, source)
    meta = {"source": source, "task": cfg.task, "seed": cfg.seed}
    written = None
    if on_mask is not None:
        written = on_mask(mask, meta)
    elif mask_out is not None:
        save_mask(mask_out, mask, meta=meta)
        written = str(mask_out)
    path = str(record_path or written or source)
    return train_under_mask(setup, mask, setup.initial, cfg.train, cfg.data, cfg.seed, 0, mask_path=path)


def fit_output_layer(mask: dict, shapes: dict, output: str, rule: str, source: str) -> dict:
    """Adapt the output layer's mask to a target with another class count, by `rule`."""
    key = f"{output}.weight"
    if key not in mask or key not in shapes or mask[key].shape == shapes[key]:
        return mask
    have, want = mask[key].shape, shapes[key]
    if rule == "error" or have[1:] != want[1:]:
        raise MaskFileError(
            f"{source}: output layer {key} has shape {have} but the target needs {want}; "
            "set consensus output_rule to 'dense' or 'columns'"
        )
    out = dict(mask)
    if rule == "dense":
        out[key] = np.ones(want, dtype=bool)
    else:  # 'columns': an input feature survives for every class if it survives for any source class
        out[key] = np.broadcast_to(mask[key].any(axis=0, keepdims=True), want).copy()
    return out
