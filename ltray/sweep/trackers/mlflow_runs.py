"""MLflow: Tune's MLflow logger, one run per trial (run name = ltray's trial id, labels as tags),
in the MLflow experiment named after the sweep; plus the run "consensus"."""

from __future__ import annotations

from ray.air.integrations.mlflow import MLflowLoggerCallback

from ltray.sweep.trackers import trial_tags
from ltray.sweep.trackers.consensus import RUN_NAME, Sink


class MLflowTrials(MLflowLoggerCallback):
    def log_trial_start(self, trial):
        shared = self.tags
        self.tags = {**(shared or {}), **trial_tags(trial.config)}
        try:
            super().log_trial_start(trial)
        finally:
            self.tags = shared


class MLflowSink(Sink):
    def __init__(self, tracking_uri: str, experiment: str, tune_run: str):
        super().__init__()
        self.tracking_uri, self.experiment, self.tune_run = tracking_uri, experiment, tune_run

    def _open(self):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        exp = client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(self.experiment)
        run = client.create_run(exp_id, run_name=RUN_NAME, tags={"kind": RUN_NAME, "tune_run": self.tune_run})
        return client, run.info.run_id

    def _write(self, metrics, step):
        client, run_id = self._run
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, step=step)

    def _close(self):
        client, run_id = self._run
        client.set_terminated(run_id)
