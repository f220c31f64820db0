"""Benchmark 1: one epoch of ltray's masked training (crop+flip, and without augmentation) vs the
bare forward/backward/step loop over preloaded batches of the same model (the compute limit).

LeNet and LeNet-300-100 on mnist_subset (28 px), batch 32, a round-1 mask (20% pruned). Also
times the prototype fix in bench/_proposed_loop.py. Run: python bench/train_loop.py
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import _common as C  # noqa: I001 (puts the repository on sys.path)
import torch
from torch import nn

from ltray.config import DataConfig, TaskSpec, TrainConfig
from ltray.pruning import prune
from ltray.training.loop import MaskApplier, train_round
from ltray.training.setup import prepare, seeded_generator

from _proposed_loop import FusedMaskedSGD, train_round_proposed

ARCHS = ("lenet", "lenet_300_100")
BATCH, LR = 32, 0.01
GOAL = 0.9


def round1_mask(setup) -> dict[str, torch.Tensor]:
    """The mask of round 1: 20% of every layer pruned by magnitude (global), as a trajectory does."""
    weights = {n: setup.initial[n] for n in setup.mask_names}
    ones = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    return prune("global_unstructured", weights, ones, fraction=0.2, seed=0, round=0)


def make_cases(arch: str, device: torch.device) -> tuple[dict, int]:
    setup = prepare("mnist_subset", TaskSpec(dataset="mnist_subset"), arch, 0, DataConfig(), Path("data"),
                    False, device)
    task, mask = setup.task, round1_mask(setup)
    n = task.train_x.shape[0]
    train = TrainConfig(epochs=1, lr=LR, batch_size=BATCH)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(device)
    xb = list(task.train_x[perm].split(BATCH))  # preloaded, contiguous batches on the device
    yb = list(task.train_y[perm].split(BATCH))
    models = {}

    def fresh(name: str) -> nn.Module:
        models[name] = copy.deepcopy(setup.model)
        return models[name]

    bare_model = fresh("bare")
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=LR, foreach=True)
    loss_fn = nn.CrossEntropyLoss()

    def bare() -> None:
        for x, y in zip(xb, yb):
            loss = loss_fn(bare_model(x), y)
            bare_opt.zero_grad(set_to_none=True)
            loss.backward()
            bare_opt.step()

    fused_model = fresh("bare_fused")
    fused_opt = FusedMaskedSGD(fused_model, mask, LR)

    def bare_fused() -> None:
        for x, y in zip(xb, yb):
            loss = loss_fn(fused_model(x), y)
            fused_opt.zero_grad()
            loss.backward()
            fused_opt.step()

    def ltray(aug: bool):
        model = fresh(f"ltray_{aug}")
        apply = MaskApplier(model, mask)
        data = DataConfig(crop=aug, flip=aug)
        return lambda: train_round(model, task, apply, train, data, seeded_generator(device, 1))

    def proposed(aug: bool):
        model = fresh(f"proposed_{aug}")
        return lambda: train_round_proposed(model, task, mask, 1, LR, BATCH, 4 if aug else 0, aug,
                                            seeded_generator(device, 1))

    cases = {
        "bare loop (limit)": bare,
        "ltray, crop+flip": ltray(True),
        "ltray, no augmentation": ltray(False),
        "bare loop, fused masked step": bare_fused,
        "proposed fix, crop+flip": proposed(True),
        "proposed fix, no augmentation": proposed(False),
    }
    return cases, n


def breakdown(arch: str, device: torch.device, repeats: int) -> dict[str, float]:
    """Microseconds per batch of 32 of each piece of ltray's per-batch work, and of the proposed fix's."""
    from ltray.data import augment, batches

    from _proposed_loop import CHUNK_VALUES, flip_crop_gather

    setup = prepare("mnist_subset", TaskSpec(dataset="mnist_subset"), arch, 0, DataConfig(), Path("data"),
                    False, device)
    task, mask = setup.task, round1_mask(setup)
    x_all, y_all = task.train_x, task.train_y
    gen = seeded_generator(device, 0)
    idxs = batches(x_all.shape[0], BATCH, gen)
    xb = [x_all[i] for i in idxs]
    yb = [y_all[i] for i in idxs]
    model = copy.deepcopy(setup.model)  # forward/backward only: its weights never move
    stepped = copy.deepcopy(setup.model)  # the step cases apply one gradient over and over
    opt = torch.optim.SGD(stepped.parameters(), lr=LR, foreach=True)
    apply = MaskApplier(stepped, mask)
    fused_model = copy.deepcopy(setup.model)
    fused = FusedMaskedSGD(fused_model, mask, LR)
    loss_fn = nn.CrossEntropyLoss()
    chunk = max(1, CHUNK_VALUES // (x_all[0].numel() * BATCH)) * BATCH
    perm = torch.randperm(x_all.shape[0], generator=gen, device=device)

    def fwd_bwd(m):
        for x, y in zip(xb, yb):
            loss = loss_fn(m(x), y)
            for p in m.parameters():
                p.grad = None
            loss.backward()

    def with_grads(m, step):
        loss_fn(m(xb[0]), yb[0]).backward()  # one gradient, kept: the steps reuse it

        def run():
            for _ in idxs:
                step()
        return run

    loss_sum = torch.zeros((), device=device)
    loss = torch.ones((), device=device)

    def accumulate():
        for i in idxs:
            loss_sum.add_(loss.detach() * i.shape[0])

    cases = {
        "index the batch (x_all[idx], y_all[idx])": lambda: [(x_all[i], y_all[i]) for i in idxs],
        "augment the batch (ltray.data.augment)": lambda: [augment(x, gen, crop_padding=4, flip=True,
                                                                   fill=task.pad_value) for x in xb],
        "forward + backward": lambda: fwd_bwd(model),
        "optimizer.step() (SGD, foreach)": with_grads(stepped, opt.step),
        "MaskApplier() (weights *= masks)": with_grads(stepped, apply),
        "loss sum (loss.detach() * n, +=)": accumulate,
        "proposed: index + augment a 16-batch chunk, per batch": lambda: [
            flip_crop_gather(x_all[perm[s:s + chunk]], gen, 4, True, task.pad_value)
            for s in range(0, x_all.shape[0], chunk)],
        "proposed: fused masked SGD step": with_grads(fused_model, fused.step),
    }
    times = C.interleaved(cases, repeats, warmup=1, device=str(device))
    return {name: C.median(ts) / len(idxs) * 1e6 for name, ts in times.items()}


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
            print(f"{arch:14s} {name:32s} {C.spread(ts)} s/epoch  ratio to bare {ratio:.2f} "
                  f"(fastest runs {fastest / min(ts):.2f})")
        results[arch]["breakdown"] = parts = breakdown(arch, torch.device(device), repeats)
        for name, t in parts.items():
            print(f"{arch:14s}   {name:55s} {t:8.1f} us/batch")
        r = results[arch]["ltray, crop+flip"]
        p = results[arch]["proposed fix, crop+flip"]
        summary.append({"benchmark": f"1. training loop vs bare loop, {arch}, crop+flip ({device})",
                        "goal": f">= {GOAL}", "result": f"{r:.2f} (proposed fix, bench/_proposed_loop.py: {p:.2f})",
                        "status": C.status(r >= GOAL) + f" (fix: {C.status(p >= GOAL)})"})
    if not args.no_write:
        write(info, rows, results, summary, args)
    return results


def write(info, rows, results, summary, args) -> None:
    aug_cost = {a: results[a]["ltray, no augmentation"] / results[a]["ltray, crop+flip"] - 1 for a in ARCHS}
    results = {a: dict(r) for a, r in results.items()}
    body = f"""Command: `python bench/train_loop.py` ({args.repeats} interleaved repeats for LeNet, {2 * args.repeats + 1} for LeNet-300-100;
median, range in brackets).
Measured {C.machine_line(info)}.

One epoch of mnist_subset (3,336 training images, 28 px), batch {BATCH}, lr {LR}, a round-1 mask (20% of the
weights pruned). *Bare loop*: the same model over preloaded contiguous batches, `loss.backward()` and
`torch.optim.SGD(foreach=True).step()`, no mask, no augmentation, no shuffling: the limit. *ltray*:
`ltray.training.loop.train_round` as it is in the tree. Ratio = bare time / case time (1.0 = at the limit); the
goal is judged on medians; the ratio of the fastest runs is shown because other jobs' load comes and goes.
*Fused masked step* and *proposed fix* are the prototype in `bench/_proposed_loop.py` (not in ltray yet).

{C.table(["model", "case", "s/epoch", "samples/s", "ratio to bare (medians)", "ratio of the fastest runs"], rows)}

Goal: ltray with crop+flip >= {GOAL} of the bare loop. Augmentation costs ltray
{', '.join(f'{a} {100 * c:.0f}%' for a, c in aug_cost.items())} of an epoch (no-augmentation time vs crop+flip time).

Where the time goes, microseconds per batch of 32 (medians; each piece timed alone over one epoch's batches):

{C.table(["piece of the per-batch work"] + list(ARCHS), [[name] + [f"{results[a]['breakdown'][name]:.0f}" for a in ARCHS] for name in results[ARCHS[0]]['breakdown']])}

The gap and the fix: see "Training loop: the gap and the proposed fix" below (ltray/training/loop.py and
ltray/data/augment.py are another engineer's files; the fix is prototyped in `bench/_proposed_loop.py`)."""
    C.update_section("bench-train-loop", "1. Training loop vs the compute limit", body, summary)


if __name__ == "__main__":
    main()
