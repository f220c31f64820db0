"""YAML for user files (sweep and cluster files), loaded within bounds before any validation.

Safe loading that rejects duplicate keys (PyYAML would silently keep the last one) and keys that
are lists or mappings, and refuses what would make later steps hang or crash: files over
MAX_BYTES, text that is not UTF-8, nesting deeper than MAX_DEPTH, and documents of more than
MAX_NODES values once aliases are expanded (an alias bomb is a few hundred bytes that expand to
billions of values when validated or printed).
"""

from __future__ import annotations

import os
from collections.abc import Hashable

import yaml

from ltray.errors import ConfigError, short_repr

MAX_BYTES = 1 << 20  # 1 MiB; real sweep and cluster files are a few KiB
MAX_DEPTH = 64  # levels of nested lists and mappings, aliases expanded; real files use < 10
MAX_NODES = 100_000  # values (scalars, lists, mappings), every alias counted as its expansion
MAX_INT_DIGITS = 100  # longer integer literals: far beyond int64, and slow to convert


class YAMLLimitError(yaml.MarkedYAMLError):
    """A document refused for its size or shape rather than its syntax (`problem` says which)."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem=problem, problem_mark=mark)


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader with a nesting bound, hashable and unique keys, and short integer literals."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass):
        # refuse deep flow nesting in the scanner: it looks ahead up to 1024 characters for a key
        # at every open bracket, so a line of brackets costs ~1 s before the composer's bound (~7 ms here)
        if self.flow_level >= MAX_DEPTH:
            raise YAMLLimitError(f"YAML nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent, index):
        # the composer recurses once per level: refuse before Python's recursion limit does
        if self._depth >= MAX_DEPTH:
            raise YAMLLimitError(f"YAML nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a single value, not a {type(key).__name__}", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {short_repr(key)}",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        if len(node.value) > MAX_INT_DIGITS:
            raise YAMLLimitError(f"an integer literal of more than {MAX_INT_DIGITS} digits", node.start_mark)
        return super().construct_yaml_int(node)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", UniqueKeyLoader.construct_yaml_int)


def load_yaml(text: str):
    """Parse one YAML document safely and within the bounds above; raises yaml.YAMLError."""
    if len(text) > MAX_BYTES:
        raise YAMLLimitError(f"YAML text larger than {MAX_BYTES >> 20} MiB")
    loader = UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose tree, aliases expanded, is too deep, too big or cyclic.

    Shared nodes are measured once (memoised), so an alias bomb is measured in the time its
    file takes to read, not the time its expansion would take.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values in its expansion, its height)
    open_nodes: set[int] = set()

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        if id(node) in measured:
            count, height = measured[id(node)]
        elif id(node) in open_nodes:
            raise YAMLLimitError("a YAML alias refers to a list or mapping that contains it", node.start_mark)
        else:
            children = []
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            open_nodes.add(id(node))
            count, height = 1, 0
            for child in children:
                c, h = measure(child, depth + 1)
                count, height = count + c, max(height, h + 1)
                if count > MAX_NODES:
                    break
            open_nodes.discard(id(node))
            measured[id(node)] = (count, height)
        if count > MAX_NODES:
            raise YAMLLimitError(f"YAML of more than {MAX_NODES:,} values once aliases are expanded",
                                 node.start_mark)
        if depth + height > MAX_DEPTH:
            raise YAMLLimitError(f"YAML nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                                 node.start_mark)
        return count, height

    measure(root, 0)


def load_yaml_file(path: str | os.PathLike, kind: str):
    """The document in the `kind` file ('sweep file') at `path`; ConfigError, one line naming the
    file (and the line, where there is one) on any failure."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {kind} ({e.strerror or e})") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: a {kind} of more than {MAX_BYTES >> 20} MiB is refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: a {kind} must be UTF-8 text, found byte 0x{data[e.start]:02x} "
                          f"at offset {e.start}") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        label = "" if isinstance(e, YAMLLimitError) else "YAML syntax error: "
        raise ConfigError(f"{path}: {label}{where}{problem}") from None
