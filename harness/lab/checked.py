"""The fields of a cell record read from JSON (a shard's cell.json or summary.json), each
checked for its type: a merge reads files another machine wrote, and `"rate": "abc"`
must be a one-line error naming the file and the field, not a crash in the report."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from ..errors import UsageError

_SHOWN_VALUE_CHARS = 60


class FieldError(UsageError):
    """A field of the wrong type; the caller adds the file and the cell."""

    def __init__(self, key: str, what: str, value: object) -> None:
        text = repr(value)
        if len(text) > _SHOWN_VALUE_CHARS:
            text = text[:_SHOWN_VALUE_CHARS] + "..."
        super().__init__(f"field {key} must be {what}, not {text}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def text(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise FieldError(key, "a string", value)
    return value


def optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise FieldError(key, "a string or null", value)
    return value


def count(data: Mapping[str, Any], key: str) -> int:
    """A count >= 0; missing or null is 0."""
    value = data.get(key) or 0
    if not _is_int(value) or value < 0:
        raise FieldError(key, "an integer >= 0", value)
    return int(value)


def number(data: Mapping[str, Any], key: str) -> float:
    """A finite number; missing or null is 0."""
    value = data.get(key) or 0
    if not _is_number(value):
        raise FieldError(key, "a finite number", value)
    return float(value)


def optional_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise FieldError(key, "a finite number or null", value)
    return float(value)


def interval(data: Mapping[str, Any], key: str) -> tuple[float, float]:
    """A [low, high] pair of numbers; missing is [0, 1]."""
    value = data.get(key) or (0.0, 1.0)
    if not isinstance(value, list | tuple) or len(value) != 2 \
            or not all(_is_number(v) for v in value):
        raise FieldError(key, "a [low, high] pair of numbers", value)
    return float(value[0]), float(value[1])


def objects(data: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    """A list of JSON objects; missing or null is empty."""
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise FieldError(key, "a list of objects", value)
    return tuple(value)


def mapping(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A JSON object; missing or null is empty."""
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise FieldError(key, "an object", value)
    return value


def optional_mapping(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldError(key, "an object or null", value)
    return value


def counts(data: Mapping[str, Any], key: str) -> dict[str, int]:
    """An object of counts by name; missing or null is empty."""
    value = mapping(data, key)
    if not all(_is_int(v) and v >= 0 for v in value.values()):
        raise FieldError(key, "an object of counts", value)
    return value


# The type of each Cell field (as its annotation is written) and how to check a value.
_CELL_TYPES: dict[str, tuple[str, Callable[[object], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", _is_int),
    "float": ("a finite number", _is_number),
    "int | None": ("an integer or null", lambda v: v is None or _is_int(v)),
    "str | None": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "tuple[str, ...]": ("a list of strings",
                        lambda v: isinstance(v, list | tuple)
                        and all(isinstance(s, str) for s in v)),
}


def cell_fields(data: Mapping[str, Any], cell_class: type) -> dict[str, Any]:
    """The values of `data` that are fields of `cell_class` (a dataclass), each of its
    field's type; FieldError naming `cell.<field>` otherwise."""
    values = {}
    for f in fields(cell_class):
        if f.name not in data:
            continue
        value = data[f.name]
        # A field of a type not listed is passed on unchecked (Cell's own check then).
        what, ok = _CELL_TYPES.get(str(f.type), ("", lambda v: True))
        if not ok(value):
            raise FieldError(f"cell.{f.name}", what, value)
        values[f.name] = value
    return values
