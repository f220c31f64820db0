"""The `ltray` command: `ltray sweep|status|check|slurm|analysis ARGS...` runs the `python -m` twin with
the same arguments and exit status (`python -m ltray.sweep`, `python -m ltray.status`,
`python -m ltray.cluster check`, `python -m ltray.cluster.slurm`, `python -m ltray_analysis`)."""

from __future__ import annotations

import importlib
import sys

from ltray.errors import missing_extra_of

# subcommand -> (module whose main(argv) runs it, argv prefix, extra it needs, one-line help)
COMMANDS = {
    "sweep": ("ltray.sweep.__main__", [], "sweep", "run a sweep file (python -m ltray.sweep)"),
    "status": ("ltray.status", [], None, "progress of an experiment folder (python -m ltray.status)"),
    "check": ("ltray.cluster.__main__", ["check"], "sweep",
              "validate Ray cluster files offline (python -m ltray.cluster check)"),
    "slurm": ("ltray.cluster.slurm", [], "sweep",
              "write an sbatch script that runs a sweep and requeues it (python -m ltray.cluster.slurm)"),
    "analysis": ("ltray_analysis.__main__", [], "analysis",
                 "figures, tables and report.md of an experiment folder (python -m ltray_analysis)"),
}


def version_line() -> str:
    from ltray import __version__
    from ltray.experiment.provenance import git_revision

    return f"ltray {__version__} (git {git_revision() or 'revision unknown'})"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ltray [--help] [--version] COMMAND [ARGS...]", "",
             "Sweep runner for bespoke and pret-a-porter lottery tickets on Ray.", "", "commands:"]
    lines += [f"  {name:<{width}}  {spec[3]}" for name, spec in COMMANDS.items()]
    lines += ["", "`ltray COMMAND --help` shows a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(version_line())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ltray: unknown command {name!r}; choose from {', '.join(COMMANDS)} (ltray --help)", file=sys.stderr)
        return 2
    module, prefix, extra, _ = COMMANDS[name]
    try:
        return importlib.import_module(module).main(prefix + rest)
    except ModuleNotFoundError as e:
        line = missing_extra_of(e, f"ltray {name}", extra)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
