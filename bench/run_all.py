"""Run every benchmark, one process each, in order; each rewrites its own section of BENCHMARKS.md
and the summary table at its top. Run: python bench/run_all.py [--only NAME ...] [--no-write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["train_loop", "vs_pipeline", "ray_overhead", "consensus", "driver_scale", "packing", "object_storage"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", choices=BENCHES, help="run only these")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    failed = []
    for name in args.only or BENCHES:
        print(f"\n=== bench/{name}.py", flush=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--no-write"] if args.no_write else [])
        rc = subprocess.call(cmd, cwd=HERE.parent)
        print(f"=== bench/{name}.py: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
