"""Training: the masked SGD loop, one iterative-pruning trajectory, and ticket (fixed-mask) training."""

from ltray.training.loop import evaluate, evaluate_task, train_round
from ltray.training.state import TrajectoryState
from ltray.training.trajectory import RoundResult, run_trajectory
from ltray.training.ticket import train_ticket

__all__ = [
    "RoundResult",
    "TrajectoryState",
    "evaluate",
    "evaluate_task",
    "run_trajectory",
    "train_round",
    "train_ticket",
]
