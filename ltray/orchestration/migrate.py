"""Migrating an older experiment folder to this format, in place, on --resume: format 1 (ltray
0.1.0) to 2, then 2 to 3.

Format 2 renamed every trial (ids hash only non-default settings) and moved the consensus
actor's journal from one appended file to records (ltray.experiment.layout). The migration maps
each old trial to its new id through the stored sweep file (trajectories by task, architecture,
technique and seed; follow-ups by everything in their id but the hash), renames the trials' mask
and file folders, rewrites the ids and paths inside their files and the journal, and writes the
new plan.json and, last, experiment.json. Each step can be repeated, so a migration interrupted
by a crash is finished by the next --resume. Tables are rebuilt by the run that follows.

Format 3 renamed the task column: each trial's results.json rows say `task` where they said
`dataset`, and plan.json names a group's id `group_id`. The rounds table is rebuilt by the run.
"""

from __future__ import annotations

import json
import os

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.experiment.folder import folder_format, read_json, write_json
from ltray.experiment.ids import SEPARATOR
from ltray.experiment.journal import Journal
from ltray.experiment.plan_file import read_plan_file, write_plan_file
from ltray.experiment.records import TrialRecord
from ltray.storage import LocalStorage, Storage, StorageError
from ltray.orchestration.plan import Plan, group_followups

MIGRATES = (1, 2)  # the formats this version brings to layout.FORMAT_VERSION


def migrate(storage: Storage, plan: Plan) -> list[str]:
    """Bring a folder of an older format to this format; return notes. ExperimentError when it cannot be."""
    version = folder_format(storage)
    if version not in MIGRATES:
        raise ExperimentError(f"{storage.describe(layout.MARKER)}: folder format {version} cannot be migrated "
                              f"(this ltray migrates formats {', '.join(map(str, MIGRATES))} to "
                              f"{layout.FORMAT_VERSION})")
    notes = _from_1(storage, plan) if version == 1 else []
    _from_2(storage, plan)
    marker = read_json(storage, layout.MARKER)
    write_json(storage, layout.MARKER, {**marker, "format": layout.FORMAT_VERSION, "migrated_from": version})
    return notes + [f"migrated the experiment folder from format {version} to {layout.FORMAT_VERSION}"]


def _from_2(storage: Storage, plan: Plan) -> None:
    """Format 2 -> 3: rows name the task `task`; plan.json names a group's id `group_id`."""
    for trial_id in storage.list_dir(layout.TRIALS):
        record = TrialRecord(storage, trial_id)
        try:
            raw = json.loads(storage.read_text(layout.trial_file(trial_id, layout.TRIAL_RESULTS)))
            rows = record.rows()
        except (StorageError, ExperimentError, ValueError, RecursionError):
            continue  # absent or damaged: the resume's verification deals with it
        if any("dataset" in row for row in raw.get("rounds", [])):
            record.write_rows(rows)
    for name in (layout.csv("rounds"), layout.parquet("rounds")):
        storage.delete(name)  # rebuilt from the trials' rows by the run that follows
    write_plan_file(storage, plan.to_file())


def _from_1(storage: Storage, plan: Plan) -> list[str]:
    """Format 1 -> 2 (local folders only: format 1 had no object storage)."""
    if not isinstance(storage, LocalStorage):
        raise ExperimentError(f"{storage.uri}: a format 1 folder is local (that format had no object storage); "
                              "migrate it where it was written")
    old_plan = read_plan_file(storage)
    ids = _id_map(storage, old_plan, plan)
    for old, new in ids.items():
        for folder in (layout.mask_dir, layout.trial_dir):
            src, dst = storage.local_path(folder(old)), storage.local_path(folder(new))
            if src.exists() and not dst.exists():
                os.rename(src, dst)
    for new in ids.values():
        _rewrite_trial(storage, new, ids, plan)
    _convert_journal(storage, ids)
    for schema in ("rounds", "similarity"):
        for name in (layout.csv(schema), layout.parquet(schema)):
            storage.delete(name)
    return [f"{len(ids)} trials renamed to this version's stable ids (format 2)"]


def _id_map(storage: Storage, old_plan, plan: Plan) -> dict[str, str]:
    """Old trial id -> new trial id, for every trajectory of the plan and every follow-up on disk."""
    by_key = {(t.labels.task, t.labels.arch, t.labels.technique, t.labels.seed): t.trial_id
              for t in plan.trajectories}
    ids = {}
    for t in old_plan.trajectories:
        new = by_key.get((t.task, t.arch, t.technique, t.seed))
        if new is None:
            raise ExperimentError(f"{storage.describe(layout.PLAN)}: trajectory {t.trial_id} is not in the sweep "
                                  "file any more; migrate with the sweep file it was run with")
        ids[t.trial_id] = new
    candidates = _followup_ids(plan)
    for name in storage.list_dir(layout.TRIALS) + storage.list_dir(layout.MASKS):
        if name in ids or name in ids.values():
            continue
        new = candidates.get(name.rsplit(SEPARATOR, 1)[0])
        if new is not None:
            ids[name] = new
    return ids


def _followup_ids(plan: Plan) -> dict[str, str]:
    """Every follow-up the plan can launch, by its id without the hash: a transfer ticket from
    each source round (a source that reported only round r at the consensus' sparsity gives r)."""
    out = {}
    for g in plan.groups:
        for r in range(g.source_rounds_total):
            only_r = {tid: {r: 0.5} for tid in g.source_trials.values()}
            for spec in group_followups(plan.sweep, g, {k: 0.5 for k in g.thresholds}, only_r):
                out.setdefault(spec.trial_id.rsplit(SEPARATOR, 1)[0], spec.trial_id)
    return out


def _replace_ids(text: str, ids: dict[str, str]) -> str:
    for old, new in ids.items():
        text = text.replace(f"{layout.MASKS}/{old}/", f"{layout.MASKS}/{new}/")
    return text


def _rewrite_trial(storage: Storage, trial_id: str, ids: dict[str, str], plan: Plan) -> None:
    old_of = {new: old for old, new in ids.items()}
    for name in (layout.TRIAL_RESULTS, layout.TRIAL_DONE, layout.TRIAL_ERROR):
        rel = layout.trial_file(trial_id, name)
        data = storage.read_bytes_or_none(rel)
        if data is None:
            continue
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            continue  # a damaged file: the resume's verification deals with it
        if isinstance(doc, dict):
            doc["trial_id"] = trial_id
            for row in doc.get("rounds", []) if isinstance(doc.get("rounds"), list) else []:
                if isinstance(row, dict):
                    row["trial_id"] = trial_id
                    if isinstance(row.get("mask_path"), str):
                        row["mask_path"] = _replace_ids(row["mask_path"], ids)
            storage.write_text(rel, json.dumps(doc, indent=1))
    spec = plan.by_id.get(trial_id)
    state = storage.read_bytes_or_none(layout.trial_file(trial_id, layout.TRIAL_STATE))
    if spec is not None and state is not None and old_of.get(trial_id) != trial_id:
        from ltray.training import TrajectoryState

        try:
            loaded = TrajectoryState.from_bytes(state, "state")
        except ExperimentError:
            return
        loaded.config_key = spec.config.key()
        storage.write_bytes(layout.trial_file(trial_id, layout.TRIAL_STATE), loaded.to_bytes())


def _convert_journal(storage: Storage, ids: dict[str, str]) -> None:
    data = storage.read_bytes_or_none(layout.JOURNAL_V1)
    if data is None:
        return
    storage.delete_tree(layout.JOURNAL)  # a conversion cut short by a crash starts over
    journal = Journal(storage, layout.JOURNAL)
    journal.replay()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a line torn by a crash: its mask is sent again by the resumed driver
        if not isinstance(rec, dict) or rec.get("trial") not in ids:
            continue
        rec["trial"] = ids[rec["trial"]]
        rec["path"] = _replace_ids(str(rec.get("path", "")), ids)
        for entry in rec.get("sim", []) if isinstance(rec.get("sim"), list) else []:
            if isinstance(entry, list) and entry and entry[0] in ids:
                entry[0] = ids[entry[0]]
        for row in rec.get("similarity", []) if isinstance(rec.get("similarity"), list) else []:
            if isinstance(row, dict):
                for key in ("trial_a", "trial_b"):
                    row[key] = ids.get(row.get(key), row.get(key))
        journal.append(rec)
    journal.compact()
    storage.delete(layout.JOURNAL_V1)
