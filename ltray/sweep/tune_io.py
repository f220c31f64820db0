"""The one place where ltray's records meet Tune's dicts.

Tune carries a trial's config as a JSON-able dict and hands back what the trial reported as
another dict. Everything else in ltray works with `TrialSpec` (what to run), `RunSettings` (where
the experiment and the data are) and rows (`ltray.experiment.schemas.ROUNDS`); this module
translates both ways and is the only one that reads keys out of Tune's dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from ltray.config import TicketConfig, TrajectoryConfig
from ltray.experiment.labels import TrialKind, TrialLabels
from ltray.experiment.schemas import ROUNDS
from ltray.orchestration.plan import TrialSpec
from ltray.orchestration.spec import Resources

_SPEC_KEYS = ("trial_id", "kind", "config", "labels", "resources")


class RunSettings(BaseModel):
    """What every trial of one launch needs besides its own spec: where the experiment folder is
    (a path or URI, resolved once on the driver) and where the datasets are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    experiment_uri: str
    experiment: str  # the experiment's name (the metrics' label)
    data_root: str  # absolute, resolved on the driver
    download: bool


@dataclass(frozen=True)
class TuneTrial:
    """A trial's Tune config, read back."""

    spec: TrialSpec
    settings: RunSettings


def trial_config(spec: TrialSpec, settings: RunSettings) -> dict:
    """The JSON-able dict Tune carries as the trial's config (Tune shows and logs it as is)."""
    return {
        "trial_id": spec.trial_id,
        "kind": spec.kind.value,
        "config": spec.config.model_dump(mode="json"),
        "labels": spec.labels.as_dict(),
        "resources": spec.resources.model_dump(),
        "settings": settings.model_dump(),
    }


def read_trial_config(config: dict) -> TuneTrial:
    kind = TrialKind(config["kind"])
    model = TrajectoryConfig if kind is TrialKind.BESPOKE else TicketConfig
    spec = TrialSpec(trial_id=config["trial_id"], kind=kind, config=model.model_validate(config["config"]),
                     labels=TrialLabels.from_dict(config["labels"]),
                     resources=Resources.model_validate(config["resources"]))
    return TuneTrial(spec, RunSettings.model_validate(config["settings"]))


def ltray_trial_id(config: dict) -> str | None:
    """ltray's stable id of a Tune trial (None for a trial ltray did not create)."""
    return config.get("trial_id")


def is_followup(config: dict) -> bool:
    kind = config.get("kind")
    return kind is not None and TrialKind(kind).is_followup


def group_of(config: dict) -> str:
    """A follow-up's consensus group id ('' for a trajectory)."""
    return (config.get("labels") or {}).get("group", "")


def asks_for_gpu(config: dict) -> bool:
    return bool((config.get("resources") or {}).get("gpu"))


def bundle(config: dict) -> dict[str, float]:
    """The trial's resource bundle (one placement-group bundle: its CPU and GPU share)."""
    r = Resources.model_validate(config["resources"])
    return {"CPU": r.cpu, **({"GPU": r.gpu} if r.gpu else {})}


def reported_metrics(row: dict, where: dict) -> dict:
    """A row as Tune metrics. Tune owns the key 'trial_id' (the callback takes ours from the
    config); `where` says where the trial runs (node id, assigned resources)."""
    return {k: v for k, v in row.items() if k != "trial_id"} | where


def row_of_result(config: dict, result: dict) -> dict | None:
    """The rounds-table row a reported result carries, or None for a result that is not a round
    (Tune's own bookkeeping results) or a trial ltray did not create."""
    trial_id = ltray_trial_id(config)
    if "round" not in result or trial_id is None:
        return None
    row = {c: result.get(c) for c in ROUNDS.names}
    row["trial_id"] = trial_id  # Tune's own 'trial_id' is per run, ours is stable
    return row


def trial_tags(config: dict) -> dict[str, str]:
    """A trial's labels as tracker tags (strings, empty ones left out)."""
    labels = dict(config.get("labels") or {})
    tags = {"trial_id": config.get("trial_id"), "kind": config.get("kind"), **labels}
    return {k: str(v) for k, v in tags.items() if v not in (None, "")}
