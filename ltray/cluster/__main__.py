"""Command line: `python -m ltray.cluster check FILE [FILE ...]`.

Prints `FILE: OK (summary)` (after any `FILE: warning: ...` lines) or one `FILE: key.path: message`
line per problem. Exit 0 when every file passes, 2 otherwise (also for unreadable files).
"""

from __future__ import annotations

import argparse
import sys

from ltray.cluster.check import check_file
from ltray.errors import LtrayError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltray.cluster",
                                     description="Check Ray cluster files for ltray, offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate cluster YAML files (Ray schema + ltray rules)")
    check.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    status = 0
    for filename in args.files:
        try:
            result = check_file(filename)
        except LtrayError as exc:
            print(exc)
            status = 2
            continue
        print("\n".join(result.lines(filename)))
        if not result.ok:
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
