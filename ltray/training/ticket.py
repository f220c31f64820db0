"""Ticket training: a fixed mask trained once from the seed's initial weights on a target task.

This is how pret-a-porter (consensus) tickets, random tickets and transferred bespoke tickets are
evaluated. A target with a different class count than the mask's output layer needs an explicit
`output_rule` (the paper does not say what it did).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ltray.config import TicketConfig
from ltray.errors import MaskFileError
from ltray.masks import check_mask_matches, load_mask, save_mask, sparsity
from ltray.masks.effective import effective_sparsity
from ltray.models import output_layer_name
from ltray.seeding import derive_seed
from ltray.training.loop import MaskApplier, evaluate_task, train_round
from ltray.training.setup import default_device, prepare, seeded_generator
from ltray.training.trajectory import RoundResult


def train_ticket(
    cfg: TicketConfig,
    *,
    root: str | Path = "data",
    download: bool = False,
    device: torch.device | str | None = None,
    record_path: str | Path | None = None,
    mask_out: str | Path | None = None,
) -> RoundResult:
    """Train the mask at `cfg.mask_path` on `cfg.task` for one round; return its metrics.

    `mask_out` receives a copy of the mask actually trained (after adapting the output layer);
    `record_path` is the mask path reported in the result (defaults to `mask_out` or the source).
    """
    device = torch.device(device) if device is not None else default_device()
    setup = prepare(cfg.task_name, cfg.task, cfg.arch, cfg.seed, cfg.data, Path(root), download, device)
    start = time.perf_counter()
    mask = load_mask(cfg.mask_path)
    shapes = {n: tuple(setup.initial[n].shape) for n in setup.mask_names}
    mask = fit_output_layer(mask, shapes, output_layer_name(setup.model), cfg.output_rule, str(cfg.mask_path))
    check_mask_matches(mask, shapes, str(cfg.mask_path))
    if mask_out is not None:
        save_mask(mask_out, mask, meta={"source": str(cfg.mask_path), "task": cfg.task_name, "seed": cfg.seed})
    setup.model.load_state_dict(setup.initial)
    mask_t = {n: torch.from_numpy(m).to(device) for n, m in mask.items()}
    gen = seeded_generator(device, derive_seed(cfg.seed, "train", 0))
    loss = train_round(setup.model, setup.task, MaskApplier(setup.model, mask_t), cfg.train, cfg.data, gen)
    val_acc, test_acc = evaluate_task(setup.model, setup.task)
    return RoundResult(
        round=0,
        sparsity=sparsity(mask),
        effective_sparsity=effective_sparsity(setup.model, mask, setup.input_shape),
        train_loss=loss,
        val_acc=val_acc,
        test_acc=test_acc,
        seconds=time.perf_counter() - start,
        mask_path=str(record_path or mask_out or cfg.mask_path),
    )


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
