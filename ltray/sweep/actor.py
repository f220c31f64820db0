"""The consensus actor: one named, detached, restartable Ray actor per experiment wrapping
`ConsensusAggregator`. Its constructor replays the experiment's journal, so a restart loses nothing."""

from __future__ import annotations

import ray

from ltray.experiment.ids import digest
from ltray.storage import open_storage
from ltray.sweep import metrics
from ltray.orchestration.aggregator import ConsensusAggregator, ConsensusStatus
from ltray.orchestration.plan import TrialSpec, build_plan
from ltray.orchestration.spec import SweepConfig

NAMESPACE = "ltray"
HEAD_RESOURCE = "ltray_head"  # custom resource of the head node in cluster.yaml


class ConsensusActor:
    def __init__(self, exp_uri: str, sweep: dict, flush_interval_s: float = 10.0):
        plan = build_plan(SweepConfig.model_validate(sweep))
        self.agg = ConsensusAggregator(open_storage(exp_uri), plan)
        self.experiment = plan.sweep.name
        self.flush_interval_s = flush_interval_s
        self._publish()

    def add_mask(self, trial_id: str, round_: int, mask_path: str) -> list[str]:
        before = len(self.agg.paths)
        completed = self.agg.add_mask(trial_id, round_, mask_path)
        if len(self.agg.paths) > before:
            labels = self.agg.labels[trial_id]
            metrics.record_mask(self.experiment, labels.arch, labels.technique)
        if completed:
            self._publish()
        self.agg.maybe_flush(self.flush_interval_s)  # throttled by the size of the table too
        return completed

    def add_masks(self, items: list[tuple[str, int, str]]) -> list[str]:
        return [g for item in items for g in self.add_mask(*item)]

    def ready_followups(self, masks: list[tuple[str, int, str]] = ()) -> list[TrialSpec]:
        """The follow-ups ready now, counting `masks` (the searcher's, which an `add_mask` retried
        after a restart may not have delivered yet) first."""
        self.add_masks(masks)
        return self.agg.ready_followups()

    def status(self) -> ConsensusStatus:
        self._publish()  # gauges expire when not set for ~20 s: the driver polls status often
        return self.agg.status()

    def flush(self) -> None:
        self.agg.flush()

    def maybe_flush(self) -> None:
        self.agg.maybe_flush(self.flush_interval_s)

    def _publish(self) -> None:
        s = self.agg.status()
        metrics.record_consensus(self.experiment, s.groups_complete, s.consensus_sparsity)


def actor_name(exp_uri: str) -> str:
    """One actor per experiment folder, whatever its name: the name carries a digest of its location."""
    return f"consensus-{exp_uri.rstrip('/').rsplit('/', 1)[-1]}-{digest(exp_uri)}"


def start_actor(exp_uri: str, sweep: SweepConfig):
    """Get or create the experiment's actor (a restarted driver finds the same one by name)."""
    remote = ray.remote(ConsensusActor).options(
        name=actor_name(exp_uri), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        max_restarts=-1, max_task_retries=-1, num_cpus=0, resources=actor_resources(),
    )
    return remote.remote(exp_uri, sweep.model_dump(mode="json"))


def actor_resources() -> dict[str, float]:
    """Pin the actor to the head when a node declares HEAD_RESOURCE (cluster.yaml does).

    A num_cpus=0 actor may otherwise land on a GPU worker, which the autoscaler then never
    releases. A small share leaves room for other experiments' actors; a plain local Ray,
    without the resource, places the actor anywhere.
    """
    return {HEAD_RESOURCE: 0.001} if HEAD_RESOURCE in ray.cluster_resources() else {}


def get_actor(exp_uri: str):
    return ray.get_actor(actor_name(exp_uri), namespace=NAMESPACE)
