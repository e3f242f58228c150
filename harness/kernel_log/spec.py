"""The vocabulary the family table is written in: regex shorthands, the stack-trace
line shapes, and the schema of a family (`Family`, `Format`, `StackSpec`, `TitleKind`).

Data only: the engine that applies it lives in scan, titles, frames and reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

PC = r"\[<?(?:0x)?[0-9a-f]+>?\]"
FUNC = r"([A-Za-z0-9_]+)(?:[.+]| [\w/.-]+\.[chS]:\d)"
SRC = r"([\w/.-]+\.[a-zA-Z]+:\d+)"


def rx(pattern: str) -> re.Pattern[str]:
    """Compile with the {{PC}}, {{FUNC}}, {{SRC}} shorthands expanded."""
    pattern = pattern.replace("{{PC}}", PC).replace("{{FUNC}}", FUNC)
    return re.compile(pattern.replace("{{SRC}}", SRC))


# The faulting-PC line: x86 `RIP: 0010:func+0x..`, old `IP: [<..>] func+..`,
# arm64 `pc : func+0x..`, arm32 `PC is at func+0x..`, powerpc `NIP [..] func+..`.
RIP = rx(
    r"(?:^|\s)(?:N?IP:? (?:(?:\d+:)?(?:{{PC}} +){0,2})|RIP: (?:\d+:)?(?:{{PC}} +){0,2}"
    r"|(?:e?pc|PC) : (?:{{PC}} +)?|PC is at |NIP \[[0-9a-f]+\] )(?:\d+:)?{{FUNC}}"
)
CALL_TRACE = re.compile(r"Call [Tt]race:|^\s*Backtrace:")
# Lines that start a (new) stack trace inside a report.
STACK_STARTS = (
    re.compile(r"Call [Tt]race"),
    re.compile(r"Allocated:"),
    re.compile(r"Allocated by task \d+:"),
    re.compile(r"Freed:"),
    re.compile(r"Freed by task \d+:"),
    re.compile(r"[^k] backtrace:"),
    re.compile(r"^\s*Last potentially related work creation:"),
)
# One stack frame: `[<ffff>] func+0x1/0x2 [mod]`, `func.isra.0+0x1/0x2`,
# symbolized `func file.c:12 [inline]`, arm32 `[<c0544db4>] (func) from ...`.
FRAME_RES = (
    re.compile(
        r"^\s*(?:\[<?(?:0x)?[0-9a-f]+>?\]\s*){0,2}(?:\d+:)?([A-Za-z0-9_]+)"
        r"(?:\.[A-Za-z0-9_.]+)?\+0x[0-9a-f]+/0x[0-9a-f]+"
    ),
    re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*) [\w/.-]+\.[chS]:\d+ \[inline\]"),
    re.compile(r"^\s*\[<[0-9a-f]+>\] \(([A-Za-z0-9_]+)[.+)]"),
)
ARM32_CALLER = re.compile(r"\) from \[<[0-9a-f]+>\] \(([A-Za-z0-9_]+)[.+)]")


@dataclass(frozen=True)
class StackSpec:
    """How to find the guilty function.

    `parts` are tried in order over the report lines: a regex advances to the first
    line it matches (yielding its group 1 as a candidate frame when it has one);
    None means "parse a stack trace from here". `parts2` is the fallback recipe.
    `skip` adds family-specific frame patterns to `SKIP_FRAMES`; `extractor`
    chooses among the collected frames (default: the first).
    """

    parts: tuple[re.Pattern[str] | None, ...]
    parts2: tuple[re.Pattern[str] | None, ...] = ()
    skip: tuple[str, ...] = ()
    extractor: Callable[[list[str]], str | None] | None = None


@dataclass(frozen=True)
class Format:
    """One title recipe: `title` (regex) matched in the report, `report` (regex over the
    whole report text) must match too when set; `fmt` is filled with the named
    groups of the report (or title) match and ``{func}`` from `stack`."""

    title: re.Pattern[str]
    fmt: str
    report: re.Pattern[str] | None = None
    stack: StackSpec | None = None
    garbled: bool = False  # such reports lack the real crash (a catch-all or a bare panic)


@dataclass(frozen=True)
class TitleKind:
    """What a report whose title starts with `title` is: its `type` (``KASAN-READ``,
    ``HANG``, ...) and whether it means memory was `corruption` (a write to freed or
    foreign memory, the verdict "corrupted") rather than a crash."""

    title: re.Pattern[str]
    type: str
    corruption: bool = False


def kind(title: str, type_: str, corruption: bool = False) -> TitleKind:
    return TitleKind(re.compile(title), type_, corruption)


@dataclass(frozen=True)
class Family:
    """A literal `header` that starts a report, `suppress` regexes that veto it.

    `kinds` type the titles that begin with this family's words, in order (the first
    match wins); a title another family borrows (``list_add corruption`` is titled
    ``BUG: corrupted list``) is typed where its words live. `boot_oops` (a regex, or
    None) is what of this family, printed before the guest is ready, means the kernel
    is unfit to test: the boot detector stops on it. `info_without_stack`: a report of
    this family that no format fits and that prints no stack is an informational
    message (a mitigation advice, a repair hint), not a crash, and is dropped.
    """

    header: str
    formats: tuple[Format, ...]
    suppress: tuple[re.Pattern[str], ...] = ()
    kinds: tuple[TitleKind, ...] = ()
    boot_oops: str | None = None
    info_without_stack: bool = False
