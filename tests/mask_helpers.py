"""Random masks and an exact equality check, shared by the mask and consensus tests."""

from __future__ import annotations

import numpy as np


def random_masks(shapes: dict[str, tuple], n: int, keep: float = 0.6, seed: int = 0) -> list[dict]:
    """n independent masks over `shapes`, each weight kept with probability `keep`."""
    rng = np.random.default_rng(seed)
    return [{name: rng.random(shape) < keep for name, shape in shapes.items()} for _ in range(n)]


def assert_masks_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
