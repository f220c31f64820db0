"""The `.ltmask` file: a bit-packed, checksummed mask that needs only numpy to read.

Format version 1, all integers little-endian:

    bytes 0-7     magic b"LTMASK\\x00\\x01" (the last byte is the format version, 1)
    bytes 8-11    uint32 header length H
    next H bytes  UTF-8 JSON header: {"tensors": [{"name": str, "shape": [int, ...],
                  "offset": int, "nbytes": int}, ...], "meta": {...}}
                  offset and nbytes locate each tensor inside the payload
    payload       each tensor's row-major flattened mask packed 1 bit per weight with
                  np.packbits(flat, bitorder="little") (bit i of byte j is weight 8*j+i;
                  padding bits are 0), concatenated in header order, so nbytes = ceil(size/8)
    last 32 bytes SHA-256 of every byte before them

A reader checks magic, version, checksum and that every tensor's nbytes fits its shape, and
raises ltray.errors.MaskFileError naming the file otherwise. `meta` is free-form JSON.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ltray.errors import MaskFileError
from ltray.fileio import atomic_writer
from ltray.masks.arrays import Mask, as_mask
from ltray.masks.packed import Layout, PackedMask

FORMAT_VERSION = 1
MAGIC_PREFIX = b"LTMASK\x00"  # followed by one version byte
MAGIC = MAGIC_PREFIX + bytes([FORMAT_VERSION])
MASK_SUFFIX = ".ltmask"
_LENGTH = struct.Struct("<I")  # header length, uint32 little-endian
_DIGEST_BYTES = 32  # SHA-256
_PREAMBLE_BYTES = len(MAGIC) + _LENGTH.size  # 12


def save_mask(path: str | os.PathLike, mask: Mapping[str, object], meta: dict | None = None) -> None:
    """Write `mask` (layer order kept) and JSON-able `meta` to `path` in one atomic rename."""
    _write(path, *_mask_parts(mask), meta)


def save_packed_mask(path: str | os.PathLike, mask: PackedMask, meta: dict | None = None) -> None:
    """Write a mask already in packed form (its bits are the payload as is): no unpacking."""
    _write(path, mask.layout, [_checked_bits(mask, path)], meta)


def mask_to_bytes(mask: Mapping[str, object] | PackedMask, meta: dict | None = None, source: str = "mask") -> bytes:
    """The whole `.ltmask` file as bytes (for storage that is not a local path)."""
    if isinstance(mask, PackedMask):
        layout, chunks = mask.layout, [_checked_bits(mask, source)]
    else:
        layout, chunks = _mask_parts(mask)
    digest = hashlib.sha256()
    parts = []
    for chunk in itertools.chain([_preamble(layout, meta, source)], chunks):
        digest.update(chunk)
        parts.append(chunk)
    parts.append(digest.digest())
    return b"".join(parts)


def _mask_parts(mask: Mapping[str, object]):
    arrays = as_mask(mask)
    layout = Layout.of({name: array.shape for name, array in arrays.items()})
    chunks = (np.packbits(array.ravel(order="C"), bitorder="little").tobytes() for array in arrays.values())
    return layout, chunks


def _checked_bits(mask: PackedMask, where) -> bytes:
    if mask.bits.dtype != np.uint8 or mask.bits.shape != (mask.layout.total_bytes,):
        raise ValueError(f"packed mask for {where} must be uint8 [{mask.layout.total_bytes}], "
                         f"got {mask.bits.dtype} {mask.bits.shape}")
    return mask.bits.tobytes()


def _preamble(layout: Layout, meta: dict | None, where) -> bytes:
    tensors = [{"name": name, "shape": list(shape), "offset": offset, "nbytes": nbytes}
               for name, shape, offset, nbytes in zip(layout.names, layout.shapes, layout.offsets, layout.nbytes)]
    try:
        header = json.dumps({"tensors": tensors, "meta": dict(meta or {})}, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"mask meta for {where} is not plain JSON: {exc}") from exc
    header_bytes = header.encode("utf-8")
    return MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes


def _write(path, layout: Layout, payload_chunks, meta: dict | None) -> None:
    digest = hashlib.sha256()
    with atomic_writer(path, "wb") as f:  # one layer at a time: bounded memory
        for chunk in itertools.chain([_preamble(layout, meta, path)], payload_chunks):
            digest.update(chunk)
            f.write(chunk)
        f.write(digest.digest())


def load_mask(path: str | os.PathLike) -> Mask:
    """Read a mask file; raise MaskFileError if it is missing, corrupt or not a mask file."""
    return load_mask_with_meta(path)[0]


def load_mask_with_meta(path: str | os.PathLike) -> tuple[Mask, dict]:
    """Read a mask file and the `meta` dict it was saved with, verifying the checksum."""
    packed, meta = load_packed_mask(path)
    return packed.unpack(), meta


def load_packed_mask(path: str | os.PathLike) -> tuple[PackedMask, dict]:
    """Read a mask file as packed bits (its payload, read-only, never unpacked) and its `meta`,
    with every check load_mask makes. `path` may also be an s3:// or gs:// URI (needs pyarrow)."""
    if "://" in str(path):
        from ltray.storage import StorageError, open_storage

        parent, _, name = str(path).rpartition("/")
        try:
            data = open_storage(parent).read_bytes(name)
        except StorageError as exc:
            raise MaskFileError(f"{path}: {'mask file not found' if exc.missing else exc}") from None
        return mask_from_bytes(data, str(path))
    path = Path(path)
    return mask_from_bytes(_read_bytes(path), str(path))


def mask_from_bytes(data: bytes, source: str = "mask") -> tuple[PackedMask, dict]:
    """Parse and verify a whole `.ltmask` file given as bytes; `source` names it in errors."""
    if len(data) < _PREAMBLE_BYTES + _DIGEST_BYTES:
        raise MaskFileError(f"{source}: truncated mask file ({len(data)} bytes)")
    _check_magic(source, data[: len(MAGIC)])
    body, stored = memoryview(data)[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != stored:
        raise MaskFileError(f"{source}: checksum mismatch (file is corrupt or truncated)")
    header, payload_start = _parse_header(source, data[len(MAGIC) : _PREAMBLE_BYTES], body)
    payload = np.frombuffer(body, dtype=np.uint8, offset=payload_start)
    _check_payload_size(source, header, payload.size)
    layout = Layout.of({entry["name"]: tuple(entry["shape"]) for entry in header["tensors"]})
    return PackedMask(layout, payload), header["meta"]


def read_mask_header(path: str | os.PathLike) -> dict:
    """The JSON header ({"tensors": [...], "meta": {...}}) without reading the payload.

    Cheap: checks magic, version, header JSON and the file size, but not the checksum."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            preamble = f.read(_PREAMBLE_BYTES)
            if len(preamble) < _PREAMBLE_BYTES:
                raise MaskFileError(f"{path}: truncated mask file ({len(preamble)} bytes)")
            _check_magic(path, preamble[: len(MAGIC)])
            (length,) = _LENGTH.unpack(preamble[len(MAGIC) :])
            header_bytes = f.read(length)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise MaskFileError(f"{path}: cannot read mask file ({exc.strerror or exc})") from exc
    header, payload_start = _parse_header(path, preamble[len(MAGIC) :], preamble + header_bytes)
    _check_payload_size(path, header, size - payload_start - _DIGEST_BYTES)
    return header


def check_mask_matches(
    mask: Mapping[str, np.ndarray], expected_shapes: Mapping[str, tuple], path: str | os.PathLike
) -> None:
    """Raise MaskFileError naming the first layer of the mask at `path` that is missing, extra,
    or shaped differently from `expected_shapes` (e.g. the architecture's prunable weights)."""
    for name, shape in expected_shapes.items():
        if name not in mask:
            raise MaskFileError(f"{path}: mask has no layer {name!r} (expected shape {tuple(shape)})")
        if tuple(np.shape(mask[name])) != tuple(shape):
            raise MaskFileError(
                f"{path}: layer {name!r} has shape {tuple(np.shape(mask[name]))}, expected {tuple(shape)}"
            )
    for name in mask:
        if name not in expected_shapes:
            raise MaskFileError(f"{path}: mask has unexpected layer {name!r}")


def _packed_nbytes(size: int) -> int:
    return (size + 7) // 8


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise MaskFileError(f"{path}: mask file not found") from exc
    except OSError as exc:
        raise MaskFileError(f"{path}: cannot read mask file ({exc.strerror or exc})") from exc


def _check_magic(path: Path, magic: bytes) -> None:
    if magic[: len(MAGIC_PREFIX)] != MAGIC_PREFIX:
        raise MaskFileError(f"{path}: not an ltray mask file (bad magic bytes {magic[:8]!r})")
    if magic[-1] != FORMAT_VERSION:
        raise MaskFileError(
            f"{path}: unsupported mask format version {magic[-1]} (this ltray reads version {FORMAT_VERSION})"
        )


def _parse_header(path: Path, length_bytes: bytes, data: bytes) -> tuple[dict, int]:
    """The validated header and the payload's start offset in the file."""
    (length,) = _LENGTH.unpack(length_bytes)
    start = _PREAMBLE_BYTES + length
    if len(data) < start:
        raise MaskFileError(f"{path}: truncated mask file (header length {length} runs past the end)")
    try:
        header = json.loads(bytes(data[_PREAMBLE_BYTES:start]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MaskFileError(f"{path}: mask header is not valid JSON ({str(exc)[:80]})") from exc
    _check_header(path, header)
    return header, start


def _check_header(path: Path, header) -> None:
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise MaskFileError(f"{path}: mask header lacks a 'tensors' list")
    if not isinstance(header.get("meta", {}), dict):
        raise MaskFileError(f"{path}: mask header 'meta' is not an object")
    header.setdefault("meta", {})
    names, expected_offset = set(), 0
    for i, entry in enumerate(header["tensors"]):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("shape"), list)
            and all(_is_count(d) for d in entry["shape"])
            and _is_count(entry.get("offset"))
            and _is_count(entry.get("nbytes"))
        ):
            raise MaskFileError(f"{path}: mask header tensor #{i} is malformed: {repr(entry)[:80]}")
        name = entry["name"]
        if name in names:
            raise MaskFileError(f"{path}: mask header lists layer {name!r} twice")
        names.add(name)
        if entry["nbytes"] != _packed_nbytes(math.prod(entry["shape"])):
            raise MaskFileError(
                f"{path}: layer {name!r} has {entry['nbytes']} payload bytes but shape {entry['shape']} needs "
                f"{_packed_nbytes(math.prod(entry['shape']))}"
            )
        if entry["offset"] != expected_offset:
            raise MaskFileError(f"{path}: layer {name!r} payload offset {entry['offset']} != {expected_offset}")
        expected_offset += entry["nbytes"]


def _check_payload_size(path: Path, header: dict, payload_size: int) -> None:
    needed = sum(entry["nbytes"] for entry in header["tensors"])
    if payload_size != needed:
        raise MaskFileError(f"{path}: payload is {payload_size} bytes but the layer shapes need {needed}")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
