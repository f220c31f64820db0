"""The implementations that benchmarks 4 and 5 optimised, kept verbatim so that before/after is
measured side by side in one run (and so the new code can be checked to give the same results).
The aggregator before its fix (ltray/orchestration/aggregator.py at ade224b) was measured by
bench/_before_aggregator.py, removed since it no longer runs against the experiment format."""

from __future__ import annotations

import numpy as np

from ltray.masks.arrays import as_mask, check_same_layout


class OldVoteCounts:
    """ltray.consensus.VoteCounts.add/consensus before the packed rewrite: uint16 counts per layer."""

    def __init__(self, shapes):
        self._counts = {name: np.zeros(tuple(shape), np.uint16) for name, shape in shapes.items()}
        self._n = 0

    def add(self, mask) -> None:
        mask = as_mask(mask)
        check_same_layout(self._counts, mask)
        for name, c in self._counts.items():
            np.add(c, mask[name], out=c)  # uint16 += bool (0/1)
        self._n += 1

    def consensus(self, k: int):
        return {name: c >= k for name, c in self._counts.items()}
