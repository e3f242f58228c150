"""The version of the JSON files oomrace writes, and the check every reader makes.

A file without `schema_version` was written before versions existed and reads as
version 1; a file from a newer oomrace is refused rather than misread."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import UsageError

SCHEMA_VERSION = 1


def versioned(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with the schema version first, for writing."""
    return {"schema_version": SCHEMA_VERSION, **data}


def check_version(data: Mapping[str, Any], where: str) -> None:
    """UsageError (exit 2) when `data` comes from a newer oomrace than this one."""
    found = data.get("schema_version", 1)
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise UsageError(f"{where}: schema_version {found!r} is not a version number")
    if found > SCHEMA_VERSION:
        raise UsageError(f"{where} was written by a newer oomrace (schema_version {found}, "
                         f"this one reads up to {SCHEMA_VERSION}); upgrade oomrace")
