"""Packed-bit masks (ltray.masks.packed) and the packed paths of VoteCounts (ltray.masks.votes) and the mask file,
checked against the bool-array implementations they replace on hot paths."""

import numpy as np
import pytest

from ltray.consensus import consensus_mask
from ltray.masks.votes import VoteCounts
from ltray.masks import layer_jaccard, jaccard_distance, load_mask, save_mask, sparsity
from ltray.masks.format import load_packed_mask, save_packed_mask
from ltray.masks.packed import Layout, PackedMask, at_least, layer_jaccard_packed

from tests.mask_helpers import assert_masks_equal
from tests.mask_helpers import random_masks as shared_random_masks

# odd sizes: padding bits in every layer; a scalar and an empty layer
SHAPES = {"conv.weight": (4, 3, 3, 3), "empty": (0, 5), "fc.weight": (10, 17), "s": (), "out.weight": (3,)}


def random_masks(n, keep=0.6, seed=0):
    return shared_random_masks(SHAPES, n, keep=keep, seed=seed)


def test_layout_pack_unpack_round_trip_and_matches_the_file_payload(tmp_path):
    mask = random_masks(1)[0]
    layout = Layout.like(mask)
    bits = layout.pack(mask)
    assert bits.dtype == np.uint8 and bits.size == sum((np.prod(s, dtype=int) + 7) // 8 for s in SHAPES.values())
    assert_masks_equal(layout.unpack(bits), mask)
    save_mask(tmp_path / "m.ltmask", mask, meta={"round": 2})
    packed, meta = load_packed_mask(tmp_path / "m.ltmask")
    assert meta == {"round": 2} and packed.layout == layout
    np.testing.assert_array_equal(packed.bits, bits)
    assert packed.sparsity() == pytest.approx(sparsity(mask))
    save_packed_mask(tmp_path / "p.ltmask", packed, meta={"round": 2})
    assert (tmp_path / "p.ltmask").read_bytes() == (tmp_path / "m.ltmask").read_bytes()
    assert_masks_equal(load_mask(tmp_path / "p.ltmask"), mask)


def test_pack_rejects_another_layout():
    layout = Layout.of(SHAPES)
    bad = dict(random_masks(1)[0])
    bad["fc.weight"] = np.ones((10, 16), bool)
    with pytest.raises(ValueError, match="fc.weight"):
        layout.pack(bad)
    with pytest.raises(ValueError):
        save_packed_mask("unused.ltmask", PackedMask(layout, np.zeros(3, np.uint8)))


def test_packed_jaccard_matches_the_bool_metrics():
    a, b = random_masks(2, keep=0.4, seed=5)
    a["fc.weight"][:] = False
    b["fc.weight"][:] = False  # empty in both: distance 0
    layout = Layout.like(a)
    got = layer_jaccard_packed(PackedMask(layout, layout.pack(a)), PackedMask(layout, layout.pack(b)))
    want = layer_jaccard(a, b)
    assert list(got) == list(want) + ["__all__"]
    for name in want:
        assert got[name] == pytest.approx(want[name]), name
    assert got["__all__"] == pytest.approx(jaccard_distance(a, b))


@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_at_least_is_the_k_of_n_vote(n):
    masks = random_masks(n, seed=n)
    layout = Layout.like(masks[0])
    rows = [layout.pack(m) for m in masks]
    for k in range(1, n + 1):
        assert_masks_equal(layout.unpack(at_least(rows, k)), consensus_mask(masks, k))
    with pytest.raises(ValueError):
        at_least(rows, n + 1)


def votes_of(masks):
    votes = VoteCounts.like(masks[0])
    for m in masks:
        votes.add(m)
    return votes


def test_plane_mode_beyond_the_row_limit_matches_the_oracle():
    masks = random_masks(VoteCounts.ROWS_MAX + 4, keep=0.7, seed=2)
    votes = votes_of(masks)
    n = len(masks)
    for k in (1, 5, n - 1, "all"):
        assert_masks_equal(votes.consensus(k), consensus_mask(masks, k))
    for k in (1, 7, "all"):
        assert_masks_equal(votes.leave_one_out(masks[3], k), consensus_mask(masks[:3] + masks[4:], k))
    expected = np.sum([m["fc.weight"] for m in masks], axis=0)
    np.testing.assert_array_equal(votes.counts["fc.weight"], expected)


def test_packed_and_bool_apis_agree():
    masks = random_masks(5, seed=9)
    by_bool = votes_of(masks)
    by_bits = VoteCounts(SHAPES)
    for m in masks:
        by_bits.add_packed(by_bits.layout.pack(m))
    for k in (2, "all"):
        assert_masks_equal(by_bits.layout.unpack(by_bits.consensus_packed(k)), by_bool.consensus(k))
        own = by_bits.layout.pack(masks[1])
        assert_masks_equal(by_bits.layout.unpack(by_bits.leave_one_out_packed(own, k)),
                           by_bool.leave_one_out(masks[1], k))
    with pytest.raises(ValueError, match="uint8"):
        by_bits.add_packed(np.zeros(3, np.uint8))
