"""A control reading of the machine's single-core speed, to put beside a timing of the test suite:
the project's 2-core machine is not always the same hardware and its speed drifts, so a suite's
minutes mean little without it. Prints the CPU model and the seconds of a fixed pure-Python loop
(30 million additions on module globals, one thread; the control that README's readings use).
Standard library only. Run: python3 bench/machine_speed.py
"""

from __future__ import annotations

import time
from pathlib import Path


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    start = time.perf_counter()
    x = 0
    for i in range(30_000_000):  # at module level, as README's readings were taken
        x += i
    print(f"{cpu_model()}: control loop {time.perf_counter() - start:.2f} s")
