"""The rolling cross-task consensus, as a plain class (the Ray actor in `actor.py` wraps it).

It receives mask paths as rounds finish, keeps vote counts per consensus group and pairwise
Jaccard statistics, writes each group's consensus masks once its sources are all in, and knows
which follow-up trials are ready. Its state is an append-only journal in the experiment folder:
a restarted aggregator replays it and loses nothing; adding the same mask twice changes nothing.

Costs per mask stay flat as the plan grows: masks stay packed (1 bit per weight, never unpacked
for votes or similarities), similarity partners come from an index by (arch, seed, round), and
each group's follow-up configs are rebuilt only when one of its sources reports a new round.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict, defaultdict
from pathlib import Path

from ltray.consensus import VoteCounts, equivalent_rounds, random_ticket_like
from ltray.fileio import atomic_write_text
from ltray.masks import save_mask
from ltray.masks.format import load_packed_mask, save_packed_mask
from ltray.masks.packed import PackedMask, shared_layer_jaccard
from ltray.seeding import derive_seed
from ltray.sweep.plan import GroupInstance, Plan, group_followups
from ltray.sweep.tables import write_table

CONSENSUS_COLUMNS = ["group", "name", "arch", "seed", "technique", "source_round", "threshold", "leave_out",
                     "n_sources", "sources", "sparsity", "equivalent_rounds", "mask_path"]
SIMILARITY_COLUMNS = ["arch", "seed", "round", "task_a", "technique_a", "trial_a", "task_b", "technique_b",
                      "trial_b", "layer", "jaccard_distance"]
FSYNC_INTERVAL_S = 1.0  # journal fsyncs at most this often (one costs ~5 ms on a local disk, more on NFS)
FLUSH_DUTY = 20  # maybe_flush waits 20x a write's duration: periodic writes take <= 5% of the actor
CACHE_BYTES = 256 << 20  # packed masks kept for later similarity partners (a VGG11 mask is 16 MB)


class ConsensusAggregator:
    def __init__(self, exp_dir: str | Path, plan: Plan):
        self.exp_dir = Path(exp_dir)
        self.plan = plan
        self.labels = {t.trial_id: t.labels for t in plan.trajectories}
        self.groups = {g.group_id: g for g in plan.groups}
        self.groups_of_source: dict[tuple[str, int], list[GroupInstance]] = defaultdict(list)
        for g in plan.groups:
            for tid in g.sources.values():
                self.groups_of_source[(tid, g.source_round)].append(g)
        self.order = {t.trial_id: i for i, t in enumerate(plan.trajectories)}  # plan order of partners
        self.journal_path = self.exp_dir / "actor" / "journal.jsonl"
        self.rounds: dict[str, dict[int, float]] = defaultdict(dict)  # trial -> round -> sparsity
        self.paths: dict[tuple[str, int], str] = {}
        self.by_bucket: dict[tuple, list[str]] = defaultdict(list)  # (arch, seed, round) -> trials with a mask
        self.votes: dict[str, VoteCounts] = {}
        self.voted: dict[str, set[str]] = defaultdict(set)
        self.complete: dict[str, dict[int, float]] = {}  # group -> threshold -> consensus sparsity
        self.consensus_rows: list[dict] = []
        # one entry per mask pair: (trial_a, trial_b, round, layer names, distances per layer + __all__)
        self.similarity_pairs: list[tuple[str, str, int, tuple[str, ...], list[float]]] = []
        self._followups: dict[str, tuple[tuple, list[dict]]] = {}  # group -> (sources' round counts, configs)
        self._cache: OrderedDict[str, PackedMask] = OrderedDict()
        self._cache_bytes = 0
        self._flushed_pairs = -1
        self._names: dict[tuple, tuple] = {}
        self._last_fsync = float("-inf")
        self._last_write, self._write_seconds = float("-inf"), 0.0
        self._replay()

    # ---- updates ---------------------------------------------------------------------------
    def add_mask(self, trial_id: str, round_: int, mask_path: str) -> list[str]:
        """Register one trajectory round's mask; return the ids of groups it completed."""
        if (trial_id, round_) in self.paths or trial_id not in self.labels:
            return []
        mask = self._load(mask_path)
        sims = self._similarity(trial_id, round_, mask)
        completed = self._vote(trial_id, round_, mask)
        self._register(trial_id, round_, mask_path, mask.sparsity(), sims)
        record = {"trial": trial_id, "round": round_, "path": mask_path, "sparsity": self.rounds[trial_id][round_]}
        if sims:  # distances only: the rows' labels come from the plan on replay
            full = (*mask.layout.names, "__all__")
            record["layers"] = list(full)
            record["sim"] = [[other, dists] if layers == full else [other, dists, list(layers)]
                             for _, other, _, layers, dists in sims]
        with open(self.journal_path, "a") as f:  # one line per mask; a torn last line is ignored
            f.write(json.dumps(record) + "\n")
            f.flush()  # enough if the actor dies: the OS keeps the line
            if time.monotonic() - self._last_fsync >= FSYNC_INTERVAL_S:  # a machine crash loses <= 1 s of
                os.fsync(f.fileno())  # lines, and the driver re-sends every mask on --resume anyway
                self._last_fsync = time.monotonic()
        return completed

    def _register(self, trial_id, round_, path, spars, sims) -> None:
        self.paths[(trial_id, round_)] = path
        self.rounds[trial_id][round_] = spars
        lab = self.labels[trial_id]
        self.by_bucket[(lab["arch"], lab["seed"], round_)].append(trial_id)
        self.similarity_pairs.extend(sims)

    def _vote(self, trial_id: str, round_: int, mask: PackedMask) -> list[str]:
        done = []
        for g in self.groups_of_source.get((trial_id, round_), []):
            if trial_id in self.voted[g.group_id]:
                continue
            counts = self.votes.setdefault(g.group_id, VoteCounts(mask.layout.shape_dict()))
            if mask.layout != counts.layout:
                raise ValueError(f"mask of {trial_id} round {round_}: its layers differ from those of the other "
                                 f"sources of group {g.group_id}")
            counts.add_packed(mask.bits)
            self.voted[g.group_id].add(trial_id)
            if len(self.voted[g.group_id]) == len(g.sources):
                self._write_consensus(g)
                done.append(g.group_id)
        return done

    def _write_consensus(self, g: GroupInstance) -> None:
        counts = self.votes[g.group_id]
        rows, result = [], {}
        for k in g.thresholds:
            mask = PackedMask(counts.layout, counts.consensus_packed(k))
            save_packed_mask(self.exp_dir / g.consensus_path(k), mask, meta={"group": g.group_id, "threshold": k})
            if g.random_baseline:
                rnd = random_ticket_like(mask.unpack(), derive_seed(g.seed, g.group_id, k))
                save_mask(self.exp_dir / g.random_path(k), rnd, meta={"group": g.group_id, "random_of": k})
            result[k] = mask.sparsity()
            rows.append(self._consensus_row(g, k, "", result[k], g.consensus_path(k)))
        for k in g.loo_thresholds:
            for task, tid in g.sources.items():
                if task not in g.targets:
                    continue
                own = self._load(self.paths.get((tid, g.source_round)) or _mask_rel(tid, g.source_round))
                mask = PackedMask(counts.layout, counts.leave_one_out_packed(own.bits, k))
                save_packed_mask(self.exp_dir / g.loo_path(k, task), mask,
                                 meta={"group": g.group_id, "leave_out": task})
                rows.append(self._consensus_row(g, k, task, mask.sparsity(), g.loo_path(k, task)))
        self.complete[g.group_id] = result
        self.consensus_rows = [r for r in self.consensus_rows if r["group"] != g.group_id] + rows
        write_table(self.exp_dir / "consensus.csv", self.consensus_rows, CONSENSUS_COLUMNS, parquet=False)

    def _consensus_row(self, g: GroupInstance, k: int, leave_out: str, spars: float, path: str) -> dict:
        n = len(g.sources) - bool(leave_out)
        return {"group": g.group_id, "name": g.name, "arch": g.arch, "seed": g.seed, "technique": g.technique,
                "source_round": g.source_round, "threshold": k, "leave_out": leave_out, "n_sources": n,
                "sources": ";".join(s for s in g.sources if s != leave_out), "sparsity": spars,
                "equivalent_rounds": equivalent_rounds(spars, self.plan.sweep.prune.fraction), "mask_path": path}

    def _similarity(self, trial_id: str, round_: int, mask: PackedMask) -> list[tuple]:
        """Jaccard distances to earlier masks of the same arch, seed and round sharing a task or
        technique: (trial, other, round, layer names, distances per layer then '__all__')."""
        me = self.labels[trial_id]
        partners = sorted(self.by_bucket.get((me["arch"], me["seed"], round_), ()), key=self.order.__getitem__)
        out = []
        for other in partners:
            lab = self.labels[other]
            if other == trial_id or (lab["dataset"] != me["dataset"] and lab["technique"] != me["technique"]):
                continue
            dists = shared_layer_jaccard(mask, self._load(self.paths[(other, round_)]))
            layers = self._names.setdefault(tuple(dists), tuple(dists))  # one tuple per layout, shared
            out.append((trial_id, other, round_, layers, list(dists.values())))
        return out

    @property
    def similarity_rows(self) -> list[dict]:
        """similarity.csv's rows, one dict per mask pair and layer (built on demand)."""
        cols = self._similarity_columns()
        return [dict(zip(SIMILARITY_COLUMNS, values)) for values in zip(*(cols[c] for c in SIMILARITY_COLUMNS))]

    def _similarity_columns(self) -> dict[str, list]:
        """similarity.csv as columns: building them is ~10x faster than a dict per row."""
        cols: dict[str, list] = {c: [] for c in SIMILARITY_COLUMNS}
        for trial_a, trial_b, round_, layers, dists in self.similarity_pairs:
            a, b, n = self.labels[trial_a], self.labels[trial_b], len(layers)
            for col, value in (("arch", a["arch"]), ("seed", a["seed"]), ("round", round_),
                               ("task_a", a["dataset"]), ("technique_a", a["technique"]), ("trial_a", trial_a),
                               ("task_b", b["dataset"]), ("technique_b", b["technique"]), ("trial_b", trial_b)):
                cols[col].extend([value] * n)
            cols["layer"].extend(layers)
            cols["jaccard_distance"].extend(dists)
        return cols

    # ---- queries -----------------------------------------------------------------------------
    def ready_followups(self) -> list[dict]:
        """Tune configs of every follow-up that can run now (the searcher drops those it launched)."""
        out = []
        for gid, spars in self.complete.items():
            group = self.groups[gid]
            key = tuple(len(self.rounds.get(tid, ())) for tid in group.sources.values())
            cached = self._followups.get(gid)
            if cached is None or cached[0] != key:  # a source reported a round: transfers may be ready
                specs = group_followups(self.plan.sweep, group, spars, self.rounds)
                cached = self._followups[gid] = (key, [spec.to_tune() for spec in specs])
            out.extend(cached[1])
        return out

    def status(self) -> dict:
        return {"masks": len(self.paths), "groups_complete": len(self.complete), "groups": len(self.groups),
                "consensus_sparsity": {g: min(s.values()) for g, s in self.complete.items() if s}}

    def flush(self) -> None:
        """Write similarity.csv and similarity.parquet (skipped when no pair was added since the
        last write). See maybe_flush for periodic calls."""
        if len(self.similarity_pairs) == self._flushed_pairs:
            return
        start = time.monotonic()
        # write_table's DataFrame takes columns as well as rows
        write_table(self.exp_dir / "similarity.csv", self._similarity_columns(), SIMILARITY_COLUMNS, parquet=True)
        self._flushed_pairs = len(self.similarity_pairs)
        self._last_write, self._write_seconds = time.monotonic(), time.monotonic() - start

    def maybe_flush(self, min_interval_s: float = 10.0) -> bool:
        """flush() unless the last write was less than max(min_interval_s, FLUSH_DUTY x its own
        duration) ago: the table grows to millions of rows on full.yaml (a write then takes
        tens of seconds), and periodic writes must not keep the actor from its masks."""
        if time.monotonic() - self._last_write < max(min_interval_s, FLUSH_DUTY * self._write_seconds):
            return False
        self.flush()
        return True

    # ---- persistence ---------------------------------------------------------------------------
    def _replay(self) -> None:
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.journal_path.exists():
            return
        text = self.journal_path.read_text()
        if text and not text.endswith("\n"):  # a line torn by a crash: cut it, or the next append
            text = text[: text.rfind("\n") + 1]  # would be glued onto it (its mask is re-sent)
            with open(self.journal_path, "r+") as f:
                f.truncate(len(text.encode()))
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a crash: its mask is re-sent and re-registered
            trial, round_ = rec["trial"], int(rec["round"])
            if (trial, round_) in self.paths or trial not in self.labels:
                continue
            groups = self.groups_of_source.get((trial, round_), [])
            if groups:
                self._vote(trial, round_, self._load(rec["path"]))
            self._register(trial, round_, rec["path"], float(rec["sparsity"]), self._replayed_similarity(rec))

    def _replayed_similarity(self, rec: dict) -> list[tuple]:
        trial, round_ = rec["trial"], int(rec["round"])
        if "similarity" in rec:  # a journal written before distances-only lines: one dict per row
            by_pair: dict[str, tuple[list, list]] = {}
            for row in rec["similarity"]:
                layers, dists = by_pair.setdefault(row["trial_b"], ([], []))
                layers.append(row["layer"])
                dists.append(row["jaccard_distance"])
            return [(trial, other, round_, tuple(ls), ds) for other, (ls, ds) in by_pair.items()]
        full = tuple(rec.get("layers", ()))
        full = self._names.setdefault(full, full)
        return [(trial, entry[0], round_, tuple(entry[2]) if len(entry) > 2 else full, list(entry[1]))
                for entry in rec.get("sim", ()) if entry[0] in self.labels]

    def _load(self, rel_path: str) -> PackedMask:
        """A mask as packed bits, from a byte-bounded cache (partners of later masks hit it)."""
        mask = self._cache.get(rel_path)
        if mask is not None:
            self._cache.move_to_end(rel_path)
            return mask
        mask = load_packed_mask(self.exp_dir / rel_path)[0]
        self._cache[rel_path] = mask
        self._cache_bytes += mask.nbytes
        while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
            self._cache_bytes -= self._cache.popitem(last=False)[1].nbytes
        return mask


def _mask_rel(trial_id: str, round_: int) -> str:
    return f"masks/{trial_id}/round_{round_:02d}.ltmask"


def write_plan(exp_dir: Path, plan: Plan) -> None:
    atomic_write_text(exp_dir / "plan.json", plan.to_json())



