"""Read a sweep file: YAML syntax, then the typed models, then the rules that need the registries.

Every problem becomes one ConfigError line `<file>: <field.path>: <message>` (pydantic's errors
are rewritten by `pydantic_errors`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ltray.config import DataConfig, TaskSpec
from ltray.errors import ConfigError, LtrayError, clip, short_repr, unknown_key_message
from ltray.plugins import PluginError, import_from
from ltray.orchestration.pydantic_errors import format_validation_error
from ltray.orchestration.spec import SweepConfig
from ltray.yamlio import load_yaml_file


def load_sweep(path: str | Path, overrides: dict | None = None) -> SweepConfig:
    """Parse and fully validate a sweep file; `overrides` replace top-level keys (CLI flags)."""
    path = Path(path)
    raw = load_yaml_file(path, "sweep file")  # bounded: size, depth, alias expansion
    if raw is None:
        raise ConfigError(f"{path}: the sweep file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file must be a mapping of keys, got {type(raw).__name__}")
    cli = {k: v for k, v in (overrides or {}).items() if v is not None}
    raw.update(cli)
    return parse_sweep(raw, str(path), cli_keys=tuple(cli))


def parse_sweep(raw: dict, source: str = "<sweep>", cli_keys: tuple[str, ...] = ()) -> SweepConfig:
    """Validate a parsed sweep; `cli_keys` came from command-line flags (said so in errors)."""
    try:
        cfg = SweepConfig.model_validate(raw)
    except ValidationError as e:
        text = format_validation_error(e, source, raw, SweepConfig)
        for key in cli_keys:
            text = text.replace(f"{source}: {key}: ", f"{source}: {key} (set by --{key}): ")
        raise ConfigError(text) from None
    tracebacks: list[str] = []
    problems = check_semantics(cfg, tracebacks)
    if problems:
        raise PluginError("\n".join(f"{source}: {p}" for p in problems), "".join(tracebacks))
    return cfg


def check_semantics(cfg: SweepConfig, tracebacks: list[str] | None = None) -> list[str]:
    """Cross-field rules: everything named exists (plugins are imported here), and consensus groups
    are consistent. Tracebacks of exceptions raised inside plugins go to `tracebacks`."""
    from ltray.data import DATASETS, get_dataset
    from ltray.models import MODELS, get_arch
    problems: list[str] = []
    tracebacks = tracebacks if tracebacks is not None else []

    def resolves(where: str, lookup, name: str) -> bool:
        try:
            lookup(name)
            return True
        except LtrayError as e:
            problems.append(f"{where}: {e}")
            tracebacks.append(getattr(e, "user_traceback", ""))
            return False

    for i, entry in enumerate(cfg.py_modules):  # before any plugin is imported: they may live there
        resolves(f"py_modules.{i}", lambda e: import_from([e]), entry)
    for name, spec in cfg.tasks.items():
        resolves(f"tasks.{name}.dataset", get_dataset, spec.dataset)
    known_tasks = set(cfg.tasks) | set(DATASETS)
    for i, t in enumerate(cfg.grid.tasks):
        if t not in known_tasks:
            problems.append(f"grid.tasks.{i}: {unknown_key_message('task', t, known_tasks)}"
                            + (" (name a plugin dataset in tasks:)" if ":" in t else ""))
    archs = set(MODELS) | {a for i, a in enumerate(cfg.grid.archs) if resolves(f"grid.archs.{i}", get_arch, a)}
    for i, t in enumerate(cfg.grid.techniques):
        resolves(f"grid.techniques.{i}", _technique, t)
    for name in cfg.resources:
        if name != "default" and name not in archs:
            problems.append(f"resources.{clip(name)}: "
                            f"{unknown_key_message('architecture', name, set(MODELS) | {'default'})}")
    problems += _check_image_sizes(cfg, archs)
    if problems:
        return problems  # group checks need valid names
    for gi, group in enumerate(cfg.consensus):
        problems += _check_group(cfg, group, f"consensus.{gi}")
    return problems


def _technique(name: str):
    from ltray.pruning import TECHNIQUES, get_technique, is_technique

    if not is_technique(name):
        raise ConfigError(unknown_key_message("technique", name, TECHNIQUES))
    return get_technique(name)


def _check_image_sizes(cfg: SweepConfig, archs: set[str]) -> list[str]:
    from ltray.models import MODELS, get_arch

    out = []
    for arch, size in cfg.image_sizes.items():
        if arch not in archs:
            out.append(f"image_sizes.{clip(arch)}: {unknown_key_message('architecture', arch, MODELS)}")
        elif size < get_arch(arch).min_image_size:
            out.append(f"image_sizes.{arch}: {size} px is below {arch}'s minimum of {get_arch(arch).min_image_size} px")
    for arch in cfg.grid.archs:
        spec = get_arch(arch) if arch in archs else None
        size = cfg.data.image_size
        if spec is not None and arch not in cfg.image_sizes and size is not None and size < spec.min_image_size:
            out.append(f"data.image_size: {size} px is below {arch}'s minimum of {spec.min_image_size} px")
    return out


def num_classes(task: TaskSpec, data: DataConfig) -> int:
    from ltray.data import get_dataset

    return get_dataset(task.dataset).num_classes(data)


def _check_group(cfg: SweepConfig, group, where: str) -> list[str]:
    problems = []
    for i, s in enumerate(group.sources):
        if s not in cfg.grid.tasks:
            problems.append(f"{where}.sources.{i}: source task {short_repr(s)} is not in grid.tasks, "
                            "so it has no trajectory")
    if group.technique not in cfg.grid.techniques:
        problems.append(f"{where}.technique: {short_repr(group.technique)} is not in grid.techniques")
    for i, r in enumerate(group.source_rounds):
        if r >= cfg.rounds:
            problems.append(f"{where}.source_rounds.{i}: round {r} does not exist with rounds={cfg.rounds} "
                            f"(rounds are 0..{cfg.rounds - 1})")
    n = len(group.sources)
    for i, k in enumerate(group.thresholds):
        if isinstance(k, int) and k > n:
            problems.append(f"{where}.thresholds.{i}: threshold {k} is larger than the {n} sources")
        if group.leave_one_out and isinstance(k, int) and k > n - 1:
            problems.append(f"{where}.thresholds.{i}: threshold {k} is larger than the {n - 1} sources "
                            "left for a leave-one-out consensus")
    for field, values, pool in (("archs", group.archs, cfg.grid.archs), ("seeds", group.seeds, cfg.grid.seeds)):
        for i, v in enumerate(values or []):
            if v not in pool:
                problems.append(f"{where}.{field}.{i}: {short_repr(v)} is not in grid.{field}")
    known_tasks = set(cfg.tasks) | _datasets()
    for i, t in enumerate(group.target_tasks):
        if t not in known_tasks:
            problems.append(f"{where}.targets.{i}: {unknown_key_message('task', t, known_tasks)}")
    if problems:
        return problems
    classes = {s: num_classes(cfg.task_spec(s), cfg.data) for s in group.sources}
    if len(set(classes.values())) > 1:
        detail = ", ".join(f"{s}={c}" for s, c in classes.items())
        problems.append(f"{where}.sources: source tasks have different class counts ({detail}); "
                        "their masks' output layers cannot be compared")
        return problems
    n_src = next(iter(classes.values()))
    for i, t in enumerate(group.target_tasks):
        c = num_classes(cfg.task_spec(t), cfg.data)
        if c != n_src and group.output_rule == "error":
            problems.append(f"{where}.targets.{i}: target {short_repr(t)} has {c} classes but the sources have "
                            f"{n_src}; set output_rule to 'dense' or 'columns' to say how its output layer is masked")
    return problems


def _datasets() -> set[str]:
    from ltray.data import DATASETS

    return set(DATASETS)

