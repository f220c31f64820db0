"""Train a network under a fixed mask from given weights and measure it: the one step that a
trajectory round and a ticket share, so "a ticket is one round of a trajectory" holds by
construction (same seeding, same loop, same metrics)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import torch

from ltray.config import DataConfig, TrainConfig
from ltray.masks import Mask, sparsity
from ltray.masks.effective import effective_sparsity
from ltray.masks.torch_io import to_torch_mask
from ltray.seeding import derive_seed
from ltray.training.loop import MaskApplier, evaluate_task, train_round
from ltray.training.setup import Setup, seeded_generator


@dataclass
class RoundResult:
    """What one trained round (or ticket) reports; `mask_path` is where its mask was written."""

    round: int
    sparsity: float
    effective_sparsity: float
    train_loss: float
    val_acc: float
    test_acc: float
    seconds: float
    mask_path: str

    def as_dict(self) -> dict:
        return asdict(self)


def train_under_mask(
    setup: Setup,
    mask: Mask,
    start: Mapping[str, torch.Tensor],
    train: TrainConfig,
    data: DataConfig,
    seed: int,
    round_: int,
    mask_path: str = "",
    on_epoch_end: Callable[[int], None] | None = None,
) -> RoundResult:
    """Load `start`, train `train.epochs` epochs under `mask` (batch order and augmentation drawn
    from (seed, 'train', round_)), evaluate; `seconds` covers training and evaluation."""
    begin = time.perf_counter()
    device = next(setup.model.parameters()).device
    setup.model.load_state_dict(start)
    apply_mask = MaskApplier(setup.model, to_torch_mask(mask, device))
    generator = seeded_generator(device, derive_seed(seed, "train", round_))
    loss = train_round(setup.model, setup.task, apply_mask, train, data, generator, on_epoch_end=on_epoch_end)
    val_acc, test_acc = evaluate_task(setup.model, setup.task)
    return RoundResult(
        round=round_,
        sparsity=sparsity(mask),
        effective_sparsity=effective_sparsity(setup.model, mask, setup.input_shape),
        train_loss=loss,
        val_acc=val_acc,
        test_acc=test_acc,
        seconds=time.perf_counter() - begin,
        mask_path=mask_path,
    )
