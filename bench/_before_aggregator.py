# bench: ltray/sweep/aggregator.py as of commit ade224b, before the benchmark-5 fix (kept to measure before/after).
"""The rolling cross-task consensus, as a plain class (the Ray actor in `actor.py` wraps it).

It receives mask paths as rounds finish, keeps vote counts per consensus group and pairwise
Jaccard statistics, writes each group's consensus masks once its sources are all in, and knows
which follow-up trials are ready. Its state is an append-only journal in the experiment folder:
a restarted aggregator replays it and loses nothing; adding the same mask twice changes nothing.
"""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np


from ltray.consensus import VoteCounts, equivalent_rounds, random_ticket_like
from ltray.fileio import atomic_write_text
from ltray.masks import layer_jaccard, load_mask, save_mask, sparsity
from ltray.seeding import derive_seed
from ltray.sweep.plan import GroupInstance, Plan, group_followups
from ltray.sweep.tables import write_table

CONSENSUS_COLUMNS = ["group", "name", "arch", "seed", "technique", "source_round", "threshold", "leave_out",
                     "n_sources", "sources", "sparsity", "equivalent_rounds", "mask_path"]
SIMILARITY_COLUMNS = ["arch", "seed", "round", "task_a", "technique_a", "trial_a", "task_b", "technique_b",
                      "trial_b", "layer", "jaccard_distance"]


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
        self.journal_path = self.exp_dir / "actor" / "journal.jsonl"
        self.rounds: dict[str, dict[int, float]] = defaultdict(dict)  # trial -> round -> sparsity
        self.paths: dict[tuple[str, int], str] = {}
        self.votes: dict[str, VoteCounts] = {}
        self.voted: dict[str, set[str]] = defaultdict(set)
        self.complete: dict[str, dict[int, float]] = {}  # group -> threshold -> consensus sparsity
        self.consensus_rows: list[dict] = []
        self.similarity_rows: list[dict] = []
        self.followups_seen: set[str] = set()
        self._replay()

    # ---- updates ---------------------------------------------------------------------------
    def add_mask(self, trial_id: str, round_: int, mask_path: str) -> list[str]:
        """Register one trajectory round's mask; return the ids of groups it completed."""
        if (trial_id, round_) in self.paths or trial_id not in self.labels:
            return []
        mask = self._load(mask_path)
        sim_rows = self._similarity(trial_id, round_, mask)
        completed = self._vote(trial_id, round_, mask)
        self._register(trial_id, round_, mask_path, sparsity(mask), sim_rows)
        with open(self.journal_path, "a") as f:  # one line per mask; a torn last line is ignored
            f.write(json.dumps({"trial": trial_id, "round": round_, "path": mask_path,
                                "sparsity": self.rounds[trial_id][round_], "similarity": sim_rows}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return completed

    def _register(self, trial_id, round_, path, spars, sim_rows) -> None:
        self.paths[(trial_id, round_)] = path
        self.rounds[trial_id][round_] = spars
        self.similarity_rows.extend(sim_rows)

    def _vote(self, trial_id: str, round_: int, mask: dict) -> list[str]:
        done = []
        for g in self.groups_of_source.get((trial_id, round_), []):
            if trial_id in self.voted[g.group_id]:
                continue
            counts = self.votes.setdefault(g.group_id, VoteCounts({n: a.shape for n, a in mask.items()}))
            counts.add(mask)
            self.voted[g.group_id].add(trial_id)
            if len(self.voted[g.group_id]) == len(g.sources):
                self._write_consensus(g)
                done.append(g.group_id)
        return done

    def _write_consensus(self, g: GroupInstance) -> None:
        counts = self.votes[g.group_id]
        rows, result = [], {}
        for k in g.thresholds:
            mask = counts.consensus(k)
            save_mask(self.exp_dir / g.consensus_path(k), mask, meta={"group": g.group_id, "threshold": k})
            if g.random_baseline:
                rnd = random_ticket_like(mask, derive_seed(g.seed, g.group_id, k))
                save_mask(self.exp_dir / g.random_path(k), rnd, meta={"group": g.group_id, "random_of": k})
            result[k] = sparsity(mask)
            rows.append(self._consensus_row(g, k, "", result[k], g.consensus_path(k)))
        for k in g.loo_thresholds:
            for task, tid in g.sources.items():
                if task not in g.targets:
                    continue
                own = self._load(self.paths.get((tid, g.source_round)) or _mask_rel(tid, g.source_round))
                mask = counts.leave_one_out(own, k)
                save_mask(self.exp_dir / g.loo_path(k, task), mask, meta={"group": g.group_id, "leave_out": task})
                rows.append(self._consensus_row(g, k, task, sparsity(mask), g.loo_path(k, task)))
        self.complete[g.group_id] = result
        self.consensus_rows = [r for r in self.consensus_rows if r["group"] != g.group_id] + rows
        write_table(self.exp_dir / "consensus.csv", self.consensus_rows, CONSENSUS_COLUMNS, parquet=False)

    def _consensus_row(self, g: GroupInstance, k: int, leave_out: str, spars: float, path: str) -> dict:
        n = len(g.sources) - bool(leave_out)
        return {"group": g.group_id, "name": g.name, "arch": g.arch, "seed": g.seed, "technique": g.technique,
                "source_round": g.source_round, "threshold": k, "leave_out": leave_out, "n_sources": n,
                "sources": ";".join(s for s in g.sources if s != leave_out), "sparsity": spars,
                "equivalent_rounds": equivalent_rounds(spars, self.plan.sweep.prune.fraction), "mask_path": path}

    def _similarity(self, trial_id: str, round_: int, mask: dict) -> list[dict]:
        """Jaccard distances to earlier masks of the same arch, seed and round sharing a task or technique."""
        me = self.labels[trial_id]
        rows = []
        for other, lab in self.labels.items():
            if other == trial_id or (other, round_) not in self.paths:
                continue
            if (lab["arch"], lab["seed"]) != (me["arch"], me["seed"]):
                continue
            if lab["dataset"] != me["dataset"] and lab["technique"] != me["technique"]:
                continue
            theirs = self._load(self.paths[(other, round_)])
            per_layer = layer_jaccard(mask, theirs)
            union = sum(int(np.count_nonzero(mask[n] | theirs[n])) for n in mask)
            inter = sum(int(np.count_nonzero(mask[n] & theirs[n])) for n in mask)
            per_layer["__all__"] = 1.0 - inter / union if union else 0.0
            base = {"arch": me["arch"], "seed": me["seed"], "round": round_,
                    "task_a": me["dataset"], "technique_a": me["technique"], "trial_a": trial_id,
                    "task_b": lab["dataset"], "technique_b": lab["technique"], "trial_b": other}
            rows += [{**base, "layer": layer, "jaccard_distance": d} for layer, d in per_layer.items()]
        return rows

    # ---- queries -----------------------------------------------------------------------------
    def ready_followups(self) -> list[dict]:
        """Tune configs of every follow-up that can run now (the searcher drops those it launched)."""
        out = []
        for gid, spars in self.complete.items():
            for spec in group_followups(self.plan.sweep, self.groups[gid], spars, self.rounds):
                out.append(spec.to_tune())
        return out

    def status(self) -> dict:
        return {"masks": len(self.paths), "groups_complete": len(self.complete), "groups": len(self.groups),
                "consensus_sparsity": {g: min(s.values()) for g, s in self.complete.items() if s}}

    def flush(self) -> None:
        """Write similarity.csv and similarity.parquet (throttled by the caller)."""
        write_table(self.exp_dir / "similarity.csv", self.similarity_rows, SIMILARITY_COLUMNS, parquet=True)

    # ---- persistence ---------------------------------------------------------------------------
    def _replay(self) -> None:
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.journal_path.exists():
            return
        for line in self.journal_path.read_text().splitlines():
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
            self._register(trial, round_, rec["path"], float(rec["sparsity"]), rec["similarity"])

    @functools.lru_cache(maxsize=256)
    def _load(self, rel_path: str) -> dict:
        return load_mask(self.exp_dir / rel_path)


def _mask_rel(trial_id: str, round_: int) -> str:
    return f"masks/{trial_id}/round_{round_:02d}.ltmask"


def write_plan(exp_dir: Path, plan: Plan) -> None:
    atomic_write_text(exp_dir / "plan.json", plan.to_json())



