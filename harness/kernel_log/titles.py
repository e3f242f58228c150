"""Titles: choose a family's format for a report, fill it in, and make the result
stable across runs (addresses, numbers and pids replaced); say why a report is
garbled (syzkaller's "corrupted": its title cannot be trusted)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .frames import extract_frame
from .spec import Family

# Why a report is garbled (`Report.garbled_reason`).
GARBLED_FORMAT = "only a catch-all title format matched (the real crash is missing)"
GARBLED_NO_FUNCTION = "no guilty function found in the stack"
GARBLED_NO_FORMAT = "no title format of its family matched"
GARBLED_TIMESTAMP = "the title holds a console timestamp (lines of two reports mixed)"

# A timestamp inside a title: another line was printed into the middle of this one.
_TIMESTAMP_IN_TITLE = re.compile(r"\[ *\d+\.\d+\]")


_TITLE_REPLACEMENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"syz-executor\.?\d+(?:[/:]\d+)?"), "syz-executor"),
    (re.compile(r"syzkaller\d+(?:[/:]\d+)?"), "syzkaller"),
    (re.compile(r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}"), r"\1ADDR"),
    (re.compile(r"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})"), "IP"),
    (re.compile(r"(\.\w+)(:\d+)+"), r"\1:LINE"),
    (re.compile(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+"), r"\1"),
    (re.compile(r"CPU#\d+"), "CPU"),
)
_NUM_RE = re.compile(r"(\W)(\d+)(\W|$)")
_LONG_NUM_RE = re.compile(r"\d{7,}")


def sanitize_title(title: str) -> str:
    for rx, repl in _TITLE_REPLACEMENTS:
        title = rx.sub(repl, title)
    while True:
        new = _NUM_RE.sub(r"\1NUM\3", title)
        if new == title:
            break
        title = new
    title = _LONG_NUM_RE.sub("NUM", title)
    out: list[str] = []
    prev = " "
    for ch in title[:120]:
        if ch == "\t":
            ch = " "
        elif ord(ch) < 0x20 or ord(ch) >= 0x7F:
            continue
        if ch == " " and prev == " ":
            continue
        out.append(ch)
        prev = ch
    return "".join(out).strip()


# (title, garbled reason or "", guilty function) of one report.
Described = tuple[str, str, str | None]


def _describe(text: str, lines: Sequence[str], fam: Family) -> Described | None:
    """The title of the family format matching earliest in the report, or None if one
    matched but could not be filled in."""
    best: Described | None = None
    best_pos = len(text) + 1
    matched = False
    for fmt in fam.formats:
        m = fmt.title.search(text)
        if m is None or m.start() > best_pos:
            continue
        if m.start() == best_pos and best is not None:
            continue
        if m.start() < best_pos:
            best = None
            best_pos = m.start()
        matched = True
        groups: dict[str, str] = {k: v or "" for k, v in m.groupdict().items()}
        if fmt.report is not None:
            rm = fmt.report.search(text)
            if rm is None:
                continue
            groups.update({k: v or "" for k, v in rm.groupdict().items()})
        garbled = GARBLED_FORMAT if fmt.garbled else ""
        func: str | None = None
        if fmt.stack is not None:
            # Start the stack walk at the title line.
            first = text.count("\n", 0, m.start())
            func = extract_frame(lines[first:], fmt.stack)
            if func is None:
                garbled = garbled or GARBLED_NO_FUNCTION
            groups["func"] = func or "corrupted"
        try:
            title = fmt.fmt.format_map(groups)
        except KeyError:
            continue
        best = (title, garbled, func)
    if best is None and matched:
        return None
    return best


def _header_line(text: str, fam: Family) -> str:
    """The title of a report no format fits: the header's line as printed."""
    pos = text.find(fam.header)
    if pos < 0:
        return fam.header
    end = text.find("\n", pos)
    return text[pos : end if end >= 0 else len(text)]


def title_of(title_lines: list[str], raw_lines: Callable[[], list[str]], fam: Family) -> Described:
    """The report's title from its own-context lines, else from all its raw lines (a
    format may need a line another context printed), else its header line."""
    text = "\n".join(title_lines)
    described = _describe(text, title_lines, fam)
    if described is None:
        raw_text = "\n".join(raw_lines())
        described = _describe(raw_text, raw_text.split("\n"), fam)
    if described is None:
        title, garbled, func = _header_line(text, fam), GARBLED_NO_FORMAT, None
    else:
        title, garbled, func = described
    title = sanitize_title(title)
    if not garbled and _TIMESTAMP_IN_TITLE.search(title):
        garbled = GARBLED_TIMESTAMP
    elif not garbled and title.endswith(" in corrupted"):
        garbled = GARBLED_NO_FUNCTION
    return title, garbled, func
