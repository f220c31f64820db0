"""Shared test settings: a private Ray configuration, and no network."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.pop("LTRAY_STORAGE", None)  # tests say where their experiments go
