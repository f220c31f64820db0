"""What every training job needs first: the task's tensors on the device and the seed's
initial network (identical across tasks with the same seed, see ltray.models)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ltray.config import DataConfig, TaskSpec
from ltray.data import TaskData, load_task
from ltray.models import build_model, get_arch, mask_layers


@dataclass
class Setup:
    task: TaskData
    model: nn.Module
    initial: dict[str, torch.Tensor]  # state_dict at iteration 0 (device copies)
    input_shape: tuple[int, int, int]  # C, H, W
    mask_names: list[str]  # every conv/linear weight; the mask covers all of them, pruned or not


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare(
    task_name: str,
    task: TaskSpec,
    arch: str,
    seed: int,
    data: DataConfig,
    root: Path,
    download: bool,
    device: torch.device,
) -> Setup:
    spec = get_arch(arch)
    size = data.image_size or spec.image_size
    task_data = load_task(
        task,
        in_channels=spec.in_channels,
        image_size=size,
        seed=seed,
        data=data,
        root=Path(root),
        download=download,
        device=device,
        name=task_name,
    )
    model = build_model(arch, task_data.num_classes, seed, image_size=size).to(device)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Setup(
        task=task_data,
        model=model,
        initial=initial,
        input_shape=(spec.in_channels, size, size),
        mask_names=mask_layers(model),
    )


def seeded_generator(device: torch.device, seed: int) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
