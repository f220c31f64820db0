"""The experiment folder: created once, recognised on --resume, with provenance beside results.

Layout and table columns are documented in docs/experiment-folder.md. Per-trial files live in
`trials/<trial_id>/`: the resume state, the finished rows, and a completion marker.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import time
from pathlib import Path

import yaml

import ltray
from ltray.errors import ExperimentError
from ltray.fileio import atomic_write_text
from ltray.sweep.plan import Plan
from ltray.sweep.spec import SweepConfig

FOLDER_FORMAT = 1
MARKER = "experiment.json"


def experiment_dir(sweep: SweepConfig) -> Path:
    return (Path(sweep.storage).expanduser() / sweep.name).resolve()


def open_experiment(sweep: SweepConfig, plan: Plan, resume: bool) -> Path:
    """Create the folder (fresh run) or check it belongs to this sweep (resume); return its path."""
    exp = experiment_dir(sweep)
    if resume:
        _check_resumable(exp, plan)
        provenance = exp / "provenance.json"
        try:
            old = read_json(provenance) if provenance.exists() else {}
        except ExperimentError:
            old = {}  # provenance is informative only; a damaged one does not block a resume
        old = old if isinstance(old, dict) else {}
        try:
            write_json(provenance, {**old, "resumed": _provenance()})
        except OSError as e:
            raise ExperimentError(f"{provenance}: cannot write ({e.strerror})") from None
        return exp
    if exp.exists() and not exp.is_dir():
        raise ExperimentError(f"{exp}: exists and is not a folder; choose another --name or --storage")
    if exp.exists() and any(exp.iterdir()):
        raise ExperimentError(f"{exp}: experiment folder already exists; use --resume to continue it "
                              "or --name to start another")
    created = next((p for p in reversed([exp, *exp.parents]) if not p.exists()), None)
    try:
        exp.mkdir(parents=True, exist_ok=True)
        atomic_write_text(exp / "sweep.yaml", yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False))
        atomic_write_text(exp / "plan.json", plan.to_json())
        write_json(exp / "provenance.json", _provenance())
        write_json(exp / MARKER, {"format": FOLDER_FORMAT, "ltray_version": ltray.__version__, "name": sweep.name})
    except OSError as e:
        # a half-made folder (disk full) would block both a fresh start and --resume: remove it
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for name in ("sweep.yaml", "plan.json", "provenance.json", MARKER):
                (exp / name).unlink(missing_ok=True)
        raise ExperimentError(f"{exp}: cannot write the experiment folder ({e.strerror or e})") from None
    return exp


def _check_resumable(exp: Path, plan: Plan) -> None:
    """--resume only continues a folder this ltray made for this sweep."""
    marker = exp / MARKER
    if not exp.is_dir():
        raise ExperimentError(f"{exp}: no such experiment folder; nothing to resume (drop --resume to start it)")
    if not marker.is_file():
        raise ExperimentError(f"{exp}: not an ltray experiment folder (no {MARKER}); nothing to resume")
    info = read_json(marker)
    version = info.get("format") if isinstance(info, dict) else None
    if version != FOLDER_FORMAT:
        raise ExperimentError(f"{marker}: format: made by an incompatible ltray (folder format {version!r}, "
                              f"this ltray reads {FOLDER_FORMAT})")
    planned = read_json(exp / "plan.json")
    trajectories = planned.get("trajectories") if isinstance(planned, dict) else None
    if not isinstance(trajectories, list) or not all(isinstance(t, dict) and "trial_id" in t for t in trajectories):
        raise ExperimentError(f"{exp / 'plan.json'}: trajectories: not a list of trials with a trial_id")
    old = {t["trial_id"] for t in trajectories}
    new = {t.trial_id for t in plan.trajectories}
    if old != new:
        raise ExperimentError(f"{exp}: the sweep file no longer matches this experiment "
                              f"({len(old ^ new)} trajectories differ); start a new one with --name")


def _provenance() -> dict:
    import torch

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:  # pragma: no cover - ray is a dependency
        ray_version = None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "ltray_version": ltray.__version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray_version,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


class TrialFiles:
    """Paths of one trial's files inside the experiment folder."""

    def __init__(self, exp_dir: Path, trial_id: str):
        self.exp_dir = Path(exp_dir)
        self.trial_id = trial_id
        self.dir = self.exp_dir / "trials" / trial_id
        self.state = self.dir / "state.ltstate"
        self.results = self.dir / "results.json"
        self.done = self.dir / "done.json"
        self.error = self.dir / "error.json"
        self.mask_dir = self.exp_dir / "masks" / trial_id

    def read_results(self) -> list[dict]:
        return read_json(self.results).get("rounds", []) if self.results.exists() else []

    def write_results(self, rows: list[dict]) -> None:
        write_json(self.results, {"trial_id": self.trial_id, "rounds": rows})

    def mark_done(self) -> None:
        write_json(self.done, {"trial_id": self.trial_id, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def finished_trials(exp_dir: Path) -> set[str]:
    root = Path(exp_dir) / "trials"
    if not root.exists():
        return set()
    return {p.parent.name for p in root.glob("*/done.json")}


def all_results(exp_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((Path(exp_dir) / "trials").glob("*/results.json")):
        try:
            rows += read_json(path).get("rounds", [])
        except ExperimentError:
            continue  # unreadable leftovers are rewritten when that trial runs again
    return rows


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExperimentError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def write_json(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=1, default=str))
