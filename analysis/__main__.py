"""Command line: `ltray analysis EXPERIMENT [--out DIR] [--reference TECHNIQUE] [--dpi N]`.
A user mistake (an option out of range, no such folder, not an experiment folder) prints one
line and exits 2, before anything is written."""

from __future__ import annotations

import argparse
import re
import sys

from ltray.errors import LtrayError, short_repr
from ltray.experiment import layout

DPI_RANGE = (10, 600)  # 600 dpi: a 6-panel figure is ~140 MB of pixels; far beyond, every figure fails
# a registry key or a plugin's import path (pkg.mod:attr), as in sweep files
TECHNIQUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


class OptionError(Exception):
    """A bad command line, said in one line (argparse would add its usage text)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise OptionError(message)


def _dpi(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {short_repr(text)}") from None
    low, high = DPI_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high} dots per inch, got {value}")
    return value


def _technique(text: str) -> str:
    if not TECHNIQUE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a technique name (letters, digits, '_', '.', ':', '-'; "
                                         f"at most 128), got {short_repr(text)}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="ltray analysis",
        description="Figures, tables and report.md from an ltray experiment folder.")
    parser.add_argument("experiment", help="the experiment folder (<storage>/<name>): a path or an s3:// / gs:// URI")
    parser.add_argument("--out", help="report folder, a path or a URI (default: EXPERIMENT/report)")
    parser.add_argument("--reference", type=_technique, default="global_unstructured",
                        help="technique the per-layer distances are measured against "
                             "(default: global_unstructured)")
    parser.add_argument("--dpi", type=_dpi, default=110,
                        help=f"PNG resolution, dots per inch, {DPI_RANGE[0]} to {DPI_RANGE[1]} (default: 110)")
    try:
        args = parser.parse_args(argv)
    except OptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .report import Options, build_report  # after parsing: --help stays fast

    try:
        report = build_report(args.experiment, args.out,
                              Options(reference=args.reference, dpi=args.dpi))
    except LtrayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_notes = len(report.notes) + sum(b.startswith("> Note") for s in report.sections
                                      for b in s.blocks)
    print(f"report written to {report.location.rstrip('/')}/{layout.REPORT_MARKDOWN} ({len(report.figures)} figures, "
          f"{len(report.tables)} tables, {n_notes} notes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
