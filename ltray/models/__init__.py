"""Architectures: a registry of specs (LeNet, LeNet-300-100, AlexNet, VGG11, ResNet18), seeded
construction that is identical across tasks, and which weights are masked and pruned."""

from ltray.models.build import build_model, build_skeleton
from ltray.models.layers import mask_layers, output_layer_name, prunable_weights, shortcut_layers
from ltray.models.registry import MODELS, Architecture, ArchSpec, get_arch, is_arch

__all__ = [
    "MODELS",
    "ArchSpec",
    "Architecture",
    "build_model",
    "build_skeleton",
    "get_arch",
    "is_arch",
    "mask_layers",
    "output_layer_name",
    "prunable_weights",
    "shortcut_layers",
]
