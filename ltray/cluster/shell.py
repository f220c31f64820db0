"""Just enough shell parsing to read a cluster file's commands: split a command line into simple
commands, and find network mounts, docker bind mounts and `VAR=value` settings in them.

It reads commands the way a careful human would; it never runs them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"}
NETWORK_FS = {"nfs", "nfs4", "efs", "lustre", "glusterfs", "cifs", "smb3"}
MOUNT_HELPERS = {"mount.nfs": "nfs", "mount.nfs4": "nfs4", "mount.efs": "efs"}
MOUNT_ARG_OPTIONS = {"-t", "--types", "-o", "--options", "-O", "--test-opts", "-L", "--label",
                     "-U", "--uuid", "--source", "--target", "-N", "--namespace"}
REMOTE_SOURCE = re.compile(r"^[^/\s:]+:/")  # host:/export, the form of an NFS source
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Mount:
    fstype: str  # "" when `-t` was not given
    source: str
    target: str

    @property
    def is_network(self) -> bool:
        return self.fstype in NETWORK_FS or bool(REMOTE_SOURCE.match(self.source))


def simple_commands(line: str) -> list[list[str]]:
    """Words of each simple command in `line`, split at && || ; | &; [] if it cannot be parsed."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # '#' inside URLs and values is data, not a comment
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes
        return []
    commands, current = [], []
    for token in tokens:
        if token in OPERATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def strip_prefixes(words: list[str]) -> list[str]:
    """Drop leading `sudo [-flags]` and `VAR=value` words, which do not change what runs."""
    words = list(words)
    while words:
        if words[0] == "sudo":
            words = words[1:]
            while words and words[0].startswith("-"):
                words = words[1:]
        elif ASSIGNMENT.match(words[0]):
            words = words[1:]
        else:
            break
    return words


def mounts(line: str) -> list[Mount]:
    """The `mount` commands in `line` (including mount.nfs4/mount.efs helpers)."""
    found = []
    for words in simple_commands(line):
        words = strip_prefixes(words)
        if not words or words[0] not in {"mount", *MOUNT_HELPERS}:
            continue
        fstype, target, positional = MOUNT_HELPERS.get(words[0], ""), "", []
        args = iter(words[1:])
        for word in args:
            if word in MOUNT_ARG_OPTIONS:
                value = next(args, "")
                if word in {"-t", "--types"}:
                    fstype = value
                elif word == "--target":
                    target = value
            elif word.startswith("--types="):
                fstype = word.split("=", 1)[1]
            elif word.startswith("-"):
                continue
            else:
                positional.append(word)
        if not target and len(positional) >= 2:
            target = positional[-1]
        if target:
            found.append(Mount(fstype, positional[0] if positional else "", target))
    return found


def bind_mounts(run_options: list[str]) -> list[tuple[str, str]]:
    """(host path, container path) of each `-v`/`--volume`/`--mount type=bind` docker option."""
    words = [w for option in run_options for w in (shlex.split(option) if _parses(option) else [])]
    specs, binds = [], []
    it = iter(words)
    for word in it:
        if word in {"-v", "--volume"}:
            specs.append(next(it, ""))
        elif word.startswith("--volume="):
            specs.append(word.split("=", 1)[1])
        elif word.startswith("-v") and len(word) > 2:
            specs.append(word[2:])
        elif word == "--mount" or word.startswith("--mount="):
            fields = dict(kv.split("=", 1) for kv in
                          (next(it, "") if word == "--mount" else word.split("=", 1)[1]).split(",")
                          if "=" in kv)
            source = fields.get("source") or fields.get("src")
            target = fields.get("target") or fields.get("destination") or fields.get("dst")
            if fields.get("type", "volume") == "bind" and source and target:
                binds.append((source, target))
    for spec in specs:
        parts = spec.split(":")
        if len(parts) >= 2 and parts[0].startswith("/"):
            binds.append((parts[0], parts[1]))
    return binds


def _parses(text: str) -> bool:
    try:
        shlex.split(text)
        return True
    except ValueError:
        return False


def is_under(path: str, parent: str) -> bool:
    """Whether absolute `path` is `parent` or inside it (lexically; no symlinks resolved)."""
    path, parent = PurePosixPath(path), PurePosixPath(parent)
    return path == parent or parent in path.parents


def rebase(path: str, old_root: str, new_root: str) -> str:
    """`path` (under old_root) moved to new_root: the host path of a path seen in a container."""
    return str(PurePosixPath(new_root) / PurePosixPath(path).relative_to(old_root))


def assignments(line: str, name: str) -> list[str]:
    """Values given to `name` in `line`, as `name=value` or `export name=value` (quotes removed)."""
    values = []
    for words in simple_commands(line):
        for word in words:
            # `echo 'export X=v' >> ~/.bashrc` keeps the assignment inside one quoted word
            for piece in shlex.split(word) if _parses(word) else [word]:
                if piece.startswith(name + "="):
                    values.append(piece.split("=", 1)[1])
    return values


def flag_values(line: str, flag: str) -> list[str]:
    """Values of `--flag=value` or `--flag value` anywhere in `line`."""
    values = []
    for words in simple_commands(line):
        for i, word in enumerate(words):
            if word.startswith(flag + "="):
                values.append(word.split("=", 1)[1])
            elif word == flag and i + 1 < len(words):
                values.append(words[i + 1])
    return values
