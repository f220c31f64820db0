"""Turn a TaskSpec into device-resident, normalised train/val/test tensors, once per worker.

raw uint8 -> views -> [0, 1] floats -> channels (RGB->grey luminance; grey->RGB is a stride-0
view, no copy) -> seeded train/val split -> optional cap -> normalise every split with the
training split's per-channel mean/std. Images stay at their native side (28 or 32 px); the
training loop resizes each batch to the model's side on the device (TaskData.inputs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ltray.config import DataConfig, TaskSpec
from ltray.errors import DatasetError

from .registry import get_dataset, load_raw
from .views import apply_views, task_label

Tensor = torch.Tensor
LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as PIL's convert('L')
CHUNK_VALUES = 2**24  # floats per conversion chunk (64 MiB): bounds peak memory on large sets


@dataclass(frozen=True, eq=False)
class TaskData:
    """One task's splits, ready to train on. Shared via a cache: never modify the tensors in place.

    Images are float32, normalised, at the dataset's native side: CIFAR-10 for a 224 px network
    takes 0.7 GB, not 24 GB, so several trials fit one GPU. Call `inputs` on each (augmented)
    batch to get the model's input side. Float32 rather than uint8 keeps the luminance
    conversion exact and the per-batch path to a single resize.
    """

    name: str
    train_x: Tensor  # float32 [N, C, h, w], native side h x w, normalised (may be a stride-0 channel view)
    train_y: Tensor  # int64 [N]
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    mean: Tensor  # float32 [C], of the [0, 1]-scaled training split at native side
    std: Tensor  # float32 [C]
    image_size: int  # the model's input side, pixels

    @functools.cached_property
    def pad_value(self) -> Tensor:
        """float32 [C]: the normalised value of a raw black pixel, the fill for crop padding."""
        return -self.mean / self.std

    def inputs(self, x: Tensor) -> Tensor:
        """A batch at native side -> the model's input side (x itself when they already match)."""
        return resize(x, self.image_size)


def resize(x: Tensor, side: int) -> Tensor:
    """[N, C, h, w] -> [N, C, side, side]: bilinear, antialiased when shrinking; identity (no copy) if equal."""
    h, w = x.shape[-2:]
    if (h, w) == (side, side):
        return x
    shrink = side < max(h, w)  # antialiasing only matters when downscaling
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=shrink)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train, val) indices of a train set of size n; depends only on n, val_fraction and seed."""
    if n < 2:
        raise DatasetError(f"cannot split a training set of {n} sample(s) into train and validation")
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:], perm[:n_val]


def stored_channels(raw_channels: int, channels: int) -> int:
    """Channels actually stored: grey for an RGB network stays 1 channel (expanded as a view)."""
    if raw_channels == channels or raw_channels == 1:
        return raw_channels
    if raw_channels == 3 and channels == 1:
        return 1
    raise DatasetError(f"cannot convert {raw_channels}-channel images to the architecture's {channels} channel(s)")


def to_float(raw: Tensor, channels: int, device: torch.device) -> Tensor:
    """uint8 [N, C, h, w] -> float32 [N, channels, h, w] in [0, 1] on `device`, in chunks.

    `channels` is C or 1 (RGB -> grey by luminance); see `stored_channels`.
    """
    n, c, h, w = raw.shape
    out = torch.empty((n, channels, h, w), dtype=torch.float32, device=device)
    step = max(1, CHUNK_VALUES // (max(c, channels) * h * w))
    weights = torch.tensor(LUMINANCE, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    for start in range(0, n, step):  # per-image ops: chunking never changes the values
        x = raw[start : start + step].to(device).float().div_(255.0)
        if c != channels:
            x = (x * weights).sum(dim=1, keepdim=True)
        out[start : start + step] = x
    return out


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) std, accumulated in float64 over chunks."""
    c = x.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64, device=x.device)
    s2 = torch.zeros(c, dtype=torch.float64, device=x.device)
    step = max(1, CHUNK_VALUES // x[0].numel())
    for start in range(0, x.shape[0], step):
        chunk = x[start : start + step].double()
        s1 += chunk.sum(dim=(0, 2, 3))
        s2 += chunk.square().sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / count
    std = (s2 / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant channel: leave its scale
    return mean.float(), std.float()


def load_task(
    task: TaskSpec,
    *,
    in_channels: int,
    image_size: int,
    seed: int,
    data: DataConfig | None = None,
    root: Path | str = "data",
    download: bool = False,
    device: str | torch.device = "cpu",
    name: str | None = None,
) -> TaskData:
    """Prepare `task` for an architecture taking `in_channels` x `image_size`^2 inputs.

    `data.image_size`, when set, overrides `image_size`; either way it is only recorded (for
    `TaskData.inputs`), the stored images keep their native side. The train/val split depends
    only on `seed`, the train set size and `data.val_fraction`; the test set never depends on
    `seed`. Results are cached per argument set (bounded), so a worker's later trials reuse them.
    """
    data = data or DataConfig()
    return _load_task_cached(
        task, in_channels, data.image_size or image_size, seed, data,
        Path(root).expanduser().resolve(), download, str(torch.device(device)), name or task_label(task),
    )


@functools.lru_cache(maxsize=2)  # a task is up to ~1 GB on the device: keep only the current one or two
def _load_task_cached(task, in_channels, side, seed, data, root, download, device, name) -> TaskData:
    spec = get_dataset(task.dataset)
    num_classes = spec.num_classes(data)
    dev = torch.device(device)

    raw_train = load_raw(task.dataset, "train", root, download=download, data=data)
    raw_test = load_raw(task.dataset, "test", root, download=download, data=data)
    train_img, train_lab = apply_views(*raw_train, task.views, num_classes)
    test_img, test_lab = apply_views(*raw_test, task.views, num_classes)

    train_idx, val_idx = split_indices(len(train_lab), data.val_fraction, seed)
    if data.max_train_samples is not None:
        train_idx = train_idx[: data.max_train_samples]

    # only the selected images are converted: a capped quick run stays cheap
    stored = stored_channels(train_img.shape[1], in_channels)
    train_x = to_float(train_img[train_idx], stored, dev)
    val_x = to_float(train_img[val_idx], stored, dev)
    test_x = to_float(test_img, stored, dev)

    mean, std = channel_stats(train_x)
    splits = []
    for x in (train_x, val_x, test_x):  # fresh tensors of ours: normalise in place
        x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
        splits.append(x if stored == in_channels else x.expand(-1, in_channels, -1, -1))  # grey -> RGB, no copy
    if stored != in_channels:
        mean, std = mean.repeat(in_channels), std.repeat(in_channels)

    return TaskData(
        name=name,
        train_x=splits[0], train_y=train_lab[train_idx].to(dev),
        val_x=splits[1], val_y=train_lab[val_idx].to(dev),
        test_x=splits[2], test_y=test_lab.to(dev),
        num_classes=num_classes, mean=mean, std=std, image_size=side,
    )


def clear_caches() -> None:
    """Forget prepared tasks and raw loads (tests; freeing memory between tasks)."""
    from .registry import _cached_raw

    _load_task_cached.cache_clear()
    _cached_raw.cache_clear()
