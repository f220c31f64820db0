"""Ray's own validation, offline: the cluster schema that ships in the Ray wheel
(ray/autoscaler/ray-schema.json), then Ray's prepare_config + validate_config (private API,
wrapped: if it moves, the schema check alone still runs).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

from ltray.cluster.nodes import key_path
from ltray.cluster.problems import Problem
from ltray.errors import ConfigError, missing_extra, unknown_key_message


def schema_path() -> Path:
    """Find the schema without importing ray (slow): it sits beside ray/autoscaler/."""
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("Ray is not installed; install ltray's pinned ray[default,tune]")
    return Path(list(spec.submodule_search_locations)[0]) / "autoscaler" / "ray-schema.json"


def load_schema() -> dict:
    path = schema_path()
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read Ray's cluster schema {path}: {exc.strerror}") from None


def unexpected_keys(error) -> list[str]:
    """Keys an additionalProperties error rejects (jsonschema names them only in prose)."""
    allowed = error.schema.get("properties", {})
    patterns = error.schema.get("patternProperties", {})
    return [k for k in error.instance
            if k not in allowed and not any(re.search(p, k) for p in patterns)]


def schema_problems(config: dict, schema: dict | None = None) -> list[Problem]:
    """Every violation of Ray's schema, each at the key path it concerns."""
    try:
        import jsonschema
    except ImportError:
        raise ConfigError(missing_extra("ltray check", "jsonschema", "sweep")) from None
    schema = load_schema() if schema is None else schema
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for error in validator.iter_errors(config):
        where = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for key in unexpected_keys(error):
                problems.append(Problem(key_path(*where, key), "not allowed by Ray's cluster "
                                        "schema: " + unknown_key_message("key", key, known)))
        else:
            problems.append(Problem(key_path(*where), error.message + " (Ray's cluster schema)"))
    return sorted(set(problems))


def ray_problems(config: dict) -> tuple[list[Problem], bool]:
    """Ray's prepare_config (fills provider defaults from files) + validate_config, offline.

    Returns (problems, ran): ran is False when the private API is not importable.
    """
    from ltray.sweep.ray_compat import autoscaler_validate, quiet_autoscaler_checks

    functions = autoscaler_validate()
    if functions is None:
        return [], False
    prepare_config, validate_config = functions
    try:
        with quiet_autoscaler_checks():
            validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as exc:  # noqa: BLE001 - any failure of Ray's checks is a finding
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return [Problem("", f"Ray's validate_config: {message.splitlines()[0]}")], True
    return [], True
