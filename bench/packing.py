"""Benchmark 6 (GPU only): how many LeNet trials one GPU takes. k processes, each training LeNet on
mnist_subset with ltray's loop (crop+flip, batch 32, a round-1 mask) on the same GPU, start together;
their combined samples/s vs one alone (full.yaml packs 4: `lenet: {gpu: 0.25}`).
Run: python bench/packing.py   (prints "skipped: no GPU" without CUDA)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import _common as C  # noqa: I001 (puts the repository on sys.path)
import torch

PACKS = (1, 2, 4, 8)
EPOCHS = 10


def worker(barrier, queue, epochs: int) -> None:
    """One trial's training, timed between a shared start and its own end."""
    import copy

    from ltray.config import DataConfig, TaskSpec, TrainConfig
    from ltray.training.loop import MaskApplier, train_round
    from ltray.training.setup import prepare, seeded_generator
    from train_loop import BATCH, LR, round1_mask

    torch.set_num_threads(1)  # a trial's CPU share (full.yaml: cpu 1 per LeNet trial)
    dev = torch.device("cuda")
    setup = prepare("mnist_subset", TaskSpec(dataset="mnist_subset"), "lenet", 0, DataConfig(), Path("data"),
                    False, dev)
    model = copy.deepcopy(setup.model)
    apply = MaskApplier(model, round1_mask(setup))
    data = DataConfig(crop=True, flip=True)
    train_round(model, setup.task, apply, TrainConfig(epochs=1, lr=LR, batch_size=BATCH), data,
                seeded_generator(dev, 0))  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    barrier.wait()
    t0 = time.perf_counter()
    train_round(model, setup.task, apply, TrainConfig(epochs=epochs, lr=LR, batch_size=BATCH), data,
                seeded_generator(dev, 1))
    torch.cuda.synchronize()
    queue.put(setup.task.train_x.shape[0] * epochs / (time.perf_counter() - t0))


def run_pack(k: int, epochs: int) -> list[float]:
    ctx = mp.get_context("spawn")  # CUDA needs fresh processes
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(barrier, queue, epochs)) for _ in range(k)]
    for p in procs:
        p.start()
    rates = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return rates


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("skipped: no GPU")
        if not args.no_write:
            C.update_section("bench-packing", "6. Packing LeNet trials on one GPU", (
                "Command: `python bench/packing.py` (needs CUDA; prints `skipped: no GPU` otherwise).\n\n"
                "**Not measured yet**: no GPU was available where the benchmarks last ran "
                f"({C.machine_line(C.machine('cpu'))}).\n\n"
                f"What it measures: k = {', '.join(map(str, PACKS))} processes, each one LeNet trial's training with "
                "ltray's loop (mnist_subset, crop+flip, batch 32, 1 CPU thread), started together on one GPU; "
                "their combined samples/s against one alone."),
                [{"benchmark": "6. LeNet trials packed per GPU (combined samples/s vs one)", "goal": "(GPU)",
                  "result": "not measured (no GPU)", "status": "-"}])
        return {}
    info = C.machine("cuda")
    print(C.machine_line(info))
    rates = {}
    for k in PACKS:
        rates[k] = run_pack(k, args.epochs)
        print(f"{k} trial(s): each {[round(r) for r in rates[k]]} samples/s, combined {sum(rates[k]):,.0f} "
              f"= {sum(rates[k]) / sum(rates[1]):.2f}x one alone")
    best = max(PACKS, key=lambda k: sum(rates[k]))
    rows = [[k, f"{min(rates[k]):,.0f}-{max(rates[k]):,.0f}", f"{sum(rates[k]):,.0f}",
             f"{sum(rates[k]) / sum(rates[1]):.2f}x"] for k in PACKS]
    if not args.no_write:
        C.update_section("bench-packing", "6. Packing LeNet trials on one GPU", f"""Command: `python bench/packing.py`
({args.epochs} epochs per trial after a warm-up epoch). Measured {C.machine_line(info)}.

k processes, each one LeNet trial's training with ltray's loop (mnist_subset, crop+flip, batch 32, a round-1
mask, 1 CPU thread), started together on one GPU (no Ray: the GPU's sharing itself).

{C.table(["trials on the GPU", "samples/s per trial", "combined samples/s", "vs one alone"], rows)}

Most throughput at {best} trials per GPU; `full.yaml` packs 4 (`lenet: {{gpu: 0.25}}`).""",
            [{"benchmark": "6. LeNet trials packed per GPU (combined samples/s vs one)", "goal": "(GPU)",
              "result": f"{best} per GPU: {sum(rates[best]) / sum(rates[1]):.2f}x", "status": "measured"}])
    return rates


if __name__ == "__main__":
    main()
