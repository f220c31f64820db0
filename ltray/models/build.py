"""Deterministic construction: the same seed gives the same initial body on every task.

The body is built under a forked CPU RNG with a fixed class count, so its random stream never
depends on the task; the output layer is then replaced by one sized to the task and drawn from
its own stream, seeded by (seed, tag). The global RNG state is left as it was.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ltray.errors import ConfigError
from ltray.models.layers import output_layer_name
from ltray.models.registry import get_arch
from ltray.seeding import derive_seed

CANONICAL_CLASSES = 10  # class count the body is built with; the output layer is replaced after
OUTPUT_TAG = "output-layer"


def build_model(arch: str, num_classes: int, seed: int, image_size: int | None = None) -> nn.Module:
    """A fresh network on the CPU with `num_classes` outputs and the seed's initial weights."""
    spec = get_arch(arch)
    size = spec.image_size if image_size is None else image_size
    if size < spec.min_image_size:
        raise ConfigError(f"image_size {size} is below the {spec.min_image_size} px that {arch!r} needs")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        # seed only the CPU generator: torch.manual_seed would also reseed (and disturb) CUDA's
        torch.default_generator.manual_seed(seed)
        model = spec.construct(CANONICAL_CLASSES, size)
        torch.default_generator.manual_seed(derive_seed(seed, OUTPUT_TAG))
        _replace_output(model, num_classes, spec.init_output)
    return model


def build_skeleton(arch: str, num_classes: int, image_size: int | None = None) -> nn.Module:
    """The network on the meta device: every name and shape of `build_model`'s, no weights.
    For counting and layouts; cheap even for VGG11's 129M parameters."""
    spec = get_arch(arch)
    size = spec.image_size if image_size is None else image_size
    with torch.device("meta"):
        model = spec.construct(CANONICAL_CLASSES, size)
        _replace_output(model, num_classes, spec.init_output)
    return model


def _replace_output(model: nn.Module, num_classes: int, init: Callable[[nn.Linear], None] | None) -> None:
    """Swap the last linear layer for a fresh one of `num_classes` outputs, keeping its name."""
    name = output_layer_name(model)
    old = model.get_submodule(name)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    if init is not None:
        init(new)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, new)
