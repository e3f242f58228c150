"""Parse a Linux console log / dmesg into crash reports and notable events.

`parse(text)` finds every kernel crash report in a console log (oops, BUG, WARNING,
KASAN/KFENCE/KMSAN/UBSAN, lockdep, hangs, stalls, panics, page-poisoning
corruption, ...) and gives each a stable, syzkaller-style title such as
``WARNING in foo`` or ``BUG: unable to handle kernel paging request in bar``. It also
reports events that matter to an OOM-reaper race hunt: OOM kills, reaped
processes, taint changes, boot banners and reboots.

How it works
------------
* Every line is split into an optional console prefix (``[  12.345678]``,
  ``[  12.3][ T123]`` caller tags, ``<4>`` log levels, a ``login:`` prompt glued in
  front) and the kernel text. The caller tag (``T123``/``C1``) is the line's
  *context*; lines of other contexts are left out of a report, which is what keeps
  interleaved CPUs apart. ``? `` (unreliable) stack frames are dropped.
* Crash families are data (`families.FAMILIES`): a literal header that starts a
  report, suppressions that veto it, an ordered list of formats (a title regex, an
  optional whole-report regex, a title template and a recipe for finding the guilty
  function in the stack, `StackSpec`), what its titles mean (`kinds`: report type
  and whether it is memory corruption) and what of it stops a boot (`boot_oops`).
* A single compiled alternation of all headers (plus event keywords) is run over
  each block of lines first; only the lines it hits are looked at further, so a
  10 MB log is parsed in well under a second. The log is read as a stream: a report
  spans at most `MAX_REPORT_LINES` lines, so only that window is held in memory.

Modules: `spec` (the table's vocabulary), `families` (the table), `skips` (the
generic frames and files a title never blames, each with its reason), `taxonomy`
(what a title means), `scanner` (where reports start and end), `titles`, `frames`
(guilty-frame selection), `reports` (one report's assembly), `events`, `lines`
(console prefixes, the window, bytes into lines), `stream` (a guest's one console reader,
fed as the log grows: `LogReader`, `ConsoleFile`), `logfile` (`oomrace parse-log`), `gate` (its
`--allow`/`--fail-on` patterns: which reports fail a CI), `symbols` (frames as file:line,
filled in by `harness.symbolize` from a vmlinux).

Report types
------------
``Report.type`` is one of: ``WARNING``, ``BUG``, ``HANG``, ``LOCKDEP``,
``ATOMIC-SLEEP``, ``LEAK``, ``DOS`` (panic, GPF, double fault and other
machine-stopping faults), ``NULL-POINTER-DEREFERENCE``, ``MEMORY-SAFETY-BUG``
(wild paging request, corrupted list), ``MEMORY-CORRUPTION`` (page poisoning,
bad page state/map, bad rss-counter), ``REFCOUNT-WARNING``, ``UBSAN``,
``MEMORY-SAFETY-UBSAN``, ``KASAN-READ``, ``KASAN-WRITE``,
``KASAN-USE-AFTER-FREE-READ``, ``KASAN-USE-AFTER-FREE-WRITE``,
``KASAN-INVALID-FREE``, ``KASAN-NULL-POINTER-DEREFERENCE-READ``/``-WRITE``,
``KASAN-UNKNOWN``, ``KFENCE-READ``, ``KFENCE-WRITE``, ``KFENCE-USE-AFTER-FREE-READ``,
``KFENCE-USE-AFTER-FREE-WRITE``, ``KFENCE-MEMORY-CORRUPTION``, ``KFENCE-INVALID-FREE``,
``KFENCE-UNKNOWN``, ``KMSAN-UNINIT-VALUE``, ``KMSAN-INFO-LEAK``,
``KMSAN-USE-AFTER-FREE-READ``, ``KMSAN-UNKNOWN``, ``KCSAN-DATARACE``,
``KCSAN-ASSERT``, ``KCSAN-UNKNOWN``, ``SYZ-FAILURE``, ``UNKNOWN``.

Event kinds
-----------
``boot_banner`` (the first ``Linux version`` line), ``reboot`` (a later one),
``oom_kill`` (``oom-kill:constraint=...`` and ``Out of memory: Killed process``
lines of one kill merged), ``oom_reaped`` (``oom_reaper: reaped process``),
``taint`` (the taint flags changed, or the kernel said it is tainting itself),
``page_poison_corruption`` (``pagealloc: memory corruption``).
"""

from __future__ import annotations

from .families import FAMILIES
from .gate import Gate, GatedAnalysis, Judgement, Pattern, build_gate
from .lines import MAX_LINE_BYTES, LineSplitter
from .logfile import STDIN, log_name, parse_file, parse_log_main, summary
from .model import Event, LogAnalysis, Report
from .reports import MAX_REPORT_BYTES, MAX_REPORT_LINES
from .scanner import parse, scan
from .spec import Family, Format, StackSpec, TitleKind
from .stream import ConsoleFile, LogReader
from .taxonomy import boot_oops_pattern, classify_title, is_corruption_title, title_family

__all__ = [
    "FAMILIES",
    "MAX_LINE_BYTES",
    "MAX_REPORT_BYTES",
    "MAX_REPORT_LINES",
    "STDIN",
    "ConsoleFile",
    "Event",
    "Family",
    "Format",
    "Gate",
    "GatedAnalysis",
    "Judgement",
    "LineSplitter",
    "LogAnalysis",
    "LogReader",
    "Pattern",
    "Report",
    "StackSpec",
    "TitleKind",
    "boot_oops_pattern",
    "build_gate",
    "classify_title",
    "is_corruption_title",
    "log_name",
    "parse",
    "parse_file",
    "parse_log_main",
    "scan",
    "summary",
    "title_family",
]
