"""`python -m ltray.cluster check`: validate a Ray cluster file offline, against Ray's schema and
ltray's rules, before `ray up` spends money on it; or a KubeRay manifest (ltray.cluster.kuberay).

check_file(path) -> CheckResult; problems name the key path. User mistakes (unreadable file,
bad YAML) raise ConfigError with a one-line message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ltray.cluster.images import image_warnings
from ltray.cluster.kuberay import check_kuberay, is_kuberay
from ltray.cluster.nodes import head_type, key_path, mapping, node_commands
from ltray.cluster.pins import PackagePins, package_pins, pin_rules, pin_summary
from ltray.cluster.problems import Problem, unique
from ltray.cluster.rules import (gpu_summary, gpu_worker_rules, head_rules, idle_gpu_warnings,
                                 resource_rules, start_command_rules, worker_count_rules)
from ltray.cluster.schema import ray_problems, schema_problems
from ltray.cluster.storage import storage_rules
from ltray.errors import ConfigError
from ltray.yamlio import load_yaml_file

PLACEHOLDER = "REPLACE_ME"  # marks values the user must fill in (file system id, project id, registry)


@dataclass(frozen=True)
class CheckResult:
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self, filename: str) -> list[str]:
        if self.problems:
            return [p.line(filename) for p in self.problems]
        return ([f"{filename}: warning: {w.path}: {w.message}" for w in self.warnings]
                + [f"{filename}: OK ({self.summary})"])


def load_cluster_file(path: str | os.PathLike) -> dict:
    """The YAML mapping in `path`; ConfigError naming file and line on any load failure."""
    config = load_yaml_file(path, "cluster file")  # bounded: size, depth, alias expansion
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of cluster settings, got "
                          f"{type(config).__name__}")
    return config


def placeholder_warnings(value, *where, before: str = "`ray up`") -> list[Problem]:
    """Values still holding REPLACE_ME: the check passes, but `ray up` (or kubectl) would fail."""
    if isinstance(value, dict):
        return [w for k, v in value.items() for w in placeholder_warnings(v, *where, k, before=before)]
    if isinstance(value, list):
        return [w for i, v in enumerate(value) for w in placeholder_warnings(v, *where, i, before=before)]
    if isinstance(value, str) and PLACEHOLDER in value:
        return [Problem(key_path(*where), f"fill in the {PLACEHOLDER} placeholder before {before}")]
    return []


def check_config(config: dict, pins: PackagePins | None = None) -> CheckResult:
    """All findings for one parsed cluster file."""
    pins = package_pins() if pins is None else pins
    nodes = node_commands(config)
    own = (head_rules(config) + gpu_worker_rules(config) + resource_rules(config)
           + worker_count_rules(config) + start_command_rules(config))
    storage, storage_summary = storage_rules(nodes)
    own += storage + pin_rules(nodes, pins)
    reported = {p.path for p in own}
    # ltray's message is the clearer one where both flag the same key
    problems = unique(own + [p for p in schema_problems(config) if p.path not in reported])
    warnings = placeholder_warnings(config) + idle_gpu_warnings(config) + image_warnings(config)
    if not pins.pins:
        warnings.append(Problem("setup_commands", "ltray's version pins not found; version "
                                "rule skipped"))
    ray_ran = False
    if not problems:
        ray_found, ray_ran = ray_problems(config)
        problems += ray_found
    provider = mapping(config.get("provider"))
    summary = "; ".join(filter(None, [
        f"{provider.get('type')} {provider.get('region', '')}".strip(),
        f"head node type {head_type(config)!r} takes no trials",
        f"GPU workers {gpu_summary(config)}",
        f"max_workers {config.get('max_workers')}",
        f"storage {storage_summary}" if storage_summary else "",
        pin_summary(pins),
        "Ray schema + validate_config" if ray_ran else "Ray schema only",
    ]))
    return CheckResult(sorted(problems), warnings, summary)


def check_kuberay_config(config: dict, pins: PackagePins | None = None) -> CheckResult:
    """All findings for one KubeRay manifest (RayCluster or RayJob)."""
    pins = package_pins() if pins is None else pins
    problems, warnings, summary = check_kuberay(config, pins)
    return CheckResult(sorted(unique(problems)), placeholder_warnings(config, before="`kubectl apply`") + warnings,
                       summary)


def check_file(path: str | os.PathLike, pins: PackagePins | None = None) -> CheckResult:
    """A Ray cluster file for `ray up`, or a KubeRay manifest (apiVersion ray.io/...)."""
    config = load_cluster_file(path)
    if is_kuberay(config):
        return check_kuberay_config(config, pins)
    return check_config(config, pins)
