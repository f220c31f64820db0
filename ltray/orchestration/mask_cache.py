"""Masks as packed bits from the experiment's storage, kept in a byte-bounded LRU cache: the
similarity partners of later masks are mostly the masks that arrived just before them."""

from __future__ import annotations

from collections import OrderedDict

from ltray.experiment.records import read_mask
from ltray.storage import Storage
from ltray.masks.packed import PackedMask

CACHE_BYTES = 256 << 20  # a VGG11 mask is 16 MB packed


class MaskCache:
    def __init__(self, storage: Storage, max_bytes: int = CACHE_BYTES):
        self.storage = storage
        self.max_bytes = max_bytes
        self._masks: OrderedDict[str, PackedMask] = OrderedDict()
        self._bytes = 0

    def get(self, rel_path: str) -> PackedMask:
        """The mask at `rel_path` (checksum verified on first read); MaskFileError if damaged."""
        mask = self._masks.get(rel_path)
        if mask is not None:
            self._masks.move_to_end(rel_path)
            return mask
        mask = read_mask(self.storage, rel_path)[0]
        self._masks[rel_path] = mask
        self._bytes += mask.nbytes
        while self._bytes > self.max_bytes and len(self._masks) > 1:
            self._bytes -= self._masks.popitem(last=False)[1].nbytes
        return mask

    def forget(self, rel_path: str) -> None:
        mask = self._masks.pop(rel_path, None)
        if mask is not None:
            self._bytes -= mask.nbytes
