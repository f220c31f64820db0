"""Training: the masked SGD loop, one iterative-pruning trajectory, and ticket (fixed-mask) training,
both built on `train_under_mask`."""

from ltray.training.loop import evaluate, evaluate_task, train_round
from ltray.training.measure import RoundResult, train_under_mask
from ltray.training.state import TrajectoryState
from ltray.training.trajectory import MaskFolder, MaskSink, run_trajectory
from ltray.training.ticket import train_ticket

__all__ = [
    "MaskFolder",
    "MaskSink",
    "RoundResult",
    "TrajectoryState",
    "evaluate",
    "evaluate_task",
    "run_trajectory",
    "train_round",
    "train_ticket",
    "train_under_mask",
]
