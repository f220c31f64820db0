"""The experiment folder's layout: every file and folder name, in one place.

docs/experiment-folder.md documents it (a test checks the two agree), and no other module spells
a file name: they ask this one. Paths are relative to the experiment folder, POSIX style, so the
same names work on a local disk and in a bucket.

Format history (FORMAT_VERSION, recorded in experiment.json):
  1  ltray 0.1.0: trial ids hashed every config field; actor/journal.jsonl, one appended file.
  2  trial ids hash only non-default fields; actor/journal/ holds one object per record and
     compacted segments (object stores cannot append); driver.json (lease and heartbeat).
  3  one word per meaning: the rounds table's (and trials' results.json) `dataset` column is
     `task`; plan.json names a group's id `group_id` (formats 1-2: `group`).
"""

from __future__ import annotations

from ltray.masks.format import MASK_SUFFIX

FORMAT_VERSION = 3

_TOP_LEVEL: list[str] = []  # every top-level entry, in the order declared below


def _top(name: str) -> str:
    _TOP_LEVEL.append(name)
    return name


MARKER = _top("experiment.json")  # {"format": FORMAT_VERSION, "ltray_version", "name"}
SWEEP = _top("sweep.yaml")  # the resolved sweep file, every default filled in
PLAN = _top("plan.json")  # trajectories and consensus groups (ltray.experiment.plan_file)
PROVENANCE = _top("provenance.json")  # versions, git revision, hardware, devices, start/resume times
LEASE = _top("driver.json")  # the driver holding the experiment, with its heartbeat
SUMMARY_CSV = _top("summary.csv")
SUMMARY_TXT = _top("summary.txt")
TUNE = _top("tune")  # Ray Tune's own files: tune/run-001-<tag>, run-002-<tag>, ... (one per launch)
MASKS = _top("masks")
CONSENSUS_DIR = _top("consensus")  # the consensus masks, a folder per group (the table is consensus.csv)
TRIALS = _top("trials")
ACTOR = _top("actor")  # the consensus actor's files
MLFLOW = _top("mlflow")  # the sweep file's `loggers: [mlflow]`: a file-based MLflow store (docs/trackers.md)
WANDB = _top("wandb")  # `loggers: [wandb]`: W&B's run files
REPORT = _top("report")  # default output folder of `ltray analysis`
TABLES = ("rounds", "consensus", "similarity")  # <stem>.csv and <stem>.parquet (ltray.experiment.schemas)
CSV, PARQUET = ".csv", ".parquet"
for _stem in TABLES:
    _top(_stem + CSV)
    _top(_stem + PARQUET)
TOP_LEVEL = tuple(_TOP_LEVEL)  # for docs checks, `status --verify` and the test of what a sweep writes

JOURNAL = f"{ACTOR}/journal"  # the consensus actor's records (ltray.experiment.journal)
JOURNAL_V1 = f"{ACTOR}/journal.jsonl"  # format 1's journal, read by the migration only
TRACKER_EVENTS = "consensus"  # the tracker run of consensus events, in tune/run-NNN/ (tensorboard)

# a trial's own files, under trials/<trial_id>/
TRIAL_STATE = "state.ltstate"  # resume state of a trajectory between rounds
TRIAL_RESULTS = "results.json"  # its finished rows
TRIAL_DONE = "done.json"  # completion marker
TRIAL_ERROR = "error.json"  # last failure (written from the trial's exception, or by the driver)

# the report folder (`ltray analysis`), under REPORT or --out
REPORT_MARKDOWN = "report.md"
REPORT_FIGURES = "figures"  # <section>.png
REPORT_TABLES = "tables"  # <section>.csv
REPORT_MANIFEST = ".report-files.json"  # what the last build wrote, so a rebuild can drop leftovers


def report_figure(name: str) -> str:
    return f"{REPORT_FIGURES}/{name}.png"


def report_table(name: str) -> str:
    return f"{REPORT_TABLES}/{name}{CSV}"


# the journal's files, under JOURNAL: a record per object, compacted into segments
def journal_record(seq: int) -> str:
    return f"r{seq:010d}.json"


def journal_segment(first: int, last: int) -> str:
    return f"s{first:010d}-{last:010d}.jsonl"


def is_journal_record(name: str) -> bool:
    return name.startswith("r") and name.endswith(".json")


def is_journal_segment(name: str) -> bool:
    return name.startswith("s") and name.endswith(".jsonl")


def csv(stem: str) -> str:
    return stem + CSV


def parquet(stem: str) -> str:
    return stem + PARQUET


def round_mask_name(round_: int) -> str:
    """File name of a trajectory round's mask (round 0 is the dense network)."""
    return f"round_{round_:02d}{MASK_SUFFIX}"


def mask_dir(trial_id: str) -> str:
    return f"{MASKS}/{trial_id}"


def trajectory_mask(trial_id: str, round_: int) -> str:
    return f"{mask_dir(trial_id)}/{round_mask_name(round_)}"


def ticket_mask(trial_id: str) -> str:
    """The mask a follow-up trial trained (after adapting its output layer)."""
    return f"{mask_dir(trial_id)}/ticket{MASK_SUFFIX}"


def consensus_mask(group_id: str, k: int) -> str:
    return f"{CONSENSUS_DIR}/{group_id}/t{k}{MASK_SUFFIX}"


def leave_one_out_mask(group_id: str, k: int, task: str) -> str:
    return f"{CONSENSUS_DIR}/{group_id}/t{k}-loo-{task}{MASK_SUFFIX}"


def random_mask(group_id: str, k: int) -> str:
    return f"{CONSENSUS_DIR}/{group_id}/t{k}-random{MASK_SUFFIX}"


def trial_dir(trial_id: str) -> str:
    return f"{TRIALS}/{trial_id}"


def trial_file(trial_id: str, name: str) -> str:
    return f"{trial_dir(trial_id)}/{name}"


_TUNE_RUN = "run-"


def tune_run(n: int, tag: str) -> str:
    """A launch's Tune folder. `tag` (a digest of the experiment's location) keeps apart the runs of
    two sweeps on one cluster: Tune stages a run's files in a folder named by its start second and
    its name, which two `run-001` started in the same second would share."""
    return f"{TUNE}/{_TUNE_RUN}{n:03d}-{tag}"


def tune_runs(names: list[str]) -> list[str]:
    """The launches' folders among the names in TUNE."""
    return [n for n in names if n.startswith(_TUNE_RUN)]


def tune_run_dir(run_name: str, *parts: str) -> str:
    return "/".join([TUNE, run_name, *parts])
