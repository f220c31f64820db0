"""What each node of a Ray cluster file runs, resolved the way Ray's autoscaler resolves it.

Head: top-level initialization_commands, then setup_commands + head_setup_commands.
Worker type T: T.initialization_commands if given, else the top-level ones; T.worker_setup_commands
if given (it replaces both global lists), else setup_commands + worker_setup_commands.
With docker, initialization commands run on the host and setup commands inside the container.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Command = tuple[str, str]  # (key path, command text)
PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_path(*parts) -> str:
    """`a.b[2]`; keys that are not plain words are quoted: `available_node_types["ray.head"]`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif PLAIN_KEY.match(str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += f'["{part}"]'
    return out


@dataclass(frozen=True)
class NodeCommands:
    node_type: str
    is_head: bool
    setup_where: str  # the key a user edits to change this node's setup commands
    host_where: str  # the same for its initialization (host) commands
    host: tuple[Command, ...]  # initialization_commands: on the host, before docker starts
    setup: tuple[Command, ...]  # setup commands: in the container when docker is on
    docker: bool
    run_options: tuple[str, ...]  # docker run options for this node
    images: tuple[Command, ...]  # (key path, image) that may start this node's container


def mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def commands(config: dict, *keys) -> tuple[Command, ...]:
    """The string commands at config[keys...], each with its key path."""
    node = config
    for key in keys:
        node = mapping(node).get(key)
    if not isinstance(node, list):
        return ()
    return tuple((key_path(*keys, i), c) for i, c in enumerate(node) if isinstance(c, str))


def strings(value) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def node_types(config: dict) -> dict[str, dict]:
    return {k: mapping(v) for k, v in mapping(config.get("available_node_types")).items()}


def head_type(config: dict) -> str | None:
    name = config.get("head_node_type")
    return name if isinstance(name, str) and name in node_types(config) else None


def worker_types(config: dict) -> dict[str, dict]:
    head = head_type(config)
    return {k: v for k, v in node_types(config).items() if k != head}


def resources(node_type: dict) -> dict:
    return mapping(node_type.get("resources"))


def node_commands(config: dict) -> list[NodeCommands]:
    """Head first (when head_node_type is valid), then each worker type in file order."""
    docker = mapping(config.get("docker"))
    out = []
    head = head_type(config)
    if head is not None:
        images = tuple((key_path("docker", k), docker[k]) for k in ("head_image", "image")
                       if isinstance(docker.get(k), str) and docker[k])
        out.append(NodeCommands(
            node_type=head, is_head=True, setup_where="setup_commands",
            host_where="initialization_commands",
            host=commands(config, "initialization_commands"),
            setup=commands(config, "setup_commands") + commands(config, "head_setup_commands"),
            docker=bool(images),
            run_options=(strings(docker.get("run_options"))
                         + strings(docker.get("head_run_options"))),
            images=images[:1]))
    for name, spec in worker_types(config).items():
        own_docker = mapping(spec.get("docker"))
        images = tuple((path, image) for path, image in (
            (key_path("available_node_types", name, "docker", "worker_image"),
             own_docker.get("worker_image")),
            (key_path("docker", "worker_image"), docker.get("worker_image")),
            (key_path("docker", "image"), docker.get("image"))) if isinstance(image, str) and image)
        if "worker_setup_commands" in spec:
            setup_where = key_path("available_node_types", name, "worker_setup_commands")
            setup = commands(config, "available_node_types", name, "worker_setup_commands")
        else:
            setup_where = "setup_commands"
            setup = commands(config, "setup_commands") + commands(config, "worker_setup_commands")
        if "initialization_commands" in spec:
            host_where = key_path("available_node_types", name, "initialization_commands")
            host = commands(config, "available_node_types", name, "initialization_commands")
        else:
            host_where = "initialization_commands"
            host = commands(config, "initialization_commands")
        out.append(NodeCommands(
            node_type=name, is_head=False, setup_where=setup_where, host_where=host_where,
            host=host, setup=setup, docker=bool(images),
            run_options=(strings(docker.get("run_options"))
                         + strings(docker.get("worker_run_options"))
                         + strings(own_docker.get("worker_run_options"))),
            images=images[:1]))
    return out
