"""One report's assembly: its lines (own context only), title, type, guilty function
and file, the task it hit and the machine it ran on."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..arches import ARCHES
from .frames import SKIP_RE, frames_of, guilty_file
from .lines import CONSOLE, CPU_LINE, Window
from .model import Report
from .spec import CALL_TRACE, RIP, Family
from .taxonomy import classify_title
from .titles import title_of

# A report spans at most this many lines from its start (the scanner's window must hold
# them); its lines kept in the Report are cut at MAX_REPORT_BYTES characters in all.
# Both far above a real report's few dozen lines of < 1 KiB.
MAX_REPORT_LINES = 1000
MAX_REPORT_BYTES = 1 << 20

_WARN_OLD = re.compile(r"WARNING: CPU: (\d+) PID: (\d+) at ([\w/.-]+\.[a-zA-Z]+):\d+")
_WARN_NEW = re.compile(r"WARNING: ([\w/.-]+\.[a-zA-Z]+):\d+ at [^,]*, CPU#(\d+): (.*)/(\d+)")
_KERNEL_BUG_AT = re.compile(r"kernel BUG at ([\w/.-]+\.[a-zA-Z]+):\d+")


def _guess_arch(lines: Sequence[str]) -> str | None:
    """The arch whose log markers (arches.Arch.log_line_*) the first telling line shows."""
    for ln in lines:
        for arch in ARCHES.values():
            if arch.marks_log_line(ln):
                return arch.name
    return None


def _collect(
    log: Window, start: int, end: int, title_end: int, ctx: str
) -> tuple[list[str], int, list[str]]:
    """Lines of one report: (lines for the title up to `title_end`, how many of those lie
    before `end`, all own-context lines before `end` including unreliable frames)."""
    kept: list[str] = []
    own: list[str] = []
    n_kept = 0
    skip_rest = False
    cpu_traceback = False
    # Cheap pre-check for caller-tagged logs: a line of this task names its tag.
    probe = ctx + "]" if ctx not in ("", CONSOLE) else ""
    raw = log.raw_line
    for i in range(start, max(end, title_end)):
        if i == end:
            n_kept = len(kept)
        if probe and not cpu_traceback and i != start and probe not in raw(i):
            continue
        ln = log.get(i)
        if i != start and ln.ctx != ctx and not (cpu_traceback and ln.ctx.startswith("C")):
            continue
        if i < end:
            own.append(ln.text)
        if i != start and ln.questionable:
            continue
        body = ln.text
        if "Disabling lock debugging due to kernel taint" in body:
            continue
        if "Sending NMI from CPU" in body:
            cpu_traceback = True
        elif len(kept) > 22 and (
            "Kernel panic - not syncing" in body
            or "WARNING: possible circular locking dependency detected" in body
        ):
            skip_rest = True
        if skip_rest and i != start:
            continue
        kept.append(body)
    if title_end <= end:
        n_kept = len(kept)
    return kept, n_kept, own


@dataclass(frozen=True)
class _Task:
    """Who the report hit, from its `CPU: .. PID: .. Comm:` line and its header."""

    cpu: int | None = None
    pid: int | None = None
    comm: str | None = None
    taint: str | None = None
    file: str | None = None  # the file:line a WARNING or kernel BUG header names


def _task_of(head: str, kept: Sequence[str]) -> _Task:
    cpu = pid = None
    comm = taint = None
    for ln in kept[:60]:
        m = CPU_LINE.search(ln)
        if m:
            cpu, pid, comm, taint = int(m["cpu"]), int(m["pid"]), m["comm"], m["taint"]
            break
    # Older WARNINGs put CPU and PID in the header, newer ones CPU, comm and pid.
    if (wm := _WARN_OLD.search(head)) is not None:
        cpu = cpu if cpu is not None else int(wm.group(1))
        pid = pid if pid is not None else int(wm.group(2))
        return _Task(cpu, pid, comm, taint, wm.group(3))
    if (wm := _WARN_NEW.search(head)) is not None:
        cpu = cpu if cpu is not None else int(wm.group(2))
        comm = comm if comm is not None else wm.group(3)
        pid = pid if pid is not None else int(wm.group(4))
        return _Task(cpu, pid, comm, taint, wm.group(1))
    km = _KERNEL_BUG_AT.search(head)
    return _Task(cpu, pid, comm, taint, km.group(1) if km else None)


def build_report(
    log: Window, start: int, end: int, title_end: int, fam: Family, arch: str | None
) -> Report:
    """The report of family `fam` starting at line `start`: its own lines end at `end`,
    the title may be looked for up to `title_end`."""
    first = log.get(start)
    title_lines, n_kept, own = _collect(log, start, end, title_end, first.ctx)
    kept = title_lines[:n_kept]
    title, garbled, func = title_of(
        title_lines, lambda: [log.get(i).text for i in range(start, end)], fam
    )
    frames = frames_of(kept)
    if func is None:
        func = next((f for f in frames if not SKIP_RE.search(f)), None)
    task = _task_of(first.text, kept)
    return Report(
        title=title,
        type=classify_title(title).type,
        arch=arch or _guess_arch(kept) or _guess_arch(own),
        guilty_function=func,
        guilty_file=task.file or guilty_file(kept),
        frames=tuple(frames),
        cpu=task.cpu,
        pid=task.pid,
        comm=task.comm,
        taint=task.taint,
        garbled=bool(garbled),
        garbled_reason=garbled,
        lines=_capped(own, MAX_REPORT_BYTES),
        start_line=start,
    )


# What advice says: it names a mitigation or vulnerability, asks for a repair or a
# config change, or points at documentation.
_ADVICE = re.compile(
    r"(?i)mitigation|vulnerab|data leaks? possible|needs? (?:repair|fsck)|to repair|run \w*fsck"
    r"|\w+_repair|consider (?:using|booting|enabling)|deprecated|not compiled with|see https?://"
)


def is_informational(report: Report, fam: Family) -> bool:
    """Whether a report is an informational message wearing its family's header.

    Why: WARN() prints a stack right after its header (`__warn` dumps the registers or
    the call trace), while advice that merely says WARNING (a mitigation that is off, a
    filesystem that needs repair) is one pr_warn() line with no stack. A header that no
    title format recognizes, whose text gives advice (`_ADVICE`) and that no stack
    follows is therefore not a crash. A bare one-line `WARNING: text` without advice
    stays a report: kernels print such warnings for real bugs too.
    """
    if not fam.info_without_stack or not report.lines:
        return False
    head = report.lines[0]
    if not _ADVICE.search(head) or any(fmt.title.search(head) for fmt in fam.formats):
        return False
    if report.frames:
        return False
    return not any(CALL_TRACE.search(ln) or RIP.search(ln) for ln in report.lines)


def _capped(lines: Sequence[str], budget: int) -> tuple[str, ...]:
    """The report's lines up to `budget` characters in all (the rest is in the log)."""
    kept: list[str] = []
    for line in lines:
        if len(line) > budget:
            kept.append(line[:budget])
            break
        kept.append(line)
        budget -= len(line)
    return tuple(kept)
