"""Multi-node sweeps on one machine (Ray's cluster_utils.Cluster, fake GPUs): a head that takes no
trials plus two workers. Trials spread over the workers in fractional GPU shares, the consensus
actor stays on the head, and losing a worker mid-sweep loses no finished round."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ltray.experiment import layout

pytestmark = pytest.mark.ray

WORKER = {"num_cpus": 1, "num_gpus": 1}  # CPU 0.5 per trial: two trials share a node's fake GPU
SHARE = {"CPU": 0.5, "GPU": 0.25}
SWEEP = {
    "tasks": {"plain": {"dataset": "mnist_subset"}, "rot90": {"dataset": "mnist_subset", "views": [{"rotate": 90}]}},
    "grid": {"tasks": ["plain", "rot90"], "archs": ["lenet"],
             "techniques": ["global_unstructured", "random_unstructured"], "seeds": [0]},
    "rounds": 3,
    "train": {"epochs": 1},
    "data": {"crop": False, "flip": False, "max_train_samples": 300},
    "resources": {"lenet": {"cpu": SHARE["CPU"], "gpu": SHARE["GPU"]}},
    "max_concurrent": 4,
    "max_failures": 3,
}


@pytest.fixture(scope="module")
def cluster():
    """A head with no CPU and the `ltray_head` resource (as in cluster.yaml), and two GPU workers."""
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    saved_env = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
                                                "LTRAY_ALLOW_CPU_FALLBACK")}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    # a private temp dir (Cluster writes its address file under $RAY_TMPDIR), and every node on
    # 127.0.0.1: Ray otherwise advertises the machine's address, which may not accept connections
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ltn-")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["LTRAY_ALLOW_CPU_FALLBACK"] = "1"  # the GPUs are fake: trials holding a share train on the CPU
    ray_constants.ENABLE_RAY_CLUSTER = False
    c = Cluster(initialize_head=True,
                head_node_args={"num_cpus": 0, "resources": {"ltray_head": 1}, "include_dashboard": False})
    try:
        for _ in range(2):
            c.add_node(**WORKER)
        ray.init(address=c.address, namespace="ltray", logging_level="WARNING", log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def two_workers(c) -> list[str]:
    """Node ids of the cluster's two workers (re-adding one if an earlier test removed it)."""
    while len(c.worker_nodes) < 2:
        c.add_node(**WORKER)
    c.wait_for_nodes()
    return [n.node_id for n in c.worker_nodes]


def run(tmp_path: Path, name: str, **overrides) -> Path:
    from ltray.orchestration.load import parse_sweep
    from ltray.orchestration.plan import build_plan
    from tests.sweep_helpers import run_sweep_here

    sweep = parse_sweep({**SWEEP, "name": name, "storage": str(tmp_path), **overrides}, f"{name}.yaml")
    return run_sweep_here(build_plan(sweep))


def reports(exp: Path) -> pd.DataFrame:
    """Every result a trial reported to Tune (one line per report, replays included), in order."""
    rows = []
    for path in sorted((exp / "tune").glob("run-*/*/result.json")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows.append({"trial_id": path.parent.name, "round": r["round"], "node_id": r["node_id"],
                         "assigned": r["assigned"], "seconds": r["seconds"], "end": r["timestamp"],
                         "start": r["timestamp"] - r["time_this_iter_s"]})
    return pd.DataFrame(rows)


def check_complete(exp: Path, rounds: int) -> pd.DataFrame:
    """Every trajectory has one row and one mask per round, and is marked done."""
    plan = json.loads((exp / "plan.json").read_text())
    ids = {t["trial_id"] for t in plan["trajectories"]}
    table = pd.read_csv(exp / "rounds.csv")
    assert not table.duplicated(["trial_id", "round"]).any()
    assert set(zip(table["trial_id"], table["round"])) == {(t, r) for t in ids for r in range(rounds)}
    expected = [layout.round_mask_name(r) for r in range(rounds)]
    for t in ids:
        # a node killed mid-write leaves its writer's temp file (`.<name>.<random>.tmp`), never a
        # partial mask under a mask's name
        assert sorted(p.name for p in (exp / "masks" / t).iterdir() if not p.name.endswith(".tmp")) == expected
        assert (exp / "trials" / t / "done.json").exists()
    return table


def training_spans(exp: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Per trial, from the start of round 0's training to the end of its last round (file times, in
    seconds): a round's mask is written as the round starts, and its `seconds` run from just before
    that write to the round's end, so the span is the trial's training, give or take one file write
    (a span that began at round 0's mask minus its seconds began a whole round early)."""
    spans = {}
    for trial, rows in table.groupby("trial_id"):
        rows = rows.sort_values("round")
        first, last = (exp / rows["mask_path"].iloc[0]), (exp / rows["mask_path"].iloc[-1])
        spans[trial] = {"start": first.stat().st_mtime, "end": last.stat().st_mtime + rows["seconds"].iloc[-1]}
    return pd.DataFrame.from_dict(spans, orient="index")


def test_consensus_actor_holds_the_heads_resource(cluster, tmp_path):
    import ray

    from ltray.storage import open_storage
    from ltray.sweep.actor import start_actor
    from ltray.orchestration.load import parse_sweep
    from ltray.orchestration.opening import open_experiment
    from ltray.orchestration.plan import build_plan

    sweep = parse_sweep({**SWEEP, "name": "actor", "storage": str(tmp_path)}, "actor.yaml")
    plan = build_plan(sweep)
    storage = open_storage(tmp_path / "actor")
    open_experiment(plan, storage, resume=False)
    actor = start_actor(storage.uri, sweep)
    try:
        ray.get(actor.status.remote())
        deadline = time.monotonic() + 30  # the resource view reaches the driver asynchronously
        while ray.available_resources().get("ltray_head") != pytest.approx(0.999) and time.monotonic() < deadline:
            time.sleep(0.2)
        # only the head has ltray_head, so holding a share of it means running there
        assert ray.available_resources().get("ltray_head") == pytest.approx(0.999)
    finally:
        ray.kill(actor)


def _trial_processes(node) -> dict[int, str]:
    """{pid: trial id} of the Tune trial processes on a node of this machine's test cluster: children
    of its raylet, each working in its trial's folder (Tune's default), which is named by the trial id."""
    (raylet,) = [p.process.pid for p in node.all_processes.get("raylet", [])]
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid != raylet:
                continue
            pid = stat.parent.name
            if b"ImplicitFunc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out[int(pid)] = Path(os.readlink(f"/proc/{pid}/cwd")).name
        except (OSError, ValueError, IndexError):  # a process that just ended
            continue
    return out


def _finished_rounds(trial_dir: Path) -> int:
    """How many rounds the trial's resume state says are finished (0 before its first)."""
    from ltray.training import TrajectoryState

    state = trial_dir / layout.TRIAL_STATE
    return TrajectoryState.load(state).next_round if state.exists() else 0


class NodeKiller(threading.Thread):
    """Kills the worker running a trial (no graceful shutdown, like a reclaimed spot node) as soon
    as that trial has reported `after_round`.

    Once the node's trial processes are gone it records, per unfinished trial, the rounds its
    resume state says are finished, and snapshots those rounds' masks (inode and mtime).
    """

    def __init__(self, c, exp: Path, after_round: int):
        super().__init__(daemon=True)
        self.cluster, self.exp, self.after_round = c, exp, after_round
        self.removed: str | None = None
        self.trials_on_removed: set[str] = set()  # the node's trials when it was killed
        self.finished: dict[str, list[int]] = {}  # unfinished trial -> its finished rounds
        self.snapshot: dict[Path, tuple[int, int]] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 300
            while self.removed is None and time.monotonic() < deadline:
                node = self._node_to_remove()
                if node is None:
                    time.sleep(0.1)
                    continue
                running = _trial_processes(node)
                self.cluster.remove_node(node, allow_graceful=False)
                self.trials_on_removed = set(running.values())
                pids = set(running)
                self.removed = node.node_id
                self._wait_for_trial_processes(pids)
                self._record()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def _node_to_remove(self):
        """A worker whose running trial has recorded `after_round` in its own files (Tune's
        result.json on the driver can lag the trial by seconds, up to its whole run)."""
        for node in self.cluster.worker_nodes:
            for trial_id in _trial_processes(node).values():
                # its resume state, written after the round's row, says the round is finished
                if _finished_rounds(self.exp / layout.TRIALS / trial_id) > self.after_round and \
                        not (self.exp / layout.trial_file(trial_id, layout.TRIAL_DONE)).exists():
                    return node
        return None

    def _wait_for_trial_processes(self, pids: set[int], timeout_s: float = 60) -> None:
        """A killed node's workers exit when they lose their raylet; until then they may still write."""
        deadline = time.monotonic() + timeout_s
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _record(self) -> None:
        for trial_dir in (self.exp / "trials").iterdir():
            if (trial_dir / "done.json").exists():
                continue
            rounds = list(range(_finished_rounds(trial_dir)))
            self.finished[trial_dir.name] = rounds
            for r in rounds:
                p = self.exp / layout.trajectory_mask(trial_dir.name, r)
                self.snapshot[p] = (p.stat().st_ino, p.stat().st_mtime_ns)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] not in "ZX"
    except OSError:
        return False


def test_trials_spread_in_gpu_shares_and_a_removed_worker_loses_no_finished_round(cluster, tmp_path):
    """One sweep shows both: trials spread over the two workers (never the head) in fractional GPU
    shares, then a worker is killed mid-sweep and its trials resume on the other from their last
    finished round. (One sweep, not two: each costs four trial workers' imports.)"""
    import ray

    from ltray.sweep.actor import actor_resources

    rounds = 5
    workers = two_workers(cluster)
    assert actor_resources() == {"ltray_head": pytest.approx(0.001)}  # the actor is pinned to the head
    overrides = {"rounds": rounds, "train": {"epochs": 2}, "data": {**SWEEP["data"], "max_train_samples": 600}}
    exp = tmp_path / "removal"
    killer = NodeKiller(cluster, exp, after_round=0)
    killer.start()
    run(tmp_path, "removal", **overrides)
    killer.join(timeout=5)
    assert killer.error is None, killer.error
    assert killer.removed in workers
    survivor = next(w for w in workers if w != killer.removed)

    table = check_complete(exp, rounds)  # nothing lost
    seen = reports(exp)
    # both workers ran trials (the removed one's, as the killer saw them: their reports may not have
    # reached Tune's result.json before it died), the head none
    assert killer.trials_on_removed and survivor in set(seen["node_id"]) and set(seen["node_id"]) <= set(workers)
    heads = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("ltray_head")]
    assert len(heads) == 1 and heads[0]["NodeID"] not in set(seen["node_id"])
    assert all(a == SHARE for a in seen["assigned"])  # each trial held exactly its fraction of a GPU
    stayed = seen[~seen["trial_id"].isin(killer.trials_on_removed)]
    assert not stayed.empty and (stayed.groupby("trial_id")["node_id"].nunique() == 1).all()  # none moved
    # never more trials training at once on a node than its CPUs allow (spans from the mask files'
    # mtimes lie within each trial's reservation, so this cannot fail on a correct schedule); the
    # trials that never moved, whose span is on one node
    spans = training_spans(exp, table[table["trial_id"].isin(stayed["trial_id"])])
    spans["node"] = spans.index.map(stayed.groupby("trial_id")["node_id"].first())
    for _, group in spans.groupby("node"):
        for t in group["start"]:
            assert ((group["start"] <= t) & (group["end"] > t)).sum() <= WORKER["num_cpus"] / SHARE["CPU"]

    # the removed node's trials that had finished a round
    cut = {t for t in killer.trials_on_removed if killer.finished.get(t)}
    assert cut, "no trial was cut short after a finished round"
    for trial in cut:
        finished = killer.finished[trial]
        mine = seen[seen["trial_id"] == trial]
        resumed = mine[mine["node_id"] == survivor]
        # it resumed on the other node after its last finished round; the finished rounds were
        # only replayed to Tune (the same 'seconds' as first reported), never trained again
        assert sorted(set(resumed["round"]) - set(finished)) == list(range(len(finished), rounds)), trial
        for r in finished:
            assert mine.loc[mine["round"] == r, "seconds"].nunique() == 1, (trial, r)
    for path, (inode, mtime) in killer.snapshot.items():  # no finished round's mask was rewritten
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime), path
