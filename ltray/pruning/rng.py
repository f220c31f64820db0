"""Random scores for the random techniques. Each (seed, round, layer) gets its own CPU generator
seeded by a stable hash, never by the weights or the task, so the same seed prunes the same
weights on every task and every device."""

from __future__ import annotations

import torch

from ltray.seeding import derive_seed

RANDOM_TAG = "random-pruning"


def layer_generator(seed: int, round: int, layer: str) -> torch.Generator:
    """A CPU generator private to one layer in one pruning round of one seed."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed(RANDOM_TAG, seed, round, layer))
    return gen


def random_scores(shape: torch.Size | tuple[int, ...], seed: int, round: int, layer: str,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform [0, 1) scores of `shape`, drawn on the CPU, then moved to `device`."""
    gen = layer_generator(seed, round, layer)
    return torch.rand(tuple(shape), generator=gen, dtype=torch.float32).to(device)
