"""Shared test settings: a private Ray configuration, no network, and one temp folder per run.

Everything the suite puts in the temp dir (pytest's tmp_path, Ray's sessions, W&B's and
multiprocessing's scratch folders) goes into one folder made for the run, through $TMPDIR, which
Python, Ray and their children honour; the run removes it at its end, so nothing of the suite's
stays in the system temp dir (.ci/run checks it). pytest-xdist's workers inherit the folder. (Ray
temp dirs that must stay shorter: tests/temp_dirs.py, removed by the process that made them.)"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.temp_dirs import RUN_TMPDIR, SYSTEM_TMPDIR

# Test files, slowest first (`pytest --durations=0`, summed per file, under `make test`; 2026-12-04):
# under pytest-xdist (`make test`, `make test-fast`, both with --no-loadscope-reorder) each file is
# one unit handed out in this order, so no long one starts last. Only an order: a file not listed
# runs after these.
FILES_SLOWEST_FIRST = ["test_signals.py", "test_metrics.py", "test_sweep_e2e.py", "test_ray_jobs.py",
                       "test_faults.py", "test_autoscaling.py", "test_trackers.py", "test_multinode.py",
                       "test_plugin_sweeps.py", "test_training.py", "test_migration.py", "test_cli.py",
                       "test_analysis.py", "test_local_ray.py", "test_plugins.py", "test_models.py",
                       "test_exit_paths.py", "test_packaging.py", "test_bad_inputs.py", "test_base_install.py",
                       "test_readme.py", "test_data.py", "test_status.py", "test_storage.py",
                       "test_cluster_check.py"]

_owner = RUN_TMPDIR not in os.environ  # the run's first process (xdist's controller) makes and removes it
if _owner:
    os.environ[SYSTEM_TMPDIR] = tempfile.gettempdir()  # tests/temp_dirs.py
    # short, directly in the system temp dir: Ray's socket paths under it are capped at 107 bytes
    os.environ[RUN_TMPDIR] = tempfile.mkdtemp(prefix="ltt.")
os.environ["TMPDIR"] = os.environ[RUN_TMPDIR]
os.environ["LTRAY_RAY_TMPDIR"] = os.environ[RUN_TMPDIR]  # a driver's local Ray (ltray's default is /tmp)
tempfile.tempdir = None  # gettempdir() reads $TMPDIR again

# pytest-xdist's workers share the cores: torch in each gets its share as threads, not all of them
# (more threads than cores make each of torch's waits a spin)
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Ray's raylet starts idle Python workers ahead of a driver's first task (about 1.4 CPU-seconds
# each, one per CPU); the suite's many short-lived Rays mostly never use them, and a trial or an
# actor starts its worker either way. Inherited by the drivers and heads the tests start.
os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.pop("LTRAY_STORAGE", None)  # tests say where their experiments go


@pytest.fixture(scope="module")
def shared_ray():
    """This process joined, for a module's in-process sweeps, to the run's shared cluster
    (tests/shared_head.py): 8 CPUs and a GPU resource that has no CUDA behind it (sweeps that ask
    for no GPU never see it). Yields the cluster's HeadNode."""
    from tests.shared_head import joined

    with joined() as head:
        yield head


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FILES_SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(item.fspath).name, len(rank)))  # stable: a file keeps its order


def pytest_unconfigure(config):
    from tests.temp_dirs import remove_short_tmpdirs

    remove_short_tmpdirs()  # this process's Ray temp dirs outside the run's folder
    if _owner:
        from tests.shared_head import stop_shared_head

        stop_shared_head()  # whichever process started it (tests/shared_head.py)
        shutil.rmtree(os.environ[RUN_TMPDIR], ignore_errors=True)
