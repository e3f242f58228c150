"""The scanner: find where each report starts and ends in a stream of console lines.

Every family header, event keyword and report stopper is looked for in each block of
lines with `str.find` (much faster than one regex alternation of them, which tries
every word at every position); only the lines that hold one are looked at further.
A report is assembled once every line it may span (MAX_REPORT_LINES) has been read,
and lines that no pending report or event can reach are dropped, so memory is bounded
by that window, not by the size of the log.
"""

from __future__ import annotations

import copy
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from itertools import accumulate, islice

from . import families
from .events import BANNER, EVENT_KEYS, EventReader
from .lines import CONSOLE, Window
from .model import LogAnalysis, Report
from .reports import MAX_REPORT_LINES, build_report, is_informational
from .spec import Family
from .taxonomy import per_table


@dataclass(frozen=True)
class _Matchers:
    words: tuple[str, ...]  # a line holding one of these is worth a closer look
    stopper: re.Pattern[str]  # a boot banner or an info message with a stack ends a report
    event_hint: re.Pattern[str]


def _build_matchers(table: tuple[Family, ...]) -> _Matchers:
    headers = {fam.header for fam in table}
    return _Matchers(
        words=tuple(sorted({*headers, *EVENT_KEYS, *families.INFO_WITH_STACK})),
        stopper=re.compile(
            "|".join(re.escape(k) for k in (*families.INFO_WITH_STACK, "Linux version "))
        ),
        event_hint=re.compile("|".join(re.escape(k) for k in EVENT_KEYS)),
    )


_matchers = per_table(_build_matchers)


def _header_at_word(line: str, header: str) -> bool:
    """`header` occurs in `line` not glued to a preceding word (BTF_INFO: is no INFO:)
    and, when it ends in a colon, followed by a space or the line's end: the kernel
    prints `INFO: task ...`, a driver's `rmt_storage:INFO:check_support...` is a log tag."""
    pos = line.find(header)
    while pos >= 0:
        end = pos + len(header)
        glued_left = pos > 0 and (line[pos - 1].isalnum() or line[pos - 1] == "_")
        glued_right = header.endswith(":") and end < len(line) and not line[end].isspace()
        if not glued_left and not glued_right:
            return True
        pos = line.find(header, pos + 1)
    return False


def family_of(line: str, table: tuple[Family, ...]) -> Family | None:
    """The first family whose header starts a report on this line, if any."""
    for fam in table:
        if (
            fam.header in line
            and _header_at_word(line, fam.header)
            and not any(s.search(line) for s in fam.suppress)
        ):
            return fam
    return None


class Scanner:
    """Feed it blocks of lines in log order, then `finish` for the analysis."""

    def __init__(self, arch: str | None = None) -> None:
        self.arch = arch
        self._table = families.FAMILIES
        self._matchers = _matchers()
        self._log = Window()
        self._starts: list[tuple[int, Family]] = []  # report starts not assembled yet
        self._stoppers: list[int] = []
        self._banners: list[int] = []  # a new boot banner ends every report (a reboot)
        self._event_lines: list[int] = []  # not read yet
        self._events = EventReader()
        self._reports: list[Report] = []
        self._open_until = -1  # a continuation line before this index belongs to the open report

    @property
    def reports(self) -> list[Report]:
        """The reports assembled so far: final, as every line they may span is in."""
        return self._reports

    @property
    def held_lines(self) -> int:
        """How many lines of the log it holds (a report's span at most, and a block)."""
        return len(self._log.raw)

    def fork(self, with_events: bool) -> Scanner:
        """A scanner that reads on from here apart from this one, so that it can be
        finished (what a parse of the log so far gives) while this one waits for more.
        It holds none of the reports assembled so far (`reports` has them) and, unless
        `with_events`, none of the events. What it copies is the window: bounded."""
        twin = copy.copy(self)
        twin._log = self._log.copy()
        twin._starts, twin._stoppers = self._starts.copy(), self._stoppers.copy()
        twin._banners, twin._event_lines = self._banners.copy(), self._event_lines.copy()
        twin._events = self._events.copy(with_events)
        twin._reports = []
        return twin

    def feed(self, lines: list[str]) -> None:
        first = self._log.end
        self._log.extend(lines)
        for i in self._hit_lines(lines):
            self._note_hit(first + i, lines[i])
        self._settle(eof=False)

    def _hit_lines(self, lines: list[str]) -> list[int]:
        """Indexes of the lines holding one of the words, in order."""
        text = "\n".join(lines)
        offsets: list[int] = []  # where each line starts in text; only needed on a hit
        hits: set[int] = set()
        for word in self._matchers.words:
            pos = text.find(word)
            while pos >= 0:
                if not offsets:
                    offsets = [0, *accumulate(len(line) + 1 for line in lines)]
                i = bisect_right(offsets, pos) - 1
                hits.add(i)
                pos = text.find(word, offsets[i + 1])  # the next line that holds it
        return sorted(hits)

    def finish(self) -> LogAnalysis:
        self._settle(eof=True)
        return LogAnalysis(reports=self._reports, events=self._events.events)

    def _note_hit(self, i: int, raw: str) -> None:
        fam = family_of(raw, self._table)
        if fam is not None:
            self._starts.append((i, fam))
        if self._matchers.event_hint.search(raw):
            self._event_lines.append(i)
        if self._matchers.stopper.search(raw):
            self._stoppers.append(i)
            if BANNER.match(self._log.get(i).text):
                self._banners.append(i)

    def _settle(self, eof: bool) -> None:
        """Assemble the reports and read the events whose lines are all in; drop the
        lines nothing pending can reach."""
        hi = self._log.end
        done = 0
        for start, _fam in self._starts:
            if not eof and start + MAX_REPORT_LINES > hi and not self._cut_before(done, hi):
                break
            self._assemble(done, hi)
            done += 1
        del self._starts[:done]
        done = 0
        for i in self._event_lines:
            if not eof and i + 1 >= hi:
                break
            self._events.feed(i, self._log.get(i).text, partial(self._text_after, i, hi))
            done += 1
        del self._event_lines[:done]
        keep = min(
            self._starts[0][0] if self._starts else hi,
            self._event_lines[0] if self._event_lines else hi,
        )
        self._log.drop_before(keep)
        # A stopper or banner at or before every pending start bounds none of them.
        del self._stoppers[: bisect_left(self._stoppers, keep)]
        del self._banners[: bisect_left(self._banners, keep)]

    def _text_after(self, i: int, hi: int) -> str:
        return self._log.get(i + 1).text if i + 1 < hi else ""

    def _bounds(self, n: int, hi: int) -> tuple[int, int, bool]:
        """(end, limit, tagged) of the report at pending start `n`, with the lines before
        `hi` in: its own lines end at `end`, its window at `limit`."""
        start = self._starts[n][0]
        first = self._log.get(start)
        tagged = first.ctx not in ("", CONSOLE)
        limit = min(hi, start + MAX_REPORT_LINES)
        k = bisect_right(self._banners, start)
        if k < len(self._banners):
            limit = min(limit, self._banners[k])
        end = self._next_report(n, limit, first.ctx, tagged)
        k = bisect_right(self._stoppers, start)
        if k < len(self._stoppers) and self._stoppers[k] < end:
            end = self._stoppers[k]
        return end, limit, tagged

    def _cut_before(self, n: int, hi: int) -> bool:
        """Whether the report at pending start `n` is final before all its window is in:
        without caller tags it is, once the next report, a stopper or a banner has cut it
        (more lines cannot move its end, and its title looks no further). A stream reader
        then holds back only the last report, not every one of the last window."""
        end, _limit, tagged = self._bounds(n, hi)
        return not tagged and end < hi

    def _assemble(self, n: int, hi: int) -> None:
        """The report starting at pending start `n` (all lines before `hi` are in)."""
        start, fam = self._starts[n]
        first = self._log.get(start)
        if start < self._open_until and families.CONTINUATIONS.search(first.text):
            return
        end, limit, tagged = self._bounds(n, hi)
        # With caller tags the task's own lines stay apart from other reports, so the
        # title may look past a later report of the same task (as syzkaller does).
        title_end = limit if tagged else end
        report = build_report(self._log, start, end, title_end, fam, self.arch)
        if is_informational(report, fam):
            return
        self._reports.append(report)
        self._open_until = end

    def _next_report(self, n: int, limit: int, ctx: str, tagged: bool) -> int:
        """Where the next report (of this task, when lines are tagged) cuts this one."""
        for nxt, _fam in islice(self._starts, n + 1, None):
            if nxt >= limit:
                break
            line = self._log.get(nxt)
            if tagged and line.ctx != ctx:
                continue
            if families.CONTINUATIONS.search(line.text):
                continue
            return nxt
        return limit


def scan(blocks: Iterable[list[str]], arch: str | None = None) -> LogAnalysis:
    """Every crash report and notable event in a log given as blocks of lines (each
    without its newline, as `str.split("\\n")` gives them)."""
    scanner = Scanner(arch)
    for block in blocks:
        scanner.feed(block)
    return scanner.finish()


def parse(text: str, arch: str | None = None) -> LogAnalysis:
    """Find every crash report and notable event in a console log (NUL bytes, a serial
    line's noise, are dropped as parse-log drops them)."""
    return scan([text.replace("\x00", "").split("\n")], arch)
