"""The paper's Table 1 from ltray's layer rule and pruning arithmetic, for every technique family:
unpruned parameters (thousands; biases and batch-norm count as unpruned) after each listed
pruning iteration. Iteration i is ltray's round i + 1. Prints markdown (docs/table1.md).

    python -m ltray_analysis.table1 [--dim 1]
"""

from __future__ import annotations

import argparse

from ltray.models import build_skeleton, get_arch, prunable_weights
from ltray.pruning.counts import surviving_weights

ARCHS = ("lenet", "alexnet", "vgg11", "resnet18")
ITERATIONS = (0, 1, 2, 5, 9, 14, 19)
# one technique per family: the counts of a family do not depend on the weights
FAMILIES = {
    "global unstructured": "global_unstructured",
    "per-layer unstructured (l1, random)": "l1_unstructured",
    "structured (l1, l2, linf, lneginf, random)": "l1_structured",
}


def unpruned(arch: str, technique: str, dim: int = 1, prune_shortcuts: bool = False) -> list[int]:
    """Unpruned parameters at each listed iteration for `arch` at the paper's input size."""
    model = build_skeleton(arch, 10, get_arch(arch).image_size)
    params = dict(model.named_parameters())
    names = prunable_weights(model, include_shortcuts=prune_shortcuts)
    shapes = {n: tuple(params[n].shape) for n in names}
    fixed = sum(p.numel() for n, p in params.items() if n not in shapes)
    counts = surviving_weights(shapes, technique, max(ITERATIONS) + 1, dim=dim)
    return [counts[i + 1] + fixed for i in ITERATIONS]


def _k(n: int) -> str:
    return f"{n / 1000:,.1f}" if n < 10_000 else f"{n // 1000:,}"


def markdown(dim: int = 1) -> str:
    head = "| architecture | technique | dense | " + " | ".join(f"it. {i}" for i in ITERATIONS) + " |"
    lines = [head, "|" + "---|" * (3 + len(ITERATIONS))]
    for arch in ARCHS:
        dense = sum(p.numel() for p in build_skeleton(arch, 10).parameters())
        rows = [(label, unpruned(arch, t, dim)) for label, t in FAMILIES.items()]
        if arch == "resnet18":
            rows.append(("global unstructured, `prune_shortcuts: true`",
                         unpruned(arch, "global_unstructured", dim, prune_shortcuts=True)))
        for label, counts in rows:
            lines.append(f"| {arch} | {label} | {_k(dense)} | " + " | ".join(map(_k, counts)) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=1, help="structured pruning dim (1: input channels)")
    print(markdown(ap.parse_args(argv).dim))


if __name__ == "__main__":
    main()
