"""What a pruning technique may ask for beyond the weights: the model, the training data, the loss.

Data-dependent criteria (SNIP) and data-free ones that need the network's graph (SynFlow) use it;
magnitude and random techniques ignore it. The trajectory passes a context built from its task
(`ltray.training.prune_context`); tests and the contract check build one from plain tensors.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator, Mapping, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PruneContext(Protocol):
    """The model, data and loss of the pruning step, for techniques that need them."""

    input_shape: tuple[int, int, int]  # C, H, W of one example at the model's input side

    def model(self, masks: Mapping[str, Tensor] | None = None) -> nn.Module:
        """A fresh copy of the network (train mode) whose weights are multiplied by the current mask;
        `masks` replaces the mask of the layers it names. Changing it changes nothing of ltray's."""
        ...

    def batches(self, count: int, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """`count` batches (inputs at the model's side, int64 labels) of the task's training split, in
        an order fixed by the trajectory's seed and round; no augmentation."""
        ...

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The training loss (mean cross-entropy)."""
        ...


def masked_copy(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """A deep copy of `model` with each named parameter multiplied by its mask."""
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for name, m in masks.items():
            params[name].mul_(m.to(device=params[name].device, dtype=params[name].dtype))
    return out


class TensorContext:
    """A context over plain tensors: a model, its current mask and a training split. Batches are
    drawn without replacement from a generator seeded by `seed`; `inputs` maps a batch to the
    model's input side (default: the images already are)."""

    def __init__(self, model: nn.Module, mask: Mapping[str, Tensor], images: Tensor, labels: Tensor,
                 *, seed: int = 0, batch_size: int = 32, inputs: Callable[[Tensor], Tensor] | None = None,
                 input_shape: tuple[int, int, int] | None = None):
        self._model, self._mask = model, dict(mask)
        self._images, self._labels = images, labels
        self._seed, self._batch_size = seed, batch_size
        self._inputs = inputs or (lambda x: x)
        self.input_shape = tuple(input_shape or images.shape[1:])

    def model(self, masks: Mapping[str, Tensor] | None = None) -> nn.Module:
        out = masked_copy(self._model, {**self._mask, **(masks or {})})
        return out.train()

    def batches(self, count: int, batch_size: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        size = min(batch_size or self._batch_size, len(self._labels))
        gen = torch.Generator().manual_seed(self._seed)
        order = torch.empty(0, dtype=torch.long)
        for _ in range(count):
            if len(order) < size:  # a new pass over the split once this one runs out
                order = torch.cat([order, torch.randperm(len(self._labels), generator=gen)])
            idx, order = order[:size], order[size:]
            idx = idx.to(self._images.device)
            yield self._inputs(self._images[idx]), self._labels[idx]

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits, labels)


class NoContext:
    """For calls of `prune` without a model or data (the built-in magnitude and random techniques)."""

    input_shape = (0, 0, 0)

    def _missing(self, *args, **kwargs):
        raise ValueError("this technique needs the model and data: call prune(..., context=...)")

    model = batches = loss = _missing
