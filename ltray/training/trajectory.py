"""One iterative-pruning trajectory: train dense (round 0), then repeatedly prune a fraction of
what survives, rewind the survivors and retrain. Resumable between rounds, bit-identical on CPU.

Round r trains under mask r; its mask is written (through a MaskSink) before training starts, and
`on_round` receives the round's metrics together with the state needed to resume at round r + 1.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from ltray.config import TrajectoryConfig
from ltray.experiment import layout
from ltray.masks import Mask, save_mask
from ltray.masks.torch_io import parameter_shapes, to_numpy_mask, to_torch_mask
from ltray.models import get_arch, prunable_weights
from ltray.pruning import TensorContext, prune
from ltray.seeding import derive_seed
from ltray.training.measure import RoundResult, train_under_mask
from ltray.training.setup import Setup, default_device, prepare
from ltray.training.state import TrajectoryState, cpu_copy


class MaskSink(Protocol):
    """Where a trajectory's masks go: `save(round, mask, meta)` returns the path recorded for it."""

    def save(self, round_: int, mask: Mask, meta: dict) -> str: ...


class MaskFolder:
    """A local folder of round masks (the experiment folder's file names)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def save(self, round_: int, mask: Mask, meta: dict) -> str:
        path = self.folder / layout.round_mask_name(round_)
        save_mask(path, mask, meta=meta)
        return str(path)


PRUNE_BATCHES_TAG = "prune-batches"
RoundCallback = Callable[[RoundResult, TrajectoryState], None]


def run_trajectory(
    cfg: TrajectoryConfig,
    masks: str | os.PathLike | MaskSink,
    *,
    root: str | Path = "data",
    download: bool = False,
    device: torch.device | str | None = None,
    state: TrajectoryState | None = None,
    on_round: RoundCallback | None = None,
) -> list[RoundResult]:
    """Run (or resume from `state`) the trajectory; return the results of the rounds it ran.

    `masks` is a folder path or a MaskSink (the sweep runner's trial record)."""
    sink = masks if hasattr(masks, "save") else MaskFolder(masks)
    device = torch.device(device) if device is not None else default_device()
    setup = prepare(cfg.task, cfg.task_spec, cfg.arch, cfg.seed, cfg.data, Path(root), download, device)
    if state is None:
        shapes = parameter_shapes(setup.model, setup.mask_names)
        state = TrajectoryState(next_round=0, mask={n: np.ones(s, dtype=bool) for n, s in shapes.items()},
                                config_key=cfg.key())
    elif state.config_key and state.config_key != cfg.key():
        raise ValueError(f"resume state belongs to config {state.config_key}, not {cfg.key()}")
    prunable = set(prunable_weights(setup.model, include_output=cfg.prune.prune_output,
                                    include_shortcuts=cfg.prune.prune_shortcuts,
                                    dense=get_arch(cfg.arch).dense_layers))
    results = []
    for r in range(state.next_round, cfg.rounds):
        start = time.perf_counter()
        meta = {"round": r, "arch": cfg.arch, "seed": cfg.seed, "task": cfg.task,
                "technique": cfg.technique}
        mask_path = sink.save(r, state.mask, meta)
        rewind_weights, capture = state.rewind_weights, None
        if r == 0 and isinstance(cfg.train.rewind, int):
            captured: dict = {}

            def capture(epoch: int, _captured=captured) -> None:
                if epoch == cfg.train.rewind:
                    _captured.update({k: v.detach().clone() for k, v in setup.model.state_dict().items()})

            rewind_weights = captured
        result = train_under_mask(setup, state.mask, _round_start_weights(setup, cfg, state, r), cfg.train,
                                  cfg.data, cfg.seed, r, mask_path=mask_path, on_epoch_end=capture)
        next_mask = _next_mask(setup, cfg, state.mask, prunable, r) if r + 1 < cfg.rounds else state.mask
        state = TrajectoryState(
            next_round=r + 1,
            mask=next_mask,
            rewind_weights=rewind_weights or None,
            trained_weights=cpu_copy(setup.model.state_dict()) if cfg.train.rewind == "none" else None,
            config_key=cfg.key(),
        )
        result.seconds = time.perf_counter() - start  # the whole round, pruning included
        results.append(result)
        if on_round is not None:
            on_round(result, state)
    return results


def _round_start_weights(setup: Setup, cfg: TrajectoryConfig, state: TrajectoryState, r: int) -> dict:
    """Round 0 starts from the initial weights; later rounds from the rewind target."""
    if r == 0 or cfg.train.rewind == "init":
        source = setup.initial
    elif cfg.train.rewind == "none":
        source = state.trained_weights
    else:
        source = state.rewind_weights
    if source is None:
        raise ValueError(f"resume state for round {r} lacks the weights that rewind={cfg.train.rewind!r} needs")
    return source


def _prune_context(setup: Setup, cfg: TrajectoryConfig, mask: Mask, device, r: int) -> TensorContext:
    """The trained network under its current mask and the task's training split, batches in an
    order fixed by (seed, round): what data-dependent techniques need."""
    task = setup.task
    return TensorContext(setup.model, to_torch_mask(mask, device), task.train_x, task.train_y,
                         seed=derive_seed(cfg.seed, PRUNE_BATCHES_TAG, r), batch_size=cfg.train.batch_size,
                         inputs=task.inputs, input_shape=setup.input_shape)


@torch.no_grad()
def _next_mask(setup: Setup, cfg: TrajectoryConfig, mask: Mask, prunable: set, r: int) -> Mask:
    params = dict(setup.model.named_parameters())
    names = [n for n in mask if n in prunable]
    weights = {n: params[n].detach() for n in names}
    device = next(iter(weights.values())).device if weights else "cpu"
    old = to_torch_mask({n: mask[n] for n in names}, device)
    new = prune(cfg.technique, weights, old, fraction=cfg.prune.fraction, seed=cfg.seed, round=r,
                dim=cfg.prune.dim, context=_prune_context(setup, cfg, mask, device, r))
    return {**mask, **to_numpy_mask(new)}
