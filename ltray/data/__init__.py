"""The data layer: dataset registry (built-in sets, plugins, .npz and image folders), task views,
device-resident preparation and augmentation.

Core code: no Ray, no model imports. Everything is deterministic given its seed or generator.
The registry is torch-free (a sweep file's datasets are checked in a base install); the names
that need torch are imported on first use.
"""

import importlib

_WHERE = {
    "DATASETS": "registry", "Dataset": "registry", "DatasetSpec": "registry", "get_dataset": "registry",
    "is_dataset": "registry", "load_raw": "registry",
    "batches": "augment", "crop_at": "augment",  # the function augment: ltray.data.augment.augment
    "TaskData": "prepare", "clear_caches": "prepare", "load_task": "prepare", "resize": "prepare",
    "split_indices": "prepare",
    "apply_views": "views", "task_label": "views",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
