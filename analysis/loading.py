"""Read an experiment folder (docs/experiment-folder.md) into tidy pandas tables.

Only reads, through ltray's storage layer, so the folder may be a path or an s3:// / gs:// URI:
the rounds, consensus and similarity tables (ltray.experiment.schemas), plan.json and
sweep.yaml. Anything absent gives an empty table and a note, so a folder that is still running
can be reported on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ltray.errors import ExperimentError, LtrayError
from ltray.experiment import layout
from ltray.experiment.folder import check_readable
from ltray.experiment.ids import GroupId
from ltray.experiment.labels import FOLLOWUP_KINDS, TrialKind
from ltray.experiment.plan_file import PlanFile, read_plan_file
from ltray.experiment.schemas import ALL_LAYERS, CONSENSUS, ROUNDS, SIMILARITY, TableSchema
from ltray.storage import Storage, StorageError, open_storage
from ltray.experiment.tables import read_table

ROUNDS_COLUMNS, CONSENSUS_COLUMNS, SIMILARITY_COLUMNS = ROUNDS.names, CONSENSUS.names, SIMILARITY.names
INT_KEYS = ("seed", "round")  # integers where every row has one; other integer columns read as floats


def _read(storage: Storage, schema: TableSchema, notes: list[str]) -> pd.DataFrame | None:
    """The table with analysis' dtypes, None when the folder has no such table (a damaged one
    is noted and read as empty)."""
    try:
        df = read_table(storage, schema)
    except ExperimentError as exc:
        notes.append(f"{schema.stem} table could not be read ({exc}); ignored.")
        df = schema.frame([])
    return None if df is None else _analysis_dtypes(df, schema)


def _analysis_dtypes(df: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Text as str, booleans False when absent, seed/round as int where every row has one, other
    counts as floats with NaN (what the figures' arithmetic expects)."""
    df = df.copy()
    for col in schema.columns:
        if col.kind == "bool":
            df[col.name] = df[col.name].fillna(False).astype(bool)
        elif col.kind == "int":
            values = df[col.name].astype("float64")
            df[col.name] = values.astype(int) if col.name in INT_KEYS and values.notna().all() else values
    return df


@dataclass
class Experiment:
    """One experiment folder's tables; masks are loaded lazily through `mask`."""

    storage: Storage
    rounds: pd.DataFrame
    consensus: pd.DataFrame
    similarity: pd.DataFrame | None  # None when the folder has no similarity table
    plan: PlanFile | None
    sweep_text: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.storage.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def bespoke(self) -> pd.DataFrame:
        return self.rounds[self.rounds["kind"] == TrialKind.BESPOKE.value]

    @property
    def followups(self) -> pd.DataFrame:
        return self.rounds[self.rounds["kind"].isin([k.value for k in FOLLOWUP_KINDS])]

    def mask_file(self, row) -> str:
        """A rounds row's mask (relative path): its mask_path, else the layout's location."""
        return str(row["mask_path"]) if row["mask_path"] else layout.trajectory_mask(str(row["trial_id"]),
                                                                                      int(row["round"]))

    def mask(self, rel: str) -> dict[str, np.ndarray] | None:
        """The mask at `rel`, or None (noted once) when it is missing or unreadable."""
        try:
            return _load_mask(self.storage, rel)
        except LtrayError as exc:
            missing = not self.storage.exists(rel)
            note = (f"mask file {self.storage.describe(rel)} is missing; skipped." if missing
                    else f"mask file {self.storage.describe(rel)} could not be read ({exc}); skipped.")
            if note not in self.notes:
                self.notes.append(note)
            return None


@functools.lru_cache(maxsize=32)  # big nets: ~1 byte per weight per cached mask
def _load_mask_cached(storage_uri: str, rel: str):
    from ltray.experiment.records import read_mask

    return read_mask(_storage_of(storage_uri), rel)[0].unpack()


@functools.lru_cache(maxsize=8)
def _storage_of(uri: str) -> Storage:
    return open_storage(uri)


def _load_mask(storage: Storage, rel: str):
    return _load_mask_cached(storage.uri, rel)


def load_experiment(location) -> Experiment:
    """Read the folder at `location` (path or URI); ExperimentError if it is not an experiment folder."""
    storage = open_storage(location)
    check_readable(storage)
    _load_mask_cached.cache_clear()
    notes: list[str] = []
    rounds = _read(storage, ROUNDS, notes)
    rounds = _analysis_dtypes(ROUNDS.frame([]), ROUNDS) if rounds is None else rounds
    rounds = rounds.drop_duplicates(["trial_id", "round"], keep="last")
    consensus = _read(storage, CONSENSUS, notes)
    consensus = _analysis_dtypes(CONSENSUS.frame([]), CONSENSUS) if consensus is None else consensus
    similarity = _read(storage, SIMILARITY, notes)
    plan = None
    if storage.exists(layout.PLAN):
        try:
            plan = read_plan_file(storage)
        except ExperimentError as exc:  # the message names the file first: keep what follows
            detail = str(exc).split(f"{layout.PLAN}: ", 1)[-1]
            notes.append(f"{layout.PLAN} is not an ltray plan ({detail[:100]}); ignored.")
    sweep_text = None
    try:
        sweep_text = storage.read_text(layout.SWEEP)
    except StorageError as exc:
        if not exc.missing:
            notes.append(f"{layout.SWEEP} could not be read ({exc}); ignored.")
    return Experiment(storage, rounds, consensus, similarity, plan, sweep_text, notes)


def sweep_setting(exp: Experiment, *keys: str):
    """A nested value of sweep.yaml (e.g. 'data', 'image_size'), or None if absent/unparsable."""
    if not exp.sweep_text:
        return None
    import yaml

    from ltray.yamlio import load_yaml  # bounded: a damaged sweep.yaml cannot hang or crash this

    try:
        node = load_yaml(exp.sweep_text)
    except yaml.YAMLError:
        return None
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def group_recipe(group: str, seed=None) -> str:
    """A consensus group id without its seed (its recipe), so the same recipe aggregates over seeds."""
    try:
        return GroupId.parse(group).recipe
    except ValueError:
        return group
