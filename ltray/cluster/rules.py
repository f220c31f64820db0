"""ltray's rules for node types and start commands: the head takes no trials, some worker type
has GPUs, resources are whole numbers, worker counts add up, every node exports metrics on one
fixed port, and every node uses the same Ray auth mode.
"""

from __future__ import annotations

from ltray.cluster.nodes import head_type, key_path, mapping, node_types, resources, worker_types
from ltray.cluster.problems import Problem
from ltray.cluster.shell import assignments, flag_values
from ltray.errors import unknown_key_message


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def head_rules(config: dict) -> list[Problem]:
    """The head runs the driver and the consensus actor (num_cpus=0), never a trial."""
    name = config.get("head_node_type")
    if not isinstance(name, str):
        return [Problem("head_node_type", "missing: name the CPU-only node type that runs the "
                        "driver and the consensus actor")]
    if head_type(config) is None:
        known = node_types(config)
        return [Problem("head_node_type", unknown_key_message("node type", name, known))]
    res = resources(node_types(config)[name])
    path = ("available_node_types", name, "resources")
    problems = []
    if res.get("CPU") != 0:
        got = "missing" if "CPU" not in res else f"got {res['CPU']!r}"
        problems.append(Problem(key_path(*path, "CPU"), f"must be 0 so no trial is scheduled on "
                                f"the head ({got}); it runs the driver and the consensus actor"))
    if res.get("GPU", 0) != 0:
        problems.append(Problem(key_path(*path, "GPU"), f"must be absent or 0: the head takes no "
                                f"trials (got {res['GPU']!r})"))
    return problems


def gpu_worker_rules(config: dict) -> list[Problem]:
    """Trials need GPU workers; GPU counts are declared, not guessed from the instance type."""
    usable, idle = [], []
    for name, spec in worker_types(config).items():
        gpus = resources(spec).get("GPU", 0)
        if is_count(gpus) and gpus >= 1:
            (idle if spec.get("max_workers") == 0 else usable).append(name)
    if usable:
        return []
    hint = f" ({', '.join(idle)} has max_workers: 0)" if idle else ""
    return [Problem("available_node_types", "no worker type can provide GPUs" + hint + "; "
                    "declare resources: {GPU: n} (n = the instance type's GPU count) on each GPU "
                    "worker type")]


def resource_rules(config: dict) -> list[Problem]:
    """Node resources are whole numbers; fractional GPU shares belong to trials (sweep file)."""
    problems = []
    for name, spec in node_types(config).items():
        for resource, value in resources(spec).items():
            if not is_count(value):
                problems.append(Problem(
                    key_path("available_node_types", name, "resources", resource),
                    f"must be a whole number >= 0, got {value!r} (fractional GPU shares are "
                    "set per architecture in the sweep file)"))
    return problems


def worker_count_rules(config: dict) -> list[Problem]:
    """An explicit cap on workers that leaves room for every type's minimum."""
    problems = []
    total_min = 0
    for name, spec in worker_types(config).items():
        low, high = spec.get("min_workers", 0), spec.get("max_workers")
        if is_count(low):
            total_min += low
        if is_count(low) and is_count(high) and low > high:
            problems.append(Problem(key_path("available_node_types", name, "min_workers"),
                                    f"{low} is more than its max_workers ({high})"))
    cap = config.get("max_workers")
    if cap is None:
        problems.append(Problem("max_workers", "missing: cap the number of worker nodes "
                                "(Ray's default is 2)"))
    elif is_count(cap) and cap < total_min:
        problems.append(Problem("max_workers", f"{cap} is less than the sum of the worker types' "
                                f"min_workers ({total_min})"))
    return problems


def start_command_rules(config: dict) -> list[Problem]:
    """Prometheus scrapes one fixed port on every node; auth mode must match on all nodes."""
    problems, ports, modes = [], {}, {}
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        cmds = config.get(key)
        text = " ; ".join(c for c in cmds if isinstance(c, str)) if isinstance(cmds, list) else ""
        found = sorted(set(flag_values(text, "--metrics-export-port")))
        if not found:
            problems.append(Problem(key, "no `ray start --metrics-export-port=PORT`: without a "
                                    "fixed port Prometheus cannot be let through the firewall"))
        ports[key] = found
        modes[key] = sorted(set(assignments(text, "RAY_AUTH_MODE")))
    head_ports, worker_ports = ports["head_start_ray_commands"], ports["worker_start_ray_commands"]
    if head_ports and worker_ports and head_ports != worker_ports:
        problems.append(Problem("worker_start_ray_commands", "--metrics-export-port differs from "
                                f"the head's ({', '.join(ports['head_start_ray_commands'])})"))
    if modes["head_start_ray_commands"] != modes["worker_start_ray_commands"]:
        show = {k: ", ".join(v) or "unset" for k, v in modes.items()}
        problems.append(Problem("worker_start_ray_commands", "RAY_AUTH_MODE is "
                                f"{show['worker_start_ray_commands']} here but "
                                f"{show['head_start_ray_commands']} in head_start_ray_commands; "
                                "nodes with different auth modes cannot join"))
    return problems


def gpu_summary(config: dict) -> str:
    """`gpu_1x 1 GPU x0-8, ...` for the OK line."""
    parts = []
    for name, spec in worker_types(config).items():
        gpus = resources(spec).get("GPU", 0)
        high = spec.get("max_workers", config.get("max_workers"))
        parts.append(f"{name} {gpus} GPU x{spec.get('min_workers', 0)}-{high}")
    return ", ".join(parts)


def idle_gpu_warnings(config: dict) -> list[Problem]:
    """GPU nodes kept up by min_workers cost money while the cluster is idle."""
    return [Problem(key_path("available_node_types", name, "min_workers"),
                    f"{spec['min_workers']} GPU nodes stay up even when idle")
            for name, spec in worker_types(config).items()
            if is_count(spec.get("min_workers")) and spec["min_workers"] > 0
            and mapping(spec.get("resources")).get("GPU", 0)]
