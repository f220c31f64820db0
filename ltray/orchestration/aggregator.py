"""The rolling cross-task consensus, as a plain class (the Ray actor in `actor.py` wraps it).

It receives mask paths as rounds finish, keeps vote counts per consensus group and pairwise
similarities (`similarity.py`), writes each group's consensus masks once its sources are all in,
and knows which follow-up trials are ready. Its state is a journal in the experiment folder
(ltray.experiment.journal): a restarted aggregator replays it and loses nothing; adding the same
mask twice changes nothing. A damaged mask is reported in `problems` and left unregistered until a
repaired copy is sent again; a damaged journal record is skipped (in `notes`: the driver sends
every mask again). Neither is raised at the caller.

Costs per mask stay flat as the plan grows: masks stay packed (1 bit per weight), similarity
partners come from an index, and a group's follow-up configs are rebuilt only when one of its
sources reports a new round.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

from ltray.errors import MaskFileError
from ltray.experiment import layout
from ltray.experiment.journal import Journal
from ltray.experiment.schemas import CONSENSUS, SIMILARITY
from ltray.storage import Storage
from ltray.experiment.tables import write_table
from ltray.masks.packed import PackedMask
from ltray.masks.votes import VoteCounts
from ltray.orchestration.consensus_files import write_group_consensus
from ltray.orchestration.mask_cache import MaskCache
from ltray.experiment.plan_file import PlannedGroup
from ltray.orchestration.plan import Plan, TrialSpec, group_followups
from ltray.orchestration.similarity import SimilarityIndex, journal_entries, replayed_pairs

FLUSH_DUTY = 20  # maybe_flush waits 20x a write's duration: periodic writes take <= 5% of the actor


@dataclass(frozen=True)
class ConsensusStatus:
    """Where the consensus stands: what the driver's progress and exit status read."""

    masks: int  # trajectory masks registered
    groups_complete: int
    groups: int
    consensus_sparsity: dict[str, float]  # complete group -> its sparsest consensus mask's sparsity
    problems: list[str]  # masks still unreadable: their groups cannot complete until retrained
    notes: list[str]  # damaged journal records skipped (their masks are sent again)


class ConsensusAggregator:
    def __init__(self, storage: Storage, plan: Plan):
        self.storage = storage
        self.plan = plan
        self.labels = {t.trial_id: t.labels for t in plan.trajectories}
        self.groups = {g.group_id: g for g in plan.groups}
        self.groups_of_source: dict[tuple[str, int], list[PlannedGroup]] = defaultdict(list)
        for g in plan.groups:
            for tid in g.source_trials.values():
                self.groups_of_source[(tid, g.source_round)].append(g)
        self.similarity = SimilarityIndex(self.labels, {t.trial_id: i for i, t in enumerate(plan.trajectories)})
        self.masks = MaskCache(storage)
        self.journal = Journal(storage, layout.JOURNAL)
        self.rounds: dict[str, dict[int, float]] = defaultdict(dict)  # trial -> round -> sparsity
        self.paths: dict[tuple[str, int], str] = {}
        self.votes: dict[str, VoteCounts] = {}
        self.voted: dict[str, set[str]] = defaultdict(set)
        self.complete: dict[str, dict[int, float]] = {}  # group -> threshold -> consensus sparsity
        self.consensus_rows: list[dict] = []
        self.damaged: dict[tuple[str, int], str] = {}  # masks that could not be read, until one is
        self.notes: list[str] = []  # damaged journal records (their masks are sent again)
        self._followups: dict[str, tuple[tuple, list[TrialSpec]]] = {}  # group -> (sources' round counts, trials)
        self._flushed_pairs = -1
        self._last_write, self._write_seconds = float("-inf"), 0.0
        self._replay()

    # ---- updates ---------------------------------------------------------------------------
    def add_mask(self, trial_id: str, round_: int, mask_path: str) -> list[str]:
        """Register one trajectory round's mask; return the ids of groups it completed."""
        if (trial_id, round_) in self.paths or trial_id not in self.labels:
            return []
        try:
            mask = self.masks.get(mask_path)
            self._check_layout(trial_id, round_, mask)
            pairs = self.similarity.compare(trial_id, round_, mask, self._partner)
        except MaskFileError as e:
            self.damaged[(trial_id, round_)] = f"{e}; its trial's round {round_} must be retrained (run --resume)"
            return []
        record = {"trial": trial_id, "round": round_, "path": mask_path, "sparsity": mask.sparsity()}
        if pairs:
            record.update(journal_entries(pairs, mask.layout.names))
        self.journal.append(record)  # durable before anything is derived from it
        self._register(trial_id, round_, mask_path, record["sparsity"], pairs)
        return self._vote(trial_id, round_, mask)

    def _partner(self, trial_id: str, round_: int) -> PackedMask:
        return self.masks.get(self.paths[(trial_id, round_)])

    def _register(self, trial_id, round_, path, spars, pairs) -> None:
        self.damaged.pop((trial_id, round_), None)
        self.paths[(trial_id, round_)] = path
        self.rounds[trial_id][round_] = spars
        self.similarity.register(trial_id, round_, pairs)

    def _check_layout(self, trial_id: str, round_: int, mask: PackedMask) -> None:
        for g in self.groups_of_source.get((trial_id, round_), []):
            counts = self.votes.get(g.group_id)
            if counts is not None and mask.layout != counts.layout:
                raise MaskFileError(f"{self.storage.describe(layout.trajectory_mask(trial_id, round_))}: its layers "
                                    f"differ from those of the other sources of consensus group {g.group_id}")

    def _vote(self, trial_id: str, round_: int, mask: PackedMask) -> list[str]:
        done = []
        for g in self.groups_of_source.get((trial_id, round_), []):
            if trial_id in self.voted[g.group_id]:
                continue
            self.votes.setdefault(g.group_id, VoteCounts(mask.layout.shape_dict())).add_packed(mask.bits)
            self.voted[g.group_id].add(trial_id)
            if len(self.voted[g.group_id]) == len(g.source_trials):
                self._write_consensus(g)
                done.append(g.group_id)
        return done

    def _write_consensus(self, g: PlannedGroup) -> None:
        own = lambda tid: self.masks.get(self.paths[(tid, g.source_round)]).bits  # noqa: E731
        result, rows = write_group_consensus(self.storage, g, self.votes[g.group_id], own,
                                             self.plan.sweep.prune.fraction)
        self.complete[g.group_id] = result
        self.consensus_rows = [r for r in self.consensus_rows if r["group"] != g.group_id] + rows
        write_table(self.storage, CONSENSUS, self.consensus_rows)

    @property
    def problems(self) -> list[str]:
        """Masks that are still unreadable: their groups cannot complete until they are retrained."""
        return sorted(self.damaged.values())

    # ---- queries -----------------------------------------------------------------------------
    def ready_followups(self) -> list[TrialSpec]:
        """Every follow-up trial that can run now (the searcher drops those it launched)."""
        out = []
        for gid, spars in self.complete.items():
            group = self.groups[gid]
            key = tuple(len(self.rounds.get(tid, ())) for tid in group.source_trials.values())
            cached = self._followups.get(gid)
            if cached is None or cached[0] != key:  # a source reported a round: transfers may be ready
                cached = self._followups[gid] = (key, group_followups(self.plan.sweep, group, spars, self.rounds))
            out.extend(cached[1])
        return out

    def status(self) -> ConsensusStatus:
        return ConsensusStatus(masks=len(self.paths), groups_complete=len(self.complete), groups=len(self.groups),
                               consensus_sparsity={g: min(s.values()) for g, s in self.complete.items() if s},
                               problems=self.problems, notes=list(self.notes))

    def flush(self) -> None:
        """Write the similarity table (when pairs were added since) and compact the journal."""
        start = time.monotonic()
        if len(self.similarity.pairs) != self._flushed_pairs:
            write_table(self.storage, SIMILARITY, self.similarity.columns())
            self._flushed_pairs = len(self.similarity.pairs)
        self.journal.compact()
        self._last_write, self._write_seconds = time.monotonic(), time.monotonic() - start

    def maybe_flush(self, min_interval_s: float = 10.0) -> bool:
        """flush() unless the last one was less than max(min_interval_s, FLUSH_DUTY x its own
        duration) ago: the table grows to millions of rows on full.yaml, and periodic writes
        must not keep the actor from its masks."""
        if time.monotonic() - self._last_write < max(min_interval_s, FLUSH_DUTY * self._write_seconds):
            return False
        self.flush()
        return True

    # ---- persistence ---------------------------------------------------------------------------
    def _replay(self) -> None:
        replay = self.journal.replay()
        self.notes += [f"{problem} (its mask is sent again by the driver)" for problem in replay.problems]
        for rec in replay.records:
            try:
                trial, round_, path, spars = rec["trial"], int(rec["round"]), str(rec["path"]), float(rec["sparsity"])
                pairs = replayed_pairs(self.similarity, trial, round_, rec)
            except (KeyError, TypeError, ValueError, IndexError):
                self.notes.append(f"{self.storage.describe(layout.JOURNAL)}: a record lacks its fields; skipped")
                continue
            if (trial, round_) in self.paths or trial not in self.labels:
                continue
            mask = None
            if self.groups_of_source.get((trial, round_)):
                try:
                    mask = self.masks.get(path)
                except MaskFileError as e:
                    self.damaged[(trial, round_)] = f"{e}; its trial's round {round_} must be retrained (run --resume)"
                    continue
            self._register(trial, round_, path, spars, pairs)
            if mask is not None:
                self._vote(trial, round_, mask)
