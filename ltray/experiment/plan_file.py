"""plan.json: the trajectories and consensus groups a sweep expands to, as typed models.

The sweep runner writes it (from its Plan) and every reader (resume, status, analysis, users)
reads it through `read_plan_file`, so a field means the same thing everywhere.
"""

from __future__ import annotations

import json

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, computed_field

from ltray.errors import ExperimentError
from ltray.experiment import layout
from ltray.storage import Storage, StorageError


class _Part(BaseModel):
    # unknown fields are ignored: a plan.json written by a later format revision still reads
    model_config = ConfigDict(extra="ignore", frozen=True)


class PlannedTrajectory(_Part):
    trial_id: str
    task: str
    arch: str
    technique: str
    seed: int
    rounds: int  # trained rounds including the dense round 0


class PlannedGroup(_Part):
    """A consensus group instance: one recipe of the sweep file's `consensus` for one
    architecture, seed and source round. The one record of a group: the plan builds it, the
    consensus actor completes it, plan.json stores it and the analysis reads it back."""

    # format 3 writes `group_id`; formats 1-2 wrote the same id as `group`
    group_id: str = Field(validation_alias=AliasChoices("group_id", "group"))
    name: str
    arch: str
    seed: int
    technique: str
    source_round: int
    source_trials: dict[str, str]  # source task -> its bespoke trial id, in the sweep file's order
    thresholds: tuple[int, ...]  # resolved vote counts k (k of N)
    loo_thresholds: tuple[int, ...] = ()  # k of N - 1 for leave-one-out tickets, paired with `thresholds`
    targets: tuple[str, ...]
    random_baseline: bool = True
    bespoke_baseline: bool = True
    leave_one_out: bool = False
    output_rule: str = "error"
    source_rounds_total: int = 0  # rounds of each source trajectory

    @computed_field
    @property
    def sources(self) -> list[str]:
        """The source tasks."""
        return list(self.source_trials)

    @computed_field
    @property
    def n_followups(self) -> int:
        """Follow-up trials this group launches at most."""
        return self.max_followups()

    def consensus_path(self, k: int) -> str:
        return layout.consensus_mask(self.group_id, k)

    def loo_path(self, k: int, task: str) -> str:
        return layout.leave_one_out_mask(self.group_id, k, task)

    def random_path(self, k: int) -> str:
        return layout.random_mask(self.group_id, k)

    def max_followups(self) -> int:
        per_k = len(self.targets) * (1 + self.random_baseline)
        per_k += len(self.source_trials) * len(self.targets) * self.bespoke_baseline
        loo = sum(t in self.source_trials for t in self.targets) * len(self.loo_thresholds) * self.leave_one_out
        return per_k * len(self.thresholds) + loo


class PlanFile(_Part):
    trajectories: list[PlannedTrajectory]
    groups: list[PlannedGroup] = []
    n_followups_max: int = 0

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1)


def read_plan_file(storage: Storage) -> PlanFile:
    """The experiment's plan.json; ExperimentError naming the file and field when it is unusable."""
    where = storage.describe(layout.PLAN)
    try:
        text = storage.read_text(layout.PLAN)
    except StorageError as e:
        raise ExperimentError(f"{where}: {'missing' if e.missing else str(e)}") from None
    try:
        return PlanFile.model_validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ExperimentError(f"{where}: {loc}: {first['msg']}") from None


def write_plan_file(storage: Storage, plan: PlanFile) -> None:
    storage.write_text(layout.PLAN, plan.to_json())
