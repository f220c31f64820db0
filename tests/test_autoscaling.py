"""Autoscaling proven on one machine, with Ray's fake-multinode autoscaler: a head that takes no
trials (CPU 0, the `ltray_head` resource, as in cluster.yaml) and a GPU worker type scaled from
0 to 2 nodes. A sweep submitted as a Ray job makes the autoscaler launch both workers in one
step from ltray's pending trials; the trials run there with their GPU share, the consensus
actor stays on the head, and the idle workers are released after the sweep.

The fake nodes are real raylets on this machine sharing its disk, so the job is submitted
without --working-dir (each node would unpack it into the same folder) and the experiment
folder is an absolute path in $LTRAY_STORAGE. Their GPUs are resources only:
LTRAY_ALLOW_CPU_FALLBACK=1 lets the trials that hold a share train on the CPU.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ltray.experiment import layout
from tests.cluster_helpers import free_port, start_head
from tests.waiting import wait_for

pytestmark = pytest.mark.ray

WORKER_TYPE = "gpu_worker"
WORKER = {"CPU": 1, "GPU": 1}  # one trial per node: two pending trials need two nodes
SHARE = {"CPU": 1.0, "GPU": 0.5}
SWEEP = {
    "name": "autoscaled",
    "storage": "experiments",  # relative: $LTRAY_STORAGE of the job decides
    "tasks": {"plain": {"dataset": "mnist_subset"}, "rot90": {"dataset": "mnist_subset", "views": [{"rotate": 90}]}},
    "grid": {"tasks": ["plain", "rot90"], "archs": ["lenet"], "techniques": ["global_unstructured"], "seeds": [0]},
    "rounds": 2,
    "train": {"epochs": 1},
    "data": {"crop": False, "flip": False, "max_train_samples": 256},
    "resources": {"lenet": {"cpu": SHARE["CPU"], "gpu": SHARE["GPU"]}},
    "max_concurrent": 2,  # Tune keeps both trials pending at once: the autoscaler sees both
    "max_failures": 1,
}


def autoscaling_config(gcs_port: int) -> dict:
    """The cluster file of ray-notes' "Fake-multinode autoscaler" (what `ray up` would get)."""
    return {
        "cluster_name": "ltray-fake",
        "max_workers": 2,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.25,
        "provider": {"type": "fake_multinode", "gcs_address": f"127.0.0.1:{gcs_port}", "launch_multiple": True,
                     "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0, "ltray_head": 1}, "node_config": {}, "max_workers": 0},
            WORKER_TYPE: {"resources": WORKER, "node_config": {}, "min_workers": 0, "max_workers": 2},
        },
        "head_node_type": "ray.head.default",
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


@pytest.fixture(scope="module")
def autoscaled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autoscale")
    port = free_port()
    config = tmp / "autoscaler.yaml"
    config.write_text(yaml.safe_dump(autoscaling_config(port)))
    sweep_file = tmp / "autoscaled.yaml"
    sweep_file.write_text(yaml.safe_dump(SWEEP))
    head = start_head("lta-", "--num-cpus", "0", "--num-gpus", "0", "--resources", json.dumps({"ltray_head": 1}),
                      "--autoscaling-config", str(config), port=port,
                      # the autoscaler looks every 10 s (5 by default): on a loaded machine Tune may
                      # place the two trials a few seconds apart. It still tells them apart: one
                      # pending trial at a time would hold the second back until the first runs,
                      # which takes a node launched for it first
                      env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "10"})
    try:
        job = head.submit(["python", "-m", "ltray.sweep", str(sweep_file), "--progress-interval", "10"],
                          "ltray-autoscaled", env_vars={"LTRAY_STORAGE": str(tmp / "exp"),
                                                        "LTRAY_ALLOW_CPU_FALLBACK": "1"}, timeout=420)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        released = wait_for(lambda: not _alive_workers(head) and head.status(), 120,
                            "the autoscaler to release the idle workers", interval_s=2)
        yield head, tmp / "exp" / SWEEP["name"], released
    finally:
        head.stop()


def _nodes(head) -> list:
    """Every node the cluster has had (the state API keeps dead ones)."""
    from ray.util.state import list_nodes

    return list_nodes(address=head.dashboard, detail=True, limit=100, raise_on_missing_output=False)


def _alive_workers(head) -> list:
    return [n for n in _nodes(head) if not n.is_head_node and n.state == "ALIVE"]


def _monitor_log(head) -> str:
    """The autoscaler's log: its status every update, and each launch and termination."""
    return (Path(head.temp_dir) / "session_latest" / "logs" / "monitor.log").read_text(errors="replace")


LAUNCH = re.compile(rf"Launching (\d+) nodes, type {WORKER_TYPE}\.")
PENDING_PG = re.compile(r"^ (\{.*\}) \* 1 \(PACK\): (\d+)\+ pending placement groups$", re.M)


def _reports(exp: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(exp.glob(f"{layout.TUNE}/run-*/*/result.json"))
            for line in path.read_text().splitlines()]


def test_both_workers_are_launched_in_one_step_from_the_pending_trials(autoscaled):
    head, _, _ = autoscaled
    log = _monitor_log(head)
    # one step, both nodes (launch_multiple); the autoscaler's own account when it is not
    assert [int(n) for n in LAUNCH.findall(log)] == [2], "\n".join(
        line for line in log.splitlines() if "Launching" in line or "Terminating" in line or "idle" in line)[-6000:]
    # what the autoscaler saw pending just before it: the placement groups of ltray's two trials
    before = log[:LAUNCH.search(log).start()].rsplit("Pending Demands:", 1)[1]
    assert [(ast.literal_eval(b), int(n)) for b, n in PENDING_PG.findall(before)] == [(SHARE, 2)], before
    workers = [n for n in _nodes(head) if not n.is_head_node]
    assert len(workers) == 2 and all(n.resources_total.get("GPU") == WORKER["GPU"] for n in workers)


def test_trials_ran_on_the_workers_with_their_gpu_share(autoscaled):
    head, exp, _ = autoscaled
    nodes = _nodes(head)
    head_id = next(n.node_id for n in nodes if n.is_head_node)
    worker_ids = {n.node_id for n in nodes if not n.is_head_node}
    reports = _reports(exp)
    assert len(reports) == 2 * SWEEP["rounds"]
    # every round on an autoscaled worker, none on the head (which of the two is Ray's choice: a
    # trial that ends before the other node is up may hand its worker to the next one)
    assert {r["node_id"] for r in reports} <= worker_ids and head_id not in {r["node_id"] for r in reports}
    assert all(r["assigned"] == SHARE for r in reports), [r["assigned"] for r in reports]
    rounds = pd.read_csv(exp / layout.csv("rounds"))
    assert len(rounds) == 2 * SWEEP["rounds"]
    assert set(rounds["device"]) == {"cpu"}  # fake GPUs: honest about where it trained


def test_consensus_actor_stayed_on_the_head_and_is_gone(autoscaled):
    from ray.util.state import list_actors

    head, _, _ = autoscaled
    head_id = next(n.node_id for n in _nodes(head) if n.is_head_node)
    actors = list_actors(address=head.dashboard, filters=[("class_name", "=", "ConsensusActor")], detail=True,
                         raise_on_missing_output=False)
    assert len(actors) == 1
    assert actors[0].node_id == head_id
    assert actors[0].state == "DEAD"  # killed when the sweep ended


def test_idle_workers_are_released(autoscaled):
    head, _, status = autoscaled
    assert _alive_workers(head) == []
    active = status.split("Active:", 1)[1].split("Pending:", 1)[0]
    assert WORKER_TYPE not in active, status
