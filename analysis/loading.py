"""Read an experiment folder (docs/experiment-folder.md) into tidy pandas tables.

Only reads: rounds, consensus and similarity tables, plan.json and sweep.yaml. Anything absent
or unreadable (a garbage plan.json included) gives an empty table or nothing, and a note, so a
folder that is still running, or partly damaged, can be reported on.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from ltray.errors import ExperimentError, LtrayError

ROUNDS_COLUMNS = [
    "trial_id", "kind", "dataset", "arch", "technique", "seed", "round", "sparsity",
    "effective_sparsity", "train_loss", "val_acc", "test_acc", "seconds", "mask_path", "group",
    "threshold", "source", "source_round", "held_out", "leave_one_out",
]
CONSENSUS_COLUMNS = [
    "group", "name", "arch", "seed", "technique", "source_round", "threshold", "leave_out",
    "n_sources", "sources", "sparsity", "equivalent_rounds", "mask_path",
]
SIMILARITY_COLUMNS = [
    "arch", "seed", "round", "task_a", "technique_a", "trial_a", "task_b", "technique_b",
    "trial_b", "layer", "jaccard_distance",
]
# files whose presence makes a folder an experiment folder
MARKERS = ("sweep.yaml", "plan.json", "rounds.csv", "rounds.parquet", "masks")
TEXT_COLUMNS = ("trial_id", "kind", "dataset", "arch", "technique", "mask_path", "group",
                "source", "leave_out", "sources", "name", "task_a", "task_b", "technique_a",
                "technique_b", "trial_a", "trial_b", "layer")
BOOL_COLUMNS = ("held_out", "leave_one_out")
ALL_LAYERS = "__all__"  # similarity.csv's name for the whole network


def _as_bool(value) -> bool:
    """CSV round-trips booleans as True/False/1/0/'' (empty = false)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return str(value).strip().lower() in ("true", "1", "yes", "1.0")


def _read_table(root: Path, stem: str, columns: list[str], notes: list[str]) -> pd.DataFrame:
    """`stem`.csv, else `stem`.parquet, else an empty frame with the contract's columns."""
    csv, parquet = root / f"{stem}.csv", root / f"{stem}.parquet"
    try:
        if csv.is_file():
            df = pd.read_csv(csv, keep_default_na=True)
        elif parquet.is_file():
            df = pd.read_parquet(parquet)
        else:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    except (OSError, ValueError) as exc:  # pandas' parser errors are ValueErrors
        notes.append(f"{stem} table could not be read ({type(exc).__name__}: {exc}); ignored.")
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    missing = [c for c in columns if c not in df.columns]
    if missing:
        notes.append(f"{stem} table lacks column(s) {', '.join(missing)}; left empty.")
    for c in missing:
        df[c] = np.nan
    return _normalise(df)


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in TEXT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    for c in BOOL_COLUMNS:
        if c in df.columns:
            df[c] = df[c].map(_as_bool).astype(bool)
    for c in ("seed", "round", "threshold", "source_round", "n_sources"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("seed", "round"):  # keys: integers where known
        if c in df.columns and df[c].notna().all():
            df[c] = df[c].astype(int)
    return df


class _PlanPart(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the fields of plan.json this package reads


class _PlanTrajectory(_PlanPart):
    rounds: StrictInt = Field(0, ge=0)


class _PlanGroup(_PlanPart):
    group: str | None = None
    group_id: str | None = None
    thresholds: list[StrictInt] = []
    loo_thresholds: list[StrictInt] = []


class _Plan(_PlanPart):
    trajectories: list[_PlanTrajectory] = []
    groups: list[_PlanGroup] = []


def _read_plan(path: Path, notes: list[str]) -> dict | None:
    """plan.json as a dict, or None and a note when it is missing, unreadable or not a plan."""
    if not path.is_file():
        return None
    try:
        text = path.read_bytes()
    except OSError as exc:
        notes.append(f"plan.json could not be read ({exc.strerror or exc}); ignored.")
        return None
    try:  # pydantic's JSON parser: bounded depth, no RecursionError on hostile nesting
        _Plan.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        notes.append(f"plan.json is not an ltray plan ({where}: {first['msg'][:80]}); ignored.")
        return None
    return json.loads(text)


@dataclass
class Experiment:
    """One experiment folder's tables; masks are loaded lazily through `mask`."""

    root: Path
    rounds: pd.DataFrame
    consensus: pd.DataFrame
    similarity: pd.DataFrame | None  # None when similarity.csv/.parquet is absent
    plan: dict | None
    sweep_text: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def bespoke(self) -> pd.DataFrame:
        return self.rounds[self.rounds["kind"] == "bespoke"]

    @property
    def followups(self) -> pd.DataFrame:
        return self.rounds[self.rounds["kind"].isin(["pret_a_porter", "transfer", "random"])]

    def mask_file(self, row) -> Path:
        """A rounds row's mask: its mask_path, else the contract's default location."""
        if row["mask_path"]:
            return self.root / str(row["mask_path"])
        folder, r = self.root / "masks" / str(row["trial_id"]), int(row["round"])
        padded = folder / f"round_{r:02d}.ltmask"  # the runner pads; the contract does not
        return padded if padded.is_file() else folder / f"round_{r}.ltmask"

    def mask(self, path: Path) -> dict[str, np.ndarray] | None:
        """The mask at `path`, or None (noted once) when it is missing or unreadable."""
        return _load_mask_cached(str(path), self.notes)


@functools.lru_cache(maxsize=32)  # big nets: ~1 byte per weight per cached mask
def _load_mask_cached_inner(path: str):
    from ltray.masks import load_mask  # deferred: only mask-based sections need it

    return load_mask(path)


def _load_mask_cached(path: str, notes: list[str]):
    if not Path(path).is_file():
        note = f"mask file {path} is missing; skipped."
        if note not in notes:
            notes.append(note)
        return None
    try:
        return _load_mask_cached_inner(path)
    except LtrayError as exc:
        note = f"mask file {path} could not be read ({exc}); skipped."
        if note not in notes:
            notes.append(note)
        return None


def load_experiment(path: str | Path) -> Experiment:
    """Read the folder at `path`; ExperimentError if it is not an experiment folder."""
    root = Path(path)
    if not root.exists():
        raise ExperimentError(f"experiment folder {root} does not exist")
    if not root.is_dir():
        raise ExperimentError(f"{root} is not a folder (expected an experiment folder)")
    if not any((root / m).exists() for m in MARKERS):
        raise ExperimentError(
            f"{root} is not an experiment folder: none of {', '.join(MARKERS)} found")
    _load_mask_cached_inner.cache_clear()
    notes: list[str] = []
    rounds = _read_table(root, "rounds", ROUNDS_COLUMNS, notes)
    if len(rounds):
        rounds = rounds.drop_duplicates(["trial_id", "round"], keep="last")
    consensus = _read_table(root, "consensus", CONSENSUS_COLUMNS, notes)
    has_similarity = (root / "similarity.csv").is_file() or (root / "similarity.parquet").is_file()
    similarity = (_read_table(root, "similarity", SIMILARITY_COLUMNS, notes)
                  if has_similarity else None)
    plan = _read_plan(root / "plan.json", notes)
    sweep_text = None
    if (root / "sweep.yaml").is_file():
        try:
            sweep_text = (root / "sweep.yaml").read_text()
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8
            notes.append(f"sweep.yaml could not be read ({exc}); ignored.")
    return Experiment(root, rounds, consensus, similarity, plan, sweep_text, notes)


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


def group_recipe(group: str, seed) -> str:
    """A consensus group id without its seed (its recipe), so the same recipe aggregates over seeds."""
    token = f"-s{int(seed)}-"
    i = group.rfind(token)
    return group if i < 0 else group[:i] + "-" + group[i + len(token):]
