"""The experiment folder's layout: every file and folder name, in one place.

docs/experiment-folder.md documents it (a test checks the two agree), and no other module spells
a file name: they ask this one. Paths are relative to the experiment folder, POSIX style, so the
same names work on a local disk and in a bucket.

Format history (FORMAT_VERSION, recorded in experiment.json):
  1  ltray 0.1.0: trial ids hashed every config field; actor/journal.jsonl, one appended file.
  2  trial ids hash only non-default fields; actor/journal/ holds one object per record and
     compacted segments (object stores cannot append); driver.json (lease and heartbeat).
"""

from __future__ import annotations

from ltray.masks.format import MASK_SUFFIX

FORMAT_VERSION = 2

MARKER = "experiment.json"  # {"format": FORMAT_VERSION, "ltray_version", "name"}
SWEEP = "sweep.yaml"  # the resolved sweep file, every default filled in
PLAN = "plan.json"  # trajectories and consensus groups (ltray.experiment.plan_file)
PROVENANCE = "provenance.json"  # versions, git revision, hardware, devices, start/resume times
LEASE = "driver.json"  # the driver holding the experiment, with its heartbeat
SUMMARY_CSV = "summary.csv"
SUMMARY_TXT = "summary.txt"
TUNE = "tune"  # Ray Tune's own files: tune/run-001-<tag>, run-002-<tag>, ... (one per launch)
REPORT = "report"  # default output folder of `ltray analysis`
MLFLOW = "mlflow"  # the sweep file's `loggers: [mlflow]`: a file-based MLflow store (docs/trackers.md)
WANDB = "wandb"  # `loggers: [wandb]`: W&B's run files
TRACKER_CONSENSUS = "consensus"  # the tracker run of consensus events, in tune/run-NNN/ (tensorboard)

MASKS = "masks"
CONSENSUS_DIR = "consensus"
TRIALS = "trials"
JOURNAL = "actor/journal"  # the consensus actor's records (ltray.experiment.journal)
JOURNAL_V1 = "actor/journal.jsonl"  # format 1's journal, read by the migration only

# a trial's own files, under trials/<trial_id>/
TRIAL_STATE = "state.ltstate"  # resume state of a trajectory between rounds
TRIAL_RESULTS = "results.json"  # its finished rows
TRIAL_DONE = "done.json"  # completion marker
TRIAL_ERROR = "error.json"  # last failure (the driver writes it)

TABLES = ("rounds", "consensus", "similarity")  # <stem>.csv (and .parquet, see schemas)
CSV, PARQUET = ".csv", ".parquet"


def csv(stem: str) -> str:
    return stem + CSV


def parquet(stem: str) -> str:
    return stem + PARQUET


def round_mask_name(round_: int) -> str:
    """File name of a trajectory round's mask (round 0 is the dense network)."""
    return f"round_{round_:02d}{MASK_SUFFIX}"


def round_from_mask_name(name: str) -> int | None:
    stem = name[: -len(MASK_SUFFIX)] if name.endswith(MASK_SUFFIX) else ""
    return int(stem[6:]) if stem.startswith("round_") and stem[6:].isdigit() else None


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


def tune_run(n: int, tag: str) -> str:
    """A launch's Tune folder. `tag` (a digest of the experiment's location) keeps apart the runs of
    two sweeps on one cluster: Tune stages a run's files in a folder named by its start second and
    its name, which two `run-001` started in the same second would share."""
    return f"{TUNE}/run-{n:03d}-{tag}"


def tune_run_dir(run_name: str, *parts: str) -> str:
    return "/".join([TUNE, run_name, *parts])


# every top-level entry this version writes, for docs checks and for `status --verify`
TOP_LEVEL = (MARKER, SWEEP, PLAN, PROVENANCE, LEASE, SUMMARY_CSV, SUMMARY_TXT, TUNE, MASKS, CONSENSUS_DIR,
             TRIALS, "actor", MLFLOW, WANDB, *(csv(t) for t in TABLES), *(parquet(t) for t in ("rounds", "similarity")))
