"""Stable names: config hashes, trial ids and consensus group ids.

Users' scripts and later versions of ltray find results by these names, so they change only with
the folder format. A config hash covers only the fields that differ from their defaults (canonical
JSON, SHA-256, HASH_LENGTH hex digits): a field added later with a default that reproduces the old
behaviour leaves every existing id unchanged. The rule that follows: a default value never changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pydantic import BaseModel

from ltray.config import HASH_LENGTH, config_hash
from ltray.experiment.labels import TrialKind

__all__ = ["HASH_LENGTH", "config_hash", "digest", "bespoke_trial_id", "ticket_trial_id", "GroupId"]

SEPARATOR = "-"
# architecture and technique names are registry names or plugin import paths (`pkg.mod:attr`, which
# are Python identifiers joined by '.' and ':'): none contains the separator
_GROUP = re.compile(r"^(?P<name>.+)-(?P<arch>[^-]+)-s(?P<seed>\d+)-(?P<technique>[^-]+)-r(?P<round>\d+)$")


def digest(text: str) -> str:
    """A HASH_LENGTH hash of any string (e.g. the name of an experiment's actor)."""
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def id_name(name: str) -> str:
    """A registry name as is; a plugin's import path with ':' written '.', a character that file
    names on some systems and tools (scp, Windows) refuse. The name, never a hash of the code."""
    return name.replace(":", ".")


def bespoke_trial_id(task: str, arch: str, technique: str, seed: int, cfg: BaseModel) -> str:
    return SEPARATOR.join([TrialKind.BESPOKE.value, task, id_name(arch), id_name(technique), f"s{seed}",
                           config_hash(cfg)])


def ticket_trial_id(kind: str, group_id: str, k: int, target: str, cfg: BaseModel, *, source: str = "",
                    source_round: int | None = None, leave_one_out: bool = False) -> str:
    """`<kind>-<group>-t<k>[-<source>-r<round>][-loo]-<target>-<hash>` (transfer tickets name their source)."""
    parts = [kind, group_id, f"t{k}"]
    if kind == TrialKind.TRANSFER:
        parts.append(f"{source}-r{source_round}")
    if leave_one_out:
        parts.append("loo")
    return SEPARATOR.join([*parts, target, config_hash(cfg)])


@dataclass(frozen=True)
class GroupId:
    """A consensus group instance: `<name>-<arch>-s<seed>-<technique>-r<source_round>`."""

    name: str
    arch: str
    seed: int
    technique: str
    source_round: int

    def __str__(self) -> str:
        return SEPARATOR.join([self.name, id_name(self.arch), f"s{self.seed}", id_name(self.technique),
                               f"r{self.source_round}"])

    @property
    def recipe(self) -> str:
        """The id without its seed: instances of one recipe aggregate over seeds."""
        return SEPARATOR.join([self.name, id_name(self.arch), id_name(self.technique), f"r{self.source_round}"])

    @classmethod
    def parse(cls, text: str) -> GroupId:
        m = _GROUP.match(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(f"{text!r} is not a consensus group id (<name>-<arch>-s<seed>-<technique>-r<round>)")
        return cls(m["name"], m["arch"], int(m["seed"]), m["technique"], int(m["round"]))
