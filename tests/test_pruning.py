"""Pruning techniques: torch.nn.utils.prune as an oracle over iterative rounds, plus invariants
(amounts, masks only shrink, whole channels, random techniques ignore the weights)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from ltray.errors import ConfigError
from ltray.pruning import TECHNIQUES, get_technique, prune

SHAPES = {"conv1": (8, 3, 3, 3), "conv2": (12, 8, 3, 3), "fc1": (20, 48), "fc2": (5, 20)}
ROUNDS = 4
SALIENCY = ("snip", "synflow")  # need a model and data: tests/test_saliency.py
ALL = sorted(t for t in TECHNIQUES if t not in SALIENCY)
STRUCTURED_N = {"l1_structured": 1, "l2_structured": 2, "linf_structured": math.inf, "lneginf_structured": -math.inf}


def toy_modules() -> nn.ModuleDict:
    mods = {}
    for name, shape in SHAPES.items():
        mods[name] = nn.Conv2d(shape[1], shape[0], shape[2]) if len(shape) == 4 else nn.Linear(shape[1], shape[0])
    return nn.ModuleDict(mods)


def trained_weights(r: int, ties: bool = False, task: int = 0) -> dict[str, torch.Tensor]:
    """Stand-in for the weights after training round r; `ties` quantises them to few values."""
    gen = torch.Generator().manual_seed(1000 * task + r)
    out = {}
    for name, shape in SHAPES.items():
        w = torch.randn(shape, generator=gen)
        out[f"{name}.weight"] = torch.round(w * 2) / 2 if ties else w
    return out


def dense(weights) -> dict[str, torch.Tensor]:
    return {k: torch.ones_like(v, dtype=torch.bool) for k, v in weights.items()}


def _set_weights(mods: nn.ModuleDict, weights: dict) -> None:
    """Load new 'trained' weights into modules that torch's pruning may have reparametrised."""
    for name, m in mods.items():
        w = weights[f"{name}.weight"]
        if hasattr(m, "weight_orig"):
            m.weight_orig.data.copy_(w)
            m.weight = m.weight_orig * m.weight_mask  # what the forward pre-hook would do
        else:
            m.weight.data.copy_(w)


def _torch_masks(mods: nn.ModuleDict) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": m.weight_mask.bool() for name, m in mods.items()}


def _oracle_step(technique: str, mods: nn.ModuleDict, dim: int) -> None:
    if technique == "global_unstructured":
        params = [(m, "weight") for m in mods.values()]
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=0.2)
    elif technique == "l1_unstructured":
        for m in mods.values():
            tprune.l1_unstructured(m, "weight", amount=0.2)
    else:
        for m in mods.values():
            tprune.ln_structured(m, "weight", amount=0.2, n=STRUCTURED_N[technique], dim=dim)


def _run_both(technique: str, dim: int = 1, ties: bool = False):
    """Iterative pruning with new weights every round, by torch and by ltray; yields both masks."""
    mods = toy_modules()
    ours = None
    for r in range(ROUNDS):
        weights = trained_weights(r, ties)
        _set_weights(mods, weights)
        _oracle_step(technique, mods, dim)
        ours = prune(technique, weights, ours or dense(weights), fraction=0.2, seed=0, round=r, dim=dim)
        yield r, ours, _torch_masks(mods)


ORACLE = ["global_unstructured", "l1_unstructured", *STRUCTURED_N]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("technique", ORACLE)
def test_matches_torch_prune_over_rounds(technique, ties):
    for r, ours, theirs in _run_both(technique, ties=ties):
        for k in ours:
            assert torch.equal(ours[k], theirs[k]), (technique, r, k)


@pytest.mark.parametrize("technique", list(STRUCTURED_N))
def test_matches_torch_structured_along_dim0(technique):
    for r, ours, theirs in _run_both(technique, dim=0):
        for k in ours:
            assert torch.equal(ours[k], theirs[k]), (technique, r, k)


def _expected_alive(n: int, rounds: int) -> int:
    for _ in range(rounds):
        n -= round(0.2 * n)
    return n


def _iterate(technique: str, rounds: int, dim: int = 1, seed: int = 0, task: int = 0):
    mask = None
    for r in range(rounds):
        weights = trained_weights(r, task=task)
        mask = prune(technique, weights, mask or dense(weights), fraction=0.2, seed=seed, round=r, dim=dim)
    return mask


def _alive_channels(m: torch.Tensor, dim: int) -> torch.Tensor:
    return m.any(dim=[d for d in range(m.dim()) if d != dim])


@pytest.mark.parametrize("technique", ["l1_unstructured", "random_unstructured"])
def test_unstructured_prunes_a_fifth_of_survivors_per_layer(technique):
    for rounds in range(1, 6):
        mask = _iterate(technique, rounds)
        for k, m in mask.items():
            n = m.numel()
            assert int(m.sum()) == _expected_alive(n, rounds), (k, rounds)
            assert abs(int(m.sum()) - 0.8**rounds * n) <= rounds


def test_global_prunes_a_fifth_of_pooled_survivors():
    total = sum(math.prod(s) for s in SHAPES.values())
    for rounds in range(1, 6):
        mask = _iterate("global_unstructured", rounds)
        assert sum(int(m.sum()) for m in mask.values()) == _expected_alive(total, rounds)
    per_layer = [int(m.sum()) / m.numel() for m in mask.values()]
    assert max(per_layer) - min(per_layer) > 0.01  # layers are not pruned at one shared rate


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("technique", [t for t in ALL if TECHNIQUES[t].structured])
def test_structured_prunes_whole_channels(technique, dim):
    for rounds in range(1, 6):
        mask = _iterate(technique, rounds, dim=dim)
        for k, m in mask.items():
            alive = _alive_channels(m, dim)
            assert int(alive.sum()) == _expected_alive(m.shape[dim], rounds), (k, rounds)
            # every surviving channel is whole, every pruned one entirely zero
            per_channel = m.numel() // m.shape[dim]
            assert int(m.sum()) == int(alive.sum()) * per_channel


@pytest.mark.parametrize("technique", ALL)
def test_masks_only_shrink_from_any_previous_mask(technique):
    weights = trained_weights(0)
    gen = torch.Generator().manual_seed(7)
    prev = {k: torch.rand(v.shape, generator=gen) < 0.7 for k, v in weights.items()}
    if TECHNIQUES[technique].structured:  # a structured history: some whole input channels gone
        prev = {k: m | True for k, m in prev.items()}
        prev["conv2.weight"][:, 2] = False
        prev["fc1.weight"][:, :5] = False
    before = {k: m.clone() for k, m in prev.items()}
    w_before = {k: w.clone() for k, w in weights.items()}
    new = prune(technique, weights, prev, fraction=0.2, seed=0, round=3)
    assert set(new) == set(prev)
    for k in new:
        assert new[k].dtype == torch.bool and new[k].shape == prev[k].shape
        assert not (new[k] & ~prev[k]).any(), k  # nothing revived
        assert (new[k].sum() < prev[k].sum()), k  # something removed
        assert torch.equal(prev[k], before[k]) and torch.equal(weights[k], w_before[k])  # inputs untouched


@pytest.mark.parametrize("technique", ["l1_unstructured", "global_unstructured", *STRUCTURED_N])
def test_pruned_weights_are_never_reselected(technique):
    """Scores use masked weights: huge values behind the mask must not protect their units."""
    weights = trained_weights(0)
    mask = prune(technique, weights, dense(weights), fraction=0.2, seed=0, round=0)
    big = {k: torch.where(mask[k], w, torch.full_like(w, 1e6)) for k, w in weights.items()}
    new = prune(technique, big, mask, fraction=0.2, seed=0, round=1)
    ref = prune(technique, {k: w * mask[k] for k, w in weights.items()}, mask, fraction=0.2, seed=0, round=1)
    for k in new:
        assert torch.equal(new[k], ref[k])


def test_linf_and_lneginf_use_max_and_min():
    # columns (dim=1): max/min |w| = 10/0.01, 1/1, 5/0.5; one of three columns is pruned
    w = {"fc.weight": torch.tensor([[10.0, 1.0, 5.0], [0.01, -1.0, 0.5]])}
    m = dense(w)
    pruned = {t: (~prune(t, w, m, fraction=0.34, seed=0, round=0)["fc.weight"]).all(0).nonzero().item()
              for t in ["linf_structured", "lneginf_structured", "l1_structured", "l2_structured"]}
    assert pruned == {"linf_structured": 1, "lneginf_structured": 0, "l1_structured": 1, "l2_structured": 1}


@pytest.mark.parametrize("technique", ["random_unstructured", "random_structured"])
def test_random_techniques_ignore_the_task(technique):
    a = _iterate(technique, 3, seed=4, task=0)
    b = _iterate(technique, 3, seed=4, task=1)  # other weights every round: another task
    c = _iterate(technique, 3, seed=5, task=0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("technique", ["random_unstructured", "random_structured"])
def test_random_streams_differ_by_round_and_layer_and_spare_global_rng(technique):
    shape = (10, 10)
    w = {"a.weight": torch.randn(shape), "b.weight": torch.randn(shape)}
    state = torch.get_rng_state()
    r0 = prune(technique, w, dense(w), fraction=0.5, seed=0, round=0)
    r1 = prune(technique, w, dense(w), fraction=0.5, seed=0, round=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(r0["a.weight"], r0["b.weight"])
    assert not torch.equal(r0["a.weight"], r1["a.weight"])
    assert torch.equal(r0["a.weight"], prune(technique, w, dense(w), fraction=0.5, seed=0, round=0)["a.weight"])


def test_magnitude_techniques_depend_on_weights():
    a = _iterate("l1_unstructured", 2, task=0)
    b = _iterate("l1_unstructured", 2, task=1)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_structured_stalls_at_two_channels_like_torch():
    """round(0.2 * 2) == 0: the last two channels survive any number of rounds."""
    w = {"fc.weight": torch.randn(4, 2)}
    m = prune("l1_structured", w, dense(w), fraction=0.2, seed=0, round=0)
    assert torch.equal(m["fc.weight"], dense(w)["fc.weight"])


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, 1.5, True, "0.2", None, float("nan")])
def test_fraction_must_be_in_open_unit_interval(fraction):
    w = trained_weights(0)
    with pytest.raises(ConfigError, match="fraction"):
        prune("l1_unstructured", w, dense(w), fraction=fraction, seed=0, round=0)


def test_unknown_technique_lists_known_ones():
    with pytest.raises(ConfigError, match="lneginf_structured"):
        get_technique("l3_structured")
    w = trained_weights(0)
    with pytest.raises(ConfigError, match="global_unstructured"):
        prune("magic", w, dense(w), fraction=0.2, seed=0, round=0)


@pytest.mark.parametrize("technique", [t for t in ALL if TECHNIQUES[t].structured])
def test_structured_rejects_bad_dims(technique):
    w = {"fc.weight": torch.randn(4, 3)}
    with pytest.raises(ConfigError, match="dim 2"):
        prune(technique, w, dense(w), fraction=0.2, seed=0, round=0, dim=2)
    v = {"vec": torch.randn(5)}
    with pytest.raises(ConfigError, match="2 dims"):
        prune(technique, v, dense(v), fraction=0.2, seed=0, round=0, dim=0)


def test_mismatched_inputs_are_errors():
    w = trained_weights(0)
    m = dense(w)
    with pytest.raises(ValueError, match="different layers"):
        prune("l1_unstructured", w, {k: m[k] for k in list(m)[:-1]}, fraction=0.2, seed=0, round=0)
    m["fc2.weight"] = m["fc2.weight"].float()
    with pytest.raises(ValueError, match="bool"):
        prune("l1_unstructured", w, m, fraction=0.2, seed=0, round=0)


def test_registry_names():
    assert set(TECHNIQUES) == {
        "global_unstructured", "l1_unstructured", "random_unstructured", "l1_structured",
        "l2_structured", "linf_structured", "lneginf_structured", "random_structured", "snip", "synflow",
    }
    assert [t for t in ALL if TECHNIQUES[t].random] == ["random_structured", "random_unstructured"]
