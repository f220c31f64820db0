"""Datasets a sweep file describes by their files alone: an .npz of arrays (`{npz: PATH_OR_URI}`)
or a folder of images in torchvision's ImageFolder layout (`{folder: PATH_OR_URI, format:
imagefolder}`). Both are read through ltray's storage (local paths and s3:// / gs:// URIs alike)
and then go through the same caching, views, preparation and augmentation as built-in sets."""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path, PurePosixPath

from typing import TYPE_CHECKING

import numpy as np

from ltray.config import FolderSource, NpzSource
from ltray.errors import DatasetError
from ltray.storage import StorageError, open_storage

if TYPE_CHECKING:  # torch is imported when data is loaded: naming a source needs no torch
    import torch

SPLITS = ("train", "test")
Source = NpzSource | FolderSource


def source_name(source: Source) -> str:
    """The key under which a source is cached and reported: 'npz:PATH' or 'imagefolder:PATH' (with
    ',side=S' and ',channels=1' when set, as they change the images)."""
    if isinstance(source, NpzSource):
        return f"npz:{source.npz}"
    options = (f",side={source.side}" if source.side else "") + (",channels=1" if source.channels == 1 else "")
    return f"{source.format}:{source.folder}{options}"


@functools.lru_cache(maxsize=4)
def load_source(source: Source) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Both splits: uint8 images [N, C, H, W] and int64 labels [N]."""
    try:
        splits = _read_npz(source) if isinstance(source, NpzSource) else _read_folder(source)
    except StorageError as e:
        raise DatasetError(f"{source_name(source)}: {e}") from None
    for split, (images, labels) in splits.items():
        if labels.numel() and int(labels.min()) < 0:
            raise DatasetError(f"{source_name(source)}: {split} labels must be >= 0, found {int(labels.min())}")
    return splits


def _parent_and_name(location: str) -> tuple[str, str]:
    text = location.rstrip("/")
    if "://" in text:
        head, _, name = text.rpartition("/")
        return head, name
    path = Path(text).expanduser().resolve()
    return str(path.parent), path.name


def _read_npz(source: NpzSource) -> dict:
    parent, name = _parent_and_name(source.npz)
    data = open_storage(parent).read_bytes(name)
    try:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DatasetError(f"{source_name(source)}: not a readable .npz file ({e})") from None
    out = {}
    for split in SPLITS:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in arrays.files]
        if missing:
            raise DatasetError(f"{source_name(source)}: no array {missing[0]!r} (has: {', '.join(arrays.files)})")
        images, labels = arrays[keys[0]], arrays[keys[1]]
        if images.ndim == 3:
            images = images[:, None]
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DatasetError(f"{source_name(source)}: {keys[0]} must be uint8 [N, C, H, W] or [N, H, W], "
                               f"got {images.dtype} {images.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(images),):
            raise DatasetError(f"{source_name(source)}: {keys[1]} must be integers [{len(images)}], "
                               f"got {labels.dtype} {labels.shape}")
        import torch

        out[split] = (torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64)))
    return out


def _read_folder(source: FolderSource) -> dict:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import Resize

    storage = open_storage(source.folder)
    local = storage.local_path()
    with tempfile.TemporaryDirectory(prefix="ltray-imagefolder-") as tmp:
        if local is None:  # a bucket: copy the images next to us first
            local = Path(tmp)
            local_storage = open_storage(local)
            for rel in storage.walk():
                local_storage.write_bytes(rel, storage.read_bytes(rel))
        mode = "RGB" if source.channels == 3 else "L"
        resize = Resize((source.side, source.side)) if source.side else None
        out, classes = {}, None
        for split in SPLITS:
            if not (local / split).is_dir():
                raise DatasetError(f"{source_name(source)}: no folder {split!r} (expected {split}/<class>/<image>)")
            try:
                folder = ImageFolder(str(local / split), loader=lambda p: _image(p, mode, resize))
            except (FileNotFoundError, RuntimeError) as e:
                raise DatasetError(f"{source_name(source)}: {split}: {e}") from None
            if classes is not None and folder.classes != classes:
                raise DatasetError(f"{source_name(source)}: test classes {folder.classes} differ from train's {classes}")
            classes = folder.classes
            out[split] = _stack(source, split, folder)
    return out


def _image(path: str, mode: str, resize):
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert(mode)
        return resize(img) if resize is not None else img.copy()


def _stack(source: FolderSource, split: str, folder) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for i in range(len(folder)):
        img, label = folder[i]
        arr = np.asarray(img, dtype=np.uint8)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if images and arr.shape != images[0].shape:
            path = PurePosixPath(folder.samples[i][0]).name
            raise DatasetError(f"{source_name(source)}: {split}/{path} is {arr.shape[1]}x{arr.shape[2]} px, the "
                               f"first image {images[0].shape[1]}x{images[0].shape[2]}; set side: to resize all")
        images.append(arr)
        labels.append(label)
    import torch

    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)
