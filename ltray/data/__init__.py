"""The data layer: dataset registry, task views, device-resident preparation and augmentation.

Core code: no Ray, no model imports. Everything is deterministic given its seed or generator.
"""

from .augment import augment, batches, crop_at
from .prepare import TaskData, clear_caches, load_task, resize, split_indices
from .registry import DATASETS, Dataset, DatasetSpec, get_dataset, is_dataset, load_raw
from .views import apply_views, task_label

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetSpec",
    "TaskData",
    "apply_views",
    "augment",
    "batches",
    "clear_caches",
    "crop_at",
    "get_dataset",
    "is_dataset",
    "load_raw",
    "load_task",
    "resize",
    "split_indices",
    "task_label",
]
