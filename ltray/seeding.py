"""Stable seed derivation: independent random streams from (seed, tag, ...) without Python's
salted hash(), so every process and machine draws the same numbers."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' string forms; usable by torch and numpy generators."""
    blob = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)
