"""Expand a sweep into trials, purely: the grid's bespoke trajectories, the consensus group
instances, and (once a group is complete) its follow-up trials. No Ray, no I/O.

Trial ids are stable (kind, names and a hash of the non-default result-affecting settings, see
ltray.experiment.ids), so a resumed sweep recognises its own trials and never launches a finished
one again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ltray.config import TicketConfig, TrajectoryConfig
from ltray.consensus import closest_round
from ltray.experiment import layout
from ltray.experiment.ids import GroupId, bespoke_trial_id, ticket_trial_id
from ltray.experiment.labels import TrialKind, TrialLabels
from ltray.experiment.plan_file import PlanFile, PlannedGroup, PlannedTrajectory
from ltray.orchestration.spec import ConsensusGroup, Resources, SweepConfig


@dataclass(frozen=True)
class TrialSpec:
    """One trial: what to run, its labels in the result tables, and its resources. The Ray shell
    carries it through Tune (`ltray.sweep.tune_io`)."""

    trial_id: str
    kind: TrialKind
    config: TrajectoryConfig | TicketConfig
    labels: TrialLabels
    resources: Resources


@dataclass
class Plan:
    """A sweep expanded: its bespoke trajectories and its consensus group instances."""

    sweep: SweepConfig
    trajectories: list[TrialSpec]
    groups: list[PlannedGroup]
    by_id: dict[str, TrialSpec] = field(default_factory=dict)

    def __post_init__(self):
        self.by_id = {t.trial_id: t for t in self.trajectories}

    def max_followups(self) -> int:
        return sum(g.max_followups() for g in self.groups)

    def to_file(self) -> PlanFile:
        """The plan as plan.json records it."""
        return PlanFile(
            trajectories=[PlannedTrajectory(trial_id=t.trial_id, task=t.labels.task, arch=t.labels.arch,
                                            technique=t.labels.technique, seed=t.labels.seed,
                                            rounds=t.config.rounds) for t in self.trajectories],
            groups=list(self.groups),
            n_followups_max=self.max_followups(),
        )


def build_plan(sweep: SweepConfig) -> Plan:
    trajectories = [
        bespoke_trial(sweep, task, arch, technique, seed)
        for arch in sweep.grid.archs
        for seed in sweep.grid.seeds
        for technique in sweep.grid.techniques
        for task in sweep.grid.tasks
    ]
    index = {(t.labels.task, t.labels.arch, t.labels.technique, t.labels.seed): t.trial_id for t in trajectories}
    groups = [
        group_instance(sweep, g, arch, seed, r, index)
        for g in sweep.consensus
        for arch in (g.archs or sweep.grid.archs)
        for seed in (g.seeds or sweep.grid.seeds)
        for r in g.source_rounds
    ]
    return Plan(sweep, _sources_first(trajectories, groups), groups)


def _sources_first(trajectories: list[TrialSpec], groups: list[PlannedGroup]) -> list[TrialSpec]:
    """Consensus sources run first, so follow-ups can start while the rest of the grid runs."""
    sources = {tid for g in groups for tid in g.source_trials.values()}
    return sorted(trajectories, key=lambda t: t.trial_id not in sources)


def bespoke_trial(sweep: SweepConfig, task: str, arch: str, technique: str, seed: int) -> TrialSpec:
    cfg = TrajectoryConfig(
        task=task, task_spec=sweep.task_spec(task), arch=arch, seed=seed, rounds=sweep.rounds, technique=technique,
        prune=sweep.prune, train=sweep.train, data=sweep.data_for(arch),
    )
    labels = TrialLabels(task=task, arch=arch, technique=technique, seed=seed)
    return TrialSpec(bespoke_trial_id(task, arch, technique, seed, cfg), TrialKind.BESPOKE, cfg, labels,
                     sweep.resources_for(arch))


def group_instance(sweep: SweepConfig, g: ConsensusGroup, arch: str, seed: int, r: int, index) -> PlannedGroup:
    n = len(g.sources)
    resolve = lambda k, m: m if k == "all" else k  # noqa: E731
    return PlannedGroup(
        group_id=str(GroupId(g.name, arch, seed, g.technique, r)),
        name=g.name, arch=arch, seed=seed, technique=g.technique, source_round=r,
        source_trials={s: index[(s, arch, g.technique, seed)] for s in g.sources},
        thresholds=tuple(dict.fromkeys(resolve(k, n) for k in g.thresholds)),
        loo_thresholds=tuple(dict.fromkeys(resolve(k, n - 1) for k in g.thresholds)) if g.leave_one_out else (),
        targets=tuple(g.target_tasks), random_baseline=g.baselines.random, bespoke_baseline=g.baselines.bespoke,
        leave_one_out=g.leave_one_out, output_rule=g.output_rule, source_rounds_total=sweep.rounds,
    )


def ticket_trial(sweep: SweepConfig, group: PlannedGroup, kind: TrialKind, target: str, mask_path: str,
                 k: int, source: str = "", source_round: int | None = None, loo: bool = False) -> TrialSpec:
    cfg = TicketConfig(
        task=target, task_spec=sweep.task_spec(target), arch=group.arch, seed=group.seed, train=sweep.train,
        data=sweep.data_for(group.arch), mask_path=Path(mask_path), output_rule=group.output_rule,
    )
    trial_id = ticket_trial_id(kind, group.group_id, k, target, cfg, source=source, source_round=source_round,
                               leave_one_out=loo)
    labels = TrialLabels(
        task=target, arch=group.arch, technique=group.technique, seed=group.seed, group=group.group_id,
        threshold=k, source=source, source_round=group.source_round if source_round is None else source_round,
        held_out=target not in group.source_trials, leave_one_out=loo,
    )
    return TrialSpec(trial_id, kind, cfg, labels, sweep.resources_for(group.arch))


def group_followups(sweep: SweepConfig, group: PlannedGroup, consensus_sparsity: dict[int, float],
                    source_rounds: dict[str, dict[int, float]]) -> list[TrialSpec]:
    """The follow-up trials of a complete group that can start now.

    `consensus_sparsity`: threshold k -> the consensus mask's sparsity. `source_rounds`: source
    trial_id -> {round: sparsity} reported so far. A transfer baseline uses the source's round
    whose sparsity is closest to the consensus (ties: the earlier round); it is ready once a round
    at least as sparse has been reported (sparsity only grows) or the trajectory has finished.
    """
    out = []
    for k in group.thresholds:
        for t in group.targets:
            out.append(ticket_trial(sweep, group, TrialKind.PRET_A_PORTER, t, group.consensus_path(k), k))
            if group.random_baseline:
                out.append(ticket_trial(sweep, group, TrialKind.RANDOM, t, group.random_path(k), k))
        if group.bespoke_baseline:
            target_s = consensus_sparsity[k]
            for source, tid in group.source_trials.items():
                rounds = source_rounds.get(tid, {})
                finished = (group.source_rounds_total - 1) in rounds
                if not rounds or (max(rounds.values()) < target_s and not finished):
                    continue
                r = closest_round(rounds, target_s)
                path = layout.trajectory_mask(tid, r)
                for t in group.targets:
                    out.append(ticket_trial(sweep, group, TrialKind.TRANSFER, t, path, k, source=source,
                                                source_round=r))
    for k in group.loo_thresholds:
        for t in group.targets:
            if t in group.source_trials:
                out.append(ticket_trial(sweep, group, TrialKind.PRET_A_PORTER, t, group.loo_path(k, t), k,
                                        source=t, loo=True))
    return out


# rough throughput of one trial on one reference GPU (an A10G), samples/s, for --dry-run estimates only
REFERENCE_SAMPLES_PER_S = {"lenet": 40_000, "lenet_300_100": 80_000, "alexnet": 2_500, "vgg11": 900,
                           "resnet18": 1_400}
# training-set sizes of the registered datasets (facts about the datasets), before the 80/20 split
TRAIN_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "kmnist": 60_000, "emnist": 112_800,
               "cifar10": 50_000, "cifar100": 50_000, "svhn": 73_257, "mnist_subset": 4_167, "digits": 1_498}


def estimate_device_hours(plan: Plan) -> float:
    """A rough GPU-hour estimate of the bespoke grid plus the maximum of follow-ups."""
    sweep = plan.sweep
    keep = 1 - sweep.data.val_fraction
    seconds = 0.0
    for t in plan.trajectories:
        n = TRAIN_SIZES.get(sweep.task_spec(t.labels.task).dataset, 50_000) * keep
        if sweep.data.max_train_samples:
            n = min(n, sweep.data.max_train_samples)
        rate = REFERENCE_SAMPLES_PER_S.get(t.labels.arch, 1_000) * _size_factor(sweep, t.labels.arch)
        seconds += n * sweep.train.epochs * sweep.rounds / rate
    per_round = seconds / max(1, len(plan.trajectories) * sweep.rounds)
    seconds += plan.max_followups() * per_round
    return seconds / 3600


def _size_factor(sweep: SweepConfig, arch: str) -> float:
    from ltray.models import get_arch

    spec = get_arch(arch)
    size = sweep.data_for(arch).image_size or spec.image_size
    return (spec.image_size / size) ** 2 if size else 1.0

