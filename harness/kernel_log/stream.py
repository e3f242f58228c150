"""One console log parsed once, as it grows: each guest's log has one reader, which the
workloads ask after every batch for the reports since their cursor, and the end of the
run (`run.finish`), the LAVA engine, the kselftest cell and the pytest plugin ask for
everything. Nothing reads the log from its start again.

The reader answers as `parse()` of all the text so far would: the scanner holds back a
report until every line it may span is in (MAX_REPORT_LINES), so the reports that start
in that last window are assembled on a copy of the scanner's pending state (`fork`),
which is bounded by the window, not by the log. A report the scanner has assembled is
final, so a cursor (how many reports were seen) stays valid while the log grows.

`ConsoleFile` feeds itself from the console.log file QEMU writes (chardev logfile=),
reading only the bytes appended since it last looked. That file rather than the pexpect
stream: it holds every byte the guest printed (the stream's backlog drops its oldest
bytes when nobody reads), also what came after the guest stopped answering, and it is
all a finished LAVA job or a reader in another process has.
"""

from __future__ import annotations

import os
from pathlib import Path

from .lines import BLOCK_BYTES, LineSplitter
from .model import LogAnalysis, Report
from .scanner import Scanner


class LogReader:
    """A console log fed in log order (`feed` bytes, `feed_text` text); its answers are
    those of `parse()` of the text so far, decoded as `Path.read_text()` decodes it."""

    def __init__(self, arch: str | None = None) -> None:
        self._arch = arch
        self._restart()

    def _restart(self) -> None:
        self._scanner = Scanner(self._arch)
        self._lines = LineSplitter(universal_newlines=True)
        self._tail: list[Report] | None = None  # the window's reports, while nothing is fed

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._tail = None
        if lines := self._lines.feed(data):
            self._scanner.feed(lines)

    def feed_text(self, text: str) -> None:
        self.feed(text.encode("utf-8", errors="replace"))

    def _refresh(self) -> None:
        """Read what the source has appended (a reader fed by its caller has no source)."""

    def _window_reports(self) -> list[Report]:
        """The reports starting in the window the scanner holds back, as they would be
        if the log ended here."""
        if self._tail is None:
            twin = self._scanner.fork(with_events=False)
            twin.feed(self._lines.rest())
            self._tail = twin.finish().reports
        return self._tail

    def cursor(self) -> int:
        """Where the log is now, for `since`: how many reports it holds."""
        self._refresh()
        return len(self._scanner.reports) + len(self._window_reports())

    def since(self, cursor: int) -> tuple[tuple[Report, ...], int]:
        """The reports after `cursor` (from `cursor()` or an earlier `since`), and the
        cursor after them."""
        self._refresh()
        final, window = self._scanner.reports, self._window_reports()
        new = (*final[cursor:], *window[max(0, cursor - len(final)):])
        return new, len(final) + len(window)

    def window_lines(self) -> int:
        """How many lines of the log the reader holds: bounded, whatever its length."""
        return self._scanner.held_lines

    def reports(self) -> tuple[Report, ...]:
        return self.since(0)[0]

    def analysis(self) -> LogAnalysis:
        """Every report and event so far."""
        self._refresh()
        twin = self._scanner.fork(with_events=True)
        twin.feed(self._lines.rest())
        done = twin.finish()
        return LogAnalysis(reports=[*self._scanner.reports, *done.reports], events=done.events)


class ConsoleFile(LogReader):
    """A console log file as its writer (QEMU) appends to it: each question first reads
    the bytes added since the last one. A missing file is an empty log (QEMU has not
    started); a file shorter than what was read is a new log (another QEMU truncated it),
    read from its start."""

    def __init__(self, path: Path, arch: str | None = None) -> None:
        super().__init__(arch)
        self.path = path
        self._offset = 0

    def _refresh(self) -> None:
        try:
            f = self.path.open("rb")
        except OSError:
            return
        with f:
            if os.fstat(f.fileno()).st_size < self._offset:
                self._restart()
                self._offset = 0
            f.seek(self._offset)
            while chunk := f.read(BLOCK_BYTES):
                self._offset += len(chunk)
                self.feed(chunk)
