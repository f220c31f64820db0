"""Vote counts: per weight, how many of a set of masks keep it, for the rolling consensus of
pret-a-porter tickets (ltray.consensus). numpy only, on packed bits (ltray.masks.packed)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np

from ltray.masks.arrays import Mask, as_mask
from ltray.masks.packed import Layout, at_least, count_at_least, is_immutable, ripple_add, ripple_subtract

Threshold = int | Literal["all"]
_MAX_VOTES = np.iinfo(np.uint16).max  # counts read back as uint16: at most 65535 masks
_CHUNK = 1 << 22  # weights per bincount call, to bound temporary memory


class VoteCounts:
    """Per-weight counts of how many added masks keep it, in the first layout's order.

    Rolling: masks are added as source trajectories finish, so a consensus at any threshold is
    available without recomputing it from every source mask.

    Stored as packed bits (1 bit per weight and vote, see ltray.masks.packed): up to
    `ROWS_MAX` added masks are kept as they are, so adding one is a copy and the k-of-n consensus
    a few bitwise passes (k = n, the paper's intersection, is n - 1 ANDs); beyond that, as bit
    planes of the counts (bit b of every count), updated by ripple-carry adds.
    """

    ROWS_MAX = 16  # rows cost n bits per weight: up to 16, no more than uint16 counts

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]):
        self._layout = Layout.of(shapes)
        self._rows: list[np.ndarray] | None = []  # packed added masks (row mode), else None
        self._planes: list[np.ndarray] = []  # bit planes of the counts (plane mode)
        self._n = 0

    @classmethod
    def like(cls, mask: Mapping[str, object]) -> VoteCounts:
        """Empty counts shaped like `mask`."""
        return cls({name: m.shape for name, m in as_mask(mask).items()})

    @property
    def n(self) -> int:
        """Number of masks added."""
        return self._n

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self._layout.shape_dict()

    @property
    def counts(self) -> dict[str, np.ndarray]:
        """Read-only uint16 per-layer counts (computed: meant for inspection, not hot paths)."""
        planes = self._as_planes()
        views = {}
        for name, shape, offset, nbytes in zip(*self._layer_slices()):
            size = math.prod(shape)
            c = np.zeros(size, np.uint16)
            for b, plane in enumerate(planes):
                c |= np.unpackbits(plane[offset:offset + nbytes], count=size, bitorder="little").astype(np.uint16) << b
            views[name] = c.reshape(shape)
            views[name].flags.writeable = False
        return views

    # ---- updates -------------------------------------------------------------------------------
    def add(self, mask: Mapping[str, object]) -> None:
        """Count one more source mask (bool arrays)."""
        self.add_packed(self._layout.pack(mask))

    def add_packed(self, bits: np.ndarray) -> None:
        """Count one more source mask given as packed bits in this layout (a mask file's payload)."""
        bits = self._checked_bits(bits)
        if self._n >= _MAX_VOTES:
            raise ValueError(f"VoteCounts holds at most {_MAX_VOTES} masks")
        if self._rows is not None and self._n < self.ROWS_MAX:
            self._rows.append(bits if is_immutable(bits) else bits.copy())  # a file's payload: no copy
        else:
            self._to_plane_mode()
            ripple_add(self._planes, bits)
        self._n += 1

    # ---- queries -------------------------------------------------------------------------------
    def consensus(self, k: Threshold) -> Mask:
        """Keep weights with at least k votes (k in 1..n or 'all')."""
        return self._layout.unpack(self.consensus_packed(k))

    def consensus_packed(self, k: Threshold) -> np.ndarray:
        """consensus(k) as packed bits in this layout (save it with save_packed_mask)."""
        k = resolve_threshold(k, self._n)
        if self._rows is not None:
            return at_least(self._rows, k)
        return count_at_least(self._planes, k)

    def leave_one_out(self, own_mask: Mapping[str, object], k: Threshold) -> Mask:
        """Consensus of the other n-1 masks at threshold k (in 1..n-1 or 'all' = n-1): the
        ticket a held-out source would get without voting for itself."""
        return self._layout.unpack(self.leave_one_out_packed(self._layout.pack(own_mask), k))

    def leave_one_out_packed(self, own_bits: np.ndarray, k: Threshold) -> np.ndarray:
        own = self._checked_bits(own_bits)
        self._check_contains(own)
        k = resolve_threshold(k, self._n - 1)
        if self._rows is not None:
            for i, row in enumerate(self._rows):
                if np.array_equal(row, own):
                    return at_least(self._rows[:i] + self._rows[i + 1:], k)
        planes = [p.copy() for p in self._as_planes()]
        ripple_subtract(planes, own)  # no underflow: _check_contains made sure every kept weight has a vote
        return count_at_least(planes, k)

    def histogram(self) -> np.ndarray:
        """hist[v] = number of weights kept by exactly v of the n masks (length n+1)."""
        hist = np.zeros(self._n + 1, np.int64)
        for c in self.counts.values():
            if self._n < 64:  # a few comparisons beat bincount's cast to intp
                hist += [np.count_nonzero(c == v) for v in range(self._n + 1)]
                continue
            flat = c.ravel()
            for start in range(0, flat.size, _CHUNK):
                hist += np.bincount(flat[start : start + _CHUNK], minlength=self._n + 1)
        return hist

    # ---- internals -----------------------------------------------------------------------------
    def _layer_slices(self):
        lay = self._layout
        return lay.names, lay.shapes, lay.offsets, lay.nbytes

    def _checked_bits(self, bits: np.ndarray) -> np.ndarray:
        bits = np.asarray(bits)
        if bits.dtype != np.uint8 or bits.shape != (self._layout.total_bytes,):
            raise ValueError(f"packed mask must be uint8 [{self._layout.total_bytes}] in this layout, "
                             f"got {bits.dtype} {bits.shape}")
        return bits

    def _as_planes(self) -> list[np.ndarray]:
        """The counts' bit planes (computed from the rows in row mode; max(1, n.bit_length()))."""
        if self._rows is None:
            return self._planes
        planes = [np.zeros(self._layout.total_bytes, np.uint8)]
        for row in self._rows:
            ripple_add(planes, row)
        return planes

    def _to_plane_mode(self) -> None:
        if self._rows is not None:
            self._planes, self._rows = self._as_planes(), None

    def _check_contains(self, bits: np.ndarray) -> None:
        if self._n == 0:
            raise ValueError("VoteCounts is empty: no mask has been added")
        if self._rows is not None:
            voted = at_least(self._rows, 1)
        else:
            voted = self._planes[0].copy()
            for plane in self._planes[1:]:
                np.bitwise_or(voted, plane, out=voted)
        orphans = np.bitwise_and(bits, np.bitwise_not(voted))  # kept by `bits`, voted by none
        if orphans.any():
            first = int(np.flatnonzero(orphans)[0])
            name = next(nm for nm, off, nb in zip(self._layout.names, self._layout.offsets, self._layout.nbytes)
                        if off <= first < off + nb)
            raise ValueError(f"mask keeps weights in layer {name!r} that no added mask keeps")


def resolve_threshold(threshold: Threshold, n_sources: int) -> int:
    """The vote count k a weight needs: 'all' means n_sources (the paper's intersection)."""
    if isinstance(n_sources, bool) or not isinstance(n_sources, (int, np.integer)) or n_sources < 1:
        raise ValueError(f"consensus needs at least 1 source mask, got n_sources={n_sources!r}")
    if threshold == "all":
        return int(n_sources)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)):
        raise ValueError(f"vote threshold must be an integer or 'all', got {threshold!r}")
    if not 1 <= threshold <= n_sources:
        raise ValueError(f"vote threshold {threshold} is outside 1..{n_sources} for {n_sources} source masks")
    return int(threshold)
