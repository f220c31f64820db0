"""The architecture registry: each entry says how to build the network, its input channels,
its default input side and the smallest side its forward pass accepts."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ltray import plugins
from ltray.errors import ConfigError, unknown_key_message

if TYPE_CHECKING:  # the registry is torch-free; constructors import torch when they build
    from torch import nn


def init_linear_vgg(layer: nn.Linear) -> None:
    """torchvision VGG initialises every linear layer with normal(0, 0.01) and zero bias."""
    from torch import nn

    nn.init.normal_(layer.weight, 0, 0.01)
    nn.init.zeros_(layer.bias)


@dataclass(frozen=True)
class ArchSpec:
    """One architecture. `construct(num_classes, image_size)` builds it with default init;
    `init_output` re-initialises a fresh output layer (None: nn.Linear's own init, as built)."""

    name: str
    in_channels: int
    image_size: int  # default input side, pixels
    min_image_size: int  # smallest input side (pixels) whose forward pass works
    construct: Callable[[int, int], nn.Module]
    init_output: Callable[[nn.Linear], None] | None = None
    dense_layers: tuple[str, ...] = ()  # mask names pruning leaves dense (beyond the shortcut rule)


@dataclass(frozen=True)
class Architecture:
    """The public contract of a user's architecture (see docs/plugins.md).

    `build(num_classes, image_size)` returns a fresh nn.Module whose last nn.Linear is the output
    layer. ltray seeds the RNG around it, so it must draw its initial weights from torch's global
    generator (as nn layers do) and nothing else. The mask covers every Conv2d and Linear weight;
    `dense_layers` names those of them (e.g. 'layer2.0.shortcut.0.weight') that pruning leaves dense.
    """

    build: Callable[[int, int], nn.Module]
    in_channels: int  # 1 = grey, 3 = RGB
    image_size: int  # default input side, pixels
    min_image_size: int = 1  # smallest side its forward pass accepts, pixels
    dense_layers: tuple[str, ...] = ()


def _torchvision(name: str) -> Callable[[int, int], nn.Module]:
    """Torchvision models pool adaptively, so the input side does not change their shapes."""

    def construct(num_classes: int, image_size: int) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)

    return construct


def _lenet(cls: str) -> Callable[[int, int], nn.Module]:
    def construct(num_classes: int, image_size: int) -> nn.Module:
        from ltray.models import lenet

        return getattr(lenet, cls)(num_classes, 1, image_size)

    return construct


# Minimum sides were found by running forward passes: AlexNet's three stride-2 max-pools after a
# stride-4 conv need >= 63 px; VGG11's five 2x2 max-pools need >= 32 px; ResNet18 pads every
# strided layer and runs on 1 px (in train mode BatchNorm then needs a batch of >= 2 samples).
MODELS: dict[str, ArchSpec] = {
    "lenet": ArchSpec("lenet", 1, 28, 10, _lenet("LeNet")),
    "lenet_300_100": ArchSpec("lenet_300_100", 1, 28, 1, _lenet("LeNet300100")),
    "alexnet": ArchSpec("alexnet", 3, 224, 63, _torchvision("alexnet")),
    "vgg11": ArchSpec("vgg11", 3, 224, 32, _torchvision("vgg11"), init_linear_vgg),
    "resnet18": ArchSpec("resnet18", 3, 224, 1, _torchvision("resnet18")),
}


def get_arch(name: str) -> ArchSpec:
    """A built-in architecture, else a plugin's (import path or entry point; imports it)."""
    if name in MODELS:
        return MODELS[name]
    spec = _plugin_arch(name)
    if spec is None:
        raise ConfigError(unknown_key_message("architecture", name, MODELS))
    return spec


@functools.cache
def _plugin_arch(name: str) -> ArchSpec | None:
    arch = plugins.resolve("arch", name, Architecture, "ltray.models.Architecture")
    if arch is None:
        return None
    return ArchSpec(name, arch.in_channels, arch.image_size, arch.min_image_size, arch.build,
                    dense_layers=tuple(arch.dense_layers))


def is_arch(name: str) -> bool:
    """A built-in name, an import path or an entry point; imports nothing."""
    return name in MODELS or plugins.is_known("arch", name)
