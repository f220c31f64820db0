"""An append-only journal that works where files cannot be appended to (object stores).

Each record is written as its own small file (`r<seq>.json`), which is atomic on every store;
`compact()` later folds the loose records into one segment (`s<first>-<last>.jsonl`) and deletes
them, and merges segments once there are many, so a replay reads a few files, not thousands.
Every record carries a SHA-256 of its content: a torn, garbled or edited record is skipped and
reported once (compaction drops it), never half-applied. Replays are ordered by sequence number
and deduplicated, so a crash between writing a segment and deleting its sources costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ltray.experiment import layout
from ltray.storage import Storage, StorageError

MAX_SEGMENTS = 8  # more than this and compact() merges them all into one


def _canonical(seq: int, rec: dict) -> str:
    return json.dumps({"seq": seq, "rec": rec}, sort_keys=True, separators=(",", ":"))


def encode_record(seq: int, rec: dict) -> str:
    body = _canonical(seq, rec)
    return json.dumps({"seq": seq, "rec": rec, "sha256": hashlib.sha256(body.encode()).hexdigest()},
                      separators=(",", ":"))


def decode_record(line: str) -> tuple[int, dict] | None:
    """(seq, record), or None when the line is not a whole, untouched record."""
    try:
        doc = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("rec"), dict):
        return None
    seq = doc.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return None
    if doc.get("sha256") != hashlib.sha256(_canonical(seq, doc["rec"]).encode()).hexdigest():
        return None
    return seq, doc["rec"]


@dataclass
class Replay:
    records: list[dict] = field(default_factory=list)  # in sequence order, each once
    problems: list[str] = field(default_factory=list)  # "<file>: <what was skipped>"


class Journal:
    def __init__(self, storage: Storage, folder: str):
        self.storage = storage
        self.folder = folder
        self._next = 0
        self._loose: dict[int, str] = {}  # seq -> file name of records not yet in a segment
        self._segments: list[str] = []
        self._bad: list[str] = []  # files holding only damaged records, dropped by the next compact()

    def _rel(self, name: str) -> str:
        return f"{self.folder}/{name}"

    def replay(self) -> Replay:
        """Read every record; remember the files so that appends and compaction continue them."""
        out, by_seq = Replay(), {}
        names = self.storage.list_dir(self.folder)
        self._segments = [n for n in names if layout.is_journal_segment(n)]
        self._loose, self._bad = {}, []
        for name in self._segments:
            text = self._read(name, out)
            lines = text.split("\n") if text is not None else []
            damaged = 0
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                got = decode_record(line)
                if got is None:
                    damaged += 1
                    out.problems.append(f"{self.storage.describe(self._rel(name))}: line {i + 1} is damaged; skipped")
                    continue
                by_seq.setdefault(got[0], got[1])
            if damaged:
                self._bad.append(name)  # rewritten without the damaged lines by the next compact()
        for name in names:
            if not layout.is_journal_record(name):
                continue
            text = self._read(name, out)
            got = decode_record(text) if text is not None else None
            if got is None:
                out.problems.append(f"{self.storage.describe(self._rel(name))}: damaged record; skipped")
                self._bad.append(name)
                continue
            by_seq.setdefault(got[0], got[1])
            self._loose[got[0]] = name
        out.records = [by_seq[s] for s in sorted(by_seq)]
        self._next = max(by_seq, default=-1) + 1
        return out

    def _read(self, name: str, out: Replay) -> str | None:
        try:
            return self.storage.read_bytes(self._rel(name)).decode("utf-8", errors="replace")
        except StorageError as e:
            if not e.missing:
                raise
            return None  # deleted by a concurrent compaction: its records are in a segment

    def append(self, rec: dict) -> int:
        """Write one record durably (one atomic file); return its sequence number."""
        seq = self._next
        name = layout.journal_record(seq)
        self.storage.write_text(self._rel(name), encode_record(seq, rec) + "\n")
        self._loose[seq] = name
        self._next = seq + 1
        return seq

    def compact(self) -> bool:
        """Fold loose records (and, past MAX_SEGMENTS, all segments) into one new segment."""
        merge_all = len(self._segments) >= MAX_SEGMENTS or any(b in self._segments for b in self._bad)
        if not self._loose and not merge_all and not self._bad:
            return False
        sources = (list(self._segments) if merge_all else []) + [self._loose[s] for s in sorted(self._loose)]
        lines: dict[int, str] = {}
        for name in sources:
            text = self._read(name, Replay()) or ""
            for line in text.split("\n"):
                got = decode_record(line) if line.strip() else None
                if got is not None:
                    lines.setdefault(got[0], encode_record(*got))
        if lines:
            first, last = min(lines), max(lines)
            segment = layout.journal_segment(first, last)
            self.storage.write_text(self._rel(segment), "".join(lines[s] + "\n" for s in sorted(lines)))
        else:
            segment = None
        for name in sources + self._bad:  # after the segment exists: a crash here only leaves duplicates
            if name != segment:
                self.storage.delete(self._rel(name))
        kept = [s for s in self._segments if s not in sources and s not in self._bad]
        self._segments = kept + ([segment] if segment else [])
        self._loose, self._bad = {}, []
        return True
