"""Typed, frozen settings of the core: what a task, a training round and a pruning step are.

Everything below the YAML/CLI boundary receives these models, never raw dicts. Unknown keys
are errors. Defaults are the paper's protocol (Paganini & Forde 2020).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- task views: deterministic transforms that turn one dataset into another task -------------


class RotateView(Frozen):
    rotate: float = Field(description="degrees, counter-clockwise")


class InvertView(Frozen):
    invert: Literal[True]


class PermutePixelsView(Frozen):
    permute_pixels: int = Field(ge=0, description="seed of the fixed pixel permutation")


class PermuteLabelsView(Frozen):
    permute_labels: int = Field(ge=0, description="seed of the fixed label permutation")


ViewSpec = Union[RotateView, InvertView, PermutePixelsView, PermuteLabelsView]


class TaskSpec(Frozen):
    """A dataset, optionally seen through views applied in order."""

    dataset: str
    views: tuple[ViewSpec, ...] = ()


class DataConfig(Frozen):
    """How data is loaded and augmented; identical for every trial of a sweep."""

    val_fraction: float = Field(0.2, gt=0, lt=1)  # share of the train set held out, split by seed
    crop: bool = True  # random crop after zero padding, per sample, on the device
    crop_padding: int = Field(4, ge=0)  # pixels
    flip: bool = True  # random horizontal flip
    image_size: int | None = Field(None, ge=8)  # override the architecture's input side (pixels)
    emnist_split: str = "balanced"  # torchvision EMNIST split; 'balanced' has 47 classes
    max_train_samples: int | None = Field(None, ge=1)  # cap (after the split), for quick runs


class TrainConfig(Frozen):
    """One round of training. Paper: plain SGD, constant lr 0.01, batch 32, 30 epochs."""

    epochs: int = Field(30, ge=1)
    lr: float = Field(0.01, gt=0)
    batch_size: int = Field(32, ge=1)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    # what surviving weights are reset to between rounds: the initial weights ('init'), the
    # weights after epoch k of round 0 (an int, late rewinding), or kept as trained ('none',
    # i.e. fine-tuning)
    rewind: Literal["init", "none"] | Annotated[int, Field(ge=1)] = "init"

    @field_validator("rewind")
    @classmethod
    def _rewind_within_epochs(cls, v, info):
        epochs = info.data.get("epochs")
        if isinstance(v, int) and epochs is not None and v > epochs:
            raise ValueError(f"rewind epoch {v} is beyond epochs={epochs}")
        return v


class PruneConfig(Frozen):
    """One pruning step: `fraction` of what still survives, per layer (global: pooled)."""

    technique: str = "global_unstructured"
    fraction: float = Field(0.2, gt=0, lt=1)
    dim: int = Field(1, ge=0)  # structured techniques: 1 = input channels / features
    prune_output: bool = True  # the output layer is pruned at the same rate
    # ResNet shortcut (downsample) 1x1 convolutions: dense in the paper's Table 1; True prunes them too
    prune_shortcuts: bool = False


class TrajectoryConfig(Frozen):
    """Everything that determines one iterative-pruning trajectory's results.

    `rounds` counts trained rounds including the dense round 0, so round r has sparsity
    1 - (1 - fraction)**r for unstructured techniques.
    """

    task_name: str
    task: TaskSpec
    arch: str
    seed: int = Field(ge=0)
    rounds: int = Field(ge=1)
    prune: PruneConfig = PruneConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()

    def key(self) -> str:
        return config_hash(self)


class TicketConfig(Frozen):
    """Train a fixed mask from the initial weights of `seed` on one task (follow-up trials)."""

    task_name: str
    task: TaskSpec
    arch: str
    seed: int = Field(ge=0)
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    mask_path: Path
    # a target whose class count differs from the mask's output layer: 'error', keep the output
    # layer 'dense', or keep input 'columns' that survive in any row of the mask's output layer
    output_rule: Literal["error", "dense", "columns"] = "error"


def config_hash(model: BaseModel, length: int = 10) -> str:
    """Short stable hash of a model's JSON form, for content-addressed folder names."""
    blob = json.dumps(model.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
