"""One line per configuration problem: the key as the user writes it, what is wrong, the allowed values.

:func:`format_validation_error` turns a pydantic ``ValidationError`` of any config model (the whole
:class:`~marketpulse.config.Settings`, or one section such as ``alerts``) into lines
``config error: <dotted.key>: <what is wrong>; allowed: <values>``. Keys follow the models: list indices are kept
(``alerts.notifiers.0.url``), the tags pydantic inserts for discriminated unions (``bus.kafka.port`` →
``bus.port``) are dropped, an unknown key lists the keys its model allows, and a bad or missing union tag lists the
allowed ``type`` values.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def _members(annotation: Any) -> list[type[BaseModel]]:
    """The model classes inside a field annotation (a model, a union of them, a list of either, ``Annotated``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += [m for m in _members(arg) if m not in out]
    return out


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    return str(field.default) if field is not None and isinstance(field.default, str) else None


def _walk(
    root: type[BaseModel], loc: tuple[str | int, ...]
) -> tuple[list[str], type[BaseModel] | None, list[type[BaseModel]]]:
    """Follow ``loc`` from ``root``: the key as the user writes it, the model holding its last part, and the union
    members of the last field passed (for the allowed tags)."""
    model: type[BaseModel] | None = root
    shown: list[str] = []
    members: list[type[BaseModel]] = []
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        shown.append(str(part))
        i += 1
        if isinstance(part, int):  # a list index: the model stays the item's
            continue
        field = model.model_fields.get(part) if model is not None else None
        members = _members(field.annotation) if field is not None else []
        while i < len(parts) and isinstance(parts[i], int):
            shown.append(str(parts[i]))
            i += 1
        if len(members) > 1:
            tagged = next((m for m in members if i < len(parts) and _tag(m) == str(parts[i])), None)
            if tagged is not None:
                i += 1  # the tag pydantic puts in the location is not a key the user writes
            model = tagged
        else:
            model = members[0] if members else None
    return shown, model, members


def format_validation_error(error: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    """One line per problem of ``error`` (raised validating ``root``), keys prefixed with ``prefix.`` when given."""
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        shown, _, members = _walk(root, loc)
        key = ".".join([prefix, *shown] if prefix else shown) or "<root>"
        kind, ctx, got = item["type"], item.get("ctx") or {}, item.get("input")
        if kind == "extra_forbidden":
            _, holder, _ = _walk(root, loc[:-1])
            allowed = sorted(holder.model_fields) if holder is not None else []
            lines.append(f"config error: {key}: unknown key; allowed keys: {', '.join(allowed) or '(none)'}")
        elif kind == "union_tag_invalid":
            lines.append(f"config error: {key}.type: got {ctx.get('tag')!r}; allowed: {ctx.get('expected_tags')}")
        elif kind == "union_tag_not_found":
            tags = ", ".join(repr(t) for t in (_tag(m) for m in members) if t is not None)
            lines.append(f"config error: {key}.type: missing; allowed: {tags}")
        elif kind == "literal_error":
            lines.append(f"config error: {key}: got {got!r}; allowed: {ctx.get('expected')}")
        else:
            lines.append(f"config error: {key}: {item['msg']}; got {got!r}")
    return "\n".join(lines)


__all__ = ["format_validation_error"]
