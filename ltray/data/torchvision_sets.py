"""The paper's seven datasets, read through torchvision from files under a data root.

Folders follow torchvision's layout, so an existing torchvision data root works as is. Missing
files (offline, or a failed download) raise one DatasetError naming the folder to fill.
EMNIST uses DataConfig.emnist_split (default 'balanced': 47 classes) and keeps torchvision's
stored orientation (images transposed relative to upright), as the paper's code would have seen it.
"""

from __future__ import annotations

import contextlib
import fcntl
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tvd

from ltray.config import DataConfig
from ltray.errors import DatasetError, unknown_key_message


@dataclass(frozen=True)
class _Source:
    cls: type
    folder: str  # where the files live, relative to the root ('' = the root itself)
    files: tuple[str, ...]


_IDX = tuple(f"{s}-{k}-ubyte" for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1"))
_SOURCES = {
    "mnist": _Source(tvd.MNIST, "MNIST/raw", _IDX),
    "fashion_mnist": _Source(tvd.FashionMNIST, "FashionMNIST/raw", _IDX),
    "kmnist": _Source(tvd.KMNIST, "KMNIST/raw", _IDX),
    "emnist": _Source(tvd.EMNIST, "EMNIST/raw", ()),  # file names depend on the split
    "cifar10": _Source(
        tvd.CIFAR10, "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
    ),
    "cifar100": _Source(tvd.CIFAR100, "cifar-100-python", ("train", "test", "meta")),
    "svhn": _Source(tvd.SVHN, "", ("train_32x32.mat", "test_32x32.mat")),
}


def emnist_split(data: DataConfig) -> str:
    if data.emnist_split not in tvd.EMNIST.splits:
        kind = "EMNIST split (data.emnist_split)"
        raise DatasetError(unknown_key_message(kind, data.emnist_split, tvd.EMNIST.splits))
    return data.emnist_split


def emnist_classes(data: DataConfig) -> int:
    """balanced/bymerge 47, byclass 62, digits/mnist 10, letters 27 (label 0 unused, as torchvision)."""
    return len(tvd.EMNIST.classes_split_dict[emnist_split(data)])


def _emnist_files(split: str) -> tuple[str, ...]:
    kinds = ("images-idx3", "labels-idx1")
    return tuple(f"emnist-{split}-{s}-{k}-ubyte" for s in ("train", "test") for k in kinds)


@contextlib.contextmanager
def _download_lock(root: Path, download: bool):
    """Serialise downloads into one root: several Ray workers may start on the same node."""
    if not download:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".ltray-download.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _open(name: str, root: Path, download: bool, files: tuple[str, ...], **kwargs):
    """Construct a torchvision dataset; any failure becomes one DatasetError naming the folder."""
    folder = root / _SOURCES[name].folder
    try:
        with _download_lock(root, download):
            return _SOURCES[name].cls(root, download=download, **kwargs)
    except Exception as e:  # missing/corrupt files, network errors, ...: the fix is the same
        cause = next(iter(str(e).strip().splitlines()), "") or type(e).__name__
        how = f"the download failed ({cause})" if download else f"downloads are off ({cause})"
        raise DatasetError(
            f"dataset {name!r} is not available: put {', '.join(files)} in {folder} ({how})"
        ) from e


def idx_loader(name: str):
    """MNIST, Fashion-MNIST, KMNIST, EMNIST: idx files -> [N, 1, 28, 28] uint8."""
    src = _SOURCES[name]

    def load(split: str, root: Path, download: bool, data: DataConfig):
        kw = {"split": emnist_split(data)} if name == "emnist" else {}
        files = _emnist_files(kw["split"]) if kw else src.files
        ds = _open(name, root, download, files, train=split == "train", **kw)
        return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)

    return load


def cifar_loader(name: str):
    """CIFAR-10/100: pickled batches, stored HWC by torchvision -> [N, 3, 32, 32] uint8."""
    src = _SOURCES[name]

    def load(split: str, root: Path, download: bool, data: DataConfig):
        ds = _open(name, root, download, src.files, train=split == "train")
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(ds.targets, dtype=torch.int64)

    return load


def svhn_loader(split: str, root: Path, download: bool, data: DataConfig):
    """SVHN train/test .mat files; torchvision already maps label 10 to digit 0."""
    ds = _open("svhn", root, download, _SOURCES["svhn"].files, split=split)
    images = torch.from_numpy(np.ascontiguousarray(ds.data))  # already [N, 3, H, W]
    return images, torch.from_numpy(np.asarray(ds.labels, dtype=np.int64)).reshape(-1)
