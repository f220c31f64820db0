"""Where an experiment folder goes: `--storage` > $LTRAY_STORAGE > the sweep file's `storage`,
then `<storage>/<name>`. A relative path is resolved once, on the driver; inside a Ray job that
runs in Ray's temporary copy of the working dir (which disappears with the session), a relative
path is refused before anything is written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ltray.errors import ConfigError
from ltray.storage import is_uri, join, resolve_location

STORAGE_ENV = "LTRAY_STORAGE"
JOB_COPY_MARKER = "/runtime_resources/"  # `ray job submit --working-dir` unpacks the job here
# set in a `ray job submit` driver's environment (Ray 2.60 strips RAY_JOB_ID from it; workers have it)
JOB_ENV = ("RAY_JOB_CONFIG_JSON_ENV_VAR", "RAY_JOB_ID")


@dataclass(frozen=True)
class Location:
    storage: str  # the resolved parent location (path or URI)
    experiment: str  # <storage>/<name>
    source: str  # which setting chose it: "--storage", "$LTRAY_STORAGE" or "the sweep file"


def in_job_copy(cwd: str, env) -> bool:
    """Whether this process is a Ray job driver running in Ray's temporary copy of a working dir."""
    return any(env.get(k) for k in JOB_ENV) and JOB_COPY_MARKER in cwd.replace(os.sep, "/") + "/"


def experiment_location(name: str, sweep_storage: str, cli_storage: str | None = None, env=None,
                        cwd: str | None = None) -> Location:
    env = os.environ if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    if cli_storage:
        value, source = cli_storage, "--storage"
    elif env.get(STORAGE_ENV):
        value, source = env[STORAGE_ENV], f"${STORAGE_ENV}"
    else:
        value, source = sweep_storage, "the sweep file"
    relative = not is_uri(value) and not Path(value).expanduser().is_absolute()
    if relative and in_job_copy(cwd, env):
        raise ConfigError(f"storage: {value!r} (from {source}) is a relative path, and this Ray job runs in Ray's "
                          f"temporary copy of the working dir ({cwd}), which disappears with the Ray session; "
                          f"set --storage or {STORAGE_ENV} (e.g. --runtime-env-json "
                          f"'{{\"env_vars\": {{\"{STORAGE_ENV}\": \"s3://bucket/experiments\"}}}}') to a bucket URI "
                          "or an absolute path on shared storage")
    parent = resolve_location(value, "storage")
    return Location(parent, join(parent, name), source)


def check_data_root(sweep, env=None, cwd: str | None = None) -> None:
    """A relative data_root inside a Ray job's temporary working dir would put torchvision datasets
    (and their downloads) in a folder that disappears with the session: refuse it, as storage is,
    when the sweep reads any dataset from files (the bundled ones need none)."""
    from ltray.data import get_dataset

    env = os.environ if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    if Path(sweep.data_root).expanduser().is_absolute() or not in_job_copy(cwd, env):
        return
    tasks = set(sweep.grid.tasks) | {t for g in sweep.consensus for t in g.target_tasks}
    files = sorted(t for t in tasks if not get_dataset(sweep.task_spec(t).dataset).bundled)
    if files:
        raise ConfigError(f"data_root: {str(sweep.data_root)!r} is a relative path, and this Ray job runs in Ray's "
                          f"temporary copy of the working dir ({cwd}), where datasets ({', '.join(files[:3])}) "
                          "would be looked for and downloaded again for every job; set data_root to an absolute "
                          "path on the nodes (e.g. /home/ray/data)")
