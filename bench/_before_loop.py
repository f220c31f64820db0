"""ltray's training loop as it was before issue 7's fix (commit a6579fa), kept so that
bench/train_loop.py can measure before and after side by side in one run. Not used by ltray.

Per batch: index the permuted set, ~15 small augmentation ops (pad, two gathers with
per-pixel indices, flip, where), optimizer.step() then a second pass re-applying the masks,
and a loss sum every epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from ltray.data.augment import batches, crop_at, flip_where


def augment_before(x: torch.Tensor, generator: torch.Generator, crop_padding: int, flip: bool,
                   fill: torch.Tensor | None) -> torch.Tensor:
    n = x.shape[0]
    if crop_padding > 0:
        hi = 2 * crop_padding + 1
        top = torch.randint(0, hi, (n,), generator=generator, device=x.device)
        left = torch.randint(0, hi, (n,), generator=generator, device=x.device)
        x = crop_at(x, top, left, crop_padding, fill)
    if flip:
        x = flip_where(x, torch.rand(n, generator=generator, device=x.device) < 0.5)
    return x


def train_round_before(model: nn.Module, task, apply_mask, train, data, generator: torch.Generator) -> float:
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum,
                                weight_decay=train.weight_decay, foreach=True)
    loss_fn = nn.CrossEntropyLoss()
    apply_mask()
    x_all, y_all = task.train_x, task.train_y
    n = x_all.shape[0]
    loss_sum = torch.zeros((), device=x_all.device)
    for _ in range(train.epochs):
        loss_sum.zero_()
        for idx in batches(n, train.batch_size, generator):
            x = x_all[idx]
            if data.crop or data.flip:
                x = augment_before(x, generator, data.crop_padding if data.crop else 0, data.flip, task.pad_value)
            loss = loss_fn(model(task.inputs(x)), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            apply_mask()
            loss_sum += loss.detach() * idx.shape[0]
    return float(loss_sum) / n
