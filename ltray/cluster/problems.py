"""A finding of `python -m ltray.cluster check`: the key path it concerns and a one-line message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    path: str  # key path in the cluster file, e.g. available_node_types.head.resources.CPU
    message: str

    def line(self, filename: str) -> str:
        return f"{filename}: {self.path or '(top level)'}: {self.message}"


def unique(problems) -> list[Problem]:
    """Drop repeats (several nodes can share one offending command), keeping order."""
    seen, out = set(), []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def node_types_phrase(types) -> str:
    """`node type head` or `node types head, gpu_1x`."""
    types = list(types)
    return f"node type{'s' if len(types) > 1 else ''} {', '.join(types)}"
