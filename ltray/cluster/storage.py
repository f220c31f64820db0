"""The storage rule: every node must reach the same experiment folder.

Each node's setup commands (the ones that run where Ray runs) set `LTRAY_STORAGE=<value>`, e.g.
`echo 'export LTRAY_STORAGE=/mnt/ltray/experiments' >> ~/.bashrc`. The value is an `s3://` or
`gs://` URI, or an absolute path inside a network file system (nfs, nfs4, efs, lustre, ...)
that the same node mounts in its commands; with docker the host mount must also be bound into
the container (`--volume=HOST:CONTAINER` in the docker run options).
"""

from __future__ import annotations

from ltray.cluster.nodes import NodeCommands
from ltray.cluster.problems import Problem, node_types_phrase
from ltray.cluster.shell import assignments, bind_mounts, is_under, mounts, rebase

STORAGE_VAR = "LTRAY_STORAGE"
URI_SCHEMES = ("s3://", "gs://")
EXAMPLE = "echo 'export LTRAY_STORAGE=/mnt/ltray/experiments' >> ~/.bashrc"


def declarations(node: NodeCommands) -> list[tuple[str, str]]:
    """(key path, value) of each LTRAY_STORAGE=value in the node's setup commands."""
    return [(path, value) for path, cmd in node.setup for value in assignments(cmd, STORAGE_VAR)]


def network_mounts(cmds) -> list[str]:
    return [m.target for _, cmd in cmds for m in mounts(cmd) if m.is_network]


def unreachable(path: str, node: NodeCommands) -> tuple[str, str] | None:
    """(key to fix, what is wrong) when `path` is not on shared storage on this node, else None."""
    if not node.docker:
        if any(is_under(path, t) for t in network_mounts(node.host + node.setup)):
            return None
        return node.host_where, (f"{path} is not inside a network file system mounted on "
                                 "{nodes}: mount NFS/EFS at it or at a parent folder")
    if any(is_under(path, t) for t in network_mounts(node.setup)):
        return None  # mounted inside the container itself
    host_mounts = network_mounts(node.host)
    for host_dir, container_dir in bind_mounts(list(node.run_options)):
        if is_under(path, container_dir):
            on_host = rebase(path, container_dir, host_dir)
            if any(is_under(on_host, t) for t in host_mounts):
                return None
    covering = [t for t in host_mounts if is_under(path, t)]
    if covering:
        return "docker.run_options", (f"{covering[0]} is mounted on the host of {{nodes}} but not "
                                      f"bound into the container: add "
                                      f"--volume={covering[0]}:{covering[0]}")
    return node.host_where, (f"{path} is not inside a network file system mounted on the host of "
                             "{nodes}: mount NFS/EFS there (initialization commands run on the "
                             "host) and bind it into the container")


def reachability_problems(path: str, nodes: list[NodeCommands]) -> list[Problem]:
    """One problem per distinct cause, naming every node type it affects."""
    causes = {}
    for node in nodes:
        cause = unreachable(path, node)
        if cause is not None:
            causes.setdefault(cause, []).append(node.node_type)
    return [Problem(where, text.replace("{nodes}", node_types_phrase(types)))
            for (where, text), types in causes.items()]


def value_problem(path: str, value: str) -> Problem | None:
    if value.startswith(URI_SCHEMES):
        bucket = value.split("://", 1)[1].split("/", 1)[0]
        return None if bucket else Problem(path, f"{value!r} names no bucket")
    if "$" in value:
        return Problem(path, f"{STORAGE_VAR}={value!r} must be literal: a shell variable here "
                       "cannot be checked and is not set where the sweep is submitted")
    if "://" in value or not value.startswith("/"):
        return Problem(path, f"{STORAGE_VAR}={value!r} is neither an s3:// or gs:// URI nor an "
                       "absolute path on a shared mount")
    return None


def storage_rules(nodes: list[NodeCommands]) -> tuple[list[Problem], str]:
    """Problems, and a summary like `/mnt/ltray/experiments on a network mount`."""
    problems, missing, first_seen = [], {}, {}
    for node in nodes:
        found = declarations(node)
        if not found:
            missing.setdefault(node.setup_where, []).append(node.node_type)
        for path, value in found:
            first_seen.setdefault(value, path)
    for where, types in missing.items():
        problems.append(Problem(where, f"no {STORAGE_VAR}=... in the setup commands of "
                                f"{node_types_phrase(types)}: say where the experiment folder "
                                f"lives, e.g. `{EXAMPLE}`"))
    if len(first_seen) > 1:
        values = list(first_seen)
        problems.append(Problem(first_seen[values[1]], f"{STORAGE_VAR}={values[1]} differs from "
                                f"{STORAGE_VAR}={values[0]} set at {first_seen[values[0]]}: every "
                                "node must use the same experiment folder"))
    for value, path in first_seen.items():
        bad = value_problem(path, value)
        if bad is not None:
            problems.append(bad)
        elif not value.startswith(URI_SCHEMES):
            users = [n for n in nodes if value in {v for _, v in declarations(n)}]
            problems += reachability_problems(value, users)
    summary = ""
    if len(first_seen) == 1:
        value = next(iter(first_seen))
        summary = value if value.startswith(URI_SCHEMES) else f"{value} on a network mount"
    return problems, summary
