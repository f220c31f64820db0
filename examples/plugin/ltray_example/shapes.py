"""A dataset read from an .npz file of arrays: `shapes.npz` beside this module holds 8x8 RGB
images of four classes (a bright square in one quadrant, over noise), written by make_shapes.py.
A user's own .npz needs no code at all (`dataset: {npz: PATH}`); this module shows the contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ltray.data import Dataset

FILE = Path(__file__).with_name("shapes.npz")


def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 3, 8, 8] images and int64 labels of 'train' or 'test'."""
    with np.load(FILE) as arrays:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    return torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))


shapes = Dataset(load=load, classes=4, channels=3, side=8)
