"""Shared benchmark plumbing: machine description, interleaved repeat timing with medians, and
rewriting one benchmark's section of BENCHMARKS.md (between its markers) in place.

Every bench script measures its baseline and ltray in the same process, interleaved, so a machine
shared with other jobs slows both sides alike; ratios of medians are what the goals are about.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
if str(ROOT) not in sys.path:  # `python bench/x.py` from anywhere imports the working tree's ltray
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict:
    """What the numbers were measured on (the machine is shared: the load average says how much)."""
    import torch

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_line(info: dict) -> str:
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ""
    return (f"{info['date']}; {info['cpu']}, {info['cores']} cores, torch {info['torch']} with "
            f"{info['torch_threads']} thread(s), device {info['device']}{gpu}; 1-min load average "
            f"{info['load_avg_1m']} at the start")


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def interleaved(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                device: str = "cpu") -> dict[str, list[float]]:
    """Seconds per call of each case, `repeats` times, interleaved (the order rotates every repeat
    so no case always runs right after another); `warmup` untimed rounds first."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            sync(device)
            start = time.perf_counter()
            cases[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """'median (min-max)' in the values' unit, 3 significant digits."""
    return f"{median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def update_section(name: str, title: str, body: str, summary: list[dict]) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md; `summary` rows (benchmark, goal,
    result, status) are kept in a comment that run_all.py turns into the table at the top."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = (f"{begin}\n## {title}\n\n{body.strip()}\n\n<!-- summary {json.dumps(summary)} -->\n{end}")
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    text = _replace_block(text, begin, end, block)
    summary_block = ("<!-- BEGIN summary -->\n" + table(["benchmark", "goal", "latest result", "status"], [
        [r["benchmark"], r["goal"], r["result"], r["status"]] for r in read_summaries(text)]) + "\n<!-- END summary -->")
    text = _replace_block(text, "<!-- BEGIN summary -->", "<!-- END summary -->", summary_block)
    tmp = BENCHMARKS_MD.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, BENCHMARKS_MD)


def _replace_block(text: str, begin: str, end: str, block: str) -> str:
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    return text.rstrip() + "\n\n" + block + "\n"


def read_summaries(text: str) -> list[dict]:
    """Every section's summary rows, in file order."""
    rows = []
    for m in re.finditer(r"<!-- summary (\[.*?\]) -->", text):
        rows.extend(json.loads(m.group(1)))
    return rows


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def status(ok: bool) -> str:
    return "met" if ok else "NOT met"
