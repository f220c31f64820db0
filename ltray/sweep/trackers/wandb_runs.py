"""Weights & Biases: Tune's W&B logger, one run per trial (name = ltray's trial id, labels as
'key:value' tags, grouped by Tune run) under EXPERIMENT/wandb; plus the run "consensus"."""

from __future__ import annotations

from pathlib import Path

from ray.air.integrations.wandb import WandbLoggerCallback

from ltray.sweep.trackers import trial_tags
from ltray.sweep.trackers.consensus import RUN_NAME, Sink

TAG_MAX = 64  # W&B rejects longer tags


class WandbTrials(WandbLoggerCallback):
    def log_trial_start(self, trial):
        shared = self.kwargs
        tags = [f"{k}:{v}"[:TAG_MAX] for k, v in trial_tags(trial.config).items() if k != "trial_id"]
        self.kwargs = {**shared, "tags": tags}
        try:
            super().log_trial_start(trial)
        finally:
            self.kwargs = shared


class WandbSink(Sink):
    def __init__(self, project: str, tune_run: str, wandb_dir: Path):
        super().__init__()
        self.project, self.tune_run, self.wandb_dir = project, tune_run, Path(wandb_dir)

    def _open(self):
        import wandb

        return wandb.init(project=self.project, group=self.tune_run, name=RUN_NAME, dir=str(self.wandb_dir),
                          tags=[f"kind:{RUN_NAME}"], reinit="create_new")

    def _write(self, metrics, step):
        self._run.log(metrics, step=step)

    def _close(self):
        self._run.finish()
