"""The example plugin package (examples/plugin: ResNet-20, an .npz dataset, a per-layer SNIP) runs
whole sweeps without being pip-installed: a local sweep that ships it to the workers through the
sweep file's py_modules, started from an unrelated folder (and, in test_ray_jobs.py, a `ray job
submit --working-dir` run where the package sits in the working dir). A consensus group and its
follow-ups complete, and `ltray analysis` reports on the results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.example_plugin import EXAMPLE, SWEEP, check_analysis, check_results

pytestmark = pytest.mark.ray


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
