"""Batched train-time augmentation on the device: per-sample random crop and horizontal flip.

Vectorised (no loop over samples), deterministic given the torch.Generator, and free of host
syncs. The papers' pipeline is RandomCrop(padding=4) on PIL images before ToTensor/Normalize,
so padding is raw black: pass `fill` = TaskData.pad_value (= -mean/std), not 0.
"""

from __future__ import annotations

from typing import Iterator

import torch

Tensor = torch.Tensor
CHUNK_VALUES = 2**19  # input floats augmented at once (2 MiB): 20 batches of 32 MNIST images, 5 of CIFAR


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

    top, left: int64 [N]. Offset (p, p) returns the input unchanged. The reference for crop_flip.
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


class WindowSampler:
    """Crops (and mirrors) up to n samples of x at a time without an index per pixel.

    An int64 index per pixel (8 bytes) would move more memory than the pixels, and on a CPU the
    memory moved is the cost. Built once per epoch: a buffer of padded-width rows in which each
    (sample, channel) is a block of H rows plus one scratch row, and lookup tables by offset.
    Each call: (1) index_select copies every output row's source row (clamped into the image) to
    the centre of its buffer row; (2) the rows that fall in the vertical padding (at most p per
    sample, at one end: p fixed slots, the unused ones aimed at the scratch row) are refilled;
    (3) one gather picks each row's columns, the same [W] index (left offset, mirrored or not)
    for every row of a sample. Only row centres and fill rows are written: the side borders
    keep the fill they got at construction.
    """

    def __init__(self, n: int, x: Tensor, padding: int, fill: Tensor | None, flip: bool):
        c, h, w = x.shape[1:]
        p, dev = padding, x.device
        self.shape, self.padding, self.x_rows = (c, h, w), p, x.reshape(-1, w)  # a view if x is contiguous
        fill = fill.to(device=dev, dtype=x.dtype) if fill is not None else x.new_zeros(c)
        self.buf = fill.view(1, c, 1, 1).expand(n, c, h + 1, w + 2 * p).contiguous()
        self.fill_slots = fill.view(1, c, 1).expand(n, c, p).reshape(-1, 1)
        self.block_rows = (torch.arange(n * c, device=dev) * (h + 1)).view(n, c, 1)  # row 0 of each block
        tops = torch.arange(2 * p + 1, device=dev).view(-1, 1)  # one table row per top offset
        src = (tops + torch.arange(h, device=dev) - p).clamp(0, h - 1)  # [T, H] source rows
        src = torch.cat([src, src[:, :1]], 1) + (torch.arange(c, device=dev) * h).view(c, 1, 1)  # [C, T, H+1]
        k = torch.arange(p, device=dev)  # padding rows: 0..p-top-1 (top < p) or h+p-top..h-1 (top > p)
        slots = torch.where(tops + k < p, k, torch.where(k < tops - p, (h - 1) - k, h))  # [T, p]
        slots = torch.where(k < h, slots, h)  # padding wider than the image: rows beyond it do not exist
        self.by_top = torch.cat([src.transpose(0, 1).reshape(2 * p + 1, -1), slots], 1)  # [T, C*(H+1) + p]
        lefts = torch.arange(2 * p + 1, device=dev).view(-1, 1) + torch.arange(w, device=dev)
        self.by_left = torch.cat([lefts, lefts.flip(1)]) if flip else lefts  # [coin * (2p+1) + left, W]

    def __call__(self, idx: Tensor, top: Tensor, left: Tensor, coins: Tensor | None) -> Tensor:
        """crop_flip(x[idx], top, left, coins, padding, fill): [n, C, H, W], n <= the buffer's."""
        (c, h, w), p, n = self.shape, self.padding, idx.shape[0]
        blocks = self.buf[:n]
        t = self.by_top.index_select(0, top)  # [n, C*(H+1) source rows + p slots]
        src = (idx * (c * h)).view(n, 1) + t[:, : c * (h + 1)]
        torch.index_select(self.x_rows, 0, src.view(-1), out=blocks.view(-1, w + 2 * p)[:, p : p + w])
        if p > 0:
            slots = self.block_rows[:n] + t[:, c * (h + 1) :].view(n, 1, p)
            centres = blocks.view(-1, w + 2 * p)[:, p : p + w]  # the side borders are fill already
            centres.index_put_((slots.view(-1),), self.fill_slots[: n * c * p])
        key = left if coins is None else left + coins.long() * (2 * p + 1)
        cols = self.by_left.index_select(0, key).view(n, 1, 1, w).expand(n, c, h, w)
        return blocks[:, :, :h].gather(3, cols)


def crop_flip(
    x: Tensor, top: Tensor, left: Tensor, coins: Tensor | None, padding: int, fill: Tensor | None = None
) -> Tensor:
    """crop_at(x, top, left, padding, fill) then flip_where(coins) (coins=None: no flip), same values."""
    sampler = WindowSampler(x.shape[0], x.contiguous(), padding, fill, coins is not None)
    return sampler(torch.arange(x.shape[0], device=x.device), top, left, coins)


def draw(
    n: int, generator: torch.Generator, crop_padding: int, flip: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(top, left, coins) for n samples, drawn in that order; offsets (0, 0) and no draws without a crop."""
    device = generator.device
    if crop_padding > 0:
        hi = 2 * crop_padding + 1
        top = torch.randint(0, hi, (n,), generator=generator, device=device)
        left = torch.randint(0, hi, (n,), generator=generator, device=device)
    else:
        top = left = torch.zeros(n, dtype=torch.long, device=device)
    coins = torch.rand(n, generator=generator, device=device) < 0.5 if flip else None
    return top, left, coins


def augment(
    x: Tensor, generator: torch.Generator, *, crop_padding: int, flip: bool, fill: Tensor | None = None
) -> Tensor:
    """Random crop (offsets uniform in [0, 2*crop_padding] per sample and axis) then random flip (p=0.5).

    `generator` must live on x's device. Draw order: top offsets, left offsets, flip coins.
    crop_padding=0 skips the crop (and its draws).
    """
    if crop_padding == 0 and not flip:
        return x
    return crop_flip(x, *draw(x.shape[0], generator, crop_padding, flip), crop_padding, fill)


def batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A random permutation of range(n) cut into index batches; the last one may be partial."""
    perm = torch.randperm(n, generator=generator, device=generator.device)
    return list(perm.split(batch_size))


def augmented_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    generator: torch.Generator,
    *,
    crop_padding: int,
    flip: bool,
    fill: Tensor | None = None,
    chunk_values: int = CHUNK_VALUES,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of shuffled, augmented (inputs, labels) batches; the last batch may be partial.

    The same batches and values as `augment(x[i], ...)` for each i of `batches(n, batch_size,
    generator)`, but augmented a chunk of whole batches (~chunk_values input values) at a time:
    a handful of ops per chunk instead of ~15 per batch, and each batch a contiguous slice of its
    chunk. Draw order: the permutation, then per chunk augment's (top, left, coins). No host sync.
    """
    n, c = x.shape[:2]
    if c > 1 and x.stride(1) == 0:  # grey stored once for an RGB network: augment one channel
        x, fill = x[:, :1], (fill[:1] if fill is not None else None)
    x = x.contiguous()  # a no-op for TaskData's tensors: rows are then views, never copies
    chunk = max(1, chunk_values // (x[0].numel() * batch_size)) * batch_size
    augmenting = crop_padding > 0 or flip
    windows = WindowSampler(min(chunk, n), x, crop_padding, fill, flip) if augmenting else None
    perm = torch.randperm(n, generator=generator, device=generator.device)
    for start in range(0, n, chunk):
        idx = perm[start : start + chunk]
        if windows is not None:
            xc = windows(idx, *draw(idx.shape[0], generator, crop_padding, flip))
        else:
            xc = x.index_select(0, idx)
        if xc.shape[1] != c:
            xc = xc.expand(-1, c, -1, -1)
        yield from zip(xc.split(batch_size), y.index_select(0, idx).split(batch_size))
