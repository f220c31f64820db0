"""One iterative-pruning trajectory: train dense (round 0), then repeatedly prune a fraction of
what survives, rewind the survivors and retrain. Resumable between rounds, bit-identical on CPU.

Round r trains under mask r; its mask file is written before training starts, and `on_round`
receives the round's metrics together with the state needed to resume at round r + 1.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ltray.config import TrajectoryConfig
from ltray.masks import save_mask, sparsity
from ltray.masks.effective import effective_sparsity
from ltray.models import prunable_weights
from ltray.pruning import prune
from ltray.seeding import derive_seed
from ltray.training.loop import MaskApplier, evaluate_task, train_round
from ltray.training.setup import Setup, default_device, prepare, seeded_generator
from ltray.training.state import TrajectoryState, cpu_copy


@dataclass
class RoundResult:
    round: int
    sparsity: float
    effective_sparsity: float
    train_loss: float
    val_acc: float
    test_acc: float
    seconds: float
    mask_path: str

    def as_dict(self) -> dict:
        return asdict(self)


RoundCallback = Callable[[RoundResult, TrajectoryState], None]


def mask_filename(round_: int) -> str:
    return f"round_{round_:02d}.ltmask"


def run_trajectory(
    cfg: TrajectoryConfig,
    mask_dir: str | Path,
    *,
    root: str | Path = "data",
    download: bool = False,
    device: torch.device | str | None = None,
    state: TrajectoryState | None = None,
    on_round: RoundCallback | None = None,
) -> list[RoundResult]:
    """Run (or resume from `state`) the trajectory; return the results of the rounds it ran."""
    device = torch.device(device) if device is not None else default_device()
    mask_dir = Path(mask_dir)
    setup = prepare(cfg.task_name, cfg.task, cfg.arch, cfg.seed, cfg.data, Path(root), download, device)
    if state is None:
        state = TrajectoryState(
            next_round=0,
            mask={n: np.ones(tuple(setup.initial[n].shape), dtype=bool) for n in setup.mask_names},
            config_key=cfg.key(),
        )
    elif state.config_key and state.config_key != cfg.key():
        raise ValueError(f"resume state belongs to config {state.config_key}, not {cfg.key()}")
    prunable = set(prunable_weights(setup.model, include_output=cfg.prune.prune_output,
                                    include_shortcuts=cfg.prune.prune_shortcuts))
    results = []
    for r in range(state.next_round, cfg.rounds):
        start = time.perf_counter()
        mask_path = mask_dir / mask_filename(r)
        save_mask(mask_path, state.mask, meta={"round": r, "arch": cfg.arch, "seed": cfg.seed,
                                               "task": cfg.task_name, "technique": cfg.prune.technique})
        _load_round_start_weights(setup, cfg, state, r)
        mask_t = {n: torch.from_numpy(m).to(device) for n, m in state.mask.items()}
        apply_mask = MaskApplier(setup.model, mask_t)
        rewind_weights = state.rewind_weights
        capture = None
        if r == 0 and isinstance(cfg.train.rewind, int):
            captured: dict = {}

            def capture(epoch: int, _captured=captured) -> None:
                if epoch == cfg.train.rewind:
                    _captured.update({k: v.detach().clone() for k, v in setup.model.state_dict().items()})

            rewind_weights = captured
        gen = seeded_generator(device, derive_seed(cfg.seed, "train", r))
        loss = train_round(setup.model, setup.task, apply_mask, cfg.train, cfg.data, gen, on_epoch_end=capture)
        val_acc, test_acc = evaluate_task(setup.model, setup.task)
        result = RoundResult(
            round=r,
            sparsity=sparsity(state.mask),
            effective_sparsity=effective_sparsity(setup.model, state.mask, setup.input_shape),
            train_loss=loss,
            val_acc=val_acc,
            test_acc=test_acc,
            seconds=0.0,
            mask_path=str(mask_path),
        )
        next_mask = _next_mask(setup, cfg, state.mask, prunable, r) if r + 1 < cfg.rounds else state.mask
        state = TrajectoryState(
            next_round=r + 1,
            mask=next_mask,
            rewind_weights=rewind_weights or None,
            trained_weights=cpu_copy(setup.model.state_dict()) if cfg.train.rewind == "none" else None,
            config_key=cfg.key(),
        )
        result.seconds = time.perf_counter() - start
        results.append(result)
        if on_round is not None:
            on_round(result, state)
    return results


def _load_round_start_weights(setup: Setup, cfg: TrajectoryConfig, state: TrajectoryState, r: int) -> None:
    """Round 0 starts from the initial weights; later rounds from the rewind target."""
    if r == 0 or cfg.train.rewind == "init":
        source = setup.initial
    elif cfg.train.rewind == "none":
        source = state.trained_weights
    else:
        source = state.rewind_weights
    if source is None:
        raise ValueError(f"resume state for round {r} lacks the weights that rewind={cfg.train.rewind!r} needs")
    setup.model.load_state_dict(source)


@torch.no_grad()
def _next_mask(setup: Setup, cfg: TrajectoryConfig, mask: dict, prunable: set, r: int) -> dict:
    params = dict(setup.model.named_parameters())
    names = [n for n in mask if n in prunable]
    weights = {n: params[n].detach() for n in names}
    old = {n: torch.from_numpy(mask[n]).to(params[n].device) for n in names}
    new = prune(
        cfg.prune.technique, weights, old, fraction=cfg.prune.fraction, seed=cfg.seed, round=r, dim=cfg.prune.dim
    )
    out = dict(mask)
    for n in names:
        out[n] = new[n].to("cpu").numpy().astype(bool)
    return out

