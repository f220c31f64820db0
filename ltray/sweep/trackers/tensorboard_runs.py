"""TensorBoard: Tune's TBX logger writes each trial's events into its Tune trial folder (named by
ltray's trial id); the consensus run is the folder `consensus` beside them."""

from __future__ import annotations

from pathlib import Path

from ray.tune.logger import TBXLoggerCallback

from ltray.sweep.trackers import trial_tags
from ltray.sweep.trackers.consensus import Sink


class TensorBoardTrials(TBXLoggerCallback):
    """Tune's logger, plus the trial's labels as the text summary `ltray/labels` at its start
    (Tune writes hparams only when a trial ends); TensorBoard lists it as
    `ltray/labels/text_summary`."""

    def log_trial_start(self, trial):
        super().log_trial_start(trial)
        text = "  \n".join(f"{k}: {v}" for k, v in trial_tags(trial.config).items())
        self._trial_writer[trial].add_text("ltray/labels", text, global_step=0)


class TensorBoardSink(Sink):
    def __init__(self, logdir: Path):
        super().__init__()
        self.logdir = Path(logdir)

    def _open(self):
        from tensorboardX import SummaryWriter

        return SummaryWriter(str(self.logdir), flush_secs=10)

    def _write(self, metrics, step):
        for key, value in metrics.items():
            self._run.add_scalar(key, value, global_step=step)
        self._run.flush()

    def _close(self):
        self._run.close()
