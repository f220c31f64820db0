"""plan.json: the trajectories and consensus groups a sweep expands to, as typed models.

The sweep runner writes it (from its Plan) and every reader (resume, status, analysis, users)
reads it through `read_plan_file`, so a field means the same thing everywhere.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, ValidationError

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
    group: str  # the group id
    name: str
    arch: str
    seed: int
    technique: str
    source_round: int
    sources: list[str]  # source tasks
    source_trials: dict[str, str]  # task -> bespoke trial id
    thresholds: list[int]  # resolved vote counts k
    loo_thresholds: list[int] = []  # leave-one-out counts, paired with `thresholds` in order
    targets: list[str]
    random_baseline: bool = True
    bespoke_baseline: bool = True
    leave_one_out: bool = False
    output_rule: str = "error"
    source_rounds_total: int = 0
    n_followups: int = 0  # follow-up trials this group launches at most


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
