"""Pairwise mask similarity as masks arrive: Jaccard distances per layer (and `__all__`) between a
new mask and every earlier mask of the same architecture, seed and round that shares its task or
its technique. Each unordered pair is kept once, however often a mask is re-sent or replayed.

Partners come from an index by (arch, seed, round), so the cost of a mask is its partners, not the
size of the experiment; rows are built as columns, which is ~10x faster than a dict per row.
"""

from __future__ import annotations

from collections import defaultdict

from ltray.experiment.labels import TrialLabels
from ltray.experiment.schemas import ALL_LAYERS, SIMILARITY
from ltray.masks.packed import PackedMask, shared_layer_jaccard

Pair = tuple[str, str, int, tuple[str, ...], list[float]]  # (trial, partner, round, layer names, distances)


class SimilarityIndex:
    def __init__(self, labels: dict[str, TrialLabels], order: dict[str, int]):
        self.labels = labels  # trial id -> its labels (task, arch, technique, seed)
        self.order = order  # trial id -> position in the plan: partners are compared in plan order
        self.by_bucket: dict[tuple, list[str]] = defaultdict(list)  # (arch, seed, round) -> trials seen
        self.pairs: list[Pair] = []
        self._keys: set[tuple] = set()
        self._names: dict[tuple, tuple] = {}  # one tuple of layer names per layout, shared

    def partners(self, trial_id: str, round_: int) -> list[str]:
        """Earlier masks this one is compared with, in plan order."""
        me = self.labels[trial_id]
        seen = sorted(self.by_bucket.get((me.arch, me.seed, round_), ()), key=self.order.__getitem__)
        return [o for o in seen if o != trial_id and (self.labels[o].task == me.task
                                                      or self.labels[o].technique == me.technique)]

    def compare(self, trial_id: str, round_: int, mask: PackedMask, load) -> list[Pair]:
        """Distances of a new mask to its partners (`load(trial, round)` gives a partner's mask)."""
        out = []
        for other in self.partners(trial_id, round_):
            if self._key(trial_id, other, round_) in self._keys:
                continue
            dists = shared_layer_jaccard(mask, load(other, round_))
            out.append((trial_id, other, round_, self.layer_names(tuple(dists)), list(dists.values())))
        return out

    def layer_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return self._names.setdefault(names, names)

    def register(self, trial_id: str, round_: int, pairs: list[Pair]) -> None:
        """The mask is in: later masks compare with it; its pairs are added (duplicates dropped)."""
        lab = self.labels[trial_id]
        bucket = self.by_bucket[(lab.arch, lab.seed, round_)]
        if trial_id not in bucket:
            bucket.append(trial_id)
        for pair in pairs:
            key = self._key(pair[0], pair[1], pair[2])
            if key not in self._keys and pair[1] in self.labels:
                self._keys.add(key)
                self.pairs.append(pair)

    @staticmethod
    def _key(a: str, b: str, round_: int) -> tuple:
        return (min(a, b), max(a, b), round_)

    def columns(self) -> dict[str, list]:
        """The similarity table as columns."""
        cols: dict[str, list] = {c: [] for c in SIMILARITY.names}
        for trial_a, trial_b, round_, layers, dists in self.pairs:
            a, b, n = self.labels[trial_a], self.labels[trial_b], len(layers)
            for col, value in (("arch", a.arch), ("seed", a.seed), ("round", round_),
                               ("task_a", a.task), ("technique_a", a.technique), ("trial_a", trial_a),
                               ("task_b", b.task), ("technique_b", b.technique), ("trial_b", trial_b)):
                cols[col].extend([value] * n)
            cols["layer"].extend(layers)
            cols["jaccard_distance"].extend(dists)
        return cols

    def rows(self) -> list[dict]:
        cols = self.columns()
        return [dict(zip(SIMILARITY.names, values)) for values in zip(*(cols[c] for c in SIMILARITY.names))]


def journal_entries(pairs: list[Pair], layer_names: tuple[str, ...]) -> dict:
    """A mask's pairs in its journal record: distances only (labels come from the plan on replay);
    layer names once, unless a pair compared fewer layers (output layers of other sizes)."""
    full = (*layer_names, ALL_LAYERS)
    return {"layers": list(full),
            "sim": [[other, dists] if layers == full else [other, dists, list(layers)]
                    for _, other, _, layers, dists in pairs]}


def replayed_pairs(index: SimilarityIndex, trial: str, round_: int, rec: dict) -> list[Pair]:
    """The pairs of a journal record (both the distances-only form and format 1's one dict per row)."""
    if "similarity" in rec:
        by_pair: dict[str, tuple[list, list]] = {}
        for row in rec["similarity"]:
            layers, dists = by_pair.setdefault(row["trial_b"], ([], []))
            layers.append(row["layer"])
            dists.append(row["jaccard_distance"])
        return [(trial, other, round_, tuple(ls), ds) for other, (ls, ds) in by_pair.items()]
    full = index.layer_names(tuple(rec.get("layers", ())))
    return [(trial, entry[0], round_, index.layer_names(tuple(entry[2])) if len(entry) > 2 else full,
             list(entry[1])) for entry in rec.get("sim", ()) if entry[0] in index.labels]
