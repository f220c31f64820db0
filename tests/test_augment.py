"""Batched augmentation: crops are true shifts with raw-black padding, flips flip, all deterministic;
the chunked epoch iterator gives exactly augment()'s batches, whatever the chunk size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ltray.data import batches, crop_at
from ltray.data.augment import augment
from ltray.data.augment import augmented_batches, crop_flip, draw, flip_where

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def images(n=16, c=3, h=6, w=7, device="cpu"):
    # distinct values everywhere, so any misplaced pixel shows
    return torch.arange(n * c * h * w, dtype=torch.float32, device=device).reshape(n, c, h, w) + 1


def gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("device", DEVICES)
def test_crop_is_a_shift_of_the_padded_image(device):
    x = images(device=device)
    n, c, h, w = x.shape
    p = 2
    fill = torch.tensor([-1.0, -2.0, -3.0], device=device)
    top = torch.randint(0, 2 * p + 1, (n,), generator=gen(0), device="cpu").to(device)
    left = torch.randint(0, 2 * p + 1, (n,), generator=gen(1), device="cpu").to(device)
    out = crop_at(x, top, left, p, fill)
    assert out.shape == x.shape
    for i in range(n):  # oracle: pad each channel with its fill by hand, then slice
        padded = torch.stack([F.pad(x[i, k], (p, p, p, p), value=float(fill[k])) for k in range(c)])
        t, l = int(top[i]), int(left[i])
        assert torch.equal(out[i], padded[:, t : t + h, l : l + w]), i


def test_centre_offset_is_identity_and_corner_offset_shows_the_fill():
    x = images()
    n, p = len(x), 3
    centre = torch.full((n,), p, dtype=torch.int64)
    assert torch.equal(crop_at(x, centre, centre, p), x)
    fill = torch.tensor([-0.5, 0.25, 7.0])
    zero = torch.zeros(n, dtype=torch.int64)
    out = crop_at(x, zero, zero, p, fill)
    for k in range(3):
        assert torch.all(out[:, k, :p, :] == fill[k]) and torch.all(out[:, k, :, :p] == fill[k])
    assert torch.equal(out[:, :, p:, p:], x[:, :, : -p, : -p])
    assert torch.all(crop_at(x, zero, zero, p)[:, :, :p] == 0)  # no fill given: zeros


def test_flip_only_mirrors_some_samples():
    x = images(n=64)
    out = augment(x, gen(0), crop_padding=0, flip=True)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert torch.all(flipped ^ kept)  # each sample is exactly one of the two
    assert 10 < int(flipped.sum()) < 54  # p = 0.5
    assert torch.equal(augment(x, gen(0), crop_padding=0, flip=False), x)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_given_the_generator_seed(device):
    x = images(n=32, device=device)
    fill = torch.tensor([-1.0, 0.0, 1.0], device=device)
    a = augment(x, gen(7, device), crop_padding=4, flip=True, fill=fill)
    b = augment(x, gen(7, device), crop_padding=4, flip=True, fill=fill)
    c = augment(x, gen(8, device), crop_padding=4, flip=True, fill=fill)
    assert a.device == x.device and torch.equal(a, b) and not torch.equal(a, c)


def test_samples_get_their_own_offsets():
    x = images(n=1).expand(64, -1, -1, -1)  # 64 copies of one image
    out = augment(x, gen(3), crop_padding=4, flip=False)
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 30  # 81 possible offsets; one shared offset would give 1


def test_augment_equals_crop_then_flip_with_the_same_draws():
    x = images(n=8)
    g = gen(5)
    top = torch.randint(0, 9, (8,), generator=g)
    left = torch.randint(0, 9, (8,), generator=g)
    coins = torch.rand(8, generator=g) < 0.5
    expected = crop_at(x, top, left, 4)
    expected = torch.where(coins.view(-1, 1, 1, 1), expected.flip(-1), expected)
    assert torch.equal(augment(x, gen(5), crop_padding=4, flip=True), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_batches_cover_every_index_once_and_keep_the_partial_batch(device):
    out = batches(10, 4, gen(0, device))
    assert [len(b) for b in out] == [4, 4, 2] and out[0].device.type == device
    assert sorted(torch.cat(out).tolist()) == list(range(10))
    assert all(torch.equal(a, b) for a, b in zip(out, batches(10, 4, gen(0, device))))
    assert not torch.equal(torch.cat(out), torch.cat(batches(10, 4, gen(1, device))))
    assert torch.cat(out).tolist() != list(range(10))  # shuffled


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("padding", [0, 1, 4, 9, 12])  # 9 and 12: padding wider than the 8 px image
def test_crop_flip_equals_crop_then_flip(device, channels, padding):
    x = images(n=40, c=channels, h=8, w=7, device=device)
    fill = torch.arange(channels, dtype=torch.float32, device=device) - 10
    for flip in (False, True):
        top, left, coins = draw(40, gen(padding, device), padding, flip)
        expected = crop_at(x, top, left, padding, fill) if padding else x
        if flip:
            expected = flip_where(expected, coins)
        got = crop_flip(x, top, left, coins, padding, fill)
        assert got.device == x.device and torch.equal(got, expected), (padding, flip)


def replay(x, y, batch_size, seed, chunk, device, **aug):
    """The batches augmented_batches must give: one permutation, then augment() chunk by chunk."""
    g = gen(seed, device)
    perm = torch.randperm(len(y), generator=g, device=device)
    out = []
    for start in range(0, len(y), chunk):
        idx = perm[start : start + chunk]
        out += list(zip(augment(x[idx], g, **aug).split(batch_size), y[idx].split(batch_size)))
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("aug", [dict(crop_padding=3, flip=True), dict(crop_padding=2, flip=False),
                                 dict(crop_padding=0, flip=True), dict(crop_padding=0, flip=False)])
def test_augmented_batches_are_augment_applied_chunk_by_chunk(device, aug):
    x = images(n=100, c=3, h=8, w=9, device=device)
    y = torch.arange(100, device=device)
    fill = torch.tensor([-1.0, 0.5, 2.0], device=device)
    per_sample = 3 * 8 * 9
    for batches_per_chunk in (1, 3, 100):  # chunks reuse one buffer; the last chunk and batch are partial
        got = list(augmented_batches(x, y, 7, gen(4, device), fill=fill,
                                     chunk_values=batches_per_chunk * 7 * per_sample, **aug))
        want = replay(x, y, 7, 4, batches_per_chunk * 7, device, fill=fill, **aug)
        assert [len(b) for b, _ in got] == [7] * 14 + [2]
        assert all(torch.equal(a, b) and torch.equal(ya, yb) for (a, ya), (b, yb) in zip(got, want))
        assert sorted(torch.cat([yb for _, yb in got]).tolist()) == list(range(100))  # each sample once


def test_grey_images_for_an_rgb_network_are_augmented_once_and_expanded():
    grey = images(n=30, c=1, h=8, w=8)
    x = grey.expand(-1, 3, -1, -1)  # as TaskData stores grey data for a 3-channel model
    fill = torch.full((3,), -0.25)
    got = torch.cat([b for b, _ in augmented_batches(x, torch.arange(30), 8, gen(2), crop_padding=2, flip=True,
                                                     fill=fill)])
    want = torch.cat([b for b, _ in replay(x.contiguous(), torch.arange(30), 8, 2, 2**19, "cpu",
                                           crop_padding=2, flip=True, fill=fill)])
    assert got.shape == (30, 3, 8, 8) and torch.equal(got, want)
