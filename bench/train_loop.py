"""Benchmark 1: one epoch of ltray's masked training (crop+flip, and without augmentation) vs the
bare forward/backward/step loop over preloaded batches of the same model (the compute limit).

LeNet and LeNet-300-100 on mnist_subset (28 px), batch 32, a round-1 mask (20% pruned). Also
times the loop as it was before issue 7's fix (bench/_before_loop.py) and where each batch's time
goes inside the loops. Run: python bench/train_loop.py
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import _common as C  # noqa: I001 (puts the repository on sys.path)
import torch
from torch import nn

from ltray.config import DataConfig, TaskSpec, TrainConfig
from ltray.data.augment import augmented_batches
from ltray.pruning import prune
from ltray.training.loop import MaskApplier, MaskedSGD, train_round
from ltray.training.setup import prepare, seeded_generator

from _before_loop import train_round_before

ARCHS = ("lenet", "lenet_300_100")
BATCH, LR = 32, 0.01
GOAL = 0.9
PIECES = ("next batch (shuffle, augment)", "forward + loss", "zero_grad + backward", "step")


def round1_mask(setup) -> dict[str, torch.Tensor]:
    """The mask of round 1: 20% of every layer pruned by magnitude (global), as a trajectory does."""
    weights = {n: setup.initial[n] for n in setup.mask_names}
    ones = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    return prune("global_unstructured", weights, ones, fraction=0.2, seed=0, round=0)


def load(arch: str, device: torch.device):
    setup = prepare("mnist_subset", TaskSpec(dataset="mnist_subset"), arch, 0, DataConfig(), Path("data"),
                    False, device)
    perm = torch.randperm(setup.task.train_x.shape[0], generator=torch.Generator().manual_seed(0)).to(device)
    preloaded = list(zip(setup.task.train_x[perm].split(BATCH), setup.task.train_y[perm].split(BATCH)))
    return setup, round1_mask(setup), preloaded  # preloaded: contiguous batches on the device


def bare_step(model: nn.Module):
    """The limit's optimizer: torch SGD (foreach), no mask."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, foreach=True)
    return opt.step, lambda: opt.zero_grad(set_to_none=True)


def masked_step(model: nn.Module, mask):
    """ltray's MaskedSGD (the fused masked update), its mask applied first as train_round does."""
    apply = MaskApplier(model, mask)
    apply()
    sgd = MaskedSGD(model, apply, TrainConfig(lr=LR))
    return sgd.step, sgd.zero_grad


def make_cases(arch: str, device: torch.device) -> tuple[dict, int]:
    setup, mask, preloaded = load(arch, device)
    task = setup.task
    train = TrainConfig(epochs=1, lr=LR, batch_size=BATCH)
    loss_fn = nn.CrossEntropyLoss()

    def over_preloaded(step_maker):
        model = copy.deepcopy(setup.model)
        step, zero_grad = step_maker(model)

        def epoch() -> None:
            for x, y in preloaded:
                loss = loss_fn(model(x), y)
                zero_grad()
                loss.backward()
                step()
        return epoch

    def ltray(aug: bool, round_fn=train_round):
        model = copy.deepcopy(setup.model)
        apply = MaskApplier(model, mask)
        data = DataConfig(crop=aug, flip=aug)
        return lambda: round_fn(model, task, apply, train, data, seeded_generator(device, 1))

    cases = {
        "bare loop (limit)": over_preloaded(bare_step),
        "ltray, crop+flip": ltray(True),
        "ltray, no augmentation": ltray(False),
        "bare loop with ltray's MaskedSGD step": over_preloaded(lambda m: masked_step(m, mask)),
        "before the fix, crop+flip": ltray(True, train_round_before),
        "before the fix, no augmentation": ltray(False, train_round_before),
    }
    return cases, task.train_x.shape[0]


def breakdown(arch: str, device: torch.device, repeats: int) -> dict[str, list[float]]:
    """Microseconds per batch of each piece of a step, timed inside the loop (medians over epochs).

    Inside the loop, not alone: the forward/backward pass evicts the caches, so the data work
    costs there about 1.5-2x what it costs in a tight loop of its own.
    """
    setup, mask, preloaded = load(arch, device)
    task, loss_fn, dev = setup.task, nn.CrossEntropyLoss(), str(device)
    gen = seeded_generator(device, 0)

    def batches_of(kind):
        if kind == "bare":
            return iter(preloaded)
        aug = kind == "crop+flip"
        return iter(augmented_batches(task.train_x, task.train_y, BATCH, gen, crop_padding=4 if aug else 0,
                                      flip=aug, fill=task.pad_value))

    setups = {}
    for kind in ("bare", "crop+flip", "none"):
        model = copy.deepcopy(setup.model)
        setups[kind] = (model, *(bare_step(model) if kind == "bare" else masked_step(model, mask)))
    per_epoch = {kind: [] for kind in setups}
    for r in range(repeats + 1):
        for kind, (model, step, zero_grad) in setups.items():
            totals, count, it = [0.0] * 4, 0, batches_of(kind)
            while True:
                C.sync(dev)
                t0 = time.perf_counter()
                try:
                    x, y = next(it)
                except StopIteration:
                    break
                C.sync(dev)
                t1 = time.perf_counter()
                loss = loss_fn(model(task.inputs(x)), y)
                C.sync(dev)
                t2 = time.perf_counter()
                zero_grad()
                loss.backward()
                C.sync(dev)
                t3 = time.perf_counter()
                step()
                C.sync(dev)
                t4 = time.perf_counter()
                for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    totals[i] += d
                count += 1
            if r > 0:  # the first epoch warms up
                per_epoch[kind].append([t / count * 1e6 for t in totals])
    return {kind: [C.median([e[i] for e in epochs]) for i in range(4)] for kind, epochs in per_epoch.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15, help="LeNet; LeNet-300-100's 5x shorter epochs get 2x more")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = a Tune trial with cpu: 1)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = C.pick_device()
    info = C.machine(device)
    print(C.machine_line(info))
    rows, summary, results = [], [], {}
    for arch in ARCHS:
        cases, n = make_cases(arch, torch.device(device))
        repeats = args.repeats if arch == "lenet" else 2 * args.repeats + 1
        times = C.interleaved(cases, repeats, warmup=1, device=device)
        limit, fastest = C.median(times["bare loop (limit)"]), min(times["bare loop (limit)"])
        results[arch] = {}
        for name, ts in times.items():
            ratio = limit / C.median(ts)
            results[arch][name] = ratio
            rows.append([arch, name, C.spread(ts), f"{n / C.median(ts):,.0f}", f"{ratio:.2f}",
                         f"{fastest / min(ts):.2f}"])
            print(f"{arch:14s} {name:38s} {C.spread(ts)} s/epoch  ratio to bare {ratio:.2f} "
                  f"(fastest runs {fastest / min(ts):.2f})")
        results[arch]["breakdown"] = parts = breakdown(arch, torch.device(device), repeats)
        for kind, us in parts.items():
            print(f"{arch:14s}   {kind:10s} " + "  ".join(f"{p} {t:6.0f}" for p, t in zip(PIECES, us)) + " us/batch")
        r, b = results[arch]["ltray, crop+flip"], results[arch]["before the fix, crop+flip"]
        summary.append({"benchmark": f"1. training loop vs bare loop, {arch}, crop+flip ({device})",
                        "goal": f">= {GOAL}", "result": f"{r:.2f} (before the fix: {b:.2f})",
                        "status": C.status(r >= GOAL)})
    if not args.no_write:
        write(info, rows, results, summary, args)
    return results


def write(info, rows, results, summary, args) -> None:
    aug_cost = {a: results[a]["ltray, no augmentation"] / results[a]["ltray, crop+flip"] - 1 for a in ARCHS}
    parts = {a: results[a]["breakdown"] for a in ARCHS}
    labels = {"bare": "bare loop", "crop+flip": "ltray, crop+flip", "none": "ltray, no augmentation"}
    table = [[a, labels[k]] + [f"{t:.0f}" for t in us] + [f"{sum(us):.0f}"] for a in ARCHS for k, us in parts[a].items()]
    body = f"""Command: `python bench/train_loop.py` ({args.repeats} interleaved repeats for LeNet, {2 * args.repeats + 1} for LeNet-300-100;
median, range in brackets).
Measured {C.machine_line(info)}.

One epoch of mnist_subset (3,336 training images, 28 px), batch {BATCH}, lr {LR}, a round-1 mask (20% of the
weights pruned). *Bare loop*: the same model over preloaded contiguous batches, `loss.backward()` and
`torch.optim.SGD(foreach=True).step()`, no mask, no augmentation, no shuffling: the limit. *ltray*:
`ltray.training.loop.train_round` as it is in the tree (a whole round: mask applied, shuffled, augmented,
loss returned). *Before the fix*: the loop as committed before issue 7's fix (`bench/_before_loop.py`).
Ratio = bare time / case time (1.0 = at the limit); the goal is judged on medians; the ratio of the fastest
runs is shown because other jobs' load comes and goes.

{C.table(["model", "case", "s/epoch", "samples/s", "ratio to bare (medians)", "ratio of the fastest runs"], rows)}

Goal: ltray with crop+flip >= {GOAL} of the bare loop. Augmentation costs ltray
{', '.join(f'{a} {100 * c:.0f}%' for a, c in aug_cost.items())} of an epoch (no-augmentation time vs crop+flip time).

Where the time goes, microseconds per batch of 32, timed inside the loops (median over epochs; the
forward/backward pass evicts the caches between chunks, so data work costs 1.5-2x here what it costs in a
tight loop of its own):

{C.table(["model", "loop", *PIECES, "total"], table)}

The fix and what limits LeNet-300-100: see "Training loop: the fix, and what is left" below."""
    C.update_section("bench-train-loop", "1. Training loop vs the compute limit", body, summary)


if __name__ == "__main__":
    main()
