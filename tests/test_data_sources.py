"""Datasets described by their files alone: an .npz of arrays and an ImageFolder of images, read
through ltray's storage, then prepared like any built-in set (views, split, normalisation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ltray.config import FolderSource, NpzSource, RotateView, TaskSpec
from ltray.data import get_dataset, load_raw, load_task
from ltray.errors import DatasetError
from ltray.sweep.__main__ import main as sweep_main


def write_npz(path, n_train=30, n_test=10, classes=3, side=6, channels=None, **replace):
    rng = np.random.default_rng(0)
    shape = (side, side) if channels is None else (channels, side, side)
    arrays = {"train_images": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
              "train_labels": np.arange(n_train) % classes,
              "test_images": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
              "test_labels": np.arange(n_test) % classes}
    arrays.update(replace)
    np.savez(path, **arrays)
    return arrays


def test_an_npz_loads_as_a_dataset_and_a_task(tmp_path):
    arrays = write_npz(tmp_path / "d.npz", channels=3)
    source = NpzSource(npz=str(tmp_path / "d.npz"))
    spec = get_dataset(source)
    assert (spec.num_classes(), spec.channels, spec.side) == (3, 3, 6)
    images, labels = load_raw(source, "test", tmp_path)
    assert images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert np.array_equal(images.numpy(), arrays["test_images"]) and labels.tolist() == list(arrays["test_labels"])
    task = load_task(TaskSpec(dataset=source, views=(RotateView(rotate=90),)), in_channels=1, image_size=8, seed=0)
    assert task.train_x.shape == (24, 1, 6, 6) and task.num_classes == 3 and task.image_size == 8


def test_a_grey_npz_without_a_channel_axis_has_one_channel(tmp_path):
    write_npz(tmp_path / "g.npz")
    assert get_dataset(NpzSource(npz=str(tmp_path / "g.npz"))).channels == 1


@pytest.mark.parametrize("replace, fragment", [
    ({"train_images": np.zeros((30, 6, 6), np.float32)}, "train_images must be uint8"),
    ({"test_labels": np.zeros(3, np.int64)}, "test_labels must be integers [10]"),
    ({"train_labels": np.full(30, -1)}, "train labels must be >= 0"),
])
def test_a_bad_npz_is_one_dataset_error(tmp_path, replace, fragment):
    write_npz(tmp_path / "b.npz", **replace)
    with pytest.raises(DatasetError, match=None) as info:
        load_raw(NpzSource(npz=str(tmp_path / "b.npz")), "train", tmp_path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def write_folder(root, sizes=((5, 5),), classes=("cat", "dog"), per_class=4):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                w, h = sizes[i % len(sizes)]
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_an_image_folder_loads_through_torchvision(tmp_path):
    write_folder(tmp_path / "imgs")
    source = FolderSource(folder=str(tmp_path / "imgs"))
    images, labels = load_raw(source, "train", tmp_path)
    assert images.shape == (8, 3, 5, 5) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # classes are the sorted folder names
    first = np.asarray(Image.open(tmp_path / "imgs" / "train" / "cat" / "0.png")).transpose(2, 0, 1)
    assert np.array_equal(images[0].numpy(), first)
    grey = FolderSource(folder=str(tmp_path / "imgs"), channels=1, side=3)
    assert load_raw(grey, "test", tmp_path)[0].shape == (8, 1, 3, 3)


def test_an_image_folder_of_mixed_sizes_needs_a_side(tmp_path):
    write_folder(tmp_path / "mixed", sizes=((5, 5), (7, 4)))
    with pytest.raises(DatasetError, match="set side: to resize all"):
        load_raw(FolderSource(folder=str(tmp_path / "mixed")), "train", tmp_path)
    images, _ = load_raw(FolderSource(folder=str(tmp_path / "mixed"), side=6), "train", tmp_path)
    assert images.shape == (8, 3, 6, 6)


def test_sweep_files_name_data_files_with_no_code(tmp_path, capsys):
    write_npz(tmp_path / "d.npz")
    write_folder(tmp_path / "imgs")
    doc = {"name": "files", "storage": str(tmp_path / "store"),
           "tasks": {"arrays": {"dataset": {"npz": str(tmp_path / "d.npz")}},
                     "pictures": {"dataset": {"folder": str(tmp_path / "imgs"), "format": "imagefolder", "side": 6}}},
           "grid": {"tasks": ["arrays", "pictures"], "archs": ["lenet_300_100"], "techniques": ["l1_unstructured"],
                    "seeds": [0]},
           "rounds": 2, "train": {"epochs": 1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    assert sweep_main([str(tmp_path / "s.yaml"), "--dry-run"]) == 0, capsys.readouterr().err
    doc["tasks"]["arrays"]["dataset"]["npz"] = str(tmp_path / "missing.npz")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    assert sweep_main([str(tmp_path / "s.yaml"), "--dry-run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "tasks.arrays.dataset: " in lines[0] and "missing.npz" in lines[0], lines
    assert not (tmp_path / "store").exists()
