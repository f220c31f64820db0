"""Check every plugin a sweep names against its contract on the driver, before anything is
written or trained: a model builds and runs for each of its tasks, a dataset returns what it
declares, a technique given a small random mask returns a valid smaller one.

Each failure is one line `<sweep key>: <import path>: <what is wrong>`; tracebacks of exceptions
raised inside user code are kept on the PluginError for -v. torch is imported only when a sweep
names a plugin (a base install checks and plans a sweep of built-ins without it).
"""

from __future__ import annotations

import math
from pathlib import Path

from ltray.errors import LtrayError
from ltray.plugins import PluginError, user_error

TOY_SIDE = 8  # pixels of the technique check's toy inputs
TOY_SAMPLES = 32
TOY_CLASSES = 10


def check_plugins(sweep, source: str) -> None:
    """Raise one PluginError listing every contract failure of the sweep's plugins."""
    from ltray.data import DATASETS
    from ltray.models import MODELS
    from ltray.pruning import TECHNIQUES

    problems: list[str] = []
    tracebacks: list[str] = []

    def attempt(where: str, check, *args) -> None:
        try:
            check(*args)
        except LtrayError as e:
            problems.append(f"{source}: {where}: {e}")
            tracebacks.append(getattr(e, "user_traceback", ""))

    for name, task in sweep.tasks.items():
        if task.dataset not in DATASETS:
            attempt(f"tasks.{name}.dataset", check_dataset, task.dataset, sweep)
    tasks = _used_tasks(sweep)
    for i, arch in enumerate(sweep.grid.archs):
        if arch not in MODELS:
            attempt(f"grid.archs.{i}", check_arch, arch, sweep, tasks)
    for i, tech in enumerate(sweep.grid.techniques):
        if tech not in TECHNIQUES:
            attempt(f"grid.techniques.{i}", check_technique, tech, sweep.prune.fraction, sweep.prune.dim)
    if problems:
        raise PluginError("\n".join(problems), "".join(tracebacks))


def _used_tasks(sweep) -> list[str]:
    names = list(sweep.grid.tasks)
    for group in sweep.consensus:
        names += [t for t in group.target_tasks if t not in names]
    return names


def check_arch(arch: str, sweep, tasks: list[str]) -> None:
    import torch

    from ltray.models import build_model, get_arch, mask_layers
    from ltray.orchestration.load import num_classes

    spec = get_arch(arch)
    side = sweep.data_for(arch).image_size or spec.image_size
    for classes in sorted({num_classes(sweep.task_spec(t), sweep.data) for t in tasks}):
        what = f"{arch}: build({classes}, {side})"
        try:
            model = build_model(arch, classes, seed=0, image_size=side)
        except LtrayError:
            raise
        except Exception as e:  # noqa: BLE001 - whatever the user's build raises
            raise user_error(what, e) from None
        if not mask_layers(model):
            raise PluginError(f"{what}: the model has no Conv2d or Linear layer to prune")
        missing = [n for n in spec.dense_layers if n not in mask_layers(model)]
        if missing:
            raise PluginError(f"{arch}: dense_layers names {missing[0]!r}, which is not a Conv2d/Linear weight "
                              "of the model")
        x = torch.zeros(2, spec.in_channels, side, side)
        try:
            with torch.no_grad():
                out = model.eval()(x)
        except Exception as e:  # noqa: BLE001
            raise user_error(f"{what}: forward of a [2, {spec.in_channels}, {side}, {side}] batch", e) from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, classes):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise PluginError(f"{what}: forward of a [2, {spec.in_channels}, {side}, {side}] batch returned "
                              f"{got}, expected (2, {classes})")


def check_dataset(name: str, sweep) -> None:
    from ltray.data import get_dataset, load_raw

    spec = get_dataset(name)
    name = spec.name
    classes = spec.num_classes(sweep.data)
    for split in ("train", "test"):
        try:
            images, labels = load_raw(name, split, Path(sweep.data_root), data=sweep.data)
        except PluginError:
            raise
        except LtrayError as e:
            raise PluginError(f"{name}: {e}") from None
        if tuple(images.shape[2:]) != (spec.side, spec.side):
            raise PluginError(f"{name}: load({split!r}) images are {tuple(images.shape[2:])} px, the dataset "
                              f"declares side={spec.side}")
        if len(labels) < 2:
            raise PluginError(f"{name}: load({split!r}) returned {len(labels)} sample(s)")
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= classes:
            raise PluginError(f"{name}: load({split!r}) labels span {lo}..{hi}, outside 0..{classes - 1} "
                              f"(classes={classes})")


def toy_problem(seed: int = 0):
    """A small conv net, a random mask and random data: what a technique is checked on."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(6 * (TOY_SIDE - 4) ** 2, TOY_CLASSES))
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("weight")}
    mask = {n: torch.rand(w.shape, generator=gen) < 0.8 for n, w in weights.items()}
    images = torch.randn(TOY_SAMPLES, 1, TOY_SIDE, TOY_SIDE, generator=gen)
    labels = torch.randint(0, TOY_CLASSES, (TOY_SAMPLES,), generator=gen)
    return model, weights, mask, images, labels


def check_technique(name: str, fraction: float, dim: int) -> None:
    import torch

    from ltray.pruning import TensorContext, get_technique

    tech = get_technique(name)
    model, weights, mask, images, labels = toy_problem()
    if tech.structured:  # whole slices along dim: start dense
        mask = {n: torch.ones_like(m) for n, m in mask.items()}
    before = {n: m.clone() for n, m in mask.items()}
    context = TensorContext(model, mask, images, labels, seed=0, batch_size=8)
    new = tech.compute({n: w.clone() for n, w in weights.items()}, {n: m.clone() for n, m in mask.items()},
                       fraction, 0, 1, dim, context)
    shapes = ", ".join(f"{n} {tuple(m.shape)}" for n, m in mask.items())
    if not isinstance(new, dict) or set(new) != set(mask):
        got = sorted(new) if isinstance(new, dict) else type(new).__name__
        raise PluginError(f"{name}: compute returned masks for {got}, expected exactly {sorted(mask)}")
    for n, m in new.items():
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != mask[n].shape:
            got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, torch.Tensor) else type(m).__name__
            raise PluginError(f"{name}: compute returned {got} for {n!r}, expected torch.bool "
                              f"{tuple(mask[n].shape)} (given: {shapes})")
        if bool((m & ~before[n]).any()):
            raise PluginError(f"{name}: compute grew the mask of {n!r}: it revived "
                              f"{int((m & ~before[n]).sum())} pruned weight(s); it may only remove survivors")
    alive = sum(int(m.sum()) for m in before.values())
    removed = alive - sum(int(m.sum()) for m in new.values())
    slack = sum(_slice(m.shape, dim) if tech.structured else 1 for m in before.values())
    if abs(removed - fraction * alive) > slack:
        raise PluginError(f"{name}: compute removed {removed} of {alive} surviving weights at fraction {fraction}; "
                          f"expected about {math.floor(fraction * alive)} (within {slack})")


def _slice(shape, dim: int) -> int:
    return math.prod(shape) // shape[dim] if dim < len(shape) else 1
