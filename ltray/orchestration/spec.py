"""The sweep file: a YAML document validated into typed, frozen models before anything starts.

Unknown keys and bad values are errors that name the file and the field. Cross-field rules
(known datasets, architectures and techniques; consistent consensus groups) are checked here too,
so a typo fails in the first second rather than after a night of compute.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ltray.config import DataConfig, Frozen, Int, Number, PruneConfig, Seed, TaskSpec, TrainConfig
from ltray.errors import short_repr

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # at most 64: names end up in file names


def _no_duplicates(v):
    """A repeated entry would plan the same trial or group twice."""
    dupes = sorted(str(x) for x, n in Counter(v or ()).items() if n > 1)  # linear: lists may be long
    if dupes:
        shown = [d if len(d) <= 40 else d[:37] + "..." for d in dupes[:5]]
        raise ValueError(f"duplicate entries: {', '.join(shown)}{', ...' if len(dupes) > 5 else ''}")
    return v


class Grid(Frozen):
    """The bespoke trajectories: every task x architecture x technique x seed."""

    tasks: list[str] = Field(min_length=1)
    archs: list[str] = Field(min_length=1)
    techniques: list[str] = Field(min_length=1)
    seeds: list[Seed] = Field(min_length=1)

    @field_validator("tasks", "archs", "techniques", "seeds")
    @classmethod
    def _unique(cls, v):
        return _no_duplicates(v)

    @field_validator("seeds")
    @classmethod
    def _non_negative(cls, v):
        if any(s < 0 for s in v):
            raise ValueError("seeds must be >= 0")
        return v


class Resources(Frozen):
    """What one trial of an architecture asks the scheduler for."""

    cpu: Number = Field(1.0, gt=0)
    gpu: Number = Field(0.0, ge=0)

    @field_validator("gpu")
    @classmethod
    def _packable(cls, v):
        if 0 < v < 1 and abs(1 / v - round(1 / v)) > 1e-9:
            raise ValueError(f"a GPU fraction must divide 1 (0.5, 0.25, ...), got {v}")
        if v > 1 and v != int(v):
            raise ValueError(f"more than one GPU must be a whole number, got {v}")
        return v


class Baselines(Frozen):
    random: bool = True  # a random ticket with the consensus ticket's per-layer sparsity
    bespoke: bool = True  # each source's bespoke ticket at the closest sparsity ('transfer')


class ConsensusGroup(Frozen):
    """Source tasks whose masks vote on a pret-a-porter ticket, and where it is evaluated.

    One group instance exists per architecture x seed x source round; all sources share the
    architecture and seed (hence the initialisation) by construction.
    """

    name: str = Field(pattern=NAME_PATTERN)
    sources: list[str] = Field(min_length=2)
    technique: str = "global_unstructured"
    source_rounds: list[Int] = Field([2], min_length=1)
    # votes needed to keep a weight: 'all' = intersection of the N source masks, or an int k <= N
    thresholds: list[Int | Literal["all"]] = Field(["all"], min_length=1)
    targets: list[str] | None = None  # default: the sources; others are held-out targets
    archs: list[str] | None = None  # default: every architecture of the grid
    seeds: list[Seed] | None = None  # default: every seed of the grid
    baselines: Baselines = Baselines()
    leave_one_out: bool = False  # also train each source target on the consensus of the others
    output_rule: Literal["error", "dense", "columns"] = "error"

    @field_validator("sources", "source_rounds", "targets", "archs", "seeds")
    @classmethod
    def _unique(cls, v):
        return _no_duplicates(v)

    @field_validator("thresholds")
    @classmethod
    def _positive(cls, v):
        for k in v:
            if isinstance(k, int) and k < 1:
                raise ValueError(f"a threshold must be >= 1 or 'all', got {k}")
        return v

    @field_validator("source_rounds")
    @classmethod
    def _rounds_positive(cls, v):
        if any(r < 1 for r in v):
            raise ValueError("source rounds must be >= 1 (round 0 is the dense network)")
        return v

    @property
    def target_tasks(self) -> list[str]:
        return list(self.targets) if self.targets is not None else list(self.sources)


class SweepConfig(Frozen):
    """A whole experiment: the grid of trajectories and the consensus groups built from them."""

    name: str = Field(pattern=NAME_PATTERN)
    # the experiment folder is <storage>/<name>: a path (relative ones are resolved by the driver)
    # or an s3:// / gs:// / file:// URI; --storage and $LTRAY_STORAGE take precedence
    storage: str = "experiments"
    data_root: Path = Path("data")  # where torchvision datasets live (or are downloaded to)
    download: bool = False  # fetch missing torchvision datasets into data_root
    tasks: dict[str, TaskSpec] = {}  # named task views; a dataset name is a task by itself
    grid: Grid
    rounds: Int = Field(ge=1)  # trained rounds per trajectory, including the dense round 0
    train: TrainConfig = TrainConfig()
    prune: PruneConfig = PruneConfig()
    data: DataConfig = DataConfig()
    # input side per architecture (pixels), overriding data.image_size and the architecture's default
    # (torchvision models: 224), e.g. {alexnet: 64, resnet18: 32} for quick runs
    image_sizes: dict[str, Int] = {}
    resources: dict[str, Resources] = {"default": Resources()}  # per architecture, or 'default'
    max_concurrent: Int = Field(16, ge=1)  # trials running or pending at once
    max_failures: Int = Field(3, ge=0)  # retries of a failed trial, from its last finished round
    consensus: list[ConsensusGroup] = []
    loggers: list[Literal["tensorboard", "mlflow", "wandb"]] = []  # experiment trackers (ltray.sweep.trackers)
    # plugin code shipped to every worker through Ray's runtime environment: local package folders
    # or .py files (the driver imports them from there too), or URIs of zipped packages
    py_modules: list[str] = []

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, v):
        for name in v:
            if not re.fullmatch(NAME_PATTERN, name):  # re.match would allow a trailing newline
                raise ValueError(f"task name {short_repr(name)} may only use letters, digits, '_', '.', '-' "
                                 "(at most 64 characters)")
        return v

    @field_validator("consensus")
    @classmethod
    def _consensus_names_unique(cls, v):
        dupes = sorted(n for n, k in Counter(g.name for g in v).items() if k > 1)
        if dupes:
            raise ValueError(f"consensus group names must be unique: {', '.join(dupes)}")
        return v

    def task_spec(self, name: str) -> TaskSpec:
        """A task's dataset and views (a dataset name alone is a task of its own)."""
        return self.tasks.get(name) or TaskSpec(dataset=name)

    def data_for(self, arch: str) -> DataConfig:
        """The data settings of one architecture's trials (its input side applied)."""
        if arch in self.image_sizes:
            return self.data.model_copy(update={"image_size": self.image_sizes[arch]})
        return self.data

    def resources_for(self, arch: str) -> Resources:
        return self.resources.get(arch) or self.resources.get("default") or Resources()
