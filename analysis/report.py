"""Build the report folder: runs every section on an experiment, saves figures (figures/*.png)
and tables (tables/*.csv), and writes report.md showing them with captions. A section that lacks
data adds a note instead of failing."""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import plotting
from . import tickets
from .figures_accuracy import section_accuracy
from .figures_consensus import section_consensus, section_init, section_votes
from .figures_followups import section_followups
from .figures_similarity import section_tasks, section_techniques
from .initweights import InitFn
from .loading import Experiment, load_experiment
from .measures import compute_similarity, task_overlap
from ltray.experiment import layout
from ltray.experiment.schemas import CONSENSUS, ROUNDS, SIMILARITY
from ltray.storage import StorageError, open_storage
from ltray.errors import ExperimentError
from ltray.fileio import atomic_write_text


@dataclass(frozen=True)
class Options:
    reference: str = "global_unstructured"  # technique that figure 2's per-layer panels compare to
    dpi: int = 110  # PNG resolution, dots per inch
    strict: bool = False  # re-raise a failing section (tests) instead of noting the failure
    init_weights: InitFn | None = None  # initial weights for figure 7; None: ltray.models


@dataclass
class Section:
    title: str
    report: "Report"
    blocks: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.blocks.append(f"> Note: {text}")

    def figure(self, fig, name: str, caption: str) -> Path:
        path = plotting.save(fig, self.report.out / layout.report_figure(_safe(name)), self.report.dpi)
        self.report.figures.append(path)
        rel = path.relative_to(self.report.out).as_posix()
        self.blocks.append(f"![{caption}]({rel})\n\n*{caption}*")
        return path

    def table(self, df: pd.DataFrame, name: str, caption: str, show: bool = False) -> Path:
        path = self.report.out / layout.report_table(_safe(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, df.to_csv(index=False))
        self.report.tables.append(path)
        rel = path.relative_to(self.report.out).as_posix()
        self.blocks.append(f"Table [{rel}]({rel}): {caption} ({len(df)} rows).")
        if show:
            self.blocks.append(markdown_table(df))
        return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _cell(v) -> str:
    if isinstance(v, float | np.floating):
        return "—" if np.isnan(v) else f"{v:.4g}"
    return str(v).replace("|", "\\|")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(_cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


@dataclass
class Report:
    out: Path  # where the files are built (the target itself, or a local copy of a bucket's)
    dpi: int
    location: str = ""  # where report.md ends up: a path or a URI
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)

    def section(self, title: str) -> Section:
        sec = Section(title, self)
        self.sections.append(sec)
        return sec


class Context:
    """The experiment and options, plus mask-based results shared by several sections."""

    def __init__(self, exp: Experiment, opts: Options, report: Report):
        self.exp, self.opts, self.report = exp, opts, report
        self._similarity, self._overlap, self._orders = None, None, {}

    def similarity(self, sec: Section) -> pd.DataFrame | None:
        if self._similarity is None:
            if self.exp.similarity is not None and not self.exp.similarity.empty:
                self._similarity = self.exp.similarity
            else:
                self._similarity = compute_similarity(self.exp)
                state = "absent" if self.exp.similarity is None else "empty"
                self.report.notes.append(f"{SIMILARITY.csv} is {state}: Jaccard distances were "
                                         "computed from the mask files.")
                if not self._similarity.empty:
                    sec.table(self._similarity, "similarity_from_masks",
                              "pairwise Jaccard distances computed from masks")
        return self._similarity

    def overlap(self, sec: Section) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._overlap is None:
            self._overlap = task_overlap(self.exp)
        return self._overlap

    def layer_order(self, arch: str, names) -> list[str]:
        """Layers in network order (a mask file's order), else in the order given."""
        if arch not in self._orders:
            order = []
            rows = self.exp.bespoke[self.exp.bespoke["arch"] == arch]
            for _, row in rows.head(5).iterrows():
                mask = self.exp.mask(self.exp.mask_file(row))
                if mask is not None:
                    order = list(mask)
                    break
            self._orders[arch] = order
        known = [n for n in self._orders[arch] if n in set(names)]
        return known + [n for n in names if n not in known]


def section_headline(ctx: Context, sec: Section) -> None:
    exp = ctx.exp
    wide, long = tickets.headline(exp.consensus, exp.followups, exp.plan, exp.bespoke)
    if wide.empty:
        sec.note(f"No consensus masks yet: the headline table needs {CONSENSUS.csv}.")
        return
    sec.table(wide, "headline", "per architecture and consensus recipe")
    if long.empty:
        sec.note("No follow-up results yet: accuracy gaps are missing.")
    else:
        sec.table(long, "headline_per_target", "accuracies and gap per target task")
    if wide["n_seeds"].max() < 2:
        sec.note("One seed only: the gaps below are single runs, with no spread over seeds; "
                 "differences of a few points can be noise.")
    shown = pd.DataFrame({
        "arch": wide["arch"], "recipe": wide["recipe"],
        "keep if votes ≥": [f"{int(k)} of {int(n)}" for k, n in zip(wide["threshold"], wide["n_sources"])],
        "seeds": wide["n_seeds"], "consensus sparsity (%)": plotting.pct(wide["consensus_sparsity"]).round(1),
        "chance (%)": plotting.pct(wide["chance_sparsity"]).round(1),
        "equivalent rounds": wide["equivalent_rounds"].round(2),
        "rounds saved": wide["rounds_saved"].round(2)})
    held = dict(zip(long["target"], long["held_out"])) if not long.empty else {}
    from_traj = (set(long.loc[long["bespoke_same_task_from"] == "trajectory round", "target"])
                 if not long.empty else set())
    targets = sorted((c[len("gap_"):] for c in wide.columns if c.startswith("gap_")),
                     key=lambda t: (bool(held.get(t)), t))  # sources first, held-out last
    for target in targets:
        c = f"gap_{target}"
        mark = (" (held out)" if held.get(target) else "") + ("†" if target in from_traj else "")
        label = f"gap {target}{mark} (pp)"
        shown[label] = plotting.pct(wide[c]).round(2)
    sec.blocks.append(markdown_table(shown))
    sec.blocks.append("*Chance = the sparsity the same vote would reach if the source masks were "
                      "independent, each with its own density (intersection: 1 − the product of the "
                      "densities); a consensus less sparse than chance means the tasks share weights "
                      f"beyond chance (— : a source's round is not in {ROUNDS.csv} yet). "
                      "Rounds saved = equivalent sequential rounds − the sources' round (negative: "
                      "the consensus is less sparse than its sources). Gap = prêt-à-porter minus "
                      "the target's own bespoke ticket at the matched sparsity, test accuracy in "
                      "percentage points, means over seeds (— : the target has no bespoke ticket; "
                      "† : taken from the target's own trajectory, the round closest in sparsity, "
                      "as no retrained ticket exists; headline_per_target.csv also compares with "
                      "the other sources' tickets).*")


SECTIONS = [
    ("Headline", section_headline),
    ("1. Test accuracy vs sparsity (bespoke tickets)", section_accuracy),
    ("2. Do different techniques find the same masks?", section_techniques),
    ("3. Do different tasks find the same masks?", section_tasks),
    ("4. Vote histograms across tasks", section_votes),
    ("5. Consensus tickets", section_consensus),
    ("6. Prêt-à-porter vs bespoke vs random tickets", section_followups),
    ("7. Initial weights of the surviving weights", section_init),
]


def _overview(exp: Experiment) -> list[str]:
    r, lines = exp.rounds, []
    b = exp.bespoke
    if r.empty:
        lines.append(f"- No rounds recorded yet ({ROUNDS.csv} is absent or empty).")
    else:
        for label, col in [("tasks", "task"), ("architectures", "arch"),
                           ("techniques", "technique"), ("seeds", "seed")]:
            vals = sorted(b[col].unique()) if not b.empty else []
            lines.append(f"- {label}: {', '.join(map(str, vals)) or '—'}")
    done = len(b)
    if exp.plan is not None and exp.plan.trajectories:
        planned = sum(t.rounds for t in exp.plan.trajectories)
        lines.append(f"- bespoke rounds done: {done} of {planned} planned "
                     f"({len(exp.plan.trajectories)} trajectories)")
        lines.append(f"- consensus masks: {len(exp.consensus)}; consensus groups planned: {len(exp.plan.groups)}")
    else:
        lines.append(f"- bespoke rounds done: {done}; consensus masks: {len(exp.consensus)}")
    lines.append(f"- follow-up trials with results: {exp.followups['test_acc'].notna().sum()}")
    return lines


def build_report(experiment: str | Path, out: str | Path | None = None,
                 opts: Options | None = None) -> Report:
    """Write figures, tables and report.md for `experiment` to `out` (default EXPERIMENT/report);
    either may be a path or an s3:// / gs:// URI (a bucket's report is built locally, then uploaded)."""
    opts = opts or Options()
    exp = load_experiment(experiment)
    target = open_storage(out) if out else exp.storage.child(layout.REPORT)
    local = target.local_path()
    with tempfile.TemporaryDirectory(prefix="ltray-report-") as scratch:
        report = Report(local if local is not None else Path(scratch), opts.dpi, target.uri)
        try:
            report.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExperimentError(f"{report.out}: cannot write the report folder ({exc.strerror or exc})") from None
        ctx = Context(exp, opts, report)
        for title, fn in SECTIONS:
            sec = report.section(title)
            try:
                fn(ctx, sec)
            except Exception as exc:  # one broken section must not cost the whole report
                if opts.strict:
                    raise
                plotting.plt.close("all")
                sec.note(f"this section failed ({type(exc).__name__}: {exc}).")
                print(f"warning: section {title!r} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        report.notes[:0] = exp.notes
        atomic_write_text(report.out / layout.REPORT_MARKDOWN, _markdown(exp, report))
        if local is None:
            for path in sorted(p for p in report.out.rglob("*") if p.is_file()):
                target.write_bytes(path.relative_to(report.out).as_posix(), path.read_bytes())
        _drop_stale(report, target)
    return report


MAX_NOTES = 20  # experiment-wide notes listed in report.md (e.g. one per unreadable mask)


def _drop_stale(report: Report, target) -> None:
    """Delete figures/tables an earlier build wrote that this one did not (a rebuild of a
    running experiment can have fewer pages); files this package never wrote are left alone."""
    made = sorted(p.relative_to(report.out).as_posix() for p in report.figures + report.tables)
    try:
        before = json.loads(target.read_text(layout.REPORT_MANIFEST))
    except (StorageError, ValueError, RecursionError):
        before = []
    for rel in set(before if isinstance(before, list) else []) - set(made):
        if isinstance(rel, str) and rel.split("/")[0] in (layout.REPORT_FIGURES, layout.REPORT_TABLES) and ".." not in rel:
            target.delete(rel)
    target.write_text(layout.REPORT_MANIFEST, json.dumps(made, indent=0))


def _markdown(exp: Experiment, report: Report) -> str:
    parts = [f"# Lottery-ticket report: {exp.name}", "",
             f"Experiment folder: `{exp.storage.uri}`", "", *_overview(exp), ""]
    notes = list(dict.fromkeys(report.notes))
    if notes:
        shown = notes[:MAX_NOTES] + ([f"... and {len(notes) - MAX_NOTES} more like these."]
                                     if len(notes) > MAX_NOTES else [])
        parts += ["## Notes", "", *[f"- {n}" for n in shown], ""]
    for sec in report.sections:
        parts += [f"## {sec.title}", ""]
        for block in sec.blocks or ["> Note: nothing to show."]:
            parts += [block, ""]
    if exp.sweep_text:
        parts += ["## Sweep file", "", f"<details><summary>{layout.SWEEP}</summary>", "",
                  "```yaml", exp.sweep_text.rstrip(), "```", "", "</details>", ""]
    return "\n".join(parts)
