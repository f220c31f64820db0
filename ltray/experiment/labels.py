"""What a trial is, as the experiment folder names it: its kind (the `kind` column, the first
word of its id) and its labels (the columns that say which task, architecture, technique, seed
and, for a follow-up, which consensus group and ticket). One record each, so a label has one
name from the plan to the tables and the analysis.

Words: a **task** is what a trial trains on (a name from the sweep file: a dataset or a view of
one); the **dataset** is the data underneath a task (`TaskSpec.dataset`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class TrialKind(str, Enum):
    """A trial's kind. The values are written in tables and trial ids: they never change."""

    BESPOKE = "bespoke"  # an iterative-pruning trajectory of the grid
    PRET_A_PORTER = "pret_a_porter"  # a consensus ticket (leave-one-out ones too)
    RANDOM = "random"  # a random ticket with the consensus ticket's per-layer sparsity
    TRANSFER = "transfer"  # a source's bespoke ticket at the consensus' sparsity

    def __str__(self) -> str:
        return self.value

    __hash__ = str.__hash__  # a kind and its value are one key in sets, dicts and pandas' isin

    @property
    def is_followup(self) -> bool:
        return self is not TrialKind.BESPOKE


FOLLOWUP_KINDS = tuple(k for k in TrialKind if k.is_followup)


@dataclass(frozen=True)
class TrialLabels:
    """The labels of a trial's rows. Bespoke trials have the first four; follow-ups all."""

    task: str
    arch: str
    technique: str
    seed: int
    group: str = ""  # follow-ups: the consensus group id
    threshold: int | None = None  # follow-ups: the vote threshold k of the ticket
    source: str = ""  # transfer: the source task; leave-one-out: the task left out
    source_round: int | None = None  # follow-ups: the round of the source mask(s)
    held_out: bool | None = None  # follow-ups: the target is not one of the group's sources
    leave_one_out: bool | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> TrialLabels:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})
