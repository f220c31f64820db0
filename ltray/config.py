"""Typed, frozen settings of the core: what a task, a training round and a pruning step are.

Everything below the YAML/CLI boundary receives these models, never raw dicts. Unknown keys
are errors. Defaults are the paper's protocol (Paganini & Forde 2020).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Union

from pydantic import AllowInfNan, BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator

# ---- value types of every user-facing number ---------------------------------------------------
# YAML's `true` is not 1 and `.inf` is not a learning rate: integers are strict (no booleans, no
# floats, no strings), numbers are finite and never booleans (strings such as '1e-3', which
# PyYAML does not read as floats, still parse), and every integer fits int64: the tables store
# seeds and rounds as int64, and torch's Generator.manual_seed overflows at 2**64.

INT64_MAX = 2**63 - 1
HASH_LENGTH = 10  # hex digits of a config hash: 40 bits, collision-free for any sweep ltray will plan


def config_hash(model: BaseModel) -> str:
    """Hash of a config's non-default fields (nested models likewise), as canonical JSON: a field
    added later with a default that reproduces the old behaviour changes no hash, so trial ids
    (`ltray.experiment.ids`) stay stable. The rule that follows: a default value never changes."""
    doc = model.model_dump(mode="json", exclude_defaults=True)
    renamed = getattr(type(model), "hashed_as", {})  # fields renamed since: hashed under their first name
    doc = {renamed.get(k, k): v for k, v in doc.items()}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:HASH_LENGTH]


def _finite_number(value):
    """Before range checks, so `.inf` and `.nan` are named as such whatever the field's bounds."""
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"expected a finite number, got {str(value).lower()}")
    return value


Int = Annotated[int, Strict(), Field(le=INT64_MAX)]
Seed = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]  # torch generators, numpy, int64 tables
Number = Annotated[float, BeforeValidator(_finite_number), AllowInfNan(False)]  # a finite float


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- task views: deterministic transforms that turn one dataset into another task -------------


class RotateView(Frozen):
    rotate: Number = Field(description="degrees, counter-clockwise")


class InvertView(Frozen):
    invert: Literal[True]


class PermutePixelsView(Frozen):
    permute_pixels: Seed = Field(description="seed of the fixed pixel permutation")


class PermuteLabelsView(Frozen):
    permute_labels: Seed = Field(description="seed of the fixed label permutation")


ViewSpec = Union[RotateView, InvertView, PermutePixelsView, PermuteLabelsView]


class NpzSource(Frozen):
    """A user's data with no code: an .npz holding train_images, train_labels, test_images and
    test_labels (images uint8 [N, C, H, W] or [N, H, W]; labels integers 0..classes-1)."""

    npz: str = Field(description="path or URI (s3://, gs://, file://) of the .npz file")


class FolderSource(Frozen):
    """A user's images with no code: torchvision ImageFolder layout, FOLDER/train/<class>/<image>
    and FOLDER/test/<class>/<image>; classes are the sorted folder names of train."""

    folder: str = Field(description="path or URI of the folder")
    format: Literal["imagefolder"] = "imagefolder"
    side: Int | None = Field(None, ge=1)  # resize every image to side x side pixels (default: as stored)
    channels: Literal[1, 3] = 3  # 1: grey (PIL mode 'L'), 3: RGB


DatasetRef = Union[str, NpzSource, FolderSource]  # a registered name or import path, or data files


class TaskSpec(Frozen):
    """A dataset, optionally seen through views applied in order."""

    dataset: DatasetRef
    views: tuple[ViewSpec, ...] = ()


class DataConfig(Frozen):
    """How data is loaded and augmented; identical for every trial of a sweep."""

    val_fraction: Number = Field(0.2, gt=0, lt=1)  # share of the train set held out, split by seed
    crop: bool = True  # random crop after zero padding, per sample, on the device
    crop_padding: Int = Field(4, ge=0)  # pixels
    flip: bool = True  # random horizontal flip
    image_size: Int | None = Field(None, ge=8)  # override the architecture's input side (pixels)
    emnist_split: str = "balanced"  # torchvision EMNIST split; 'balanced' has 47 classes
    max_train_samples: Int | None = Field(None, ge=1)  # cap (after the split), for quick runs


class TrainConfig(Frozen):
    """One round of training. Paper: plain SGD, constant lr 0.01, batch 32, 30 epochs."""

    epochs: Int = Field(30, ge=1)
    lr: Number = Field(0.01, gt=0)
    batch_size: Int = Field(32, ge=1)
    momentum: Number = Field(0.0, ge=0, lt=1)
    weight_decay: Number = Field(0.0, ge=0)
    # what surviving weights are reset to between rounds: the initial weights ('init'), the
    # weights after epoch k of round 0 (an int, late rewinding), or kept as trained ('none',
    # i.e. fine-tuning)
    rewind: Literal["init", "none"] | Annotated[Int, Field(ge=1)] = "init"

    @field_validator("rewind")
    @classmethod
    def _rewind_within_epochs(cls, v, info):
        epochs = info.data.get("epochs")
        if isinstance(v, int) and epochs is not None and v > epochs:
            raise ValueError(f"rewind epoch {v} is beyond epochs={epochs}")
        return v


class PruneConfig(Frozen):
    """One pruning step of any technique: `fraction` of what still survives, per layer (global:
    pooled). The sweep file's `prune` key, shared by every technique of the grid."""

    fraction: Number = Field(0.2, gt=0, lt=1)
    dim: Int = Field(1, ge=0)  # structured techniques: 1 = input channels / features
    prune_output: bool = True  # the output layer is pruned at the same rate
    # ResNet shortcut (downsample) 1x1 convolutions: dense in the paper's Table 1; True prunes them too
    prune_shortcuts: bool = False


# trial ids hash configs by their field names; renamed fields keep the name they were first hashed
# under, so every id stays as it was (folder format 3 renamed `task_name` to `task`)
_HASHED_AS = {"task": "task_name", "task_spec": "task"}


class TrajectoryConfig(Frozen):
    """Everything that determines one iterative-pruning trajectory's results.

    `rounds` counts trained rounds including the dense round 0, so round r has sparsity
    1 - (1 - fraction)**r for unstructured techniques.
    """

    task: str  # the task's name in the sweep file
    task_spec: TaskSpec  # its dataset and views
    arch: str
    seed: Seed
    rounds: Int = Field(ge=1)
    technique: str = "global_unstructured"
    prune: PruneConfig = PruneConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()

    hashed_as: ClassVar[dict[str, str]] = _HASHED_AS

    def key(self) -> str:
        """Hash of what identifies the trajectory's results (its non-default fields)."""
        return config_hash(self)


class TicketConfig(Frozen):
    """Train a fixed mask from the initial weights of `seed` on one task (follow-up trials)."""

    task: str  # the task's name in the sweep file
    task_spec: TaskSpec  # its dataset and views
    arch: str
    seed: Seed
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    mask_path: Path
    hashed_as: ClassVar[dict[str, str]] = _HASHED_AS
    # a target whose class count differs from the mask's output layer: 'error', keep the output
    # layer 'dense', or keep input 'columns' that survive in any row of the mask's output layer
    output_rule: Literal["error", "dense", "columns"] = "error"
