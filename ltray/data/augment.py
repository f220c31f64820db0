"""Batched train-time augmentation on the device: per-sample random crop and horizontal flip.

Vectorised (no loop over samples), deterministic given the torch.Generator, and free of host
syncs. The papers' pipeline is RandomCrop(padding=4) on PIL images before ToTensor/Normalize,
so padding is raw black: pass `fill` = TaskData.pad_value (= -mean/std), not 0.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def pad(x: Tensor, padding: int, fill: Tensor | None = None) -> Tensor:
    """[N, C, H, W] -> [N, C, H+2p, W+2p], the border filled per channel with `fill` (default 0)."""
    n, c, h, w = x.shape
    shape = (n, c, h + 2 * padding, w + 2 * padding)
    if fill is None:
        out = x.new_zeros(shape)
    else:
        out = fill.to(device=x.device, dtype=x.dtype).view(1, c, 1, 1).expand(shape).contiguous()
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def crop_at(x: Tensor, top: Tensor, left: Tensor, padding: int, fill: Tensor | None = None) -> Tensor:
    """Pad by `padding`, then cut each sample's H x W window at its own (top, left) in [0, 2p].

    top, left: int64 [N]. Offset (p, p) returns the input unchanged.
    """
    n, c, h, w = x.shape
    padded = pad(x, padding, fill)
    rows = top.view(n, 1) + torch.arange(h, device=x.device)  # [N, H] rows of the padded image
    cols = left.view(n, 1) + torch.arange(w, device=x.device)  # [N, W]
    x = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * padding))
    return x.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def flip_where(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror left-right the samples where the bool [N] `flip` is true."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def augment(
    x: Tensor, generator: torch.Generator, *, crop_padding: int, flip: bool, fill: Tensor | None = None
) -> Tensor:
    """Random crop (offsets uniform in [0, 2*crop_padding] per sample and axis) then random flip (p=0.5).

    `generator` must live on x's device. Draw order: top offsets, left offsets, flip coins.
    crop_padding=0 skips the crop (and its draws).
    """
    n = x.shape[0]
    if crop_padding > 0:
        hi = 2 * crop_padding + 1
        top = torch.randint(0, hi, (n,), generator=generator, device=x.device)
        left = torch.randint(0, hi, (n,), generator=generator, device=x.device)
        x = crop_at(x, top, left, crop_padding, fill)
    if flip:
        coins = torch.rand(n, generator=generator, device=x.device) < 0.5
        x = flip_where(x, coins)
    return x


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A random permutation of range(n) cut into index batches; the last one may be partial."""
    perm = torch.randperm(n, generator=generator, device=generator.device)
    return list(perm.split(batch_size))
