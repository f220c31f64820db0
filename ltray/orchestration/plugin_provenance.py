"""What a sweep's plugins were: import path, package version and SHA-256 of their source, as
provenance.json records them; on --resume, which plugins changed since the last run.

Reads only plugins the driver has already imported and checked (load_sweep, check_plugins).
"""

from __future__ import annotations

from ltray import plugins
from ltray.errors import ConfigError
from ltray.experiment.ids import id_name

PLUGINS_KEY = "plugins"


def plugin_names(sweep) -> list[tuple[str, str]]:
    """(kind, name) of every plugin the sweep names, in sweep order."""
    from ltray.data import DATASETS
    from ltray.models import MODELS
    from ltray.pruning import TECHNIQUES

    out: list[tuple[str, str]] = []
    for spec in sweep.tasks.values():
        if isinstance(spec.dataset, str) and spec.dataset not in DATASETS:
            out.append(("dataset", spec.dataset))
    out += [("arch", a) for a in sweep.grid.archs if a not in MODELS]
    out += [("technique", t) for t in sweep.grid.techniques if t not in TECHNIQUES]
    return list(dict.fromkeys(out))


def plugin_records(sweep) -> dict[str, dict]:
    """name -> {kind, import_path, package, version, sha256, files} of every plugin of the sweep."""
    records = {}
    for kind, name in plugin_names(sweep):
        ref = plugins.reference(kind, name)
        if ref is None:
            continue
        files = plugins.source_files(ref.import_path)
        records[name] = {"kind": kind, "import_path": ref.import_path, "package": ref.package,
                         "version": plugins.package_version(ref.import_path),
                         "sha256": plugins.source_digest(ref.import_path), "files": [str(f) for f in files]}
    return records


def last_records(provenance: dict) -> dict:
    """The plugin records of the folder's latest run (the last resume that recorded any)."""
    for entry in reversed(provenance.get("resumes") or []):
        if isinstance(entry, dict) and isinstance(entry.get(PLUGINS_KEY), dict):
            return entry[PLUGINS_KEY]
    found = provenance.get(PLUGINS_KEY)
    return found if isinstance(found, dict) else {}


def changed_plugin_notes(old: dict, new: dict, plan, run_trials: set[str], strict: bool) -> list[str]:
    """One warning line per plugin whose source changed; ConfigError instead when `strict`."""
    notes = []
    for name, record in new.items():
        before = old.get(name)
        if not isinstance(before, dict) or before.get("sha256") == record["sha256"]:
            continue
        trials = _trials_using(name, record["kind"], plan, run_trials)
        shown = ", ".join(trials[:3]) + (f", ... ({len(trials) - 3} more)" if len(trials) > 3 else "")
        notes.append(f"warning: plugin {name} ({record['import_path']}) changed since the last run "
                     f"(sha256 {str(before.get('sha256'))[:12]} -> {record['sha256'][:12]}); "
                     f"{len(trials)} trial(s) already ran with the old code" + (f": {shown}" if trials else ""))
    if notes and strict:
        raise ConfigError(notes[0].removeprefix("warning: ") + "; --strict-plugins refuses to continue: restore "
                          "the old code, or drop --strict-plugins to continue with the new")
    return notes


def _trials_using(name: str, kind: str, plan, run_trials: set[str]) -> list[str]:
    """Trials with files in the folder that ran `name`: ids carry architectures and techniques;
    a dataset is found through the bespoke trajectories' configs."""
    if kind == "dataset":
        return sorted(t.trial_id for t in plan.trajectories
                      if t.trial_id in run_trials and t.config.task_spec.dataset == name)
    part = id_name(name)
    return sorted(t for t in run_trials if part in t.split("-"))
