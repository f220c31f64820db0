"""Architectures: a registry of specs (LeNet, LeNet-300-100, AlexNet, VGG11, ResNet18), seeded
construction that is identical across tasks, and the names of prunable weights."""

from ltray.models.build import build_model
from ltray.models.layers import output_layer_name, prunable_weights
from ltray.models.registry import MODELS, ArchSpec, get_arch

__all__ = ["MODELS", "ArchSpec", "build_model", "get_arch", "output_layer_name", "prunable_weights"]
