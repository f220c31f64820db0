"""Consensus math: rolling vote counts against the pure oracle, thresholds, the random baseline
and sparsity matching."""

import math

import numpy as np
import pytest

from ltray.consensus import (
    closest_round,
    consensus_mask,
    equivalent_rounds,
    random_ticket_like,
    resolve_threshold,
)
from ltray.masks import count_kept
from ltray.masks.votes import VoteCounts

from tests.mask_helpers import assert_masks_equal
from tests.mask_helpers import random_masks as shared_random_masks

SHAPES = {"conv.weight": (4, 3, 3, 3), "fc.weight": (10, 17), "out.weight": (3,)}


def random_masks(n, keep=0.6, seed=0):
    return shared_random_masks(SHAPES, n, keep=keep, seed=seed)


def votes_of(masks):
    votes = VoteCounts.like(masks[0])
    for m in masks:
        votes.add(m)
    return votes


# three tiny masks over one layer, votes per weight: [3, 2, 1, 0, 2, 1]
M1 = {"w": np.array([1, 1, 1, 0, 0, 0], bool)}
M2 = {"w": np.array([1, 1, 0, 0, 1, 0], bool)}
M3 = {"w": np.array([1, 0, 0, 0, 1, 1], bool)}


def test_counts_and_thresholds_by_hand():
    votes = votes_of([M1, M2, M3])
    assert votes.n == 3
    assert votes.counts["w"].tolist() == [3, 2, 1, 0, 2, 1]
    assert votes.consensus("all")["w"].tolist() == [1, 0, 0, 0, 0, 0]
    assert votes.consensus(2)["w"].tolist() == [1, 1, 0, 0, 1, 0]  # k = n - 1
    assert votes.consensus(1)["w"].tolist() == [1, 1, 1, 0, 1, 1]  # the union
    assert votes.histogram().tolist() == [1, 2, 2, 1]


def test_rolling_intersection_matches_logical_and():
    masks = random_masks(5)
    votes = VoteCounts.like(masks[0])
    for m in masks:
        votes.add(m)
    expected = {name: np.logical_and.reduce([m[name] for m in masks]) for name in SHAPES}
    assert_masks_equal(votes.consensus("all"), expected)
    assert_masks_equal(votes.consensus(5), expected)
    assert_masks_equal(consensus_mask(masks, "all"), expected)
    for k in range(1, 6):
        assert_masks_equal(votes.consensus(k), consensus_mask(masks, k))


def test_consensus_only_shrinks_as_threshold_rises():
    votes = votes_of(random_masks(5))
    kept = [count_kept(votes.consensus(k)) for k in range(1, 6)]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]


def test_counts_are_read_only():
    votes = votes_of([M1])
    with pytest.raises(ValueError):
        votes.counts["w"][0] = 7


def test_leave_one_out_rejects_a_mask_never_added():
    with pytest.raises(ValueError, match="'w'"):
        votes_of([M1, M2]).leave_one_out(M3, 1)  # M3 keeps weight 5, which has no vote


def test_leave_one_out_is_consensus_of_the_others():
    masks = random_masks(5, seed=3)
    votes = votes_of(masks)
    for i, own in enumerate(masks):
        others = masks[:i] + masks[i + 1 :]
        for k in (1, 3, "all"):
            assert_masks_equal(votes.leave_one_out(own, k), consensus_mask(others, k))
    assert votes.n == 5  # not modified
    with pytest.raises(ValueError, match="1..4"):
        votes.leave_one_out(masks[0], 5)


def test_leave_one_out_by_hand():
    votes = votes_of([M1, M2, M3])
    assert votes.leave_one_out(M1, "all")["w"].tolist() == [1, 0, 0, 0, 1, 0]  # M2 & M3


def test_histogram_sums_to_weight_count():
    masks = random_masks(4, seed=1)
    hist = votes_of(masks).histogram()
    assert hist.shape == (5,)
    assert hist.sum() == sum(math.prod(s) for s in SHAPES.values())
    stacked = np.concatenate([np.sum([m[n] for m in masks], axis=0).ravel() for n in SHAPES])
    assert hist.tolist() == [int(np.count_nonzero(stacked == v)) for v in range(5)]
    assert VoteCounts(SHAPES).histogram().tolist() == [sum(math.prod(s) for s in SHAPES.values())]


def test_histogram_with_many_votes():
    masks = random_masks(70, keep=0.5, seed=4)  # n >= 64 takes the bincount path
    votes = votes_of(masks)
    stacked = np.concatenate([np.sum([m[n] for m in masks], axis=0).ravel() for n in SHAPES])
    assert votes.histogram().tolist() == np.bincount(stacked, minlength=71).tolist()
    for k in (1, 35, 70):  # beyond ROWS_MAX masks the counts are bit planes: same consensus
        assert_masks_equal(votes.consensus(k), consensus_mask(masks, k))
    assert_masks_equal(votes.leave_one_out(masks[0], "all"), consensus_mask(masks[1:], "all"))


def test_mismatched_layout_is_rejected():
    votes = VoteCounts(SHAPES)
    with pytest.raises(ValueError, match="fc.weight"):
        votes.add({"conv.weight": np.ones((4, 3, 3, 3), bool), "out.weight": np.ones(3, bool)})
    with pytest.raises(ValueError, match="shape"):
        consensus_mask([M1, {"w": np.ones(7, bool)}], 1)


def test_resolve_threshold():
    assert resolve_threshold("all", 5) == 5
    assert resolve_threshold(1, 5) == 1 and resolve_threshold(np.int64(3), 5) == 3
    for bad in (0, 6, -1):
        with pytest.raises(ValueError, match="1..5"):
            resolve_threshold(bad, 5)
    for bad in (2.5, "most", True):
        with pytest.raises(ValueError, match="integer or 'all'"):
            resolve_threshold(bad, 5)
    with pytest.raises(ValueError, match="at least 1 source"):
        resolve_threshold("all", 0)
    with pytest.raises(ValueError, match="at least 1 source"):
        consensus_mask([], 1)


def test_random_ticket_like_keeps_per_layer_counts():
    mask = random_masks(1, keep=0.3)[0]
    mask["dense"] = np.ones((5, 5), bool)
    mask["dead"] = np.zeros((5, 5), bool)
    mask["mostly"] = np.ones(100, bool)
    mask["mostly"][[3, 50]] = False  # exercises the draw-the-pruned branch
    ticket = random_ticket_like(mask, seed=0)
    assert list(ticket) == list(mask)
    for name in mask:
        assert ticket[name].dtype == np.bool_ and ticket[name].shape == mask[name].shape
        assert np.count_nonzero(ticket[name]) == np.count_nonzero(mask[name]), name
    assert not np.array_equal(ticket["fc.weight"], mask["fc.weight"])


def test_random_ticket_is_deterministic_and_seeded():
    mask = random_masks(1, keep=0.3)[0]
    a, b, c = random_ticket_like(mask, 7), random_ticket_like(mask, 7), random_ticket_like(mask, 8)
    assert_masks_equal(a, b)
    assert not np.array_equal(a["fc.weight"], c["fc.weight"])
    # a layer's draw depends on its name, not its position
    reordered = random_ticket_like(dict(reversed(list(mask.items()))), 7)
    np.testing.assert_array_equal(reordered["fc.weight"], a["fc.weight"])
    # pinned: guards against a silent change of the seeding scheme
    pinned = random_ticket_like({"w": np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)}, 0)
    assert np.flatnonzero(pinned["w"]).tolist() == [3, 5, 9]


def test_equivalent_rounds():
    assert equivalent_rounds(0.0, 0.2) == 0.0
    assert equivalent_rounds(1 - 0.8**9, 0.2) == pytest.approx(9)
    assert equivalent_rounds(0.359, 0.2) == pytest.approx(1.993, abs=1e-3)
    with pytest.raises(ValueError):
        equivalent_rounds(1.0, 0.2)
    with pytest.raises(ValueError):
        equivalent_rounds(0.5, 0.0)


def test_closest_round_ties_go_to_the_earlier_round():
    rounds = {r: 1 - 0.8**r for r in range(21)}
    assert closest_round(rounds, 0.85) == 9  # 0.8658 beats 0.8322
    assert closest_round(rounds, 0.0) == 0
    assert closest_round(rounds, 1.0) == 20
    assert closest_round({1: 0.2, 2: 0.36}, 0.28) == 1  # exact tie (up to float noise)
    assert closest_round({5: 0.36, 2: 0.2}, 0.28) == 2  # order of the mapping does not matter
    assert closest_round({1: 0.2, 2: 0.36}, 0.2800001) == 2
    with pytest.raises(ValueError):
        closest_round({}, 0.5)


# ---- chance level ------------------------------------------------------------------------------


def test_chance_sparsity_is_the_independent_vote():
    import itertools

    from ltray.chance import chance_sparsity

    assert chance_sparsity([0.64] * 5) == pytest.approx(1 - 0.64**5)  # 0.893: five 36%-sparse masks
    assert chance_sparsity([0.64] * 5) == pytest.approx(0.8926, abs=1e-4)
    densities = [0.9, 0.5, 0.3, 0.75]
    for k in range(1, 5):
        keep = sum(
            np.prod([d if kept else 1 - d for d, kept in zip(densities, votes)])
            for votes in itertools.product([0, 1], repeat=4) if sum(votes) >= k)
        assert chance_sparsity(densities, k) == pytest.approx(1 - keep), k
    assert chance_sparsity(densities, "all") == chance_sparsity(densities, 4)
    with pytest.raises(ValueError):
        chance_sparsity([0.5, 1.5])
    with pytest.raises(ValueError):
        chance_sparsity([0.5, 0.5], 3)


def test_layerwise_chance_matches_densities_per_layer():
    from ltray.chance import chance_sparsity, layerwise_chance_sparsity

    small = np.ones(10, bool)
    a = {"big": np.r_[np.ones(20, bool), np.zeros(80, bool)], "small": small}
    b = {"big": np.r_[np.zeros(50, bool), np.ones(50, bool)], "small": small}
    # per layer: big keeps 0.2 * 0.5 of 100 weights, small all 10 -> 20 of 110 kept
    assert layerwise_chance_sparsity([a, b]) == pytest.approx(1 - 20 / 110)
    whole = chance_sparsity([30 / 110, 60 / 110])
    assert layerwise_chance_sparsity([a, b]) < whole  # the small dense layer is shared by all
