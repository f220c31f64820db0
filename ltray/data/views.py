"""Task views: deterministic transforms of raw uint8 images/labels that make new tasks of one dataset.

Views apply in order, identically to train and test, before channel conversion and resizing
(so a rotation happens at the native resolution). Permutations are drawn from a torch.Generator
seeded by the view's own seed: the same permutation for every split, trial and experiment seed.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ltray.config import InvertView, PermuteLabelsView, PermutePixelsView, RotateView, TaskSpec, ViewSpec
from ltray.errors import DatasetError

from .sources import source_name

Tensor = torch.Tensor


def _rotate(view: RotateView, images: Tensor, labels: Tensor, num_classes: int):
    # degrees counter-clockwise about the image centre; corners fill with raw black
    quarter_turns, rest = divmod(float(view.rotate), 90.0)
    square = images.shape[-1] == images.shape[-2]
    if rest == 0 and (square or quarter_turns % 2 == 0):
        # a whole number of quarter turns moves pixels without resampling: torchvision's bilinear
        # rotate gives these exact pixels too (tests/test_data.py), without importing torchvision
        return torch.rot90(images, k=int(quarter_turns) % 4, dims=(-2, -1)), labels
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    out = TF.rotate(images, float(view.rotate), interpolation=InterpolationMode.BILINEAR, fill=0)
    return out, labels


def _invert(view: InvertView, images: Tensor, labels: Tensor, num_classes: int):
    return 255 - images, labels


def pixel_permutation(seed: int, num_pixels: int) -> Tensor:
    return torch.randperm(num_pixels, generator=torch.Generator().manual_seed(seed))


def _permute_pixels(view: PermutePixelsView, images: Tensor, labels: Tensor, num_classes: int):
    n, c, h, w = images.shape
    perm = pixel_permutation(view.permute_pixels, h * w).to(images.device)
    # the same permutation of the H*W positions for every channel
    return images.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w), labels


def label_permutation(seed: int, num_classes: int) -> Tensor:
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))


def _permute_labels(view: PermuteLabelsView, images: Tensor, labels: Tensor, num_classes: int):
    perm = label_permutation(view.permute_labels, num_classes).to(labels.device)
    return images, perm[labels]  # class c becomes perm[c]


VIEW_FUNCTIONS: dict[type, Callable] = {
    RotateView: _rotate,
    InvertView: _invert,
    PermutePixelsView: _permute_pixels,
    PermuteLabelsView: _permute_labels,
}


def apply_views(
    images: Tensor, labels: Tensor, views: Sequence[ViewSpec], num_classes: int
) -> tuple[Tensor, Tensor]:
    """Apply `views` in order; returns new tensors (the cached raw inputs are never mutated)."""
    for view in views:
        fn = VIEW_FUNCTIONS.get(type(view))
        if fn is None:
            known = ", ".join(t.__name__ for t in VIEW_FUNCTIONS)
            raise DatasetError(f"unknown task view {view!r}; known: {known}")
        images, labels = fn(view, images, labels, num_classes)
    return images, labels


def view_name(view: ViewSpec) -> str:
    """Short text for a view, used in default task names: rot90, invert, pperm3, lperm1."""
    if isinstance(view, RotateView):
        return f"rot{view.rotate:g}"
    if isinstance(view, InvertView):
        return "invert"
    if isinstance(view, PermutePixelsView):
        return f"pperm{view.permute_pixels}"
    if isinstance(view, PermuteLabelsView):
        return f"lperm{view.permute_labels}"
    raise DatasetError(f"unknown task view {view!r}")


def task_label(task: TaskSpec) -> str:
    """Default name of a task: the dataset, then its views, joined by '+'."""
    dataset = task.dataset if isinstance(task.dataset, str) else source_name(task.dataset)
    return "+".join([dataset, *(view_name(v) for v in task.views)])
