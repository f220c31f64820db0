"""The example plugin package (examples/plugin: ResNet-20, an .npz dataset, a per-layer SNIP) as a
sweep, and what its finished experiment folder must show: used by the local sweep that ships it
through py_modules (test_plugin_sweeps.py) and the `ray job submit --working-dir` run (test_ray_jobs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from tests.sweep_helpers import ONE_AT_A_TIME

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
    **ONE_AT_A_TIME,
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
