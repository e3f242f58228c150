"""The exit codes of every `oomrace` command and what each means: the one table that
`oomrace --help` shows and README's "Exit codes" section repeats (a unit test compares)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from ..errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_HARNESS_BUG,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_VERDICT,
)


@dataclass(frozen=True)
class ExitCode:
    codes: str  # one code, or several that share a meaning ("130, 143, 129")
    meaning: str


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(str(EXIT_OK), "success: every guest clean, no crash in the log, every lab cell "
             "as expected"),
    ExitCode(str(EXIT_VERDICT), "a verdict: a guest not clean, a crash in the log (with "
             "`parse-log --allow`/`--fail-on`: an unexpected one), a lab cell "
             "not as expected, no commit found, a kernel build that failed, an evaluation "
             "where the bug did not show or a fix was not judged to fix it"),
    ExitCode(str(EXIT_BAD_INPUT), "bad input (an option, a file, a matrix, a missing tool): "
             "one line naming the problem and the fix"),
    ExitCode(str(EXIT_REGRESSION), "`lab`: a regression against the previous night"),
    ExitCode(str(EXIT_HARNESS_BUG), "a harness bug: one line naming the exception and the "
             "file its traceback was saved in (under `~/.cache/oomrace/tracebacks/`, else the "
             "temp dir); please report it"),
    ExitCode("130, 143, 129", "interrupted: Ctrl-C (130), SIGTERM (143) or SIGHUP (129), "
             "i.e. 128 + the signal"),
    ExitCode(str(EXIT_BROKEN_PIPE), "the output pipe closed (`oomrace ... \\| head`)"),
)


def markdown_table() -> str:
    """The table as README shows it."""
    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| {e.codes} | {e.meaning} |" for e in EXIT_CODES]
    return "\n".join(rows)


def help_epilog() -> str:
    """The table as `oomrace --help` shows it."""
    lines = ["exit codes (every command):"]
    for e in EXIT_CODES:
        plain = e.meaning.replace("\\|", "|").replace("`", "")
        lines.append(textwrap.fill(plain, width=88, initial_indent=f"  {e.codes:<14} ",
                                   subsequent_indent=" " * 17))
    return "\n".join(lines)
