"""The paper's Table 1 (unpruned parameters per pruning iteration, global unstructured pruning)
for LeNet, AlexNet, VGG11 and ResNet18 at the paper's input sizes, from ltray's own layer rule
(`prunable_weights`) and pruning arithmetic, and the counts checked against `prune` itself.

The paper's s counts every parameter that is not explicitly zeroed, so biases and batch-norm
parameters (never pruned) count as unpruned. Its iteration i is the network pruned i + 1 times:
ltray's round i + 1.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
import torch
from torch.nn.utils import prune as tprune

from ltray.config import PruneConfig
from ltray.models import MODELS, build_model, build_skeleton, get_arch, mask_layers, prunable_weights
from ltray.models import output_layer_name, shortcut_layers
from ltray.pruning import TECHNIQUES, TensorContext, prune, saliency
from ltray.pruning.counts import surviving_weights

ITERATIONS = (0, 1, 2, 5, 9, 14, 19)
# Table 1's s column, thousands, exactly as printed (/work/shared/docs/paper-protocol.md)
TABLE_1 = {
    "lenet": ("48", "38", "30", "15", "6.7", "2.3", "0.9"),
    "alexnet": ("45,637", "36,512", "29,211", "14,960", "6,133", "2,016", "666"),
    "vgg11": ("103,048", "82,440", "65,954", "33,774", "13,840", "4,542", "1,495"),
    "resnet18": ("8,981", "7,221", "5,813", "3,065", "1,362", "568", "308"),
}
PAPER_ARCHS = sorted(TABLE_1)


def as_printed(count: int, printed: str) -> bool:
    """Does `count` (parameters) print as `printed` (thousands)? The paper truncates its integer
    rows (38,532 -> 38) but rounds some decimals (6,661 -> 6.7), so either way counts."""
    figure = Decimal(printed.replace(",", ""))
    unit = Decimal(1).scaleb(figure.as_tuple().exponent)  # 1, or 0.1 for '6.7'
    thousands = Decimal(count) / 1000
    truncated = (thousands // unit) * unit
    rounded = thousands.quantize(unit)
    return figure in (truncated, rounded)


def table_rows(arch: str, *, dense_first=False, count_unprunable=True, round_of=lambda i: i + 1,
               **layer_rule) -> list[int]:
    """Unpruned parameters at each listed iteration under a layer rule; by default the one a
    trajectory with default settings prunes (PruneConfig's defaults, as run_trajectory passes them)."""
    defaults = PruneConfig()
    rule = {"include_output": defaults.prune_output, "include_shortcuts": defaults.prune_shortcuts, **layer_rule}
    model = build_skeleton(arch, 10, get_arch(arch).image_size)
    params = dict(model.named_parameters())
    names = prunable_weights(model, **rule)
    if dense_first:
        names = names[1:]
    shapes = {n: tuple(params[n].shape) for n in names}
    fixed = sum(p.numel() for n, p in params.items() if n not in shapes) if count_unprunable else 0
    counts = surviving_weights(shapes, "global_unstructured", max(ITERATIONS) + 2)
    return [counts[round_of(i)] + fixed for i in ITERATIONS]


def matches_table(arch: str, rows: list[int]) -> bool:
    return all(as_printed(c, p) for c, p in zip(rows, TABLE_1[arch]))


def test_printed_precision_reads_the_table_as_printed():
    assert as_printed(45_637_719, "45,637") and as_printed(38_532, "38") and as_printed(6_661, "6.7")
    assert as_printed(926, "0.9") and as_printed(2_342, "2.3")
    assert not as_printed(45_638_000, "45,637") and not as_printed(6_599, "6.7")
    assert not as_printed(6_649, "6.7") and not as_printed(37_499, "38") and not as_printed(39_000, "38")


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_table_1_every_listed_iteration(arch):
    rows = table_rows(arch)
    for i, count, printed in zip(ITERATIONS, rows, TABLE_1[arch]):
        assert as_printed(count, printed), f"{arch} iteration {i}: ltray keeps {count:,}, the paper {printed}k"


# Each wrong rule or counting convention breaks at least one row of one architecture's table
# (so the test above would catch it); the right ones are ltray's defaults.
WRONG = {
    "shortcut convs pruned": ("resnet18", {"include_shortcuts": True}),
    "output layer dense (alexnet)": ("alexnet", {"include_output": False}),
    "output layer dense (vgg11)": ("vgg11", {"include_output": False}),
    "output layer dense (resnet18)": ("resnet18", {"include_output": False}),
    "output layer dense (lenet)": ("lenet", {"include_output": False}),
    "first conv dense (alexnet)": ("alexnet", {"dense_first": True}),
    "first conv dense (resnet18)": ("resnet18", {"dense_first": True}),
    "biases and batch-norm not counted (resnet18)": ("resnet18", {"count_unprunable": False}),
    "biases not counted (vgg11)": ("vgg11", {"count_unprunable": False}),
    "iteration 0 = the dense network": ("alexnet", {"round_of": lambda i: i}),
    "iteration 0 = two prunings": ("lenet", {"round_of": lambda i: i + 2}),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_table_1_rejects_other_layer_rules(case):
    arch, rule = WRONG[case]
    assert not matches_table(arch, table_rows(arch, **rule)), case


def test_only_resnet_has_shortcuts_and_they_are_masked_but_dense_by_default():
    for arch in MODELS:
        model = build_skeleton(arch, 10)
        shortcuts = shortcut_layers(model)
        assert (len(shortcuts) == 3) == (arch == "resnet18") and (arch == "resnet18" or not shortcuts)
        assert set(shortcuts) <= set(mask_layers(model))
        assert not set(shortcuts) & set(prunable_weights(model))
        assert set(prunable_weights(model, include_shortcuts=True)) == set(mask_layers(model))
        assert prunable_weights(model)[0] == mask_layers(model)[0]  # the first conv is pruned
        assert f"{output_layer_name(model)}.weight" in prunable_weights(model)
    res = build_skeleton("resnet18", 10)
    params = dict(res.named_parameters())
    assert sum(params[n].numel() for n in shortcut_layers(res)) == 172_032  # 8,192 + 32,768 + 131,072


# ---- the counts are what `prune` itself does ----------------------------------------------------


def lenet_shapes_and_weights(seed: int = 0):
    model = build_model("lenet", 10, seed)
    params = dict(model.named_parameters())
    return model, {n: params[n].detach().clone() for n in prunable_weights(model)}


@pytest.mark.parametrize("technique", sorted(TECHNIQUES))
def test_counts_are_what_prune_leaves_for_every_technique(technique, monkeypatch):
    """10 rounds on LeNet's real layers, new weights every round (the counts must not care);
    data-dependent techniques see the network and random images through their context."""
    monkeypatch.setattr(saliency, "SYNFLOW_ITERATIONS", 4)  # the schedule's end count is what is tested
    monkeypatch.setattr(saliency, "SNIP_BATCHES", 2)
    model, weights = lenet_shapes_and_weights()
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    expected = surviving_weights(shapes, technique, 10)
    mask = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    assert expected[0] == sum(m.numel() for m in mask.values())
    for r in range(1, 11):
        trained = {n: w + 0.05 * torch.randn(w.shape, generator=gen) for n, w in weights.items()}
        context = TensorContext(model, mask, images, labels, seed=r)
        mask = prune(technique, trained, mask, fraction=0.2, seed=0, round=r, context=context)
        assert sum(int(m.sum()) for m in mask.values()) == expected[r], (technique, r)


def test_lenet_table_1_by_torch_prune_itself():
    """torch.nn.utils.prune (the paper's implementation) on LeNet, 20 global rounds: the same
    survivors as ltray's, exactly, every round; so the rounding is torch's too."""
    model, weights = lenet_shapes_and_weights()
    modules = dict(model.named_modules())
    pairs = [(modules[n.rpartition(".")[0]], "weight") for n in weights]
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    expected = surviving_weights(shapes, "global_unstructured", 20)
    ours = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    others = sum(p.numel() for n, p in model.named_parameters() if n not in weights)
    rows = []
    for r in range(1, 21):
        tprune.global_unstructured(pairs, pruning_method=tprune.L1Unstructured, amount=0.2)
        ours = prune("global_unstructured", weights, ours, fraction=0.2, seed=0, round=r)
        theirs = {n: m.weight_mask.bool() for n, (m, _) in zip(weights, pairs)}
        assert all(torch.equal(ours[n], theirs[n]) for n in weights), r
        alive = sum(int(m.sum()) for m in theirs.values())
        assert alive == expected[r], r
        rows.append(alive + others)
    assert matches_table("lenet", [rows[i] for i in ITERATIONS])
    # the paper's round-half-to-even arithmetic, not truncation: they part within 20 rounds
    floor, n = [], expected[0]
    for _ in range(20):
        n -= math.floor(0.2 * n)
        floor.append(n)
    assert floor != expected[1:]
