"""Where an experiment folder goes: --storage > $LTRAY_STORAGE > the sweep file, relative paths
resolved once on the driver, and nothing relative inside a Ray job's temporary working dir."""

from __future__ import annotations

import pytest

from ltray.errors import ConfigError
from ltray.orchestration.location import check_data_root, experiment_location
from tests.sweep_helpers import tiny_sweep

JOB_COPY = "/tmp/ray/session_1/runtime_resources/working_dir_files/_ray_pkg_abc"
JOB_ENV = {"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}  # what a job's driver has (Ray 2.60 strips RAY_JOB_ID)


def test_precedence_and_resolution(tmp_path):
    env = {"LTRAY_STORAGE": "s3://bucket/exps"}
    assert experiment_location("n", "experiments", "/data/x", env, str(tmp_path)).source == "--storage"
    loc = experiment_location("n", "experiments", None, env, str(tmp_path))
    assert (loc.experiment, loc.source) == ("s3://bucket/exps/n", "$LTRAY_STORAGE")
    loc = experiment_location("n", "experiments", None, {}, str(tmp_path))
    assert loc.source == "the sweep file" and loc.experiment.startswith("/")


def test_relative_storage_in_a_jobs_copy_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="relative path, and this Ray job runs in Ray's temporary copy") as e:
        experiment_location("n", "experiments", None, JOB_ENV, JOB_COPY)
    assert "LTRAY_STORAGE" in str(e.value) and "\n" not in str(e.value)
    assert experiment_location("n", "experiments", None, {**JOB_ENV, "LTRAY_STORAGE": "gs://b/e"}, JOB_COPY)
    assert experiment_location("n", "/abs/exps", None, JOB_ENV, JOB_COPY).experiment == "/abs/exps/n"
    assert experiment_location("n", "experiments", None, {}, JOB_COPY)  # not a job: a plain folder


def test_relative_data_root_in_a_jobs_copy_is_refused_when_files_are_read(tmp_path):
    bundled = tiny_sweep(tmp_path)  # mnist_subset and digits ship in packages: no data_root needed
    check_data_root(bundled, JOB_ENV, JOB_COPY)
    cifar = tiny_sweep(tmp_path, tasks={}, consensus=[], grid={**bundled.grid.model_dump(), "tasks": ["cifar10"]})
    with pytest.raises(ConfigError, match=r"data_root: 'data' is a relative path.*\(cifar10\)"):
        check_data_root(cifar, JOB_ENV, JOB_COPY)
    check_data_root(cifar.model_copy(update={"data_root": tmp_path}), JOB_ENV, JOB_COPY)
    check_data_root(cifar, {}, JOB_COPY)
