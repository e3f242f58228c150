"""What a title means, read from the family table: its report type, whether it is
memory corruption, its bug family (for bisect signatures) and the boot detector's
regex. Titles are what travels (result.json, bisect state), so everything here is
a function of the title alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from . import families
from .spec import Family, TitleKind

_T = TypeVar("_T")

# A title no family types (a fallback title, or one from an older parser).
UNKNOWN = TitleKind(re.compile(""), "UNKNOWN")


def per_table(build: Callable[[tuple[Family, ...]], _T]) -> Callable[[], _T]:
    """`build` applied to the current family table, rebuilt only when the table is
    replaced (a test swaps in a fake family; compiling on every call would be slow)."""
    cache: list[tuple[tuple[Family, ...], _T]] = []

    def current() -> _T:
        table = families.FAMILIES
        if not cache or cache[0][0] is not table:
            cache[:] = [(table, build(table))]
        return cache[0][1]

    return current


def _all_kinds(table: tuple[Family, ...]) -> tuple[TitleKind, ...]:
    return tuple(k for fam in table for k in fam.kinds)


_kinds = per_table(_all_kinds)


def classify_title(title: str) -> TitleKind:
    """The first kind (in family order) whose pattern starts the title, else UNKNOWN."""
    for title_kind in _kinds():
        if title_kind.title.match(title):
            return title_kind
    return UNKNOWN


def is_corruption_title(title: str) -> bool:
    """Whether a report with this title means memory was corrupted."""
    return classify_title(title).corruption


def title_family(title: str) -> str:
    """A title without its guilty function: one bug's reports share it wherever they hit
    (every format that names a function ends in `` in {func}``)."""
    return title.split(" in ", 1)[0].strip()


def _boot_oops(table: tuple[Family, ...]) -> re.Pattern[bytes]:
    # Matched on the raw console bytes while booting; the rest of the line is the message.
    found = "|".join(f"(?:{fam.boot_oops})" for fam in table if fam.boot_oops)
    return re.compile(f"(?:{found})[^\\r\\n]*".encode())


boot_oops_pattern = per_table(_boot_oops)
