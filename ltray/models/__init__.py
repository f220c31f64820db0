"""Architectures: a registry of specs (LeNet, LeNet-300-100, AlexNet, VGG11, ResNet18) and of
plugins (`Architecture`), seeded construction that is identical across tasks, and which weights
are masked and pruned.

The registry is torch-free (a sweep file's names are checked in a base install); the names that
need torch are imported on first use."""

import importlib

_WHERE = {
    "MODELS": "registry", "ArchSpec": "registry", "Architecture": "registry", "get_arch": "registry",
    "is_arch": "registry",
    "build_model": "build", "build_skeleton": "build",
    "mask_layers": "layers", "output_layer_name": "layers", "prunable_weights": "layers", "shortcut_layers": "layers",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
