"""Writing and reading the result tables: CSV and Parquet from one typed frame, each file whole
(atomic writes), the rounds table deduplicated on (trial_id, round) and throttled so that a long
sweep does not spend its time rewriting files."""

from __future__ import annotations

import time

import pandas as pd

from ltray.errors import ExperimentError
from ltray.experiment.schemas import ROUNDS, TableSchema
from ltray.storage import Storage, StorageError


def write_table(storage: Storage, schema: TableSchema, data: list[dict] | dict[str, list]) -> None:
    """`<stem>.csv` then `<stem>.parquet`, from rows or columns."""
    frame = schema.frame(data)
    storage.write_bytes(schema.csv, schema.to_csv_bytes(frame))
    storage.write_bytes(schema.parquet, schema.to_parquet_bytes(frame))


def read_table(storage: Storage, schema: TableSchema) -> pd.DataFrame | None:
    """The table (Parquet preferred: typed and faster; CSV otherwise), None when neither exists.

    ExperimentError naming the file when what exists cannot be read."""
    problems = []
    for name, parse in ((schema.parquet, schema.read_parquet_bytes), (schema.csv, schema.read_csv_bytes)):
        try:
            data = storage.read_bytes(name)
        except StorageError as e:
            if e.missing:
                continue
            problems.append(str(e))
            continue
        try:
            return parse(data)
        except Exception as e:  # noqa: BLE001 - pandas/pyarrow parsers raise many types
            problems.append(f"{storage.describe(name)}: not a readable {schema.stem} table ({str(e)[:100]})")
    if problems:
        raise ExperimentError("; ".join(problems))
    return None


def device_counts(devices) -> dict[str, int]:
    """Rounds per device (the rounds table's `device` column): provenance.json records them and
    `ltray status` shows them. A row without a device counts as 'unknown'."""
    counts: dict[str, int] = {}
    for device in devices:
        key = str(device) if device not in (None, "") and device == device else "unknown"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


class RoundsTable:
    """rounds.csv + rounds.parquet, one row per (trial_id, round)."""

    def __init__(self, storage: Storage, min_interval_s: float = 5.0):
        self.storage = storage
        self.rows: dict[tuple[str, int], dict] = {}
        self.min_interval_s = min_interval_s
        self._last_write = 0.0
        self._dirty = False

    def add(self, row: dict) -> None:
        self.rows[(row["trial_id"], int(row["round"]))] = row
        self._dirty = True

    def flush(self, force: bool = False) -> None:
        if not self._dirty or (not force and time.monotonic() - self._last_write < self.min_interval_s):
            return
        ordered = [self.rows[k] for k in sorted(self.rows)]
        write_table(self.storage, ROUNDS, ordered)
        self._last_write = time.monotonic()
        self._dirty = False
