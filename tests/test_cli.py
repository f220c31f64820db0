"""The `ltray` console command: --help lists the subcommands, --version gives the version and git
revision, and each subcommand behaves as its `python -m` twin (same output, same exit status);
`ltray analysis` writes a report also from a non-editable install (test_analysis.py runs `python -m
analysis` itself on such folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltray import __version__
from ltray.experiment.provenance import git_revision
from tests.analysis_fixtures import build_demo_like
from tests.build_helpers import build_wheel

ROOT = Path(__file__).resolve().parents[1]
LTRAY = Path(sys.executable).parent / "ltray"  # the console script pip installed beside python


def run(args, cwd=ROOT, env=None, exe=None):
    """(exit status, stdout, stderr) of `ltray ARGS`, or of `python -m ...` when ARGS start with -m."""
    cmd = [sys.executable, *args] if args[:1] == ["-m"] else [str(exe or LTRAY), *args]
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout, out.stderr


def test_help_lists_every_subcommand():
    code, out, err = run(["--help"])
    assert code == 0 and err == ""
    commands = [line.split()[0] for line in out.split("commands:")[1].strip().splitlines()[:5]]
    assert commands == ["sweep", "status", "check", "slurm", "analysis"]
    code, out, err = run([])
    assert code == 2 and "commands:" in out  # no command: the same list, exit 2


def test_version_names_the_git_revision():
    code, out, err = run(["--version"])
    assert code == 0
    assert out.strip() == f"ltray {__version__} (git {git_revision()})"


def test_unknown_command_is_one_line():
    code, out, err = run(["train"])
    assert code == 2 and out == ""
    assert err.strip() == "ltray: unknown command 'train'; choose from sweep, status, check, slurm, analysis (ltray --help)"


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory):
    """An experiment folder both `status` and `analysis` read: the analysis fixture's, with the
    key of the sweep runner's plan.json that only status reads (`n_followups`)."""
    exp = build_demo_like(tmp_path_factory.mktemp("exp") / "demo")
    plan = json.loads((exp / "plan.json").read_text())
    for g in plan["groups"]:
        g.update(n_followups=len(g["targets"]))
    plan["n_followups_max"] = sum(g["n_followups"] for g in plan["groups"])
    (exp / "plan.json").write_text(json.dumps(plan))
    return exp


# (ltray arguments, the python -m twin's arguments, expected exit status); "{exp}" is an experiment
# folder. One run of each subcommand, both installed commands as a user starts them: the console
# script's dispatch and each module's `python -m` entry.
TWINS = {
    "sweep": (["sweep", "sweeps/demo.yaml", "--dry-run"], ["-m", "ltray.sweep", "sweeps/demo.yaml", "--dry-run"], 0),
    "status": (["status", "{exp}"], ["-m", "ltray.status", "{exp}"], 0),
    "check": (["check", "cluster.yaml", "cluster-gcp.yaml", "deploy/kubernetes/rayjob.yaml"],
              ["-m", "ltray.cluster", "check", "cluster.yaml", "cluster-gcp.yaml", "deploy/kubernetes/rayjob.yaml"], 0),
    "slurm": (["slurm", "sweeps/demo.yaml", "--time", "1:00:00", "--python", "python3"],
              ["-m", "ltray.cluster.slurm", "sweeps/demo.yaml", "--time", "1:00:00", "--python", "python3"], 0),
    "analysis": (["analysis", "--help"], ["-m", "ltray_analysis", "--help"], 0),
}
# a user's mistakes, through the same two doors in this process: (ltray arguments, the twin module
# whose main(argv) `python -m` runs, its arguments, expected exit status, what the answer names)
MISTAKES = {
    "sweep bad file": (["sweep", "no-such.yaml"], "ltray.sweep.__main__", ["no-such.yaml"], 2, "no-such.yaml"),
    "sweep bad flag": (["sweep", "--frobnicate"], "ltray.sweep.__main__", ["--frobnicate"], 2, "required: sweep"),
    "status no folder": (["status", "no-such"], "ltray.status", ["no-such"], 2, "no-such"),
    "check no file": (["check", "no-such.yaml"], "ltray.cluster.__main__", ["check", "no-such.yaml"], 2,
                      "no-such.yaml: cannot read"),
}


@pytest.mark.parametrize("case", list(TWINS))
def test_subcommand_behaves_as_its_twin(case, demo_like):
    mine, theirs, status = TWINS[case]
    fill = lambda args: [a.replace("{exp}", str(demo_like)) for a in args]  # noqa: E731
    got, want = run(fill(mine)), run(fill(theirs))
    assert got == want
    assert got[0] == status, got


def _called(main, argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of main(argv) in this process, as `sys.exit(main())` ends."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_mistake_is_answered_as_its_twin_answers_it(case, capsys, monkeypatch):
    import importlib

    from ltray.cli import main as ltray_main

    mine, module, theirs, status, named = MISTAKES[case]
    monkeypatch.chdir(ROOT)
    got = _called(ltray_main, mine, capsys)
    want = _called(importlib.import_module(module).main, theirs, capsys)
    assert got == want
    assert got[0] == status and named in got[1] + got[2], got


def test_analysis_from_a_non_editable_install(tmp_path, demo_like):
    """`pip install .` (not -e) ships the analysis package, so `ltray analysis` works away from
    the checkout."""
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                            str(build_wheel(tmp_path / "dist"))], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import ltray_analysis, ltray; print(ltray_analysis.__file__); "
                            "print(ltray.__file__)"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert all(Path(p).is_relative_to(target) for p in where.stdout.split()), where.stdout
    code, out, err = run(["analysis", str(demo_like), "--out", str(tmp_path / "report")], cwd=tmp_path, env=env,
                         exe=target / "bin" / "ltray")
    assert code == 0, err
    assert out.startswith(f"report written to {tmp_path / 'report' / 'report.md'}")
    assert (tmp_path / "report" / "report.md").is_file()
