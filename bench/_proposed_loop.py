"""A prototype of the training-loop fix that bench/train_loop.py measures beside ltray's loop.

Not used by ltray: ltray/training/loop.py and ltray/data/augment.py belong to another engineer,
who can move these four changes there (see BENCHMARKS.md, section 1):
1. augment a chunk of ~16 batches at once (one pad + one gather, flip folded into the gather
   index) instead of ~15 small ops per batch; batches are then contiguous slices of the chunk;
2. one index of the permuted training set per chunk instead of one per batch;
3. a fused masked SGD update (`_foreach_addcmul_(w, grad, mask, value=-lr)`) instead of
   `optimizer.step()` plus a second pass multiplying the weights by their masks;
4. the loss is summed only in the last epoch (the only one reported), stacked once at the end.
"""

from __future__ import annotations

import torch
from torch import nn

CHUNK_VALUES = 2**19  # input floats augmented at once (2 MiB): stays in cache on a CPU


def flip_crop_gather(x: torch.Tensor, generator: torch.Generator, padding: int, flip: bool,
                     fill: torch.Tensor | None) -> torch.Tensor:
    """Same draws (top, left, coins) and same output as ltray.data.augment, in one gather."""
    n, c, h, w = x.shape
    dev = x.device
    hp, wp = h + 2 * padding, w + 2 * padding
    if padding > 0:
        top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
        left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    else:
        top = left = torch.zeros(n, dtype=torch.long, device=dev)
    cols = torch.arange(w, device=dev).view(1, w)
    if flip:
        coins = torch.rand(n, generator=generator, device=dev) < 0.5
        cols = torch.where(coins.view(n, 1), (w - 1) - cols, cols)  # [N, W]
    if padding > 0:
        base = fill.to(device=dev, dtype=x.dtype).view(1, c, 1, 1) if fill is not None else x.new_zeros(1, c, 1, 1)
        padded = base.expand(n, c, hp, wp).contiguous()
        padded[:, :, padding:padding + h, padding:padding + w] = x
    else:
        padded = x.contiguous()
    rows = (top.view(n, 1) + torch.arange(h, device=dev)) * wp  # [N, H] row starts
    index = (rows.view(n, h, 1) + (left.view(n, 1, 1) + cols.view(-1, 1, w))).view(n, 1, h * w)
    return padded.view(n, c, hp * wp).gather(2, index.expand(n, c, h * w)).view(n, c, h, w)


class FusedMaskedSGD:
    """Plain SGD (the paper: momentum 0, weight decay 0) with masks fused into the update."""

    def __init__(self, model: nn.Module, mask: dict[str, torch.Tensor], lr: float):
        self.lr = lr
        masked, self.masks, self.free = [], [], []
        for name, p in model.named_parameters():
            m = mask.get(name)
            if m is not None and not bool(m.all()):
                masked.append(p)
                self.masks.append(m.to(device=p.device, dtype=p.dtype))
            else:
                self.free.append(p)
        self.masked = masked
        with torch.no_grad():
            if masked:
                torch._foreach_mul_(masked, self.masks)

    @torch.no_grad()
    def step(self) -> None:
        if self.masked:
            torch._foreach_addcmul_(self.masked, [p.grad for p in self.masked], self.masks, value=-self.lr)
        if self.free:
            torch._foreach_add_(self.free, [p.grad for p in self.free], alpha=-self.lr)

    def zero_grad(self) -> None:
        for p in self.masked + self.free:
            p.grad = None


def train_round_proposed(model: nn.Module, task, mask: dict[str, torch.Tensor], epochs: int, lr: float,
                         batch_size: int, crop_padding: int, flip: bool, generator: torch.Generator) -> float:
    """One round as ltray's train_round (momentum 0, weight decay 0), with the four changes above."""
    model.train()
    opt = FusedMaskedSGD(model, mask, lr)
    loss_fn = nn.CrossEntropyLoss()
    x_all, y_all = task.train_x, task.train_y
    n = x_all.shape[0]
    per_sample = x_all[0].numel()
    chunk = max(1, CHUNK_VALUES // (per_sample * batch_size)) * batch_size
    inputs = getattr(task, "inputs", None) or (lambda b: b)
    losses, sizes = [], []
    for epoch in range(1, epochs + 1):
        last = epoch == epochs
        perm = torch.randperm(n, generator=generator, device=generator.device)
        for start in range(0, n, chunk):
            idx = perm[start:start + chunk]
            xc, yc = x_all[idx], y_all[idx]
            if crop_padding or flip:
                xc = flip_crop_gather(xc, generator, crop_padding, flip, task.pad_value)
            for b in range(0, xc.shape[0], batch_size):
                xb, yb = xc[b:b + batch_size], yc[b:b + batch_size]
                loss = loss_fn(model(inputs(xb)), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if last:
                    losses.append(loss.detach())
                    sizes.append(yb.shape[0])
    weights = torch.tensor(sizes, dtype=torch.float32, device=x_all.device)
    return float((torch.stack(losses) * weights).sum()) / n  # one host sync per round
