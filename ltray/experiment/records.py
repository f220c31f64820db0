"""One trial's own files in the experiment folder: its finished rows, its resume state, its masks,
and its completion and error markers (trials/<trial_id>/ and masks/<trial_id>/).

These files are the source of truth of a sweep: tables, the consensus actor and `--resume` are
rebuilt from them. Rows are written before the resume state, so a crash between the two only
repeats the round. Ray-free: the trainable is a thin adapter around this class.
"""

from __future__ import annotations

import json
import time

from ltray.errors import ExperimentError, MaskFileError
from ltray.experiment import layout
from ltray.experiment.labels import TrialKind, TrialLabels
from ltray.experiment.schemas import ROUNDS
from ltray.storage import Storage, StorageError
from ltray.masks.arrays import Mask
from ltray.masks.format import mask_from_bytes, mask_to_bytes
from ltray.masks.packed import PackedMask


def make_row(trial_id: str, kind: TrialKind, labels: TrialLabels, metrics: dict) -> dict:
    """One rounds-table row from a trial's labels and one round's metrics (missing numbers stay null)."""
    row = {c: None for c in ROUNDS.names}
    row.update({"group": "", "source": "", "device": ""})
    row.update({k: v for k, v in labels.as_dict().items() if k in row})
    row.update({k: v for k, v in metrics.items() if k in row})
    row.update({"trial_id": trial_id, "kind": TrialKind(kind).value})
    return row


def check_rows(doc, trial_id: str, where: str) -> list[dict]:
    """The rows of a results.json document; ExperimentError naming the file when it is not one."""
    rows = doc.get("rounds") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or doc.get("trial_id") != trial_id:
        raise ExperimentError(f"{where}: not the results of trial {trial_id}")
    for i, row in enumerate(rows):
        ok = isinstance(row, dict) and row.get("trial_id") == trial_id and isinstance(row.get("round"), int) \
            and not isinstance(row.get("round"), bool) and isinstance(row.get("mask_path"), str)
        if not ok:
            raise ExperimentError(f"{where}: rounds.{i}: not a row of trial {trial_id}")
    return [ROUNDS.upgrade_row(row) for row in rows]  # rows of folder formats 1-2 read with today's names


class TrialRecord:
    def __init__(self, storage: Storage, trial_id: str):
        self.storage = storage
        self.trial_id = trial_id

    def _file(self, name: str) -> str:
        return layout.trial_file(self.trial_id, name)

    def describe(self, name: str) -> str:
        return self.storage.describe(self._file(name))

    # ---- rows ----------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """Finished rows, in round order ([] before the first); ExperimentError if damaged."""
        data = self.storage.read_bytes_or_none(self._file(layout.TRIAL_RESULTS))
        if data is None:
            return []
        where = self.describe(layout.TRIAL_RESULTS)
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ExperimentError(f"{where}: not valid JSON") from None
        return check_rows(doc, self.trial_id, where)

    def write_rows(self, rows: list[dict]) -> None:
        rows = sorted(rows, key=lambda r: r["round"])
        doc = {"trial_id": self.trial_id, "rounds": rows}
        self.storage.write_text(self._file(layout.TRIAL_RESULTS), json.dumps(doc, indent=1, allow_nan=True))

    def add_row(self, rows: list[dict], row: dict) -> list[dict]:
        """`rows` with `row` replacing any row of its round, written; returns the new list."""
        rows = [r for r in rows if r["round"] != row["round"]] + [row]
        self.write_rows(rows)
        return rows

    # ---- resume state ---------------------------------------------------------------------
    def state_bytes(self) -> bytes | None:
        return self.storage.read_bytes_or_none(self._file(layout.TRIAL_STATE))

    def save_state(self, data: bytes) -> None:
        self.storage.write_bytes(self._file(layout.TRIAL_STATE), data)

    # ---- markers --------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.storage.exists(self._file(layout.TRIAL_DONE))

    def mark_done(self) -> None:
        self._write_json(layout.TRIAL_DONE, {"trial_id": self.trial_id, "finished": _now()})

    def mark_error(self, message: str) -> None:
        self._write_json(layout.TRIAL_ERROR, {"trial_id": self.trial_id, "error": message, "at": _now()})

    def clear_error(self) -> None:
        """A trial that starts again is running, not failed: its last failure goes."""
        self.storage.delete(self._file(layout.TRIAL_ERROR))

    def error(self) -> str | None:
        """The last failure's message (first line), if one was recorded and no completion since."""
        data = self.storage.read_bytes_or_none(self._file(layout.TRIAL_ERROR))
        if data is None:
            return None
        try:
            doc = json.loads(data)
            text = doc.get("error") or doc.get("message") or ""
        except (ValueError, AttributeError, RecursionError):
            return f"(unreadable {layout.TRIAL_ERROR})"
        return str(text).strip().splitlines()[0] if str(text).strip() else ""

    def _write_json(self, name: str, doc: dict) -> None:
        self.storage.write_text(self._file(name), json.dumps(doc, indent=1))

    def forget(self) -> None:
        """Delete the trial's files and masks: it will be trained again from scratch."""
        self.storage.delete_tree(layout.trial_dir(self.trial_id))
        self.storage.delete_tree(layout.mask_dir(self.trial_id))

    # ---- masks ----------------------------------------------------------------------------
    def save(self, round_: int, mask: Mask, meta: dict) -> str:
        """Write a trajectory round's mask; return its path in the experiment (a MaskSink)."""
        rel = layout.trajectory_mask(self.trial_id, round_)
        self.storage.write_bytes(rel, mask_to_bytes(mask, meta, self.storage.describe(rel)))
        return rel

    def save_ticket(self, mask: Mask, meta: dict) -> str:
        rel = layout.ticket_mask(self.trial_id)
        self.storage.write_bytes(rel, mask_to_bytes(mask, meta, self.storage.describe(rel)))
        return rel


def scan_trials(storage: Storage) -> dict[str, set[str]]:
    """trial id -> names of its files under trials/ (one listing of the whole folder)."""
    out: dict[str, set[str]] = {}
    for path in storage.walk(layout.TRIALS):
        trial, _, name = path.partition("/")
        if name and "/" not in name:
            out.setdefault(trial, set()).add(name)
    return out


def finished_trials(storage: Storage) -> set[str]:
    return {t for t, names in scan_trials(storage).items() if layout.TRIAL_DONE in names}


def all_rows(storage: Storage, trials: dict[str, set[str]] | None = None) -> tuple[list[dict], list[str]]:
    """Every trial's rows, and one line per results.json that could not be read."""
    rows, problems = [], []
    for trial, names in sorted((trials if trials is not None else scan_trials(storage)).items()):
        if layout.TRIAL_RESULTS not in names:
            continue
        try:
            rows += TrialRecord(storage, trial).rows()
        except ExperimentError as e:
            problems.append(str(e))
    return rows, problems


def read_mask(storage: Storage, rel: str) -> tuple[PackedMask, dict]:
    """A mask of the experiment (checksum verified); MaskFileError naming it otherwise."""
    where = storage.describe(rel)
    try:
        data = storage.read_bytes(rel)
    except StorageError as e:
        raise MaskFileError(f"{where}: {'mask file not found' if e.missing else e}") from None
    return mask_from_bytes(data, where)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
