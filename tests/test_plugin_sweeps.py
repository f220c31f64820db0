"""The example plugin package (examples/plugin: ResNet-20, an .npz dataset, a per-layer SNIP) runs
whole sweeps without being pip-installed: a local sweep that ships it to the workers through the
sweep file's py_modules, started from an unrelated folder, and a `ray job submit --working-dir`
run where the package sits in the working dir. A consensus group and its follow-ups complete,
and `ltray analysis` reports on the results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"
ARCH, DATA, TECH = "ltray_example.resnet:resnet20", "ltray_example.shapes:shapes", "ltray_example.layer_snip:layer_snip"
SWEEP = {
    "name": "example",
    "tasks": {"plain": {"dataset": DATA}, "rot90": {"dataset": DATA, "views": [{"rotate": 90}]}},
    "grid": {"tasks": ["plain", "rot90"], "archs": [ARCH], "techniques": [TECH], "seeds": [0]},
    "rounds": 2,
    "train": {"epochs": 1, "lr": 0.05, "momentum": 0.9},
    "data": {"crop": False, "flip": False, "max_train_samples": 64},
    "resources": {"default": {"cpu": 1}},
    "max_concurrent": 1,  # one trial worker: see tests/sweep_helpers.ONE_AT_A_TIME
    "max_failures": 0,
    "consensus": [{"name": "pair", "sources": ["plain", "rot90"], "technique": TECH, "source_rounds": [1],
                   "thresholds": ["all"], "targets": ["plain"], "baselines": {"random": False, "bespoke": False}}],
}
# two trajectories of two rounds, then the consensus ticket trained on 'plain' (no baselines: seconds count)
KINDS = {"bespoke": 4, "pret_a_porter": 1}


def check_results(exp: Path) -> None:
    rounds = pd.read_csv(exp / "rounds.csv")
    assert rounds.kind.value_counts().to_dict() == KINDS
    assert set(rounds.arch) == {ARCH} and rounds.test_acc.between(0, 1).all()
    assert rounds[rounds.kind == "bespoke"].sparsity.max() > 0  # the plugin technique pruned round 1
    assert all(ARCH.replace(":", ".") in t for t in rounds.trial_id if t.startswith("bespoke-"))


def check_analysis(exp: Path, out: Path) -> None:
    from ltray_analysis.__main__ import main as analysis_main

    assert analysis_main([str(exp), "--out", str(out), "--reference", TECH]) == 0
    report = (out / "report.md").read_text()
    assert "pair" in report and "a plugin architecture" in report  # figure 7 becomes a note
    assert "ltray_example" not in sys.modules  # analysis reads files only: it never imported the plugin


def test_local_sweep_ships_the_plugin_through_py_modules(tmp_path):
    doc = {**SWEEP, "storage": str(tmp_path / "store"), "py_modules": [str(EXAMPLE / "ltray_example")]}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(doc))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": ""}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "ltray.sweep", str(tmp_path / "sweep.yaml"), "--num-cpus", "2",
                           "--address", "local", "-q"], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "store" / "example"
    check_results(exp)
    check_analysis(exp, tmp_path / "report")
