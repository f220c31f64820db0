"""Random masks and an exact equality check, shared by the mask and consensus tests."""

from __future__ import annotations

import numpy as np

from ltray.experiment import layout
from ltray.masks import save_mask


def random_masks(shapes: dict[str, tuple], n: int, keep: float = 0.6, seed: int = 0) -> list[dict]:
    """n independent masks over `shapes`, each weight kept with probability `keep`."""
    rng = np.random.default_rng(seed)
    return [{name: rng.random(shape) < keep for name, shape in shapes.items()} for _ in range(n)]


def assert_masks_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


LENET = {"conv1.weight": (6, 1, 3, 3), "conv2.weight": (16, 6, 3, 3), "fc1.weight": (120, 400),
         "fc2.weight": (84, 120), "fc3.weight": (10, 84)}


def fake_masks(exp, plan, rounds, out_classes=None) -> list[tuple[str, int, str]]:
    """Nested random LeNet masks per trajectory of `plan` (round r keeps 0.8^r), written where the
    layout puts them under `exp`; their (trial, round, path) messages in arrival order."""
    msgs = []
    for i, t in enumerate(plan.trajectories):
        rng = np.random.default_rng(i)
        shapes = dict(LENET)
        key = (t.labels.task, t.labels.technique)
        if out_classes and key in out_classes:
            shapes["fc3.weight"] = (out_classes[key], 84)
        scores = {n: rng.random(s) for n, s in shapes.items()}
        for r in range(rounds):
            rel = layout.trajectory_mask(t.trial_id, r)
            save_mask(exp / rel, {n: s < 0.8**r for n, s in scores.items()})
            msgs.append((t.trial_id, r, rel))
    return sorted(msgs, key=lambda m: m[1])
