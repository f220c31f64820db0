"""The result tables' schemas: columns, their types and meaning, shared by the writers (driver,
consensus actor) and the readers (status, analysis, users' pandas). docs/experiment-folder.md
lists the same columns; a test checks they agree.

A table is written as CSV and Parquet from one typed frame; readers get the same dtypes from
either file: text as str ("" when absent), integers as nullable Int64, floats, nullable booleans.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pandas as pd

from ltray.experiment import layout

KINDS = ("str", "int", "float", "bool")
_DTYPES = {"int": "Int64", "float": "float64", "bool": "boolean"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of KINDS
    doc: str


@dataclass(frozen=True)
class TableSchema:
    stem: str  # file name without suffix: <stem>.csv, <stem>.parquet
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # rows are unique on these
    renamed: tuple[tuple[str, str], ...] = ()  # (old name, name): columns of older folder formats

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def csv(self) -> str:
        return layout.csv(self.stem)

    @property
    def parquet(self) -> str:
        return layout.parquet(self.stem)

    def frame(self, data: list[dict] | dict[str, list]) -> pd.DataFrame:
        """A typed frame from rows (dicts) or columns (name -> values), in this column order."""
        if isinstance(data, dict):
            df = pd.DataFrame({c: data.get(c, [None] * _length(data)) for c in self.names})
        else:
            df = pd.DataFrame([{c: row.get(c) for c in self.names} for row in data], columns=self.names)
        return self.normalize(df)

    def normalize(self, df: pd.DataFrame) -> pd.DataFrame:
        """Columns in order with their dtypes; missing ones are added empty, extra ones kept last."""
        out = pd.DataFrame(index=df.index)
        for col in self.columns:
            values = df[col.name] if col.name in df.columns else pd.Series([None] * len(df), index=df.index)
            out[col.name] = _coerce(values, col.kind)
        extra = [c for c in df.columns if c not in out.columns]
        return pd.concat([out, df[extra]], axis=1) if extra else out

    def to_csv_bytes(self, df: pd.DataFrame) -> bytes:
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue().encode("utf-8")

    def to_parquet_bytes(self, df: pd.DataFrame) -> bytes:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()

    def read_csv_bytes(self, data: bytes) -> pd.DataFrame:
        return self._checked(pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False))

    def read_parquet_bytes(self, data: bytes) -> pd.DataFrame:
        return self._checked(pd.read_parquet(io.BytesIO(data)))

    def upgrade_row(self, row: dict) -> dict:
        """A row written by an older folder format, with today's column names."""
        for old, new in self.renamed:
            if old in row and new not in row:
                row = {(new if k == old else k): v for k, v in row.items()}
        return row

    def _checked(self, df: pd.DataFrame) -> pd.DataFrame:
        """A table without this schema's key columns is not this table (columns added by later
        versions may be missing from older files: they read as empty; renamed ones are renamed)."""
        df = df.rename(columns={old: new for old, new in self.renamed if old in df.columns and new not in df.columns})
        missing = [c for c in self.key if c not in df.columns]
        if missing:
            raise ValueError(f"no column {missing[0]!r}")
        return self.normalize(df)


def _length(columns: dict[str, list]) -> int:
    return max((len(v) for v in columns.values()), default=0)


def _coerce(values: pd.Series, kind: str) -> pd.Series:
    if kind == "str":
        return values.astype(object).where(values.notna(), "").astype(str)
    if kind == "bool":
        return values.map(_as_bool).astype("boolean")
    numbers = pd.to_numeric(values.replace("", None), errors="coerce")
    if kind == "int":
        whole = numbers.where(numbers.isna() | (numbers == numbers.round()))
        return whole.astype("Int64")
    return numbers.astype("float64")


def _as_bool(value):
    """CSV writes booleans as True/False; '' or NaN is unknown (bespoke rows have no held_out)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return pd.NA
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "1.0", "yes"):
        return True
    if text in ("false", "0", "0.0", "no"):
        return False
    return pd.NA


def _table(stem: str, key: tuple[str, ...], *columns: tuple[str, str, str],
           renamed: tuple[tuple[str, str], ...] = ()) -> TableSchema:
    return TableSchema(stem, tuple(Column(*c) for c in columns), key, renamed)


ROUNDS = _table(
    "rounds", ("trial_id", "round"),
    ("trial_id", "str", "stable trial id (folder name under `masks/` and `trials/`)"),
    ("kind", "str", "`bespoke` (an iterative-pruning trajectory), `pret_a_porter` (a consensus ticket), "
                    "`random` (a random ticket with the consensus ticket's per-layer sparsity), `transfer` "
                    "(a source's bespoke ticket at the matched sparsity)"),
    ("task", "str", "the task trained on (a task name from the sweep file: a dataset or a view of one; "
                    "folder formats 1-2 called this column `dataset`)"),
    ("arch", "str", "architecture"),
    ("technique", "str", "pruning technique (follow-ups: the group's)"),
    ("seed", "int", "seed (same seed = same initial weights)"),
    ("round", "int", "trajectory round (0 = dense); follow-ups: 0"),
    ("sparsity", "float", "fraction of the mask's weights (every conv and linear weight) masked out; layers kept dense count as unpruned"),
    ("effective_sparsity", "float", "the same, also counting weights disconnected by pruned neighbours"),
    ("train_loss", "float", "mean training loss over the round's last epoch"),
    ("val_acc", "float", "accuracy on the held-out 20% of the train set, in [0, 1]"),
    ("test_acc", "float", "accuracy on the test set, in [0, 1]"),
    ("seconds", "float", "wall-clock seconds of the round (training and evaluation)"),
    ("mask_path", "str", "path of the mask, relative to the experiment folder"),
    ("group", "str", "follow-ups: the consensus group id; empty for bespoke rows"),
    ("threshold", "int", "follow-ups: the vote threshold k of the consensus ticket"),
    ("source", "str", "`transfer`: the source task of the bespoke ticket; `pret_a_porter` with "
                      "leave-one-out: the task left out"),
    ("source_round", "int", "follow-ups: the round of the source mask(s)"),
    ("held_out", "bool", "follow-ups: true when the target is not one of the group's sources"),
    ("leave_one_out", "bool", "follow-ups: true for leave-one-out consensus tickets"),
    ("device", "str", "where the round ran: `cpu`, or `cuda:<i> (<GPU model>)`"),
    renamed=(("dataset", "task"),),
)

CONSENSUS = _table(
    "consensus", ("group", "threshold", "leave_out"),
    ("group", "str", "group id `<name>-<arch>-s<seed>-<technique>-r<source_round>`"),
    ("name", "str", "the group's name in the sweep file"),
    ("arch", "str", "architecture of the sources"),
    ("seed", "int", "seed of the sources"),
    ("technique", "str", "pruning technique of the sources"),
    ("source_round", "int", "round of the source masks"),
    ("threshold", "int", "votes needed to keep a weight (k of n_sources)"),
    ("leave_out", "str", "the task left out (leave-one-out), empty otherwise"),
    ("n_sources", "int", "number of source masks"),
    ("sources", "str", "their tasks, `;`-separated"),
    ("sparsity", "float", "fraction of the mask's weights (every conv and linear weight) masked out; layers kept dense count as unpruned"),
    ("equivalent_rounds", "float", "rounds of sequential pruning that would reach this sparsity: "
                                   "log(1-sparsity)/log(1-fraction)"),
    ("mask_path", "str", "relative path of the consensus mask"),
)

SIMILARITY = _table(
    "similarity", ("trial_a", "trial_b", "round", "layer"),
    ("arch", "str", "architecture of both masks"),
    ("seed", "int", "seed of both masks"),
    ("round", "int", "round of both masks"),
    ("task_a", "str", "first mask: task"),
    ("technique_a", "str", "first mask: technique"),
    ("trial_a", "str", "first mask: trial id"),
    ("task_b", "str", "second mask: task"),
    ("technique_b", "str", "second mask: technique"),
    ("trial_b", "str", "second mask: trial id"),
    ("layer", "str", "a parameter name, or `__all__` for the whole network"),
    ("jaccard_distance", "float", "1 - |A and B| / |A or B|, in [0, 1]; 0 when both sets are empty"),
)

SCHEMAS = {s.stem: s for s in (ROUNDS, CONSENSUS, SIMILARITY)}
ALL_LAYERS = "__all__"  # similarity's name for the whole network
