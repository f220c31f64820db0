"""How durations read in every console line (the sweep's progress, `ltray status`): one low module,
so the commands above it share it without importing each other."""

from __future__ import annotations


def fmt_duration(seconds: float | None) -> str:
    """`1m05s`, `2h03m`, `1d04h`; `-` for an unknown duration (an ETA before the first round)."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"
