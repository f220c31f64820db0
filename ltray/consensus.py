"""Pret-a-porter tickets by consensus: vote counts of which weights survive on which source
tasks, the consensus mask at a vote threshold, the random baseline, and sparsity matching.

numpy only (no torch, no Ray): the consensus actor wraps VoteCounts and persists its bytes.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from ltray.masks.arrays import Mask, as_mask, check_same_layout

Threshold = int | Literal["all"]
_MAX_VOTES = np.iinfo(np.uint16).max  # counts are uint16: at most 65535 masks
_CHUNK = 1 << 22  # weights per bincount call, to bound temporary memory


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


def consensus_mask(masks: Sequence[Mapping[str, object]], k: Threshold) -> Mask:
    """Keep a weight where at least k of `masks` keep it (k='all': the intersection)."""
    if not masks:
        raise ValueError("consensus needs at least 1 source mask, got none")
    arrays = [as_mask(m) for m in masks]
    for other in arrays[1:]:
        check_same_layout(arrays[0], other)
    k = resolve_threshold(k, len(arrays))
    return {name: np.sum([m[name] for m in arrays], axis=0, dtype=np.int64) >= k for name in arrays[0]}


class VoteCounts:
    """Per-weight counts of how many added masks keep it (uint16, in the first layout's order).

    Rolling: masks are added as source trajectories finish and removed to undo, so a consensus
    at any threshold is available without keeping every source mask.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]):
        self._counts = {name: np.zeros(tuple(shape), np.uint16) for name, shape in shapes.items()}
        self._n = 0

    @classmethod
    def like(cls, mask: Mapping[str, object]) -> VoteCounts:
        """Empty counts shaped like `mask`."""
        return cls({name: m.shape for name, m in as_mask(mask).items()})

    @classmethod
    def from_masks(cls, masks: Sequence[Mapping[str, object]]) -> VoteCounts:
        """Counts with every mask in `masks` added (shapes from the first)."""
        if not masks:
            raise ValueError("VoteCounts.from_masks needs at least 1 mask")
        votes = cls.like(masks[0])
        for mask in masks:
            votes.add(mask)
        return votes

    @property
    def n(self) -> int:
        """Number of masks added (minus those removed)."""
        return self._n

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: c.shape for name, c in self._counts.items()}

    @property
    def counts(self) -> dict[str, np.ndarray]:
        """Read-only views of the per-layer counts."""
        views = {}
        for name, c in self._counts.items():
            views[name] = c.view()
            views[name].flags.writeable = False
        return views

    def add(self, mask: Mapping[str, object]) -> None:
        """Count one more source mask."""
        mask = self._checked(mask)
        if self._n >= _MAX_VOTES:
            raise ValueError(f"VoteCounts holds at most {_MAX_VOTES} masks")
        for name, c in self._counts.items():
            np.add(c, mask[name], out=c)  # uint16 += bool (0/1)
        self._n += 1

    def remove(self, mask: Mapping[str, object]) -> None:
        """Undo add(mask); raise ValueError if `mask` cannot have been added."""
        mask = self._checked(mask)
        self._check_contains(mask)
        for name, c in self._counts.items():
            np.subtract(c, mask[name], out=c)
        self._n -= 1

    def consensus(self, k: Threshold) -> Mask:
        """Keep weights with at least k votes (k in 1..n or 'all')."""
        k = resolve_threshold(k, self._n)
        return {name: c >= k for name, c in self._counts.items()}

    def leave_one_out(self, own_mask: Mapping[str, object], k: Threshold) -> Mask:
        """Consensus of the other n-1 masks at threshold k (in 1..n-1 or 'all' = n-1): the
        ticket a held-out source would get without voting for itself."""
        own = self._checked(own_mask)
        self._check_contains(own)
        k = resolve_threshold(k, self._n - 1)
        # no underflow: _check_contains made sure every weight own keeps has a vote
        return {name: np.subtract(c, own[name], dtype=np.uint16) >= k for name, c in self._counts.items()}

    def histogram(self) -> np.ndarray:
        """hist[v] = number of weights kept by exactly v of the n masks (length n+1)."""
        hist = np.zeros(self._n + 1, np.int64)
        for c in self._counts.values():
            if self._n < 64:  # a few comparisons beat bincount's cast to intp
                hist += [np.count_nonzero(c == v) for v in range(self._n + 1)]
                continue
            flat = c.ravel()
            for start in range(0, flat.size, _CHUNK):
                hist += np.bincount(flat[start : start + _CHUNK], minlength=self._n + 1)
        return hist

    def to_npz_bytes(self) -> bytes:
        """Serialise to .npz bytes (no pickle); the caller writes them atomically.

        Counts are stored as bit planes (bit b of every count, packed 8 per byte), so n=5 votes
        take 3 bits per weight and writing stays fast (zlib on raw uint16 is ~100x slower)."""
        bits = max(1, self._n.bit_length())
        arrays = {"n": np.array(self._n, np.int64), "names": np.array(list(self._counts), dtype=str)}
        for i, c in enumerate(self._counts.values()):
            arrays[f"shape{i}"] = np.array(c.shape, np.int64)
            for b in range(bits):
                arrays[f"plane{i}_{b}"] = np.packbits((c & (1 << b)) != 0, axis=None, bitorder="little")
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> VoteCounts:
        """Inverse of to_npz_bytes; raise ValueError on anything malformed."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                n = int(npz["n"])
                if not 0 <= n <= _MAX_VOTES:
                    raise ValueError(f"vote count n={n} is outside 0..{_MAX_VOTES}")
                names = [str(name) for name in npz["names"]]
                counts = {name: _from_planes(npz, i, n) for i, name in enumerate(names)}
        except Exception as exc:  # zip, key, shape and dtype errors all mean "not our file"
            raise ValueError(f"not a VoteCounts npz: {exc}") from exc
        if len(set(names)) != len(names):
            raise ValueError("not a VoteCounts npz: duplicate layer names")
        if any(c.size and c.max() > n for c in counts.values()):
            raise ValueError(f"not a VoteCounts npz: counts exceed n={n}")
        votes = cls({})
        votes._counts, votes._n = counts, n
        return votes

    def _checked(self, mask: Mapping[str, object]) -> Mask:
        mask = as_mask(mask)
        check_same_layout(self._counts, mask)
        return mask

    def _check_contains(self, mask: Mask) -> None:
        if self._n == 0:
            raise ValueError("VoteCounts is empty: no mask has been added")
        for name, c in self._counts.items():
            if np.any(mask[name] & (c == 0)):
                raise ValueError(f"mask keeps weights in layer {name!r} that no added mask keeps")


def _from_planes(npz, i: int, n: int) -> np.ndarray:
    shape = tuple(int(d) for d in npz[f"shape{i}"])
    size = math.prod(shape)
    counts = np.zeros(size, np.uint16)
    for b in range(max(1, n.bit_length())):
        plane = np.unpackbits(npz[f"plane{i}_{b}"], count=size, bitorder="little")
        counts |= plane.astype(np.uint16) << b
    return counts.reshape(shape)


def random_ticket_like(mask: Mapping[str, object], seed: int) -> Mask:
    """A random mask with exactly `mask`'s kept count in every layer: the random baseline.

    Each layer draws from its own numpy Generator seeded by SHA-256 of (seed, layer name), so
    the result depends only on the seed, the names and the counts (not on layer order).
    """
    out: Mask = {}
    for name, m in as_mask(mask).items():
        size, kept = m.size, int(np.count_nonzero(m))
        rng = np.random.default_rng(_layer_seed(seed, name))
        flat = np.zeros(size, bool)
        if kept > size // 2:  # draw the (fewer) pruned positions instead
            flat[:] = True
            flat[rng.choice(size, size - kept, replace=False, shuffle=False)] = False
        elif kept:
            flat[rng.choice(size, kept, replace=False, shuffle=False)] = True
        out[name] = flat.reshape(m.shape)
    return out


def _layer_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"ltray-random-ticket\0{int(seed)}\0{name}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


def equivalent_rounds(sparsity: float, fraction: float) -> float:
    """How many rounds pruning `fraction` of the survivors each reaches `sparsity`:
    log(1 - sparsity) / log(1 - fraction). E.g. 0.359 at 20% per round -> 1.99."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"pruning fraction must be in (0, 1), got {fraction}")
    return math.log1p(-sparsity) / math.log1p(-fraction)


def closest_round(round_sparsity: Mapping[int, float], target: float) -> int:
    """The round whose sparsity is closest to `target` (matching a bespoke ticket to a consensus
    ticket). Rule: smallest |sparsity - target|; differences within 1e-12 count as ties (float
    noise), and a tie goes to the earlier round, i.e. the less sparse ticket."""
    if not round_sparsity:
        raise ValueError("closest_round needs at least one round")
    diffs = {r: abs(s - target) for r, s in round_sparsity.items()}
    best = min(diffs.values())
    return min(r for r, d in diffs.items() if d <= best + 1e-12)
