"""Command line: `python -m analysis EXPERIMENT [--out DIR] [--reference TECHNIQUE] [--dpi N]`.
A user mistake (no such folder, not an experiment folder) prints one line and exits 2."""

from __future__ import annotations

import argparse
import sys

from ltray.errors import LtrayError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Figures, tables and report.md from an ltray experiment folder.")
    parser.add_argument("experiment", help="the experiment folder (<storage>/<name>): a path or an s3:// / gs:// URI")
    parser.add_argument("--out", help="report folder, a path or a URI (default: EXPERIMENT/report)")
    parser.add_argument("--reference", default="global_unstructured",
                        help="technique the per-layer distances are measured against "
                             "(default: global_unstructured)")
    parser.add_argument("--dpi", type=_positive_int, default=110,
                        help="PNG resolution, dots per inch (default: 110)")
    args = parser.parse_args(argv)
    from analysis.report import Options, build_report  # after parsing: --help stays fast

    try:
        report = build_report(args.experiment, args.out,
                              Options(reference=args.reference, dpi=args.dpi))
    except LtrayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_notes = len(report.notes) + sum(b.startswith("> Note") for s in report.sections
                                      for b in s.blocks)
    print(f"report written to {report.location.rstrip('/')}/report.md ({len(report.figures)} figures, "
          f"{len(report.tables)} tables, {n_notes} notes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
