"""Opening an experiment folder for a run (Ray-free): create it for a fresh sweep, or, with
--resume, migrate an older format, check that it belongs to this sweep, record the resume (and a
changed sweep file) in it, and repair what a resume can recompute (ltray.sweep.verify)."""

from __future__ import annotations

import yaml

from ltray.experiment import layout
from ltray.experiment.folder import check_resumable, create_experiment, folder_format, record_resume
from ltray.experiment.lease import check_unclaimed
from ltray.storage import Storage
from ltray.orchestration.plan import Plan


def sweep_yaml(plan: Plan) -> str:
    """The resolved sweep file (every default filled in), as sweep.yaml records it."""
    return yaml.safe_dump(plan.sweep.model_dump(mode="json"), sort_keys=False)


def open_experiment(plan: Plan, storage: Storage, resume: bool, strict_plugins: bool = False,
                    take_over: bool = False) -> list[str]:
    """Create or reopen the folder; return notes for the user (migration, changes, repairs, plugins
    whose code changed; with `strict_plugins` a changed plugin is an error, before anything is written).
    A resume changes nothing while another driver runs the experiment (unless `take_over`)."""
    from ltray.orchestration.plugin_provenance import PLUGINS_KEY, plugin_records

    records = plugin_records(plan.sweep)
    extra = {PLUGINS_KEY: records} if records else None
    if not resume:
        create_experiment(storage, plan.sweep.name, sweep_yaml(plan), plan.to_file(), extra)
        return []
    notes = []
    check_unclaimed(storage, take_over)
    if storage.exists("") and _is_older_format(storage):
        from ltray.orchestration.migrate import migrate

        notes += migrate(storage, plan)
    check_resumable(storage, plan.to_file())
    notes += _plugin_changes(storage, plan, records, strict_plugins)
    notes += record_resume(storage, plan.to_file(), sweep_yaml(plan), changed_settings(storage, plan), extra)
    from ltray.experiment.verify import verify_experiment
    from ltray.orchestration.repair import remove_unfinished_writes, repair

    notes += repair(storage, plan, verify_experiment(storage))
    notes += remove_unfinished_writes(storage)
    return notes


def _plugin_changes(storage: Storage, plan: Plan, records: dict, strict: bool) -> list[str]:
    from ltray.experiment.folder import read_json
    from ltray.experiment.records import scan_trials
    from ltray.errors import ExperimentError
    from ltray.orchestration.plugin_provenance import changed_plugin_notes, last_records

    if not records:
        return []
    try:
        old = last_records(read_json(storage, layout.PROVENANCE))
    except ExperimentError:
        return []  # provenance is informative only
    return changed_plugin_notes(old, records, plan, set(scan_trials(storage)), strict)


def changed_settings(storage: Storage, plan: Plan) -> list[str]:
    """Top-level settings of the stored sweep.yaml that differ from this run's (defaults filled in
    on both sides; where the folder lives is not a setting)."""
    from ltray.storage import StorageError
    from ltray.orchestration.spec import SweepConfig

    new = plan.sweep.model_dump(mode="json")
    try:
        old = SweepConfig.model_validate(yaml.safe_load(storage.read_text(layout.SWEEP))).model_dump(mode="json")
    except (StorageError, yaml.YAMLError, ValueError, TypeError):
        return sorted(k for k in new if k != "storage")  # unreadable: this run's file replaces it
    return sorted(k for k in new if k != "storage" and old.get(k) != new[k])


def _is_older_format(storage: Storage) -> bool:
    from ltray.errors import ExperimentError
    from ltray.experiment import layout

    try:
        return folder_format(storage) < layout.FORMAT_VERSION
    except ExperimentError:
        return False  # check_resumable says what is wrong
