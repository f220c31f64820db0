"""Experiment trackers named by the sweep file's `loggers:` (tensorboard, mlflow, wandb), through
Ray Tune's own logger callbacks: one tracker run per trial, named by ltray's trial id and tagged
with its labels, and one run "consensus" per Tune run for the consensus events. Each tracker's
module is imported only when it is named. Where each writes: docs/trackers.md.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ltray.sweep.tune_io import trial_tags  # noqa: F401 - the trackers' tags, re-exported
from ltray.errors import ConfigError
from ltray.experiment import layout

TRACKERS = {"tensorboard": "tensorboardX", "mlflow": "mlflow", "wandb": "wandb"}  # name -> module it needs


def check_trackers(names, source: str) -> None:
    """One ConfigError line for a tracker whose extra is missing (or W&B without a login)."""
    for name in dict.fromkeys(names):
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ConfigError(f"{source}: loggers: {name} is not installed; pip install 'ltray[{name}]'")
    if "wandb" in names:
        from ray.air.integrations.wandb import _set_api_key  # what WandbLoggerCallback.setup runs

        try:
            _set_api_key()
        except ValueError:
            raise ConfigError(f"{source}: loggers: wandb has no API key: run `wandb login`, set WANDB_API_KEY, "
                              "or set WANDB_MODE=offline (and `wandb sync` later)") from None


def tracker_callbacks(names, storage, experiment: str, run_name: str, source: str = "sweep") -> list:
    """Tune callbacks for `names`. `loggers:` is the one switch: Tune's automatic TensorBoard
    logger is off unless 'tensorboard' is named (its CSV and JSON loggers stay on; the driver
    turns the automatic ones off, `ray_compat.tune_settings`).

    Trackers write local files: inside the experiment folder when it is local, else (a bucket)
    under ~/.ltray/trackers/<experiment> on the driver's machine (or set MLFLOW_TRACKING_URI)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from ltray.sweep.trackers.consensus import ConsensusEvents

    names = list(dict.fromkeys(names))
    check_trackers(names, source)
    callbacks = [CSVLoggerCallback(), JsonLoggerCallback()]
    sinks = []
    local = storage.local_path()
    exp_dir = Path(local).resolve() if local is not None else Path.home() / ".ltray" / "trackers" / experiment
    if "tensorboard" in names:
        from ltray.sweep.trackers.tensorboard_runs import TensorBoardSink, TensorBoardTrials

        callbacks.append(TensorBoardTrials())
        sinks.append(TensorBoardSink(exp_dir / layout.tune_run_dir(run_name, layout.TRACKER_EVENTS)))
    if "mlflow" in names:
        from ltray.sweep.trackers.mlflow_runs import MLflowSink, MLflowTrials

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (exp_dir / layout.MLFLOW).as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in
        callbacks.append(MLflowTrials(tracking_uri=uri, experiment_name=experiment, tags={"tune_run": run_name}))
        sinks.append(MLflowSink(uri, experiment, run_name))
    if "wandb" in names:
        from ltray.sweep.trackers.wandb_runs import WandbSink, WandbTrials

        wandb_dir = exp_dir / layout.WANDB
        wandb_dir.mkdir(parents=True, exist_ok=True)
        project = os.environ.get("WANDB_PROJECT") or experiment
        callbacks.append(WandbTrials(project=project, group=run_name, dir=str(wandb_dir)))
        sinks.append(WandbSink(project, run_name, wandb_dir))
    if sinks:
        callbacks.append(ConsensusEvents(storage, sinks))
    return callbacks
