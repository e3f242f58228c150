"""The lines of a KTAP/TAP document in a guest's text, one at a time and classified.

The text is the guest's: it may be anything, of any size. Everything here is bounded by
LIMITS (lines read, characters per line, nesting) and linear in the text: the document's
first line is found by regex searches over the whole text, and no pattern can backtrack
more than once over a line."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What the parser reads and keeps of a document at most: a guest's text is read in
    bounded time and memory whatever it holds (a real run is far below every limit)."""

    lines: int = 100_000         # lines read from the document's first line on
    line_chars: int = 1024       # a longer line is cut there (printk's own line limit)
    depth: int = 32              # levels of nesting (KUnit and kselftest use 2 to 4)
    tests: int = 50_000          # tests listed, results, crashed and missing together
    kept_chars: int = 2_000_000  # text kept: names, reasons, diagnostics, output lines
    digits: int = 18             # a longer test, plan or version number is not a number
    errors: int = 100            # errors listed; one more line says how many were left


LIMITS = Limits()

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")  # printk's time prefix in a console log
# Lines are matched with their trailing whitespace stripped, so no pattern ends in \s*$
# (which backtracks over every space of a long line).
VERSION = re.compile(r"(K?TAP) version (\d+)$")
PLAN = re.compile(r"1\.\.(\d+)\s*(?:#\s*(.*))?$")
RESULT = re.compile(r"(ok|not ok)(?=\s|$)\s*(\d+)?\s*(?:- )?")  # the rest: see result_text
HEADER = re.compile(r"# Subtest:\s*(.*)$")
BAIL = re.compile(r"Bail out!\s*(.*)$")
_PREFIXED_VERSION = re.compile(r"( *)# (K?TAP version \d+)$")
# A document's first line, searched for in the whole text at once; each hit is checked as
# the line it is read as (only a line cut at Limits.line_chars reads otherwise).
_VERSION_HINT = re.compile(r"TAP version \d+[^\S\n]*$", re.M)
_RESULT_HINT = re.compile(r"^(?:\[[^\S\n]*\d+\.\d+\][^\S\n]?)?[^\S\n]*"
                          r"(?:1\.\.\d+[^\S\n]*(?:#[^\n]*)?$|(?:not )?ok(?=\s|$))", re.M)


@dataclass(frozen=True)
class Line:
    number: int   # 1-based, in the text given
    indent: int   # spaces in from the document's own indentation
    kind: str     # version, plan, result, header, bail, diag, other
    text: str     # without indentation; for diag: after '# '
    match: re.Match[str] | None = None


def result_text(line: Line) -> tuple[str, str | None]:
    """A result line's description and the text after its first '#' (None without one)."""
    assert line.match is not None
    rest = line.text[line.match.end():]
    name, hash_, comment = rest.partition("#")
    return name.strip(), comment.lstrip() if hash_ else None


def number(digits: str, limits: Limits = LIMITS) -> int | None:
    """The number, or None for one of more digits than `limits.digits`."""
    return int(digits) if len(digits) <= limits.digits else None


def _raw(line: str, limits: Limits) -> str:
    return _TIMESTAMP.sub("", line[:limits.line_chars].rstrip().expandtabs(8))


def _line_at(text: str, offset: int, limits: Limits) -> tuple[int, int, str]:
    """The start and end of the line holding `offset`, and the line as it is read."""
    begin = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    return begin, end, _raw(text[begin:min(end, begin + limits.line_chars)], limits)


def _start(text: str, limits: Limits) -> tuple[int, str] | None:
    """Where the document starts (an offset) and the text every line of it starts with (a
    kselftest runner's '# ', a logging prefix), found from its version line; without
    one, its first plan or result line."""
    pos = 0
    while (hint := _VERSION_HINT.search(text, pos)) is not None:
        begin, end, raw = _line_at(text, hint.start(), limits)
        found = VERSION.search(raw)
        if found:
            before = raw[:found.start()]
            return begin, before.rstrip(" ") + " " if before.strip() else ""
        pos = end + 1
    pos = 0
    while (hint := _RESULT_HINT.search(text, pos)) is not None:
        begin, end, raw = _line_at(text, hint.start(), limits)
        if PLAN.match(raw.lstrip()) or RESULT.match(raw.lstrip()):
            return begin, ""
        pos = end + 1
    return None


def _split(text: str, offset: int, limits: Limits) -> Iterator[str]:
    """The lines from `offset` on, each cut to `limits.line_chars` (no copy of the rest)."""
    while offset < len(text):
        end = text.find("\n", offset)
        end = len(text) if end < 0 else end
        yield text[offset:min(end, offset + limits.line_chars)]
        offset = end + 1


class _HashNesting:
    """kselftest's runner nests a test program's own TAP under its result by prefixing
    each of its lines with '# ' (tools/testing/selftests/kselftest/runner.sh). From such a
    '# TAP version' line on, the run of '#' lines at its indentation is read as a subtest
    two spaces in; nested again ('# # TAP version'), it goes two more."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.pads: list[str] = []  # the runs going on, outermost first

    def apply(self, line: str | None, first: bool) -> str | None:
        if line is None:  # a line outside the document ends every run
            self.pads.clear()
            return None
        going_on = []
        for pad in self.pads:
            if line.startswith(pad + "# ") or line == pad + "#":
                line = pad + "  " + line[len(pad) + 2:]
                going_on.append(pad)
        self.pads = going_on
        found = None if first else _PREFIXED_VERSION.match(line)
        if found is not None and len(self.pads) < self.depth:
            pad = found.group(1)
            self.pads.append(pad)
            line = pad + "  " + line[len(pad) + 2:]
        return line


def classify(number: int, indent: int, body: str) -> Line:
    for kind, pattern in (("version", VERSION), ("plan", PLAN), ("result", RESULT),
                          ("header", HEADER), ("bail", BAIL)):
        match = pattern.match(body)
        if match:
            return Line(number, indent, kind, body, match)
    if body.startswith("#"):
        return Line(number, indent, "diag", body[1:].removeprefix(" "))
    return Line(number, indent, "other", body)


def read(text: str, error: Callable[[str], None], limits: Limits = LIMITS) -> Iterator[Line]:
    """The document's lines, classified (lines before its first line are not part of it).
    Stops after `limits.lines` lines, saying so through `error`."""
    found = _start(text, limits)
    if found is None:
        return
    offset, prefix = found
    first_number = text.count("\n", 0, offset) + 1
    nesting = _HashNesting(limits.depth)
    base = 0
    for count, line in enumerate(_split(text, offset, limits)):
        if count == limits.lines:
            error(f"line {first_number + count}: the document goes on past "
                  f"{limits.lines} lines; the rest is not read")
            return
        raw = _raw(line, limits)
        # A line without the document's prefix is not part of it (an unknown line).
        own = nesting.apply(raw[len(prefix):] if raw.startswith(prefix) else None, count == 0)
        if own is None:
            yield Line(first_number + count, 0, "other", raw.strip())
            continue
        body = own.lstrip(" ")
        if count == 0:  # the first line's indentation is level 0
            base = len(own) - len(body)
        yield classify(first_number + count, max(0, len(own) - len(body) - base), body)
