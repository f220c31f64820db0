"""Masks as packed bits (1 bit per weight), laid out exactly as an `.ltmask` payload: each layer's
row-major mask packed with np.packbits(bitorder="little"), layers concatenated, padding bits 0.

The consensus and the aggregator work on this form end to end: a mask file's payload is used as
read, votes and similarities are bitwise passes and popcounts over 1/8 of the bytes of a bool
mask, and nothing is unpacked unless a caller asks for bool arrays. numpy only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ltray.masks.arrays import Mask, as_mask, check_same_shapes


@dataclass(frozen=True)
class Layout:
    """Layer names and shapes, and where each layer's bits sit in the packed buffer."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]  # byte offset of each layer
    nbytes: tuple[int, ...]  # ceil(size / 8) bytes per layer

    @classmethod
    def of(cls, shapes: Mapping[str, tuple[int, ...]]) -> Layout:
        names, dims, offsets, nbytes, offset = [], [], [], [], 0
        for name, shape in shapes.items():
            shape = tuple(int(d) for d in shape)
            names.append(name)
            dims.append(shape)
            offsets.append(offset)
            nbytes.append((math.prod(shape) + 7) // 8)
            offset += nbytes[-1]
        return cls(tuple(names), tuple(dims), tuple(offsets), tuple(nbytes))

    @classmethod
    def like(cls, mask: Mapping[str, object]) -> Layout:
        return cls.of({name: m.shape for name, m in as_mask(mask).items()})

    @property
    def total_bytes(self) -> int:
        return self.offsets[-1] + self.nbytes[-1] if self.names else 0

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def n_weights(self) -> int:
        return sum(self.sizes)

    def shape_dict(self) -> dict[str, tuple[int, ...]]:
        return dict(zip(self.names, self.shapes))

    def pack(self, mask: Mapping[str, object]) -> np.ndarray:
        """A bool mask with this layout -> packed uint8 [total_bytes]."""
        mask = as_mask(mask)
        check_same_shapes(self.shape_dict(), {name: m.shape for name, m in mask.items()})
        out = np.empty(self.total_bytes, np.uint8)
        for name, offset, nbytes in zip(self.names, self.offsets, self.nbytes):
            out[offset:offset + nbytes] = np.packbits(mask[name].ravel(), bitorder="little")
        return out

    def unpack(self, bits: np.ndarray) -> Mask:
        """Packed uint8 [total_bytes] -> {name: bool array} (fresh arrays)."""
        out: Mask = {}
        for name, shape, offset, nbytes in zip(self.names, self.shapes, self.offsets, self.nbytes):
            flat = np.unpackbits(bits[offset:offset + nbytes], count=math.prod(shape), bitorder="little")
            out[name] = flat.view(np.bool_).reshape(shape)
        return out

    def layer_popcounts(self, bits: np.ndarray) -> np.ndarray:
        """int64 [n_layers]: set bits per layer (padding bits are 0, so they never count)."""
        sums = np.zeros(len(self.names), np.int64)
        nonempty, starts = self._reduce_starts
        if len(starts):  # reduceat needs strictly increasing starts: empty layers are skipped
            sums[nonempty] = np.add.reduceat(np.bitwise_count(bits), starts, dtype=np.int64)
        return sums

    @functools.cached_property
    def _reduce_starts(self) -> tuple[np.ndarray, np.ndarray]:
        nonempty = np.array([i for i, nb in enumerate(self.nbytes) if nb], np.intp)
        return nonempty, np.array([self.offsets[i] for i in nonempty], np.intp)


@dataclass(frozen=True, eq=False)
class PackedMask:
    """A mask as packed bits: what `load_packed_mask` returns and the aggregator keeps."""

    layout: Layout
    bits: np.ndarray  # uint8 [layout.total_bytes], read-only when loaded from a file

    def unpack(self) -> Mask:
        return self.layout.unpack(self.bits)

    def kept(self) -> int:
        return int(self.layout.layer_popcounts(self.bits).sum())

    def sparsity(self) -> float:
        """Fraction of all weights masked out, as ltray.masks.sparsity (0.0 with no weights)."""
        total = self.layout.n_weights
        return 1.0 - self.kept() / total if total else 0.0

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)


def layer_jaccard_packed(a: PackedMask, b: PackedMask) -> dict[str, float]:
    """Per-layer Jaccard distance in a's layer order plus '__all__' (every layer pooled), as
    ltray.masks.layer_jaccard and jaccard_distance compute them, by popcounts on packed bits."""
    if a.layout != b.layout:
        check_same_shapes(a.layout.shape_dict(), b.layout.shape_dict())
        raise ValueError("the two masks list the same layers in a different order")
    layout = a.layout
    inter = layout.layer_popcounts(np.bitwise_and(a.bits, b.bits))
    union = layout.layer_popcounts(np.bitwise_or(a.bits, b.bits))
    out = {}
    for name, i, u in zip(layout.names, inter.tolist(), union.tolist()):
        out[name] = 1.0 - i / u if u else 0.0
    i_all, u_all = int(inter.sum()), int(union.sum())
    out["__all__"] = 1.0 - i_all / u_all if u_all else 0.0
    return out


def at_least(rows: list[np.ndarray], k: int, out: np.ndarray | None = None) -> np.ndarray:
    """Packed bits set where at least k of the packed `rows` are set (1 <= k <= len(rows)).

    k = n is an AND over the rows and k = 1 an OR: n - 1 bitwise passes. Other k run the
    "at least j of the first i rows" recurrence, keeping only the j that can still reach k.
    """
    n = len(rows)
    if not 1 <= k <= n:
        raise ValueError(f"threshold {k} is outside 1..{n}")
    if k == n or k == 1:
        op = np.bitwise_and if k == n else np.bitwise_or
        if out is None:
            acc = rows[0].copy()
        else:
            acc = out
            np.copyto(acc, rows[0])
        for row in rows[1:]:
            op(acc, row, out=acc)
        return acc
    s: dict[int, np.ndarray] = {}  # s[j]: at least j of the rows seen so far
    tmp = np.empty_like(rows[0])
    for i, row in enumerate(rows, start=1):
        lo, hi = max(1, k - (n - i)), min(i, k)
        for j in range(hi, lo - 1, -1):  # downwards: s[j - 1] is still the previous row's
            if j == 1:
                if 1 in s:
                    np.bitwise_or(s[1], row, out=s[1])
                else:
                    s[1] = row.copy()
            elif j - 1 in s:
                if j in s:
                    np.bitwise_and(s[j - 1], row, out=tmp)
                    np.bitwise_or(s[j], tmp, out=s[j])
                else:
                    s[j] = np.bitwise_and(s[j - 1], row)
    result = s[k]
    if out is not None:
        np.copyto(out, result)
        return out
    return result


def shared_layer_jaccard(a: PackedMask, b: PackedMask) -> dict[str, float]:
    """layer_jaccard_packed over the layers both masks have with the same shape ('__all__' pools
    only those): masks of one architecture on tasks with other class counts differ in their
    output layer alone, and that layer is left out rather than the pair failing."""
    if a.layout == b.layout:
        return layer_jaccard_packed(a, b)
    where_b = {name: (shape, off, nb) for name, shape, off, nb in
               zip(b.layout.names, b.layout.shapes, b.layout.offsets, b.layout.nbytes)}
    out, i_all, u_all = {}, 0, 0
    for name, shape, off, nb in zip(a.layout.names, a.layout.shapes, a.layout.offsets, a.layout.nbytes):
        if name not in where_b or where_b[name][0] != shape:
            continue
        off_b = where_b[name][1]
        x, y = a.bits[off:off + nb], b.bits[off_b:off_b + nb]
        i = int(np.bitwise_count(np.bitwise_and(x, y)).sum(dtype=np.int64))
        u = int(np.bitwise_count(np.bitwise_or(x, y)).sum(dtype=np.int64))
        out[name] = 1.0 - i / u if u else 0.0
        i_all, u_all = i_all + i, u_all + u
    out["__all__"] = 1.0 - i_all / u_all if u_all else 0.0
    return out


# ---- bit planes: a count per weight, bit b of every count packed in plane b ----------------------


def ripple_add(planes: list[np.ndarray], bits: np.ndarray) -> None:
    """counts += bits, on bit planes (a new top plane when a carry leaves the last one)."""
    carry = bits.copy()
    tmp = np.empty_like(carry)
    for plane in planes:
        np.bitwise_and(plane, carry, out=tmp)  # the next carry
        np.bitwise_xor(plane, carry, out=plane)
        carry, tmp = tmp, carry
    if carry.any():
        planes.append(carry)


def ripple_subtract(planes: list[np.ndarray], bits: np.ndarray) -> None:
    """counts -= bits, on bit planes (the caller made sure nothing goes below 0); drops the top
    plane when it empties, keeping max(1, n.bit_length()) planes."""
    borrow = bits.copy()
    tmp = np.empty_like(borrow)
    for plane in planes:
        np.bitwise_and(np.bitwise_not(plane), borrow, out=tmp)  # the next borrow
        np.bitwise_xor(plane, borrow, out=plane)
        borrow, tmp = tmp, borrow
    while len(planes) > 1 and not planes[-1].any():
        planes.pop()


def count_at_least(planes: list[np.ndarray], k: int) -> np.ndarray:
    """Packed bits where the count on `planes` is >= k: compare from the top bit down."""
    if k <= 0:
        return np.full_like(planes[0], 0xFF)
    if k >= 1 << len(planes):
        return np.zeros_like(planes[0])
    gt = np.zeros_like(planes[0])  # count > k on the bits seen so far
    eq = np.full_like(planes[0], 0xFF)  # count == k on the bits seen so far
    tmp = np.empty_like(gt)
    for b in range(len(planes) - 1, -1, -1):
        if (k >> b) & 1:
            np.bitwise_and(eq, planes[b], out=eq)
        else:
            np.bitwise_and(eq, planes[b], out=tmp)
            np.bitwise_or(gt, tmp, out=gt)
            np.bitwise_and(eq, np.bitwise_not(planes[b]), out=eq)
    return np.bitwise_or(gt, eq, out=gt)


def is_immutable(a: np.ndarray) -> bool:
    """True when nothing can change `a`'s bytes: a read-only view of a bytes object (np.frombuffer
    of a file's contents), so VoteCounts may keep it instead of a copy."""
    base = a
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    if isinstance(base, memoryview):
        return base.readonly and isinstance(base.obj, bytes)
    return isinstance(base, bytes)
