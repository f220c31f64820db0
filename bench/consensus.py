"""Benchmark 4: rolling vote counts + thresholded consensus on a ResNet18-sized mask set (5 masks)
vs a plain numpy bitwise pass over the same packed bits (the memory-bandwidth limit), the code
before the packed rewrite side by side, and bytes per mask on disk vs a float32 mask.
Run: python bench/consensus.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _common as C  # noqa: I001 (puts the repository on sys.path)
import numpy as np

from ltray.masks.votes import VoteCounts
from ltray.masks import load_mask, save_mask
from ltray.masks.format import load_packed_mask
from ltray.masks.packed import Layout

from _before import OldVoteCounts

N_MASKS, KEEP, GOAL = 5, 0.64, 2.0  # 5 sources at round 2 (0.8^2 of the weights kept)


def resnet18_shapes() -> dict[str, tuple[int, ...]]:
    """The mask layout of ltray's resnet18 for 10 classes (every conv and linear weight)."""
    from ltray.models import build_model, mask_layers

    model = build_model("resnet18", 10, 0)
    params = dict(model.named_parameters())
    return {n: tuple(params[n].shape) for n in mask_layers(model)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    info = C.machine("cpu")
    print(C.machine_line(info))
    shapes = resnet18_shapes()
    layout = Layout.of(shapes)
    n_weights = layout.n_weights
    rng = np.random.default_rng(0)
    masks = [{n: rng.random(s) < KEEP for n, s in shapes.items()} for _ in range(N_MASKS)]
    # as the aggregator gets them: load_packed_mask's read-only views of the files' bytes
    packed = [np.frombuffer(layout.pack(m).tobytes(), np.uint8) for m in masks]
    writeable = [layout.pack(m) for m in masks]
    tmp = np.empty_like(packed[0])

    def baseline_and() -> np.ndarray:  # the limit: AND of the 5 packed masks, in place
        acc = packed[0].copy()
        for p in packed[1:]:
            np.bitwise_and(acc, p, out=acc)
        return acc

    def one_pass() -> None:
        np.bitwise_and(packed[0], packed[1], out=tmp)

    def ltray_packed(k, source=packed):
        def run():
            votes = VoteCounts(shapes)
            for p in source:
                votes.add_packed(p)
            return votes.consensus_packed(k) if k else votes
        return run

    def ltray_bool() -> dict:
        votes = VoteCounts(shapes)
        for m in masks:
            votes.add(m)
        return votes.consensus("all")

    def before() -> dict:
        votes = OldVoteCounts(shapes)
        for m in masks:
            votes.add(m)
        return votes.consensus(N_MASKS)

    full = VoteCounts(shapes)
    for p in packed:
        full.add_packed(p)

    # the same answer from every implementation
    want = baseline_and()
    assert np.array_equal(ltray_packed("all")(), want)
    assert np.array_equal(layout.pack(ltray_bool()), want)
    assert np.array_equal(layout.pack(before()), want)
    assert np.array_equal(layout.pack(OldVoteCounts_from(masks, shapes).consensus(3)), ltray_packed(3)())

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.ltmask"
        save_mask(path, masks[0])
        file_bytes = path.stat().st_size
        cases = {
            "limit: numpy AND of the 5 packed masks": baseline_and,
            "ltray: 5 x add_packed + consensus_packed('all')": ltray_packed("all"),
            "ltray: 5 x add_packed + consensus_packed(3)": ltray_packed(3),
            "ltray: 5 x add(bool) + consensus('all') (packs/unpacks)": ltray_bool,
            "before: uint16 counts, 5 x add(bool) + consensus(5)": before,
            "ltray: 5 x add_packed of writeable arrays (copies them) + consensus_packed('all')":
                ltray_packed("all", writeable),
            "ltray: 5 x add_packed alone": ltray_packed(None),
            "ltray: consensus_packed('all') alone": lambda: full.consensus_packed("all"),
            "one bitwise pass (1 AND of 2 packed masks)": one_pass,
            "load_packed_mask (read + SHA-256, no unpack)": lambda: load_packed_mask(path),
            "load_mask (read + SHA-256 + unpack to bool)": lambda: load_mask(path),
        }
        times = C.interleaved(cases, args.repeats, warmup=1)
    limit = C.median(times["limit: numpy AND of the 5 packed masks"])
    one = C.median(times["one bitwise pass (1 AND of 2 packed masks)"])
    rows, results = [], {}
    for name, ts in times.items():
        ref = one if name.startswith("one bitwise") else limit
        ratio = C.median(ts) / ref
        results[name] = ratio
        unit = "1 pass" if ref is one else "5-mask AND"
        rows.append([name, C.spread([t * 1e3 for t in ts]), f"{ratio:.2f} x {unit}"])
        print(f"{name:58s} {C.spread([t * 1e3 for t in ts])} ms  {ratio:.2f} x {unit}")
    bytes_ratio = file_bytes / (4 * n_weights)
    print(f"{n_weights:,} weights; .ltmask {file_bytes:,} bytes = {bytes_ratio:.4f} of a float32 mask "
          f"({8 * file_bytes / n_weights:.3f} bits per weight)")
    r = results["ltray: 5 x add_packed + consensus_packed('all')"]
    summary = [
        {"benchmark": "4. consensus: 5 adds + consensus('all'), ResNet18 size, vs numpy AND over packed bits",
         "goal": f"<= {GOAL:g}x", "result": f"{r:.2f}x", "status": C.status(r <= GOAL)},
        {"benchmark": "4. mask file bytes / float32 mask bytes", "goal": "1 bit per weight (1/32 = 0.031)",
         "result": f"{bytes_ratio:.4f}", "status": C.status(bytes_ratio < 1 / 32 * 1.01)},
    ]
    if not args.no_write:
        write(info, rows, n_weights, file_bytes, bytes_ratio, summary, args)
    return results


def OldVoteCounts_from(masks, shapes) -> OldVoteCounts:  # noqa: N802 (reads like the class)
    votes = OldVoteCounts(shapes)
    for m in masks:
        votes.add(m)
    return votes


def write(info, rows, n_weights, file_bytes, bytes_ratio, summary, args) -> None:
    body = f"""Command: `python bench/consensus.py` ({args.repeats} interleaved repeats, median; range in brackets; times in ms).
Measured {C.machine_line(info)}. numpy, single-threaded.

{N_MASKS} random masks (keep {KEEP}) over the {n_weights:,} prunable weights of ltray's `resnet18` (10 classes).
*Limit*: the intersection as a plain numpy pass, `np.bitwise_and(acc, mask, out=acc)` over the 5 masks packed
1 bit per weight. *ltray*: `VoteCounts` from empty, 5 masks added, then the consensus; `add_packed` /
`consensus_packed` take and give packed bits (the aggregator feeds them mask-file payloads as read: no unpacking);
`add_packed` keeps a read-only view of a file's bytes as it is (it cannot change) and copies anything writeable.
The inputs here are such views (as `load_packed_mask` returns them) except in the "writeable" row, whose copies
into fresh memory (page faults included) are what it measures. `add` / `consensus` take and give bool arrays (the same, plus packing 5 x 11M bools and unpacking the answer).
*Before*: the uint16-count implementation this benchmark replaced (`bench/_before.py`). All cases are checked
to give the same mask.

{C.table(["case", "ms", "ratio"], rows)}

Mask file: {file_bytes:,} bytes for {n_weights:,} weights = **{bytes_ratio:.4f}** of a float32 mask
({8 * file_bytes / n_weights:.3f} bits per weight, header and checksum included).

How: `VoteCounts` keeps up to 16 added masks as packed rows (a copy per add; the k-of-n consensus is
n - 1 ANDs for k = n, n - 1 ORs for k = 1, and a short recurrence for other k), and beyond 16 masks, after a
remove that matches no added mask, or when restored from bytes, bit planes of the counts updated by
ripple-carry adds. Its API and tests are unchanged; `add_packed`, `remove_packed`, `consensus_packed` and
`leave_one_out_packed` are new, as are `ltray.masks.packed` and `load_packed_mask`/`save_packed_mask`."""
    C.update_section("bench-consensus", "4. Consensus vs a bitwise pass", body, summary)


if __name__ == "__main__":
    main()
