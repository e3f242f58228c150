"""A finished LAVA job's log read back: the guest's console, the batches our test printed
(harness.lab.lava_job frames each one), and LAVA's own results, into the same stress
summary the local engine makes (workload.BatchTally).

The log is what `lava-run` prints and `lavacli jobs logs --raw` fetches: one entry a line,
`{"dt": ..., "lvl": ..., "msg": ...}` (a YAML list item, `- {...}`, from the server).
Entries at level `target` are the DUT's console, a line each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import kernel_log, stress, verdict
from ..workload import BatchTally, WorkloadResult
from .lava_job import BATCH_BEGIN, BATCH_END, DONE

_BEGIN = re.compile(rf"{BATCH_BEGIN} (\d+)\b")
_END = re.compile(rf"{BATCH_END} (\d+) (\d+)\b")


@dataclass
class LavaLog:
    """The parts of a job's log that make a cell's result."""

    console: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    boot_seconds: float | None = None

    @property
    def console_text(self) -> str:
        return "".join(line + "\n" for line in self.console)

    @property
    def job_result(self) -> str | None:
        """LAVA's verdict on the job as a whole (pass or fail), when it gave one."""
        for r in reversed(self.results):
            if r.get("definition") == "lava" and r.get("case") == "job":
                return str(r.get("result"))
        return None

    @property
    def test_finished(self) -> bool:
        """Our test printed its last marker (the console's echo of the command does not
        count: there the marker is assembled by printf)."""
        return any(line.strip().endswith(DONE) and "printf" not in line
                   for line in self.console)


def unescape(text: str) -> str:
    """A console line as the DUT printed it: LAVA's dispatcher puts a backslash before
    every double quote it logs (and drops CR and ESC, which are gone for good)."""
    return text.replace('\\"', '"')


def _entry(line: str) -> Mapping[str, Any] | None:
    text = line.strip()
    if text.startswith("- "):
        text = text[2:]
    if not text.startswith("{"):
        return None
    try:
        entry = json.loads(text)
    except ValueError:
        entry = _yaml_entry(text)
    return entry if isinstance(entry, Mapping) else None


def _yaml_entry(text: str) -> Any:
    """A line that is YAML but not JSON (LAVA writes some results that way); skipped
    when no YAML library is installed, as only results lines were seen in that form."""
    try:
        from ruamel.yaml import YAML  # lavacli's dependency
    except ImportError:
        return None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except Exception:  # a line we cannot read is skipped, not fatal
        return None


def parse_log(lines: Iterable[str]) -> LavaLog:
    log = LavaLog()
    boot_started: datetime | None = None
    for line in lines:
        entry = _entry(line)
        if entry is None:
            continue
        level, msg = entry.get("lvl"), entry.get("msg")
        if level == "target":
            log.console.append(unescape(str(msg)))
        elif level == "results" and isinstance(msg, Mapping):
            log.results.append(dict(msg))
        elif level == "error":
            log.errors.append(str(msg))
        elif level == "info" and isinstance(msg, str):
            stamp = _time(entry.get("dt"))
            # LAVA's boot action from its start to the shell prompt: our boot time.
            if msg.startswith("start: ") and " boot-" in msg and boot_started is None:
                boot_started = stamp
            elif msg.startswith("end: ") and " boot-" in msg and boot_started and stamp:
                log.boot_seconds = round((stamp - boot_started).total_seconds(), 3)
    return log


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass
class _ConsoleFeed:
    """The job's console lines into the run's reader, up to a line, as the batches end."""

    lines: list[str]
    reader: kernel_log.LogReader
    fed: int = 0

    def upto(self, end: int) -> kernel_log.LogReader:
        self.reader.feed_text("".join(line + "\n" for line in self.lines[self.fed:end]))
        self.fed = max(self.fed, end)
        return self.reader


def workload_result(log: LavaLog, scenario: str,
                    console: kernel_log.LogReader | None = None) -> WorkloadResult:
    """The batches the guest printed, tallied as the local engine tallies them: each
    batch's stdout through stress.parse_output, its kernel reports those of the console
    up to its end marker. `console` (the run's reader) is fed the whole console."""
    feed = _ConsoleFeed(log.console, console or kernel_log.LogReader())
    tally = BatchTally()
    begun: int | None = None
    seen, elapsed = 0, 0.0
    for index, line in enumerate(log.console):
        if _BEGIN.search(line) and "printf" not in line:
            begun = index
            if not tally.batches:  # reports before the first batch are not its own
                seen = feed.upto(index).cursor()
            continue
        match = _END.search(line)
        if match is None or begun is None or "printf" in line:
            continue
        output = "\n".join(log.console[begun + 1:index])
        result = stress.parse_output(output, exit_code=int(match.group(2)))
        elapsed += result.elapsed
        new, seen = feed.upto(index + 1).since(seen)
        tally.add(result, verdict.corruption_count(new), elapsed)
        begun = None
        if tally.error is not None:
            break
    feed.upto(len(log.console))
    if not log.test_finished and tally.error is None:
        tally.error = ("the LAVA job ended before our test finished"
                       + (f": {log.errors[-1]}" if log.errors else ""))
    return tally.result(scenario, elapsed)
