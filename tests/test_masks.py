"""The .ltmask format (round trip, size, corruption) and mask metrics, plus the no-torch import."""

import hashlib
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ltray.errors import MaskFileError
from ltray.masks import (
    check_mask_matches,
    count_kept,
    jaccard_distance,
    layer_jaccard,
    layer_sparsity,
    load_mask,
    load_mask_with_meta,
    read_mask_header,
    save_mask,
    shared_fraction,
    sparsity,
    total_weights,
)

REPO = Path(__file__).resolve().parents[1]


def sample_mask(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "conv1.weight": rng.random((6, 1, 3, 3)) < 0.5,  # 54 weights: not a multiple of 8
        "fc.weight": rng.random((13, 7)) < 0.3,
        "dead.weight": np.zeros((5, 3), bool),
        "scalar": np.array(True),
        "empty.weight": np.zeros((0, 4), bool),
        "big.weight": rng.random((300, 211)) < 0.1,
    }


def test_round_trip_is_bit_exact_and_keeps_order(tmp_path):
    mask = sample_mask()
    path = tmp_path / "m.ltmask"
    save_mask(path, mask, meta={"round": 3, "task": "mnist"})
    loaded, meta = load_mask_with_meta(path)
    assert list(loaded) == list(mask)
    for name in mask:
        assert loaded[name].dtype == np.bool_ and loaded[name].shape == mask[name].shape
        np.testing.assert_array_equal(loaded[name], mask[name])
    assert meta == {"round": 3, "task": "mnist"}
    assert load_mask(path).keys() == mask.keys()


def test_accepts_float_lists_and_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "m.ltmask"
    t = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    save_mask(path, {"a": [1, 0, 1], "b": np.array([0.0, 0.5]), "t": t})
    loaded = load_mask(path)
    assert loaded["a"].tolist() == [True, False, True]
    assert loaded["b"].tolist() == [False, True]
    assert loaded["t"].tolist() == [[True, False], [False, True]]


def test_bit_order_is_little_and_documented_layout(tmp_path):
    path = tmp_path / "m.ltmask"
    bits = np.zeros(10, bool)
    bits[[0, 3, 9]] = True
    save_mask(path, {"x": bits})
    data = path.read_bytes()
    assert data[:8] == b"LTMASK\x00\x01"
    (length,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + length])
    assert header["tensors"] == [{"name": "x", "shape": [10], "offset": 0, "nbytes": 2}]
    payload = data[12 + length : -32]
    assert payload == bytes([0b00001001, 0b00000010])
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()


def test_file_size_is_about_one_bit_per_weight(tmp_path):
    mask = {f"layer{i}": np.ones((1000, 999), bool) for i in range(3)}
    path = tmp_path / "m.ltmask"
    save_mask(path, mask)
    payload = 3 * ((1000 * 999 + 7) // 8)
    assert payload < path.stat().st_size < payload + 1000


def test_header_is_readable_without_payload(tmp_path):
    path = tmp_path / "m.ltmask"
    save_mask(path, sample_mask(), meta={"arch": "lenet"})
    header = read_mask_header(path)
    assert header["meta"] == {"arch": "lenet"}
    assert [t["name"] for t in header["tensors"]] == list(sample_mask())
    assert header["tensors"][0]["shape"] == [6, 1, 3, 3]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    save_mask(tmp_path / "a.ltmask", sample_mask())
    save_mask(tmp_path / "a.ltmask", sample_mask(1))  # overwrite
    with pytest.raises(ValueError):
        save_mask(tmp_path / "b.ltmask", sample_mask(), meta={"bad": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ltmask"]
    np.testing.assert_array_equal(load_mask(tmp_path / "a.ltmask")["fc.weight"], sample_mask(1)["fc.weight"])


def _rewrite(path, data, fix_checksum=False):
    if fix_checksum:
        data = data[:-32] + hashlib.sha256(data[:-32]).digest()
    path.write_bytes(data)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: d[:-40] + bytes([d[-40] ^ 0x01]) + d[-39:], "checksum"),  # a payload byte
        (lambda d: d[:-1] + bytes([d[-1] ^ 0xFF]), "checksum"),  # the checksum itself
        (lambda d: d[: len(d) // 2], "checksum"),
        (lambda d: d[:20], "truncated"),
        (lambda d: b"", "truncated"),
        (lambda d: b"NOTAMASK" + d[8:], "magic"),
        (lambda d: d[:7] + b"\x02" + d[8:], "version 2"),
    ],
)
def test_corruption_raises_mask_file_error(tmp_path, corrupt, message):
    path = tmp_path / "m.ltmask"
    save_mask(path, sample_mask())
    _rewrite(path, corrupt(path.read_bytes()))
    with pytest.raises(MaskFileError, match=message) as info:
        load_mask(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _with_header(data, edit):
    (length,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + length])
    new = edit(header)
    new_bytes = new if isinstance(new, bytes) else json.dumps(new).encode()
    return data[:8] + struct.pack("<I", len(new_bytes)) + new_bytes + data[12 + length :]


def _shrink_first(header):
    header["tensors"][0]["shape"] = [6, 1, 3, 2]
    return header


def _grow_last_nbytes_and_shape(header):
    header["tensors"][-1]["shape"] = [300, 212]
    header["tensors"][-1]["nbytes"] = (300 * 212 + 7) // 8
    return header


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h: b"{not json", "not valid JSON"),
        (lambda h: {"meta": {}}, "tensors"),
        (_shrink_first, "needs"),
        (_grow_last_nbytes_and_shape, "payload is"),
    ],
)
def test_bad_header_raises_even_with_valid_checksum(tmp_path, edit, message):
    path = tmp_path / "m.ltmask"
    save_mask(path, sample_mask())
    _rewrite(path, _with_header(path.read_bytes(), edit), fix_checksum=True)
    with pytest.raises(MaskFileError, match=message):
        load_mask(path)
    with pytest.raises(MaskFileError, match=message):
        read_mask_header(path)


def test_missing_file_raises_mask_file_error(tmp_path):
    with pytest.raises(MaskFileError, match="not found"):
        load_mask(tmp_path / "nope.ltmask")
    with pytest.raises(MaskFileError, match="nope"):
        read_mask_header(tmp_path / "nope.ltmask")


def test_check_mask_matches_names_first_problem(tmp_path):
    mask = {"a": np.ones((2, 3), bool), "b": np.ones(4, bool)}
    check_mask_matches(mask, {"a": (2, 3), "b": (4,)}, "m.ltmask")
    with pytest.raises(MaskFileError, match="m.ltmask: mask has no layer 'c'"):
        check_mask_matches(mask, {"a": (2, 3), "b": (4,), "c": (1,)}, "m.ltmask")
    with pytest.raises(MaskFileError, match="unexpected layer 'b'"):
        check_mask_matches(mask, {"a": (2, 3)}, "m.ltmask")
    with pytest.raises(MaskFileError, match=r"'a' has shape \(2, 3\), expected \(3, 2\)"):
        check_mask_matches(mask, {"a": (3, 2), "b": (4,)}, "m.ltmask")


def test_numpy_parts_work_without_torch_or_ray(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        sys.modules["ray"] = None
        import numpy as np
        from ltray.masks import save_mask, load_mask, jaccard_distance, sparsity
        from ltray.consensus import consensus_mask, random_ticket_like
        from ltray.masks.votes import VoteCounts
        m = {{"w": np.array([True, False, True])}}
        save_mask({str(tmp_path / "m.ltmask")!r}, m)
        back = load_mask({str(tmp_path / "m.ltmask")!r})
        assert back["w"].tolist() == [True, False, True]
        assert jaccard_distance(m, back) == 0.0 and abs(sparsity(m) - 1 / 3) < 1e-12
        assert consensus_mask([m, back], "all")["w"].tolist() == [True, False, True]
        votes = VoteCounts.like(m)
        votes.add(m)
        assert votes.n == 1 and random_ticket_like(m, 0)["w"].sum() == 2
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---- metrics ----

A = {"x": np.array([1, 1, 0, 0, 1], bool), "y": np.array([[1, 0], [0, 0]], bool)}
B = {"x": np.array([1, 0, 1, 0, 1], bool), "y": np.array([[0, 0], [0, 1]], bool)}


def test_counts_and_sparsity():
    assert count_kept(A) == 4 and total_weights(A) == 9
    assert sparsity(A) == pytest.approx(5 / 9)
    assert layer_sparsity(A) == pytest.approx({"x": 2 / 5, "y": 3 / 4})
    assert sparsity({}) == 0.0


def test_jaccard_by_hand():
    # pooled: A = 4 kept, B = 4 kept, intersection = x[0], x[4] -> 2, union = 6
    assert jaccard_distance(A, B) == pytest.approx(1 - 2 / 6)
    # x: inter 2, union 4 -> 0.5; y: inter 0, union 2 -> 1.0
    assert layer_jaccard(A, B) == pytest.approx({"x": 0.5, "y": 1.0})
    assert jaccard_distance(A, B) == jaccard_distance(B, A)


def test_jaccard_edge_cases():
    assert jaccard_distance(A, A) == 0.0
    disjoint = {name: ~m for name, m in A.items()}
    assert jaccard_distance(A, disjoint) == 1.0
    empty = {name: np.zeros_like(m) for name, m in A.items()}
    assert jaccard_distance(empty, empty) == 0.0
    assert layer_jaccard(empty, A) == {"x": 1.0, "y": 1.0}
    assert layer_jaccard({"z": np.zeros(3, bool)}, {"z": np.zeros(3, bool)}) == {"z": 0.0}


def test_shared_fraction_is_share_of_first_mask():
    assert shared_fraction(A, B) == pytest.approx(2 / 4)
    small = {"x": np.array([1, 0, 0, 0, 0], bool), "y": np.zeros((2, 2), bool)}
    assert shared_fraction(small, A) == 1.0
    assert shared_fraction(A, small) == pytest.approx(1 / 4)
    assert shared_fraction({n: np.zeros_like(m) for n, m in A.items()}, A) == 0.0


@pytest.mark.parametrize("fn", [jaccard_distance, layer_jaccard, shared_fraction])
def test_mismatched_layouts_raise(fn):
    with pytest.raises(ValueError, match="'y'"):
        fn(A, {"x": A["x"]})
    with pytest.raises(ValueError, match="'z'"):
        fn(A, {**A, "z": np.ones(2, bool)})
    with pytest.raises(ValueError, match="shape"):
        fn(A, {"x": A["x"], "y": np.ones((4,), bool)})
