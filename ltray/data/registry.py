"""Dataset registry: name -> DatasetSpec (classes, channels, native side, raw loader).

A raw load is uint8 images [N, C, H, W] and int64 labels [N], as torch tensors. Raw loads are
cached in-process, so the trials that one worker runs read each dataset from disk once.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ltray import plugins
from ltray.config import DataConfig
from ltray.errors import DatasetError, unknown_key_message

from .sources import Source, load_source, source_name

if TYPE_CHECKING:  # the registry is torch-free: loaders import torch (and torchvision) when they load
    import torch

    # (split 'train'/'test', data root, download allowed, data settings) -> (images, labels)
    RawLoader = Callable[[str, Path, bool, DataConfig], tuple[torch.Tensor, torch.Tensor]]
SPLITS = ("train", "test")
# EMNIST's class count per split, as torchvision's EMNIST.classes_split_dict has them ('letters'
# keeps torchvision's unused label 0); tests check the two agree
EMNIST_CLASSES = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 27, "digits": 10, "mnist": 10}


@dataclass(frozen=True)
class DatasetSpec:
    """What the rest of ltray needs to know about a dataset before loading it."""

    name: str
    channels: int  # 1 = grey, 3 = RGB
    side: int  # native image side, pixels (all registered sets are square)
    classes: Callable[[DataConfig], int]  # class count; EMNIST's depends on the split
    loader: RawLoader
    config_fields: tuple[str, ...] = ()  # DataConfig fields the loader reads (raw cache key)
    bundled: bool = False  # ships inside a Python package: no files, no download, root ignored

    def num_classes(self, data: DataConfig | None = None) -> int:
        return self.classes(data or DataConfig())


def _fixed(n: int) -> Callable[[DataConfig], int]:
    return lambda data: n


def emnist_classes(data: DataConfig) -> int:
    if data.emnist_split not in EMNIST_CLASSES:
        kind = "EMNIST split (data.emnist_split)"
        raise DatasetError(unknown_key_message(kind, data.emnist_split, EMNIST_CLASSES))
    return EMNIST_CLASSES[data.emnist_split]


def _loader(module: str, name: str, *args) -> RawLoader:
    """A loader from `ltray.data.<module>`, imported (with torch) on its first call."""

    def load(split, root, download, data):
        found = getattr(importlib.import_module(f"ltray.data.{module}"), name)
        return (found(*args) if args else found)(split, root, download, data)

    return load


def _spec(name, channels, side, classes, loader, **kw) -> tuple[str, DatasetSpec]:
    classes = _fixed(classes) if isinstance(classes, int) else classes
    return name, DatasetSpec(name, channels, side, classes, loader, **kw)


DATASETS: dict[str, DatasetSpec] = dict(
    [
        # the paper's seven, read through torchvision from files under the data root
        _spec("mnist", 1, 28, 10, _loader("torchvision_sets", "idx_loader", "mnist")),
        _spec("fashion_mnist", 1, 28, 10, _loader("torchvision_sets", "idx_loader", "fashion_mnist")),
        _spec("kmnist", 1, 28, 10, _loader("torchvision_sets", "idx_loader", "kmnist")),
        _spec("emnist", 1, 28, emnist_classes, _loader("torchvision_sets", "idx_loader", "emnist"),
              config_fields=("emnist_split",)),
        _spec("cifar10", 3, 32, 10, _loader("torchvision_sets", "cifar_loader", "cifar10")),
        _spec("cifar100", 3, 32, 100, _loader("torchvision_sets", "cifar_loader", "cifar100")),
        _spec("svhn", 3, 32, 10, _loader("torchvision_sets", "svhn_loader")),
        # bundled real data: offline demos and tests (fixed test split, seed 0)
        _spec("mnist_subset", 1, 28, 10, _loader("bundled", "load_mnist_subset"), bundled=True),
        _spec("digits", 1, 8, 10, _loader("bundled", "load_digits"), bundled=True),
    ]
)


@dataclass(frozen=True)
class Dataset:
    """The public contract of a user's dataset (see docs/plugins.md).

    `load(split)` returns the images and labels of split 'train' or 'test': uint8 [N, C, H, W]
    (C = `channels`, H = W = `side`) and int64 [N] in 0..classes-1. ltray then treats it like a
    built-in set: cached per worker, views, validation split, normalisation and augmentation.
    """

    load: Callable[[str], tuple[torch.Tensor, torch.Tensor]]
    classes: int
    channels: int  # 1 = grey, 3 = RGB
    side: int  # image side, pixels


def get_dataset(name: str | Source) -> DatasetSpec:
    """A built-in dataset, a plugin's (import path or entry point; imports it), or data files
    (`{npz: ...}`, `{folder: ...}`; reads them)."""
    if not isinstance(name, str):
        return _source_spec(name)
    if name in DATASETS:
        return DATASETS[name]
    if name in _SOURCES:
        return _SOURCES[name]
    spec = _plugin_dataset(name)
    if spec is None:
        raise DatasetError(unknown_key_message("dataset", name, DATASETS))
    return spec


def is_dataset(name: str) -> bool:
    """A built-in name, an import path or an entry point; imports nothing."""
    return name in DATASETS or plugins.is_known("dataset", name)


_SOURCES: dict[str, DatasetSpec] = {}  # data-file datasets met so far, by source_name


def _source_spec(source: Source) -> DatasetSpec:
    key = source_name(source)
    if key not in _SOURCES:
        splits = load_source(source)
        images = splits["train"][0]
        classes = max(int(labels.max()) for _, labels in splits.values() if labels.numel()) + 1
        _SOURCES[key] = DatasetSpec(key, images.shape[1], images.shape[2], _fixed(classes),
                                    lambda split, root, download, data: load_source(source)[split], bundled=True)
    return _SOURCES[key]


@functools.cache
def _plugin_dataset(name: str) -> DatasetSpec | None:
    ds = plugins.resolve("dataset", name, Dataset, "ltray.data.Dataset")
    if ds is None:
        return None

    def loader(split, root, download, data):
        try:
            return ds.load(split)
        except Exception as e:  # noqa: BLE001 - whatever the user's loader raises
            raise plugins.user_error(f"{name}: load({split!r})", e) from None

    # bundled: the loader finds its own files, so the data root is not needed
    return DatasetSpec(name, ds.channels, ds.side, _fixed(ds.classes), loader, bundled=True)


def load_raw(
    name: str | Source, split: str, root: Path | str, *, download: bool = False, data: DataConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw uint8 images [N, C, H, W] and int64 labels of one split; cached, never mutate them."""
    spec = get_dataset(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    data = data or DataConfig()
    # only the settings this loader reads are part of the cache key
    key_data = DataConfig(**{f: getattr(data, f) for f in spec.config_fields})
    key_root = None if spec.bundled else Path(root).expanduser().resolve()
    return _cached_raw(spec.name, split, key_root, download, key_data)


@functools.lru_cache(maxsize=16)  # 7 datasets x 2 splits + bundled; CIFAR-10 train is 150 MB
def _cached_raw(name: str, split: str, root: Path | None, download: bool, data: DataConfig):
    import torch

    spec = get_dataset(name)
    images, labels = spec.loader(split, root, download, data)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != spec.channels:
        raise DatasetError(
            f"dataset {name!r} ({split}): loader returned {images.dtype} {tuple(images.shape)}, "
            f"expected uint8 [N, {spec.channels}, H, W]"
        )
    if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise DatasetError(f"dataset {name!r} ({split}): labels must be int64 [{images.shape[0]}], "
                           f"got {labels.dtype} {tuple(labels.shape)}")
    return images, labels
