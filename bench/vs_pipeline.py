"""Benchmark 2: ltray's training loop vs the usual research pipeline, same model, data and epochs.

The usual pipeline (as the source papers' code): a torchvision-MNIST-style Dataset that makes a PIL
image per sample, per-sample RandomCrop(28, padding=4) + RandomHorizontalFlip + ToTensor +
Normalize, a DataLoader (num_workers 0 and 2), and masks applied by torch.nn.utils.prune
(custom_from_mask: a forward pre-hook recomputes weight = weight_orig * weight_mask every call).
Run: python bench/vs_pipeline.py
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import _common as C  # noqa: I001 (puts the repository on sys.path)
import torch
from PIL import Image
from torch import nn
from torch.nn.utils import prune as torch_prune
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ltray.config import DataConfig, TaskSpec, TrainConfig
from ltray.data import load_raw, split_indices
from ltray.training.loop import MaskApplier, train_round
from ltray.training.setup import prepare, seeded_generator

from train_loop import BATCH, LR, round1_mask

ARCHS = ("lenet", "lenet_300_100")
GOAL = 3.0


class PILDigits(Dataset):
    """torchvision.datasets.MNIST's __getitem__: uint8 tensor -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i, 0].numpy(), mode="L")
        return self.transform(img), int(self.labels[i])


def usual_loader(task, num_workers: int, device: str) -> DataLoader:
    """The same 3,336 training images as ltray's split of seed 0, as the usual pipeline sees them."""
    images, labels = load_raw("mnist_subset", "train", Path("data"))
    train_idx, _ = split_indices(len(labels), DataConfig().val_fraction, 0)
    transform = transforms.Compose([
        transforms.RandomCrop(28, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(task.mean.tolist(), task.std.tolist()),
    ])
    dataset = PILDigits(images[train_idx], labels[train_idx], transform)
    return DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=device.startswith("cuda"),
                      generator=torch.Generator().manual_seed(0))


def usual_case(setup, mask, num_workers: int, device: str):
    model = copy.deepcopy(setup.model)
    modules = dict(model.named_modules())
    for name, m in mask.items():  # "fc1.weight" -> prune.custom_from_mask(model.fc1, "weight", m)
        module_name, _, param = name.rpartition(".")
        torch_prune.custom_from_mask(modules[module_name], param, m)
    opt = torch.optim.SGD(model.parameters(), lr=LR)  # the papers' plain SGD (default implementation)
    loss_fn = nn.CrossEntropyLoss()
    loader = usual_loader(setup.task, num_workers, device)
    dev = torch.device(device)

    def epoch() -> None:
        model.train()
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return epoch, loader


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = C.pick_device()
    info = C.machine(device)
    print(C.machine_line(info))
    rows, summary, results = [], [], {}
    for arch in ARCHS:
        setup = prepare("mnist_subset", TaskSpec(dataset="mnist_subset"), arch, 0, DataConfig(), Path("data"),
                        False, torch.device(device))
        mask = round1_mask(setup)
        model = copy.deepcopy(setup.model)
        apply = MaskApplier(model, mask)
        train, data = TrainConfig(epochs=1, lr=LR, batch_size=BATCH), DataConfig(crop=True, flip=True)
        cases, loaders = {}, []
        bare_model = copy.deepcopy(setup.model)
        bare_opt = torch.optim.SGD(bare_model.parameters(), lr=LR, foreach=True)
        perm = torch.randperm(setup.task.train_x.shape[0], generator=torch.Generator().manual_seed(0))
        xb, yb = setup.task.train_x[perm.to(device)].split(BATCH), setup.task.train_y[perm.to(device)].split(BATCH)

        def bare(m=bare_model, opt=bare_opt, xb=xb, yb=yb, loss_fn=nn.CrossEntropyLoss()):
            for x, y in zip(xb, yb):  # benchmark 1's limit: no mask, no augmentation, preloaded batches
                loss = loss_fn(m(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        cases["bare loop (benchmark 1's limit)"] = bare
        cases["ltray train_round, crop+flip"] = lambda: train_round(
            model, setup.task, apply, train, data, seeded_generator(torch.device(device), 1))
        for workers in (0, 2):
            cases[f"DataLoader workers={workers} + prune hooks"], loader = usual_case(setup, mask, workers, device)
            loaders.append(loader)
        times = C.interleaved(cases, args.repeats, warmup=1, device=device)
        ours = C.median(times["ltray train_round, crop+flip"])
        results[arch] = {}
        for name, ts in times.items():
            ratio = C.median(ts) / ours
            results[arch][name] = ratio
            rows.append([arch, name, C.spread(ts), f"{ratio:.2f}x"])
            print(f"{arch:14s} {name:40s} {C.spread(ts)} s/epoch  {ratio:.2f}x ltray's time")
        best = min(v for k, v in results[arch].items() if k.startswith("DataLoader"))
        ceiling = best / results[arch]["bare loop (benchmark 1's limit)"]
        summary.append({"benchmark": f"2. ltray vs DataLoader + prune hooks (faster of 0/2 workers), {arch} ({device})",
                        "goal": f">= {GOAL:g}x", "result": f"{best:.2f}x (a loop at the bare limit: {ceiling:.2f}x)",
                        "status": C.status(best >= GOAL)})
        del loaders  # ends persistent workers
    if not args.no_write:
        write(info, rows, summary, args)
    return results


def write(info, rows, summary, args) -> None:
    body = f"""Command: `python bench/vs_pipeline.py` ({args.repeats} interleaved repeats, median; range in brackets).
Measured {C.machine_line(info)}.

One epoch of the same 3,336 mnist_subset training images, batch {BATCH}, SGD lr {LR}, the same round-1 mask, the same
initial weights. *Usual pipeline*: a torchvision-MNIST-style Dataset (uint8 -> PIL image per sample),
`RandomCrop(28, padding=4)`, `RandomHorizontalFlip()`, `ToTensor()`, `Normalize(mean, std)`, a shuffling
`DataLoader` (workers persistent, so worker start-up is not counted: the kinder setting), and the mask installed
with `torch.nn.utils.prune.custom_from_mask` (a forward pre-hook multiplies `weight_orig` by `weight_mask` on every
call). Training process: {args.threads} torch thread(s); with 2 workers the 2 cores are shared by 3 processes.

{C.table(["model", "pipeline", "s/epoch", "time / ltray's time"], rows)}

Goal: ltray >= {GOAL:g}x faster than the usual pipeline on CPU (each model against the faster of its two
DataLoader settings). The *bare loop* row is benchmark 1's limit (the model's own forward/backward/step over
preloaded batches, no mask, no augmentation): the usual pipeline's time over it is the most any training loop
could gain over that pipeline on this machine."""
    C.update_section("bench-vs-pipeline", "2. ltray vs the usual pipeline", body, summary)


if __name__ == "__main__":
    main()
