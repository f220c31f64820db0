"""The experiment's result tables: rows keyed by (trial_id, round), written atomically as CSV and
Parquet, throttled so that a long sweep does not spend its time rewriting files."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pandas as pd

from ltray.fileio import atomic_write_bytes, atomic_writer

ROUND_COLUMNS = ["trial_id", "kind", "dataset", "arch", "technique", "seed", "round", "sparsity",
                 "effective_sparsity", "train_loss", "val_acc", "test_acc", "seconds", "mask_path", "group",
                 "threshold", "source", "source_round", "held_out", "leave_one_out"]


def write_table(csv_path: Path, rows: list[dict], columns: list[str], parquet: bool = True) -> None:
    """Write rows as CSV (and Parquet beside it); each file appears whole or not at all."""
    frame = pd.DataFrame(rows, columns=columns)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    atomic_write_bytes(csv_path, buf.getvalue().encode())
    if parquet:
        with atomic_writer(Path(csv_path).with_suffix(".parquet")) as f:
            frame.to_parquet(f, index=False)


def round_row(trial_id: str, kind: str, labels: dict, metrics: dict) -> dict:
    """One rounds.csv row from a trial's labels and one round's metrics."""
    row = {c: None for c in ROUND_COLUMNS}  # missing numbers stay null (NaN), never a mixed-type ""
    row.update({"group": "", "source": ""})
    row.update({"trial_id": trial_id, "kind": kind})
    row.update({k: v for k, v in labels.items() if k in row})
    row.update({k: v for k, v in metrics.items() if k in row})
    return row


class RoundsTable:
    """rounds.csv + rounds.parquet, deduplicated on (trial_id, round)."""

    def __init__(self, exp_dir: Path, min_interval_s: float = 5.0):
        self.path = Path(exp_dir) / "rounds.csv"
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
        ordered = sorted(self.rows.values(), key=lambda r: (r["trial_id"], int(r["round"])))
        write_table(self.path, ordered, ROUND_COLUMNS)
        self._last_write = time.monotonic()
        self._dirty = False
