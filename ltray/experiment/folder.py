"""Creating, recognising and reopening an experiment folder, with provenance beside results.

A folder is an ltray experiment when it holds experiment.json (written last on creation) with a
format version. `--resume` continues only a folder of this format (older ones are migrated first,
see ltray.orchestration.migrate) made for the same trajectories; a sweep file changed in what can change
(thresholds, targets, baselines, training of follow-ups) is recorded as the new sweep.yaml and
plan.json, with a note in provenance.json.
"""

from __future__ import annotations

import json

import ltray
from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment.plan_file import PlanFile, read_plan_file, write_plan_file
from ltray.experiment.provenance import provenance
from ltray.storage import Storage, StorageError

CREATED_FILES = (layout.SWEEP, layout.PLAN, layout.PROVENANCE, layout.MARKER)


def read_json(storage: Storage, rel: str) -> dict:
    """A JSON object from the folder; ExperimentError naming the file otherwise."""
    where = storage.describe(rel)
    try:
        doc = json.loads(storage.read_text(rel))
    except StorageError as e:
        raise ExperimentError(f"{where}: {'missing' if e.missing else e}") from None
    except (ValueError, RecursionError):
        raise ExperimentError(f"{where}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise ExperimentError(f"{where}: not a JSON object")
    return doc


def write_json(storage: Storage, rel: str, doc: dict) -> None:
    storage.write_text(rel, json.dumps(doc, indent=1, default=str))


def folder_format(storage: Storage) -> int:
    """The folder's format version; ExperimentError when it is not an ltray experiment folder."""
    if not storage.is_dir("") and not storage.exists(layout.MARKER):
        raise ExperimentError(f"{storage.uri}: no such experiment folder")
    if not storage.exists(layout.MARKER):
        raise ExperimentError(f"{storage.uri}: not an ltray experiment folder (no {layout.MARKER})")
    marker = read_json(storage, layout.MARKER)
    version = marker.get("format")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ExperimentError(f"{storage.describe(layout.MARKER)}: format: not a format version ({version!r})")
    return version


def check_readable(storage: Storage) -> int:
    """Format check for readers (status, analysis): this format or an older one whose tables and
    plan.json this version reads; a newer one is refused with one line."""
    version = folder_format(storage)
    if version > layout.FORMAT_VERSION:
        raise ExperimentError(f"{storage.describe(layout.MARKER)}: folder format {version} was written by a newer "
                              f"ltray; this ltray {ltray.__version__} reads formats up to {layout.FORMAT_VERSION}: "
                              "upgrade ltray to read it")
    return version


def create_experiment(storage: Storage, name: str, sweep_yaml: str, plan: PlanFile, extra: dict | None = None) -> None:
    """Write a new folder's files, the marker last; refuse a folder that already holds files.

    On a failure (disk full, no permission) what was written is removed again, so neither a
    fresh start nor --resume is blocked by a half-made folder."""
    if storage.info("") == "file":
        raise ExperimentError(f"{storage.uri}: exists and is not a folder; choose another --name or --storage")
    if storage.list_dir(""):
        raise ExperimentError(f"{storage.uri}: experiment folder already exists; use --resume to continue it "
                              "or --name to start another")
    local = storage.local_path()
    created = None
    if local is not None:
        created = next((p for p in reversed([local, *local.parents]) if not p.exists()), None)
    try:
        storage.write_text(layout.SWEEP, sweep_yaml)
        write_plan_file(storage, plan)
        write_json(storage, layout.PROVENANCE, {**provenance(), **(extra or {})})
        write_json(storage, layout.MARKER, {"format": layout.FORMAT_VERSION, "ltray_version": ltray.__version__,
                                            "name": name})
    except StorageError as e:
        _undo_create(storage, created)
        raise ExperimentError(f"{storage.uri}: cannot write the experiment folder ({e})") from None


def _undo_create(storage: Storage, created: Path | None) -> None:
    import shutil

    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for name in CREATED_FILES:
        try:
            storage.delete(name)
        except StorageError:
            pass


def check_resumable(storage: Storage, plan: PlanFile) -> PlanFile:
    """The stored plan of a folder of this format whose trajectories are the sweep's."""
    if not storage.is_dir("") and not storage.exists(layout.MARKER):
        raise ExperimentError(f"{storage.uri}: no such experiment folder; nothing to resume (drop --resume "
                              "to start it)")
    version = folder_format(storage)
    if version != layout.FORMAT_VERSION:
        raise ExperimentError(f"{storage.describe(layout.MARKER)}: folder format {version}, this ltray "
                              f"{ltray.__version__} continues format {layout.FORMAT_VERSION} only"
                              + ("; upgrade ltray" if version > layout.FORMAT_VERSION else ""))
    stored = read_plan_file(storage)
    old = {t.trial_id for t in stored.trajectories}
    new = {t.trial_id for t in plan.trajectories}
    if old != new:
        raise ExperimentError(f"{storage.uri}: the sweep file no longer matches this experiment "
                              f"({len(old ^ new)} trajectories differ); start a new one with --name")
    return stored


RUNTIME_KEYS = ("storage", "data_root", "download", "resources", "max_concurrent", "max_failures", "name")


def record_resume(storage: Storage, plan: PlanFile, sweep_yaml: str, changed: list[str],
                  extra: dict | None = None) -> list[str]:
    """Note the resume in provenance.json (with `extra`, e.g. the plugins of this run); when the sweep
    file changed (`changed`: its top-level settings that differ), write the new sweep.yaml and
    plan.json and say so. Returns the notes."""
    notes = []
    if changed:
        storage.write_text(layout.SWEEP, sweep_yaml)
        write_plan_file(storage, plan)
        kind = "settings of the run" if set(changed) <= set(RUNTIME_KEYS) else "settings"
        notes.append(f"the sweep file changed since the last run ({kind}: {', '.join(changed)}); "
                     f"{layout.SWEEP} and {layout.PLAN} now describe this run")
    try:
        prov = read_json(storage, layout.PROVENANCE)
    except ExperimentError:
        prov = {}  # provenance is informative only: a damaged one does not block a resume
    resumes = prov.get("resumes") if isinstance(prov.get("resumes"), list) else []
    entry = {**provenance(), **({"changed": changed} if changed else {}), **(extra or {})}
    write_json(storage, layout.PROVENANCE, {**prov, "resumes": [*resumes, entry]})
    return notes


def record_devices(storage: Storage, devices: dict[str, int]) -> None:
    """Add the devices trials ran on (device -> rounds) to provenance.json."""
    try:
        doc = read_json(storage, layout.PROVENANCE)
    except ExperimentError:
        doc = {}
    doc["trial_devices"] = dict(sorted(devices.items()))
    write_json(storage, layout.PROVENANCE, doc)
