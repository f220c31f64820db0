"""The masked training loop: data resident on the device at native side, randperm batches,
batched augmentation, then a per-batch resize to the model's side; masks re-applied after every
optimizer step, and no host synchronisation inside an epoch."""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ltray.config import DataConfig, TrainConfig
from ltray.data import TaskData, augment, batches

EVAL_VALUES = 2**23  # input floats per evaluation batch (32 MiB): ~55 images at 224 px x 3 channels


class MaskApplier:
    """Multiplies masked parameters by their 0/1 masks in one fused foreach call.

    Re-applying after each step keeps pruned weights at exactly zero whatever the optimizer does
    (gradients and momentum never revive them).
    """

    def __init__(self, model: nn.Module, mask: Mapping[str, torch.Tensor]):
        params = dict(model.named_parameters())
        self.names = [n for n in mask if not bool(mask[n].all())]
        self.params = [params[n] for n in self.names]
        self.masks = [mask[n].to(device=params[n].device, dtype=params[n].dtype) for n in self.names]

    @torch.no_grad()
    def __call__(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.masks)


def make_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(),
        lr=train.lr,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        foreach=True,
    )


def train_round(
    model: nn.Module,
    task: TaskData,
    apply_mask: MaskApplier,
    train: TrainConfig,
    data: DataConfig,
    generator: torch.Generator,
    on_epoch_end: Callable[[int], None] | None = None,
) -> float:
    """Train `train.epochs` epochs from the model's current weights; return the last epoch's mean loss.

    `generator` (on the data's device) drives batch order and augmentation, so a round is
    reproducible from its seed alone. Augmentation works in native pixels (crop padding 4 on a
    32 px CIFAR image, as torchvision's RandomCrop), then the batch is resized to the model's side.
    """
    model.train()
    optimizer = make_optimizer(model, train)
    loss_fn = nn.CrossEntropyLoss()
    apply_mask()
    x_all, y_all = task.train_x, task.train_y
    n = x_all.shape[0]
    loss_sum = torch.zeros((), device=x_all.device)
    for epoch in range(1, train.epochs + 1):
        loss_sum.zero_()
        for idx in batches(n, train.batch_size, generator):
            x = x_all[idx]
            if data.crop or data.flip:
                x = augment(
                    x,
                    generator,
                    crop_padding=data.crop_padding if data.crop else 0,
                    flip=data.flip,
                    fill=task.pad_value,
                )
            loss = loss_fn(model(task.inputs(x)), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            apply_mask()
            loss_sum += loss.detach() * idx.shape[0]
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return float(loss_sum) / n  # one host sync per round


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int | None = None,
    *,
    inputs: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Accuracy in [0, 1]; nan for an empty split.

    `inputs` maps a native-side batch to the model's input (TaskData.inputs), so a 224 px
    evaluation never holds the whole split at 224 px. `batch_size` defaults to EVAL_VALUES input
    values per batch (at most 1024 samples).
    """
    if x.shape[0] == 0:
        return float("nan")
    inputs = inputs or (lambda b: b)
    if batch_size is None:
        batch_size = max(1, min(1024, EVAL_VALUES // inputs(x[:1])[0].numel()))
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        logits = model(inputs(x[start : start + batch_size]))
        correct += (logits.argmax(dim=1) == y[start : start + batch_size]).sum()
    return float(correct) / x.shape[0]


def evaluate_task(model: nn.Module, task: TaskData) -> tuple[float, float]:
    """(validation accuracy, test accuracy), each batch resized to the model's side."""
    return (
        evaluate(model, task.val_x, task.val_y, inputs=task.inputs),
        evaluate(model, task.test_x, task.test_y, inputs=task.inputs),
    )
