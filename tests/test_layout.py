"""The experiment folder as a format: one module owns its names (no other module spells them),
docs/experiment-folder.md agrees with it, group ids round-trip, and trial ids are stable: pinned
literally, and unchanged by a new config field with a default."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from pydantic import create_model

from ltray.config import DataConfig, TaskSpec, TicketConfig, TrainConfig, TrajectoryConfig
from ltray.experiment import layout
from ltray.experiment.ids import GroupId, bespoke_trial_id, config_hash, ticket_trial_id
from ltray.experiment.schemas import SCHEMAS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for p in [*(ROOT / "ltray").rglob("*.py"), *(ROOT / "analysis").rglob("*.py")]
                 if p != ROOT / "ltray" / "experiment" / "layout.py")
# every name of the folder: files, folders, trial files, table files, and the parts of mask names
NAMES = sorted({layout.MARKER, layout.SWEEP, layout.PLAN, layout.PROVENANCE, layout.LEASE, layout.SUMMARY_CSV,
                layout.SUMMARY_TXT, layout.TRIAL_STATE, layout.TRIAL_RESULTS, layout.TRIAL_DONE, layout.TRIAL_ERROR,
                layout.JOURNAL, layout.JOURNAL_V1, "ticket.ltmask", "-loo-",
                *(layout.csv(t) for t in layout.TABLES), *(layout.parquet(t) for t in layout.TABLES)})
PATTERNS = [re.compile(r"(^|/)round_(\d|$)"), re.compile(r"-random($|\.)"), re.compile(r"^(masks|trials|consensus)/")]


def _literals(path: Path):
    """String constants of a module that are not docstrings (f-strings' literal parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_module_but_the_layout_spells_a_file_name():
    found = []
    for path in SOURCES:
        for line, text in _literals(path):
            for name in NAMES:
                if name in text:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {name!r} in {text[:60]!r}")
            found += [f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}" for p in PATTERNS if p.search(text)]
    assert not found, "file names of the experiment folder outside ltray/experiment/layout.py:\n" + "\n".join(found)


def test_the_name_scan_is_not_vacuous(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Docs may say plan.json."""\nx = f"{a}/done.json"\ny = f"masks/{t}/round_{r:02d}"\n')
    assert [t for _, t in _literals(sample)] == ["/done.json", "masks/", "/round_", "02d"]
    assert PATTERNS[0].search("/round_") and PATTERNS[2].search("masks/") and not PATTERNS[0].search("ltray_round_s")


def test_docs_list_every_name_and_column():
    docs = (ROOT / "docs" / "experiment-folder.md").read_text()
    for name in (*layout.TOP_LEVEL, layout.TRIAL_STATE, layout.TRIAL_RESULTS, layout.TRIAL_DONE, layout.TRIAL_ERROR,
                 layout.JOURNAL, layout.round_mask_name(0).replace("00", "<r>")):
        assert name in docs, name
    assert f"format {layout.FORMAT_VERSION}" in docs
    for schema in SCHEMAS.values():
        section = docs.split(f"## {schema.csv}", 1)[1].split("\n## ", 1)[0]
        documented = re.findall(r"^\| ([a-z_]+) \| (str|int|float|bool) \|", section, flags=re.M)
        assert documented == [(c.name, c.kind) for c in schema.columns], schema.stem


def test_group_ids_round_trip():
    g = GroupId("my-views.v2", "lenet_300_100", 3, "global_unstructured", 2)
    assert str(g) == "my-views.v2-lenet_300_100-s3-global_unstructured-r2"
    assert GroupId.parse(str(g)) == g
    assert g.recipe == "my-views.v2-lenet_300_100-global_unstructured-r2"
    for bad in ("views", "views-lenet-3-global-r2", "views-lenet-s3-global-rx", None):
        with pytest.raises(ValueError):
            GroupId.parse(bad)


def _trajectory(**kw) -> TrajectoryConfig:
    base = dict(task="rot90", task_spec=TaskSpec(dataset="mnist_subset", views=({"rotate": 90},)), arch="lenet",
                seed=0, rounds=5, technique="global_unstructured")
    return TrajectoryConfig(**{**base, **kw})


def test_trial_ids_are_pinned():
    """Literal ids: a change here renames every trial of every experiment (a folder format change)."""
    paper = _trajectory()
    demo = _trajectory(train=TrainConfig(epochs=3, momentum=0.9), data=DataConfig(crop=False, flip=False))
    assert config_hash(paper) == "0330ecf9d3"
    assert bespoke_trial_id("rot90", "lenet", "global_unstructured", 0, paper) == \
        "bespoke-rot90-lenet-global_unstructured-s0-0330ecf9d3"
    assert bespoke_trial_id("rot90", "lenet", "global_unstructured", 0, demo) == \
        "bespoke-rot90-lenet-global_unstructured-s0-01966b0b64"
    ticket = TicketConfig(task="uci", task_spec=TaskSpec(dataset="digits"), arch="lenet", seed=0,
                          mask_path="consensus/v-lenet-s0-global_unstructured-r2/t3.ltmask", output_rule="dense")
    assert ticket_trial_id("pret_a_porter", "v-lenet-s0-global_unstructured-r2", 3, "uci", ticket) == \
        "pret_a_porter-v-lenet-s0-global_unstructured-r2-t3-uci-70833f24c3"
    assert ticket_trial_id("transfer", "v-lenet-s0-global_unstructured-r2", 3, "uci", ticket, source="rot90",
                           source_round=2) == "transfer-v-lenet-s0-global_unstructured-r2-t3-rot90-r2-uci-70833f24c3"


def test_a_new_field_with_a_default_keeps_every_id():
    """What a later version adding a setting looks like: the same configs hash the same."""
    NewTrain = create_model("TrainConfig", __base__=TrainConfig, label_smoothing=(float, 0.0))  # noqa: N806
    NewTrajectory = create_model("TrajectoryConfig", __base__=TrajectoryConfig,  # noqa: N806
                                 train=(NewTrain, NewTrain()), warmup_rounds=(int, 0))
    base = dict(task="rot90", task_spec=TaskSpec(dataset="mnist_subset", views=({"rotate": 90},)), arch="lenet",
                seed=0, rounds=5)
    for train in ({}, {"epochs": 3, "momentum": 0.9}):
        old = TrajectoryConfig(**base, train=TrainConfig(**train))
        new = NewTrajectory(**base, train=NewTrain(**train))
        assert config_hash(new) == config_hash(old)
        assert new.key() == old.key()
        # the new settings count once they are used
        assert config_hash(NewTrajectory(**base, train=NewTrain(**train), warmup_rounds=2)) != config_hash(old)
        assert config_hash(NewTrajectory(**base, train=NewTrain(**train, label_smoothing=0.1))) != config_hash(old)


def test_only_what_changes_results_is_hashed():
    a = _trajectory()
    assert config_hash(a) == config_hash(_trajectory(train=TrainConfig()))  # defaults spelled out: same id
    for other in (_trajectory(seed=1), _trajectory(rounds=4), _trajectory(technique="l1_unstructured"),
                  _trajectory(train=TrainConfig(lr=0.02)), _trajectory(data=DataConfig(flip=False))):
        assert config_hash(other) != config_hash(a)
