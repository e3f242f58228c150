"""Diffs inside a mail body: the files and hunks of a unified diff (as `git format-patch`
writes it), the diffstat above it, and whether the two agree.

Mail damages diffs in known ways: trailing blanks are dropped, so a blank context line
arrives as an empty line. Hunks are read by their line counts, empty lines counted as
context, which is also what `git apply` does; what follows the last hunk (the `-- `
signature, a list footer, more prose) is not part of the diff.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_GIT_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)")
_STAT_FILE = re.compile(r"^ (\S.*?)\s+\|\s+(?:(\d+)\s*[+-]*|Bin .*)$")
_STAT_SUMMARY = re.compile(
    r"^ (\d+) files? changed(?:, (\d+) insertions?\(\+\))?(?:, (\d+) deletions?\(-\))?")
_HEADER_PREFIXES = ("index ", "new file mode", "deleted file mode", "old mode", "new mode",
                    "similarity index", "rename from", "rename to", "copy from", "copy to",
                    "dissimilarity index")


@dataclass(frozen=True)
class Hunk:
    header: str  # the @@ line
    lines: tuple[str, ...]  # its body, as in the mail
    added: int
    removed: int
    complete: bool  # the body has as many lines as the header counts


@dataclass(frozen=True)
class FileDiff:
    path: str  # b/ side (a/ side for a deletion)
    header: tuple[str, ...]  # diff --git, index, ---, +++ lines
    hunks: tuple[Hunk, ...]

    @property
    def added(self) -> int:
        return sum(h.added for h in self.hunks)

    @property
    def removed(self) -> int:
        return sum(h.removed for h in self.hunks)

    def text(self) -> str:
        body = [line for h in self.hunks for line in (h.header, *h.lines)]
        return "".join(f"{line}\n" for line in (*self.header, *body))


@dataclass(frozen=True)
class DiffstatEntry:
    path: str  # as printed: may start with ".../" when git shortened it
    changes: int | None  # None for a binary file


@dataclass(frozen=True)
class Diffstat:
    files: tuple[DiffstatEntry, ...]
    insertions: int
    deletions: int


@dataclass(frozen=True)
class Completeness:
    """Complete: every file of the diffstat has a diff whose +/- lines add up to its count
    there, and every hunk has the lines its header promises."""

    complete: bool
    problems: tuple[str, ...]


def _hunk(lines: Sequence[str], start: int) -> tuple[Hunk, int]:
    m = _HUNK.match(lines[start])
    assert m is not None
    old = int(m.group(2)) if m.group(2) is not None else 1
    new = int(m.group(4)) if m.group(4) is not None else 1
    body: list[str] = []
    added = removed = 0
    i = start + 1
    while i < len(lines) and (old > 0 or new > 0):
        line = lines[i]
        tag = line[:1]
        if tag == "+":
            added, new = added + 1, new - 1
        elif tag == "-":
            removed, old = removed + 1, old - 1
        elif tag in (" ", ""):  # "": a blank context line whose blank mail dropped
            old, new = old - 1, new - 1
        elif tag != "\\":  # "\ No newline at end of file" counts for nothing
            break
        body.append(line)
        i += 1
    if i < len(lines) and lines[i].startswith("\\"):
        body.append(lines[i])
        i += 1
    return Hunk(lines[start], tuple(body), added, removed, old <= 0 and new <= 0), i


def _file_path(header: Sequence[str]) -> str:
    for line in header:
        if line.startswith("+++ ") and not line.startswith("+++ /dev/null"):
            return _strip_prefix(line[4:])
    for line in header:
        if line.startswith("--- "):
            return _strip_prefix(line[4:])
    m = _GIT_HEADER.match(header[0])
    return m.group(2) if m else ""


def _strip_prefix(name: str) -> str:
    name = name.split("\t")[0].strip()
    return name[2:] if name[:2] in ("a/", "b/") else name


def _starts_file(lines: Sequence[str], i: int) -> bool:
    if _GIT_HEADER.match(lines[i]):
        return True
    return (lines[i].startswith("--- ") and i + 2 < len(lines)
            and lines[i + 1].startswith("+++ ") and bool(_HUNK.match(lines[i + 2])))


def parse_diff(lines: Sequence[str]) -> list[FileDiff]:
    """Every file diff in `lines` (a body's own lines, quotes already left out)."""
    files: list[FileDiff] = []
    i = 0
    while i < len(lines):
        if not _starts_file(lines, i):
            i += 1
            continue
        header = [lines[i]]
        i += 1
        while i < len(lines) and (lines[i].startswith(_HEADER_PREFIXES)
                                  or lines[i].startswith(("--- ", "+++ "))):
            header.append(lines[i])
            i += 1
        hunks: list[Hunk] = []
        while i < len(lines) and _HUNK.match(lines[i]):
            hunk, i = _hunk(lines, i)
            hunks.append(hunk)
        files.append(FileDiff(_file_path(header), tuple(header), tuple(hunks)))
    return files


def parse_diffstat(lines: Sequence[str]) -> Diffstat | None:
    """The diffstat `git format-patch` writes between `---` and the diff, if any."""
    entries: list[DiffstatEntry] = []
    for line in lines:
        summary = _STAT_SUMMARY.match(line)
        if summary and entries:
            return Diffstat(tuple(entries), int(summary.group(2) or 0),
                            int(summary.group(3) or 0))
        m = _STAT_FILE.match(line)
        if m:
            entries.append(DiffstatEntry(m.group(1).strip(), int(m.group(2))
                                         if m.group(2) is not None else None))
        elif entries:
            entries = []  # a table that did not end in its summary line is not a diffstat
    return None


def _stat_matches(entry: DiffstatEntry, path: str) -> bool:
    name = entry.path.split(" => ")[-1].strip("{}")
    if name.startswith(".../"):
        return path.endswith(name[3:])
    return path == name


def completeness(files: Sequence[FileDiff], stat: Diffstat | None) -> Completeness:
    problems: list[str] = []
    if not files:
        problems.append("no diff: the body has no `diff --git` section")
    for f in files:
        if not f.hunks and not any(h.startswith(("new file", "deleted file", "rename", "old mode"))
                                   for h in f.header):
            problems.append(f"{f.path}: a diff header without hunks")
        for h in f.hunks:
            if not h.complete:
                problems.append(f"{f.path}: hunk {h.header.split(' @@')[0]} @@ is cut short")
    if stat is not None:
        for entry in stat.files:
            match = [f for f in files if _stat_matches(entry, f.path)]
            if not match:
                problems.append(f"{entry.path}: in the diffstat, but no diff of it")
            elif entry.changes is not None and match[0].added + match[0].removed != entry.changes:
                problems.append(f"{entry.path}: diffstat says {entry.changes} lines changed, its "
                                f"hunks change {match[0].added + match[0].removed}")
        if stat.files and len(stat.files) < len(files):
            problems.append(f"{len(files)} files diffed, the diffstat lists {len(stat.files)}")
    return Completeness(not problems, tuple(problems))
