"""The masked training loop: data resident on the device at native side, randperm batches
augmented a chunk at a time, then a per-batch resize to the model's side; an SGD step that keeps
pruned weights at exactly zero, and no host synchronisation inside a round."""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from ltray.config import DataConfig, TrainConfig
from ltray.data import TaskData
from ltray.data.augment import augmented_batches

EVAL_VALUES = 2**23  # input floats per evaluation batch (32 MiB): ~55 images at 224 px x 3 channels


class MaskApplier:
    """Multiplies masked parameters by their 0/1 masks in one fused foreach call.

    Zeroes the pruned weights before a round; MaskedSGD then keeps them at exactly zero
    (gradients, momentum and weight decay never revive them).
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


class MaskedSGD:
    """SGD under a mask whose pruned weights stay exactly zero (they start at zero: apply the mask first).

    Plain SGD (momentum 0, weight decay 0, the paper's recipe) is one fused pass per step,
    w -= lr * grad * mask, with no optimizer object. Otherwise the gradients are masked before
    torch's SGD step (pruned weights get no gradient, momentum or decay) and the masks re-applied
    after it.
    """

    def __init__(self, model: nn.Module, apply_mask: MaskApplier, train: TrainConfig):
        self.apply_mask = apply_mask
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.lr = train.lr
        self.optimizer = make_optimizer(model, train) if train.momentum or train.weight_decay else None
        masked = {id(p) for p in apply_mask.params}
        self.free = [p for p in self.params if id(p) not in masked]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        masked, masks = self.apply_mask.params, self.apply_mask.masks
        if any(p.grad is None for p in masked):  # a parameter the forward pass did not use
            kept = [i for i, p in enumerate(masked) if p.grad is not None]
            masked, masks = [masked[i] for i in kept], [masks[i] for i in kept]
        grads = [p.grad for p in masked]
        if self.optimizer is not None:
            if grads:
                torch._foreach_mul_(grads, masks)
            self.optimizer.step()
            self.apply_mask()
            return
        if grads:
            torch._foreach_addcmul_(masked, grads, masks, value=-self.lr)
        free = [p for p in self.free if p.grad is not None]
        if free:
            torch._foreach_add_(free, [p.grad for p in free], alpha=-self.lr)


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
    apply_mask()
    sgd = MaskedSGD(model, apply_mask, train)
    loss_fn = nn.CrossEntropyLoss()
    x_all, y_all = task.train_x, task.train_y
    n = x_all.shape[0]
    losses: list[torch.Tensor] = []
    for epoch in range(1, train.epochs + 1):
        last = epoch == train.epochs  # the only epoch whose loss is reported
        for x, y in augmented_batches(
            x_all,
            y_all,
            train.batch_size,
            generator,
            crop_padding=data.crop_padding if data.crop else 0,
            flip=data.flip,
            fill=task.pad_value,
        ):
            loss = loss_fn(model(task.inputs(x)), y)
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            if last:
                losses.append(loss.detach())
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    sizes = torch.full((len(losses),), float(train.batch_size), device=x_all.device)
    sizes[-1] = n - (len(losses) - 1) * train.batch_size
    return float((torch.stack(losses) * sizes).sum()) / n  # one host sync per round


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
