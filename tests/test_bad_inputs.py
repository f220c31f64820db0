"""Issue 6's bad-input catalogue: every malformed input fails at once with exit status 2, one line
per problem whose first line names the file and the field, no traceback, and nothing written.

The real command lines run in-process (`ray.init` is made to fail the test, so a case that would
start Ray cannot pass); a few run through a subprocess for the real exit status.

Consensus groups cannot mix architectures or seeds: a group in the sweep file is expanded into
one instance per (architecture, seed) of the grid (`archs`/`seeds` only select instances), and
every task is converted to its architecture's input channels and side, so all masks of an
instance share their shapes except the output layer. What can differ is the class count of the
sources: that is the mixing case tested here.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ltray.errors import MaskFileError
from ltray.experiment.layout import FORMAT_VERSION
from ltray.masks import check_mask_matches, load_mask, save_mask
from ltray.sweep.__main__ import main as sweep_main

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "name": "bad",
    "tasks": {"rot90": {"dataset": "mnist_subset", "views": [{"rotate": 90}]}, "uci": {"dataset": "digits"}},
    "grid": {"tasks": ["mnist_subset", "rot90"], "archs": ["lenet"], "techniques": ["global_unstructured"],
             "seeds": [0]},
    "rounds": 3,
    "train": {"epochs": 2},
    "resources": {"lenet": {"cpu": 1}},
    "consensus": [{"name": "pair", "sources": ["mnist_subset", "rot90"], "thresholds": ["all", 1],
                   "targets": ["mnist_subset", "rot90", "uci"]}],
}


def put(path: str, value):
    """An edit setting BASE's key at a dotted path ('consensus.0.thresholds')."""
    def edit(doc):
        *head, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in head:
            doc = doc[part]
        doc[last] = value
    return edit


def drop(key: str):
    return lambda doc: doc.pop(key)


def both(*edits):
    def edit(doc):
        for e in edits:
            e(doc)
    return edit


# ---- hostile YAML: each is refused by the bounded loader (ltray/yamlio.py) before validation ------

class Appended(str):
    """YAML text appended to a valid file (BASE's, or the shipped cluster.yaml): one hostile part."""


def nested(depth: int, opening: str = "[", closing: str = "]") -> str:
    return opening * depth + closing * depth


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Billion laughs: a few hundred bytes whose top alias expands to width**levels strings."""
    lines = [f"laugh0: &laugh0 [{', '.join(['lol'] * width)}]"]
    lines += [f"laugh{i}: &laugh{i} [{', '.join([f'*laugh{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nlaughs: *laugh{levels - 1}\n"


def deep_through_aliases(step: int = 30, links: int = 3) -> str:
    """Each anchor nests the previous one `step` levels down: shallow as written, deep once expanded."""
    lines = [f"deep0: &deep0 {nested(step)}"]
    lines += [f"deep{i}: &deep{i} {'[' * step}*deep{i - 1}{']' * step}" for i in range(1, links)]
    return "\n".join(lines) + "\n"


# id: (text appended to a valid file, or bytes; the first line after "FILE: ", where {line} is the line
#      the appended text starts on; a fragment of it)
HOSTILE_YAML = {
    "20,000-deep nested list": (Appended(f"deep: {nested(20_000)}\n"), "line {line}",
                                "YAML nested deeper than 64 levels"),
    "20,000-deep nested mapping": (Appended(f"deep: {nested(20_000, '{a: ', '}')}\n"), "line {line}",
                                   "YAML nested deeper than 64 levels"),
    "list as a mapping key": (Appended("? [a, b]\n: 1\n"), "YAML syntax error: line {line}",
                              "a key must be a single value, not a list"),
    "mapping as a mapping key": (Appended("? {a: 1}\n: 1\n"), "YAML syntax error: line {line}",
                                 "a key must be a single value, not a dict"),
    "alias bomb (billion laughs)": (Appended(alias_bomb()), "line ", "YAML of more than 100,000 values once aliases"),
    "alias nesting deep once expanded": (Appended(deep_through_aliases()), "line ",
                                         "nested deeper than 64 levels once aliases are expanded"),
    "alias inside its own anchor": (Appended("loop: &loop [1, *loop]\n"), "line {line}",
                                    "a YAML alias refers to a list or mapping that contains it"),
    "5,000-digit integer": (Appended(f"big: {'9' * 5000}\n"), "line {line}", "an integer literal of more than 100"),
    "file over 1 MiB": (Appended("#" * (1 << 20) + "\n"), "a ", "of more than 1 MiB is refused"),
    "not UTF-8": (b"# caf\xe9 (latin-1)\n", "a ", "must be UTF-8 text, found byte 0xe9 at offset"),
}


def hostile_sweep_cases():
    """HOSTILE_YAML as SWEEP_CASES rows, appended to BASE's YAML."""
    line = yaml.safe_dump({**BASE, "storage": "store"}).count("\n") + 1
    return [(f"yaml {name}", content, field.format(line=line), fragment, 1)
            for name, (content, field, fragment) in HOSTILE_YAML.items()]


INF, NAN = float("inf"), float("nan")

# (id, edit of BASE or the file's whole text, what follows "error: FILE: " on the first line,
#  a fragment of the first line, number of lines)
SWEEP_CASES = [
    ("yaml syntax", "name: [bad\nrounds: 3\n", "YAML syntax error: line 2", "expected", 1),
    ("yaml tab", "\tname: bad\n", "YAML syntax error: line 1", "'\\t'", 1),
    ("yaml duplicate key", "name: a\nrounds: 3\nname: b\n", "YAML syntax error: line 3", "duplicate key 'name'", 1),
    ("top level is a list", "- name: bad\n", "a sweep file must be a mapping", "got list", 1),
    ("empty file", "", "the sweep file is empty", "empty", 1),
    ("unknown top-level key", put("epochs", 3), "epochs: unknown key", "known: consensus, data", 1),
    ("unknown nested key", put("train.epoch", 3), "train.epoch: unknown key", "did you mean 'epochs'?", 1),
    ("unknown group key", put("consensus.0.threshold", [1]), "consensus.0.threshold: unknown key",
     "'thresholds'", 1),
    ("missing grid", drop("grid"), "grid: required key is missing", "missing", 1),
    ("rounds not a number", put("rounds", "ten"), "rounds: ", "valid integer (got 'ten')", 1),
    ("unknown logger", put("loggers", ["tensorbord"]), "loggers.0: ",
     "Input should be 'tensorboard', 'mlflow' or 'wandb' (got 'tensorbord')", 1),
    ("seed not a number", put("grid.seeds", ["a"]), "grid.seeds.0: ", "valid integer", 1),
    ("zero rounds", put("rounds", 0), "rounds: ", "greater than or equal to 1 (got 0)", 1),
    ("negative rounds", put("rounds", -3), "rounds: ", "(got -3)", 1),
    ("zero epochs", put("train.epochs", 0), "train.epochs: ", "greater than or equal to 1", 1),
    ("zero batch size", put("train.batch_size", 0), "train.batch_size: ", "(got 0)", 1),
    ("negative batch size", put("train.batch_size", -32), "train.batch_size: ", "(got -32)", 1),
    ("prune fraction 0", put("prune", {"fraction": 0}), "prune.fraction: ", "greater than 0", 1),
    ("prune fraction 1", put("prune", {"fraction": 1}), "prune.fraction: ", "less than 1", 1),
    ("prune fraction 1.5", put("prune", {"fraction": 1.5}), "prune.fraction: ", "less than 1 (got 1.5)", 1),
    ("prune fraction -0.1", put("prune", {"fraction": -0.1}), "prune.fraction: ", "(got -0.1)", 1),
    ("lr 0", put("train.lr", 0), "train.lr: ", "greater than 0", 1),
    ("lr negative", put("train.lr", -0.01), "train.lr: ", "(got -0.01)", 1),
    ("rewind beyond epochs", put("train.rewind", 5), "train.rewind: ", "rewind epoch 5 is beyond epochs=2", 1),
    ("rewind unknown word", put("train.rewind", "late"), "train.rewind: ",
     "expected 'init' or 'none' or an integer, got 'late'", 1),
    ("unknown dataset", put("tasks.rot90.dataset", "mnits"), "tasks.rot90.dataset: ",
     "unknown dataset 'mnits'; known: cifar10, cifar100, digits", 1),
    ("unknown task in grid", put("grid.tasks", ["mnist_subset", "rot180"]), "grid.tasks.1: ",
     "unknown task 'rot180'", 1),
    ("unknown view kind", put("tasks.rot90.views", [{"rotat": 90}]), "tasks.rot90.views.0: ",
     "expected one of {rotate: number}, {invert: true}, {permute_pixels: integer}, {permute_labels: integer}",
     1),
    ("view of the wrong type", put("tasks.rot90.views", ["rotate"]), "tasks.rot90.views.0: ", "got 'rotate'", 1),
    ("bad view value", put("tasks.rot90.views", [{"invert": False}]), "tasks.rot90.views.0.invert: ",
     "Input should be True (got False)", 1),
    ("unknown architecture", put("grid.archs", ["lenet5"]), "grid.archs.0: ",
     "unknown architecture 'lenet5'; known: alexnet, lenet, lenet_300_100, resnet18, vgg11", 1),
    ("unknown technique", put("grid.techniques", ["magnitude"]), "grid.techniques.0: ",
     "unknown technique 'magnitude'; known: global_unstructured, l1_structured", 1),
    ("unknown resources arch", put("resources", {"lenett": {"cpu": 1}}), "resources.lenett: ",
     "unknown architecture 'lenett'", 1),
    ("duplicate grid tasks", put("grid.tasks", ["rot90", "rot90"]), "grid.tasks: ", "duplicate entries: rot90", 1),
    ("duplicate grid seeds", put("grid.seeds", [0, 1, 0]), "grid.seeds: ", "duplicate entries: 0", 1),
    ("duplicate source rounds", put("consensus.0.source_rounds", [1, 1]), "consensus.0.source_rounds: ",
     "duplicate entries: 1", 1),
    ("duplicate group names", lambda d: d["consensus"].append(copy.deepcopy(d["consensus"][0])), "consensus: ",
     "consensus group names must be unique: pair", 1),
    ("bad experiment name", put("name", "../escape"), "name: ", "(got '../escape')", 1),
    ("source not in the grid", put("consensus.0.sources", ["mnist_subset", "uci"]), "consensus.0.sources.1: ",
     "'uci' is not in grid.tasks", 1),
    ("group technique not in the grid", put("consensus.0.technique", "random_unstructured"),
     "consensus.0.technique: ", "not in grid.techniques", 1),
    ("group arch not in the grid", put("consensus.0.archs", ["vgg11"]), "consensus.0.archs.0: ",
     "'vgg11' is not in grid.archs", 1),
    ("source round >= rounds", put("consensus.0.source_rounds", [3]), "consensus.0.source_rounds.0: ",
     "round 3 does not exist with rounds=3", 1),
    ("threshold above the sources", put("consensus.0.thresholds", ["all", 3]), "consensus.0.thresholds.1: ",
     "threshold 3 is larger than the 2 sources", 1),
    ("threshold 0", put("consensus.0.thresholds", [0]), "consensus.0.thresholds: ", "must be >= 1 or 'all'", 1),
    ("threshold a word", put("consensus.0.thresholds", ["all", "two"]), "consensus.0.thresholds.1: ",
     "expected an integer or 'all', got 'two'", 1),
    ("threshold a fraction", put("consensus.0.thresholds", [1.5]), "consensus.0.thresholds.0: ",
     "expected an integer or 'all', got 1.5", 1),
    ("held-out target with other classes", put("consensus.0.targets", ["mnist_subset", "rot90", "uci", "cifar100"]),
     "consensus.0.targets.3: ", "'cifar100' has 100 classes but the sources have 10; set output_rule", 1),
    ("sources with other class counts",
     both(put("grid.tasks", ["mnist_subset", "rot90", "cifar100"]),
          put("consensus.0.sources", ["mnist_subset", "cifar100"])),
     "consensus.0.sources: ", "different class counts (mnist_subset=10, cifar100=100)", 1),
    ("GPU fraction not dividing 1", put("resources.lenet.gpu", 0.3), "resources.lenet.gpu: ",
     "must divide 1", 1),
    ("non-integer GPUs above 1", put("resources.lenet.gpu", 1.5), "resources.lenet.gpu: ", "whole number", 1),
    ("image size below the arch minimum", put("data", {"image_size": 9}), "data.image_size: ",
     "below lenet's minimum of 10 px", 1),
    ("two problems, one line each", both(put("rounds", 0), put("train.lr", -1)), "rounds: ", "(got 0)", 2),
    # numbers must be finite
    ("lr .inf", put("train.lr", INF), "train.lr: ", "expected a finite number, got inf", 1),
    ("lr .nan", put("train.lr", NAN), "train.lr: ", "expected a finite number, got nan", 1),
    ("weight_decay .inf", put("train.weight_decay", INF), "train.weight_decay: ", "expected a finite number, got inf",
     1),
    ("momentum .nan", put("train.momentum", NAN), "train.momentum: ", "expected a finite number, got nan", 1),
    ("rotate .inf", put("tasks.rot90.views", [{"rotate": INF}]), "tasks.rot90.views.0.rotate: ",
     "expected a finite number, got inf", 1),
    ("rotate .nan", put("tasks.rot90.views", [{"rotate": NAN}]), "tasks.rot90.views.0.rotate: ",
     "expected a finite number, got nan", 1),
    ("prune fraction .nan", put("prune", {"fraction": NAN}), "prune.fraction: ", "expected a finite number, got nan",
     1),
    ("val_fraction .inf", put("data", {"val_fraction": INF}), "data.val_fraction: ",
     "expected a finite number, got inf", 1),
    ("cpu .inf", put("resources.lenet.cpu", INF), "resources.lenet.cpu: ", "expected a finite number, got inf", 1),
    ("gpu .inf", put("resources.lenet.gpu", INF), "resources.lenet.gpu: ", "expected a finite number, got inf", 1),
    # booleans are neither integers nor numbers
    ("rounds true", put("rounds", True), "rounds: ", "valid integer (got True)", 1),
    ("epochs true", put("train.epochs", True), "train.epochs: ", "valid integer (got True)", 1),
    ("batch_size false", put("train.batch_size", False), "train.batch_size: ", "valid integer (got False)", 1),
    ("seed true", put("grid.seeds", [True]), "grid.seeds.0: ", "valid integer (got True)", 1),
    ("threshold true", put("consensus.0.thresholds", [True]), "consensus.0.thresholds.0: ",
     "expected an integer or 'all', got True", 1),
    ("source round true", put("consensus.0.source_rounds", [True]), "consensus.0.source_rounds.0: ",
     "valid integer (got True)", 1),
    ("cpu true", put("resources.lenet.cpu", True), "resources.lenet.cpu: ", "expected a finite number, got true", 1),
    ("gpu true", put("resources.lenet.gpu", True), "resources.lenet.gpu: ", "expected a finite number, got true", 1),
    ("lr true", put("train.lr", True), "train.lr: ", "expected a finite number, got true", 1),
    ("max_concurrent true", put("max_concurrent", True), "max_concurrent: ", "valid integer (got True)", 1),
    ("max_failures false", put("max_failures", False), "max_failures: ", "valid integer (got False)", 1),
    ("image size true", put("image_sizes", {"lenet": True}), "image_sizes.lenet: ", "valid integer (got True)", 1),
    ("data.image_size true", put("data", {"image_size": True}), "data.image_size: ", "valid integer (got True)", 1),
    ("view seed true", put("tasks.rot90.views", [{"permute_labels": True}]), "tasks.rot90.views.0.permute_labels: ",
     "valid integer (got True)", 1),
    ("rewind true", put("train.rewind", True), "train.rewind: ", "expected 'init' or 'none' or an integer, got True",
     1),
    ("prune dim true", put("prune", {"dim": True}), "prune.dim: ", "valid integer (got True)", 1),
    ("seed 2.0", put("grid.seeds", [2.0]), "grid.seeds.0: ", "valid integer (got 2.0)", 1),
    # seeds within what torch generators and the int64 tables take
    ("seed 2**64", put("grid.seeds", [2**64]), "grid.seeds.0: ",
     "less than or equal to 9223372036854775807 (got 18446744073709551616)", 1),
    ("seed 2**63", put("grid.seeds", [2**63]), "grid.seeds.0: ", "less than or equal to 9223372036854775807", 1),
    ("group seed 2**64", put("consensus.0.seeds", [2**64]), "consensus.0.seeds.0: ", "less than or equal to", 1),
    ("view seed 2**64", put("tasks.rot90.views", [{"permute_pixels": 2**64}]),
     "tasks.rot90.views.0.permute_pixels: ", "less than or equal to 9223372036854775807", 1),
    # huge values are shown cut short, never whole
    ("100,000-character name", put("name", "-" + "x" * 100_000), "name: ", "(got '-xxxxxxxx", 1),
    ("100,000-character task name", put("tasks", {"t" * 100_000: {"dataset": "mnist"}}), "tasks: ",
     "task name 'tttttttttt", 1),
    ("65-character experiment name", put("name", "n" * 65), "name: ", "String should match pattern", 1),
    ("100,000-character unknown key", put("train." + "k" * 100_000, 1), "train.kkkkkkkkkk", "...: unknown key", 1),
    ("100,000-character architecture key", put("resources", {"k" * 100_000: {"cpu": 1}}), "resources.kkkkkkkk",
     "...: unknown architecture 'kkkk", 1),
    *hostile_sweep_cases(),
]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for folders): to prove nothing was written."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def no_ray(monkeypatch):
    """Any attempt to start or join Ray fails the test (main() only catches LtrayError)."""
    import ray

    assert not ray.is_initialized(), "a Ray left running by another test would be joined"

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for a bad input")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield
    assert not ray.is_initialized()


def write_sweep(tmp_path: Path, content) -> Path:
    path = tmp_path / "sweep.yaml"
    if isinstance(content, (Appended, bytes)):
        text = yaml.safe_dump({**BASE, "storage": str(tmp_path / "store")})
        if isinstance(content, bytes):
            path.write_bytes(text.encode() + content)
        else:
            path.write_text(text + content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        doc = copy.deepcopy({**BASE, "storage": str(tmp_path / "store")})
        content(doc)
        path.write_text(yaml.safe_dump(doc))
    return path


def expect_one_error(capsys, code: int, path, field: str, fragment: str, n_lines: int = 1) -> list[str]:
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"error: {path}: {field}"), lines
    assert fragment in lines[0], lines
    assert len(lines) == n_lines, lines
    assert all(line.startswith(f"{path}: ") for line in lines[1:]), lines
    assert len(set(lines)) == len(lines)
    assert all(len(line) < len(f"error: {path}: ") + 300 for line in lines), "a huge value in full"
    return lines


def test_the_base_sweep_is_valid(tmp_path, capsys):
    """So that each case below fails for its own reason."""
    assert sweep_main([str(write_sweep(tmp_path, lambda d: None)), "--dry-run"]) == 0
    assert "bespoke trajectories: 2" in capsys.readouterr().out


@pytest.mark.parametrize("case", SWEEP_CASES, ids=[c[0] for c in SWEEP_CASES])
def test_bad_sweep_file(case, tmp_path, capsys, no_ray):
    _, content, field, fragment, n_lines = case
    path = write_sweep(tmp_path, content)
    before = snapshot(tmp_path)
    code = sweep_main([str(path), "--dry-run"])
    expect_one_error(capsys, code, path, field, fragment, n_lines)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "store").exists()


def test_bad_command_line_override_says_so(tmp_path, capsys, no_ray):
    path = write_sweep(tmp_path, lambda d: None)
    code = sweep_main([str(path), "--dry-run", "--name", "../escape"])
    expect_one_error(capsys, code, path, "name (set by --name): ", "(got '../escape')")


def test_missing_sweep_file(tmp_path, capsys, no_ray):
    path = tmp_path / "nope.yaml"
    expect_one_error(capsys, sweep_main([str(path), "--dry-run"]), path, "cannot read sweep file",
                     "No such file")


def test_sweep_file_that_is_a_folder(tmp_path, capsys, no_ray):
    path = tmp_path / "sweep.yaml"
    path.mkdir()
    expect_one_error(capsys, sweep_main([str(path), "--dry-run"]), path, "cannot read sweep file", "directory")


def test_aliases_within_bounds_still_load(tmp_path, capsys, no_ray):
    """Anchors and aliases are fine YAML: only their expansion is bounded."""
    text = yaml.safe_dump({**{k: v for k, v in BASE.items() if k != "consensus"}, "storage": str(tmp_path / "store")})
    text += ("consensus:\n- name: pair\n  sources: &sources [mnist_subset, rot90]\n  targets: *sources\n"
             "  thresholds: [all, 1]\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    assert sweep_main([str(path), "--dry-run"]) == 0
    assert "bespoke trajectories: 2" in capsys.readouterr().out


def test_yaml_bounds_are_where_they_say():
    from ltray.yamlio import MAX_DEPTH, MAX_NODES, YAMLLimitError, load_yaml

    assert load_yaml(nested(MAX_DEPTH)) is not None
    with pytest.raises(YAMLLimitError, match="nested deeper than 64 levels"):
        load_yaml(nested(MAX_DEPTH + 1))
    with pytest.raises(YAMLLimitError) as info:  # refused at the 65th '[' of a 500,000-long line
        load_yaml("[" * 500_000)
    assert (info.value.problem_mark.line, info.value.problem_mark.column) == (0, MAX_DEPTH)
    bomb = alias_bomb(levels=5, width=8)  # ~80,000 values in all once expanded: big, but within
    assert len(load_yaml(bomb)["laughs"]) == 8 and MAX_NODES == 100_000
    with pytest.raises(YAMLLimitError, match="more than 100,000 values"):
        load_yaml(alias_bomb(levels=6, width=8))


def test_message_never_expands_a_shared_value():
    """A value built in Python (parse_sweep takes dicts) can be an alias bomb too: the message
    about it is built from a few levels of it, not from its 9**30 strings."""
    from ltray.errors import ConfigError
    from ltray.orchestration.load import parse_sweep

    bomb = ["lol"] * 9
    for _ in range(29):
        bomb = [bomb] * 9
    raw = copy.deepcopy(BASE)
    raw["tasks"]["rot90"]["views"] = [bomb]
    with pytest.raises(ConfigError) as info:
        parse_sweep(raw, "s.yaml")
    text = str(info.value)
    assert text.startswith("s.yaml: tasks.rot90.views.0: expected one of") and len(text) < 400, text


# ---- inputs found when a run starts: each must fail before Ray starts ---------------------------

def existing_folder(tmp_path):
    (tmp_path / "store" / "bad").mkdir(parents=True)
    (tmp_path / "store" / "bad" / "notes.txt").write_text("mine")


def marker(doc, plan='{"trajectories": []}'):
    def setup(tmp_path):
        existing_folder(tmp_path)
        (tmp_path / "store" / "bad" / "experiment.json").write_text(json.dumps(doc))
        (tmp_path / "store" / "bad" / "plan.json").write_text(plan)
    return setup


def regular_file(rel):
    def setup(tmp_path):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a file, not a folder")
    return setup


def nothing(tmp_path):
    pass


# (id, edit of BASE, prepare tmp_path, extra arguments, what names the problem, fragment)
RUN_CASES = [
    ("existing folder without --resume", lambda d: None, existing_folder, [], "{exp}: ",
     "already exists; use --resume"),
    ("--resume of a non-experiment", lambda d: None, existing_folder, ["--resume"], "{exp}: ",
     "not an ltray experiment folder (no experiment.json)"),
    ("--resume of a missing folder", lambda d: None, nothing, ["--resume"], "{exp}: ",
     "no such experiment folder"),
    ("--resume of an incompatible version", lambda d: None, marker({"format": 99}), ["--resume"],
     "{exp}/experiment.json: ", "folder format 99, this ltray"),
    ("--resume with a garbled marker", lambda d: None, marker([1, 2]), ["--resume"],
     "{exp}/experiment.json: ", "not a JSON object"),
    ("--resume of another sweep's folder", lambda d: None, marker({"format": FORMAT_VERSION}), ["--resume"],
     "{exp}: ", "the sweep file no longer matches this experiment (2 trajectories differ)"),
    ("--resume with a broken plan.json", lambda d: None, marker({"format": FORMAT_VERSION}, '{"trajectories": 3}'),
     ["--resume"], "{exp}/plan.json: trajectories: ", "valid array"),
    ("storage under a regular file", put("storage", "{tmp}/blocker/store"), regular_file("blocker"), [],
     "{tmp}/blocker/store/bad: ", "cannot write the experiment folder"),
    ("experiment path is a file", lambda d: None, regular_file("store/bad"), [], "{exp}: ",
     "is not a folder"),
    ("more CPUs than the local Ray", put("resources.lenet.cpu", 64), nothing, ["--num-cpus", "2"],
     "{sweep}: resources.lenet.cpu: ", "cpu=64 but the local Ray has 2 CPU(s)"),
    ("a GPU on a machine without", put("resources", {"default": {"gpu": 1}}), nothing, ["--num-gpus", "0"],
     "{sweep}: resources.default.gpu: ", "gpu=1 but the local Ray has 0 GPU(s)"),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_bad_run(case, tmp_path, capsys, no_ray):
    _, edit, prepare, extra, where, fragment = case

    def edit_paths(doc):
        edit(doc)
        doc["storage"] = doc["storage"].format(tmp=tmp_path)

    path = write_sweep(tmp_path, edit_paths)
    prepare(tmp_path)
    before = snapshot(tmp_path)
    code = sweep_main([str(path), "-q", *extra])
    names = where.format(exp=tmp_path / "store" / "bad", tmp=tmp_path, sweep=path)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err and out == ""
    assert err.strip().splitlines() == [err.strip()], err
    assert err.startswith(f"error: {names}") and fragment in err, err
    assert snapshot(tmp_path) == before


def test_a_gpu_the_local_ray_would_not_find_is_one_line(tmp_path, capsys, monkeypatch, no_ray):
    """Without --num-gpus the count is Ray's own detection, as ray.init would make it (here: no
    GPU visible, whatever the machine has)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    path = write_sweep(tmp_path, lambda d: d.update(resources={"default": {"gpu": 0.5}}))
    assert sweep_main([str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"error: {path}: resources.default.gpu: a lenet trial asks for gpu=0.5 but the local "
                           "Ray has 0 GPU(s), so it would never start; lower it, or run on a cluster with --address")
    assert not (tmp_path / "store").exists()


def test_half_written_folder_is_removed(tmp_path, monkeypatch, no_ray):
    """A failed write (full disk) while creating the folder leaves nothing that blocks a retry."""
    from ltray.errors import ExperimentError
    from ltray.experiment import folder
    from ltray.storage import StorageError, open_storage
    from ltray.orchestration.load import load_sweep
    from ltray.orchestration.opening import open_experiment
    from ltray.orchestration.plan import build_plan

    sweep = load_sweep(write_sweep(tmp_path, put("storage", str(tmp_path / "deep" / "store"))))

    def full_disk(storage, rel, doc):
        raise StorageError(storage.describe(rel), "write", "No space left on device")

    monkeypatch.setattr(folder, "write_json", full_disk)
    with pytest.raises(ExperimentError, match="No space left on device"):
        open_experiment(build_plan(sweep), open_storage(tmp_path / "deep" / "store" / "bad"), resume=False)
    assert not (tmp_path / "deep").exists()


# ---- mask files ---------------------------------------------------------------------------------

LENET_SHAPES = {"conv1.weight": (6, 1, 3, 3), "conv2.weight": (16, 6, 3, 3), "fc1.weight": (120, 400),
                "fc2.weight": (84, 120), "fc3.weight": (10, 84)}


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


MASK_CORRUPTIONS = {
    "empty": (lambda d: b"", "truncated mask file (0 bytes)"),
    "truncated": (lambda d: d[: len(d) // 2], "checksum mismatch"),
    "cut inside the preamble": (lambda d: d[:10], "truncated mask file"),
    "wrong magic": (lambda d: b"PK\x03\x04" + d[4:], "not an ltray mask file"),
    "future version": (lambda d: d[:7] + b"\x02" + d[8:], "unsupported mask format version 2"),
    "flipped payload bit": (lambda d: flip(d, len(d) - 40), "checksum mismatch"),
    "flipped header byte": (lambda d: flip(d, 20), "checksum mismatch"),
    "checksum changed": (lambda d: flip(d, len(d) - 1), "checksum mismatch"),
    "appended bytes": (lambda d: d + b"\x00" * 8, "checksum mismatch"),
}


@pytest.fixture
def good_mask(tmp_path):
    path = tmp_path / "round_01.ltmask"
    save_mask(path, {n: np.ones(s, dtype=bool) for n, s in LENET_SHAPES.items()}, meta={"round": 1})
    return path


@pytest.mark.parametrize("name", list(MASK_CORRUPTIONS))
def test_corrupt_mask_file(name, good_mask):
    corrupt, message = MASK_CORRUPTIONS[name]
    good_mask.write_bytes(corrupt(good_mask.read_bytes()))
    with pytest.raises(MaskFileError) as info:
        load_mask(good_mask)
    text = str(info.value)
    assert text.startswith(f"{good_mask}: ") and message in text and "\n" not in text


def test_corrupt_header_with_valid_checksum(tmp_path):
    """A header that is not JSON (or absurdly nested) is refused even when the checksum fits."""
    import hashlib
    import struct

    for i, header in enumerate([b"{nope", b"[" * 100_000, b'{"tensors": 3}']):
        body = b"LTMASK\x00\x01" + struct.pack("<I", len(header)) + header
        path = tmp_path / f"m{i}.ltmask"
        path.write_bytes(body + hashlib.sha256(body).digest())
        with pytest.raises(MaskFileError, match=f"^{path}: mask header"):
            load_mask(path)


def test_mask_missing_file(tmp_path):
    with pytest.raises(MaskFileError, match=f"^{tmp_path / 'x.ltmask'}: mask file not found"):
        load_mask(tmp_path / "x.ltmask")


def real_lenet_shapes() -> dict[str, tuple]:
    from ltray.models import build_model, prunable_weights

    model = build_model("lenet", 10, 0)
    params = dict(model.named_parameters())
    return {n: tuple(params[n].shape) for n in prunable_weights(model)}


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("fc2.weight"), "mask has no layer 'fc2.weight'"),
    (lambda m: m.__setitem__("fc4.weight", np.ones((2, 2), bool)), "unexpected layer 'fc4.weight'"),
    (lambda m: m.__setitem__("conv1.weight", np.ones((6, 3, 3, 3), bool)),
     "layer 'conv1.weight' has shape (6, 3, 3, 3), expected (6, 1, 3, 3)"),
])
def test_mask_not_fitting_the_architecture(change, message, good_mask):
    shapes = real_lenet_shapes()
    assert shapes == LENET_SHAPES  # the mask file above is a real LeNet mask
    mask = load_mask(good_mask)
    change(mask)
    with pytest.raises(MaskFileError, match=f"^{good_mask}: ") as info:
        check_mask_matches(mask, shapes, good_mask)
    assert message in str(info.value)


def test_output_layer_of_another_class_count(good_mask):
    from ltray.training.ticket import fit_output_layer

    target = {**LENET_SHAPES, "fc3.weight": (47, 84)}  # e.g. EMNIST balanced
    mask = load_mask(good_mask)
    with pytest.raises(MaskFileError, match=f"^{good_mask}: output layer fc3.weight has shape"):
        fit_output_layer(mask, target, "fc3", "error", str(good_mask))
    wrong_inputs = {**LENET_SHAPES, "fc3.weight": (47, 100)}  # no rule can fix other input features
    with pytest.raises(MaskFileError, match="set consensus output_rule"):
        fit_output_layer(mask, wrong_inputs, "fc3", "columns", str(good_mask))
    assert fit_output_layer(mask, target, "fc3", "dense", str(good_mask))["fc3.weight"].shape == (47, 84)


# ---- the other command lines --------------------------------------------------------------------

@pytest.mark.parametrize("edit, key, message", [
    (lambda c: c.__setitem__("max_workers", "many"), "max_workers: ", "'many' is not of type 'integer'"),
    (lambda c: c["available_node_types"]["gpu_1x_a10g"]["resources"].__setitem__("GPU", -1),
     "available_node_types.gpu_1x_a10g.resources.GPU: ", "whole number >= 0, got -1"),
])
def test_invalid_cluster_file(edit, key, message, tmp_path, capsys):
    """Two cases beyond tests/test_cluster_check.py's broken variants (types, not ltray's rules)."""
    from ltray.cluster.__main__ import main

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    edit(config)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"{path}: {key}") and message in lines[0], lines
    assert not any("OK" in line for line in lines)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "not an ltray experiment folder (no experiment.json)"),
    (lambda p: None, "no such experiment folder"),
    (lambda p: (p.mkdir(), (p / "experiment.json").write_text(json.dumps({"format": FORMAT_VERSION})),
                (p / "plan.json").write_text("{not json")), "plan.json: "),
])
def test_status_of_a_non_experiment(make, message, tmp_path, capsys):
    from ltray.status import main

    folder = tmp_path / "exp"
    make(folder)
    before = snapshot(tmp_path)
    code = main([str(folder)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"ltray.status: {folder}") and message in err, err
    assert snapshot(tmp_path) == before


def test_analysis_of_a_non_experiment(tmp_path, capsys):
    from ltray_analysis.__main__ import main

    folder = tmp_path / "exp"
    folder.mkdir()
    code = main([str(folder), "--out", str(tmp_path / "report")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"error: {folder}") and "not an ltray experiment folder" in err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("name", list(HOSTILE_YAML))
def test_hostile_cluster_file(name, tmp_path, capsys):
    """The same bounded loader reads cluster files: each hostile part, appended to the shipped
    cluster.yaml, gives one line naming the file, exit 2, and nothing written."""
    from ltray.cluster.__main__ import main

    content, field, fragment = HOSTILE_YAML[name]
    shipped = (ROOT / "cluster.yaml").read_bytes()
    if not shipped.endswith(b"\n"):
        shipped += b"\n"
    path = tmp_path / "cluster.yaml"
    path.write_bytes(shipped + (content if isinstance(content, bytes) else content.encode()))
    before = snapshot(tmp_path)
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and err == "" and "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < len(str(path)) + 300, lines
    assert lines[0].startswith(f"{path}: " + field.format(line=shipped.count(b"\n") + 1)), lines
    assert fragment.replace("a sweep file", "a cluster file") in lines[0], lines
    assert snapshot(tmp_path) == before


@pytest.fixture
def small_experiment(tmp_path):
    """A folder analysis accepts (a plan and nothing else), so options alone decide the outcome."""
    from ltray_analysis.__main__ import main

    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "plan.json").write_text('{"trajectories": [], "groups": []}')
    (folder / "experiment.json").write_text(json.dumps({"format": FORMAT_VERSION}))
    assert main([str(folder), "--out", str(tmp_path / "ok")]) == 0
    return folder


@pytest.mark.parametrize("options, message", [
    (["--dpi", "100000"], "argument --dpi: must be between 10 and 600 dots per inch, got 100000"),
    (["--dpi", "0"], "argument --dpi: must be between 10 and 600 dots per inch, got 0"),
    (["--dpi", "-5"], "argument --dpi: must be between 10 and 600"),
    (["--dpi", "1e9"], "argument --dpi: expected a whole number, got '1e9'"),
    (["--reference", "x" * 100_000], "argument --reference: expected a technique name"),
    (["--reference", "../../etc"], "argument --reference: expected a technique name"),
    (["--out", "{tmp}/blocker"], "{tmp}/blocker: cannot write the report folder"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_bad_analysis_option(options, message, small_experiment, capsys):
    from ltray_analysis.__main__ import main

    tmp = small_experiment.parent
    (tmp / "blocker").write_text("a file, not a folder")
    capsys.readouterr()
    before = snapshot(tmp)
    code = main([str(small_experiment), "--out", str(tmp / "report"), *[o.format(tmp=tmp) for o in options]])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()] and len(err) < 300, err
    assert err.startswith("error: ") and message.format(tmp=tmp) in err, err
    assert snapshot(tmp) == before


# ---- the real exit status, through a subprocess ---------------------------------------------------

@pytest.mark.parametrize("content, extra, where, fragment", [
    ("name: [bad\n", ["--dry-run"], "{sweep}: YAML syntax error: line 2", "expected"),
    # the real interpreter's recursion limit and memory: no RecursionError, no hang
    (f"name: bad\nrounds: {nested(20_000)}\n", ["--dry-run"], "{sweep}: line 2", "nested deeper than 64"),
    ("name: bad\n" + alias_bomb(), ["--dry-run"], "{sweep}: line ", "more than 100,000 values"),
    # a real run (no --dry-run) that is refused before Ray is even imported
    (put("resources.lenet.cpu", 64), ["--num-cpus", "2"], "{sweep}: resources.lenet.cpu: ", "cpu=64"),
])
def test_subprocess_exit_status(content, extra, where, fragment, tmp_path):
    path = write_sweep(tmp_path, content)
    before = snapshot(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "ltray.sweep", str(path), "-q", *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {where.format(sweep=path)}") and fragment in lines[0], lines
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "store").exists()
