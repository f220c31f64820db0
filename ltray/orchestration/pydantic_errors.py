"""Pydantic's validation errors as the one-line-per-problem messages of a sweep file.

Pydantic names the union member it tried inside the error path ('int', "literal['all']",
'RotateView') and reports every member's failure; here each union gives one line at its own path.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing

import yaml
from pydantic import BaseModel, ValidationError

from ltray.errors import clip, short_repr


def format_validation_error(e: ValidationError, source: str, raw, model: type[BaseModel]) -> str:
    """`source: a.b.0.c: message` lines, without duplicates, for `raw` validated as `model`.

    A path part that is not in the input is a union member's tag; all failures at one union site
    become one line, unless the input is a mapping that exactly one member model accepts key-wise
    (then that member's own errors are shown).
    """
    lines: list[str] = []
    sites: dict[tuple, dict[str, list[tuple[tuple, dict]]]] = {}
    for err in e.errors():
        path, site, member = _split_loc(err, raw)
        if site is None:
            lines.append(_line(path, _message(err, model, path)))
            continue
        if site not in sites:
            sites[site] = {}
            lines.append(site)  # placeholder, keeps the order of first appearance
        sites[site].setdefault(member, []).append((path, err))
    out = []
    for item in lines:
        if isinstance(item, str):
            out.append(item)
        else:
            out += _union_lines(item, sites[item], _value_at(raw, item), model)
    return "\n".join(f"{source}: {line}" for line in dict.fromkeys(out))


def _split_loc(err: dict, raw) -> tuple[tuple, tuple | None, str | None]:
    """(path in the input, path of the first union site or None, that site's member tag)."""
    loc, path, node = err["loc"], [], raw
    site, member = None, None
    if raw is None:
        return tuple(loc), None, None
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and err["type"] == "missing":
            pass  # the missing key itself
        elif part == "[key]":
            pass
        else:
            if site is None:
                site, member = tuple(path), str(part)
            continue
        path.append(part)
    return tuple(path), site, member


def _value_at(raw, path: tuple):
    for part in path:
        raw = raw[part]
    return raw


def _line(path: tuple, message: str) -> str:
    path = path[:-1] if path and path[-1] == "[key]" else path
    return f"{'.'.join(clip(p) for p in path) or '(top level)'}: {message}"


def _message(err: dict, model: type[BaseModel], path: tuple) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        known = _fields_at(model, path[:-1])
        close = difflib.get_close_matches(clip(path[-1]), known, n=1, cutoff=0.7)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"
        return f"unknown key ({hint})" if known else "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"].removeprefix("Value error, ").replace("valid tuple", "valid list")
    msg = re.sub(r" for <class '[^']*'>", "", msg.replace("valid dictionary", "mapping"))
    if path and path[-1] == "[key]":
        msg = f"key: {msg}"
    if kind != "value_error" and _is_scalar(value):
        msg += f" (got {_short(value)})"
    return msg


def _union_lines(site: tuple, members: dict, value, model: type[BaseModel]) -> list[str]:
    if isinstance(value, dict):
        fitting = [m for m, errs in members.items()
                   if m in _models(model) and not any(e["type"] in ("missing", "extra_forbidden") for _, e in errs)]
        if len(fitting) == 1:
            return [_line(path, _message(err, model, path)) for path, err in members[fitting[0]]]
    wanted = list(dict.fromkeys(_describe(m, errs, model) for m, errs in members.items()))
    said = " or ".join(wanted) if len(wanted) <= 2 else f"one of {', '.join(wanted)}"
    return [_line(site, f"expected {said}, got {_short(value)}")]


def _describe(member: str, errs: list, model: type[BaseModel]) -> str:
    """What one union member accepts, in words."""
    err = errs[0][1]
    ctx = err.get("ctx") or {}
    if member.startswith("literal[") and "expected" in ctx:
        return str(ctx["expected"])
    base = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
            "none": "null"}
    kind = member.removeprefix("constrained-")
    if kind in base:
        bound = next(((op, ctx[key]) for op, key in ((">=", "ge"), (">", "gt"), ("<=", "le"), ("<", "lt"))
                      if key in ctx), None)
        return base[kind] + (f" {bound[0]} {bound[1]}" if bound else "")
    cls = _models(model).get(member)
    if cls is not None:
        fields = [n for n, f in cls.model_fields.items() if f.is_required()] or list(cls.model_fields)
        return "{" + ", ".join(f"{n}: {_kind_word(cls.model_fields[n].annotation)}" for n in fields) + "}"
    return member


def _kind_word(annotation) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(yaml.safe_dump(a, default_flow_style=True).strip().removesuffix("...").strip()
                           for a in typing.get_args(annotation))
    return {int: "integer", float: "number", str: "text", bool: "true or false"}.get(annotation, "...")


@functools.cache
def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model class reachable from `root`'s fields, by class name."""
    found: dict[str, type[BaseModel]] = {}
    todo = [root]
    while todo:
        cls = todo.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        for f in cls.model_fields.values():
            todo += [a for a in _flatten(f.annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return found


def _flatten(annotation) -> list:
    out, todo = [], [annotation]
    while todo:
        a = todo.pop()
        out.append(a)
        todo += list(typing.get_args(a))
    return out


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names of the model at `path` inside `model` (empty if it is not a model)."""
    node = model
    for part in path:
        node = _child(node, part)
        if node is None:
            return []
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _child(annotation, part):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return _strip_optional(field.annotation) if field else None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        return _strip_optional(args[1])
    if origin in (list, tuple) and args and isinstance(part, int):
        return _strip_optional(args[0])
    return None


def _strip_optional(annotation):
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _short(value, limit: int = 60) -> str:
    return short_repr(value, limit)  # never a repr of the whole value: it may be huge
