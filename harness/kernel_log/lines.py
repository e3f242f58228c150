"""Console lines: the prefix a serial console or dmesg puts before the kernel text, and
the bounded window of lines the scanner holds while it reads a log."""

from __future__ import annotations

import re
from typing import NamedTuple

# A shell prompt and terminal escapes (busybox asks for the cursor position) can stand
# before a kernel line on a serial console.
_PREFIX_RE = re.compile(
    r"^(?:[\w@:~/.-]*[#$] ?)?(?:\x1b\[[0-9;?]*[A-Za-z])*"
    r"(?:\*\* \d+ printk messages dropped \*\* )?(?:.* login: )?(?:<\d+>)?"
    r"\[ *\d+\.\d+\](?:\[ *([CT]\d+)\])? ?"
)
# A `? func+0x..` frame: the unwinder is not sure it is on the stack.
_QUESTIONABLE = re.compile(r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)?\? ")
# The context of a line with a timestamp but no caller tag.
CONSOLE = "console"
# The line of a report (and of a taint event) naming the CPU, task and taint.
CPU_LINE = re.compile(
    r"CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>.*?) "
    r"(?:Not tainted|Tainted: (?P<taint>[A-Z](?:[A-Z ]*[A-Z])?))"
)


def split_prefix(line: str) -> tuple[str, str]:
    """(context, kernel text) of one raw line; context "" means no console prefix."""
    if line.endswith("\r"):
        line = line[:-1]
    if "[" not in line:
        return "", line
    m = _PREFIX_RE.match(line)
    if m is None:
        return "", line
    return (m.group(1) or CONSOLE), line[m.end() :]


class Line(NamedTuple):
    ctx: str
    text: str
    questionable: bool


class Window:
    """Lines [base, end) of a log being read: the scanner appends what it reads and drops
    what no pending report or event can reach any more, so memory does not grow with
    the log. Lines are split lazily, only those a report or event looks at."""

    def __init__(self) -> None:
        self.raw: list[str] = []
        self.base = 0
        self._split: dict[int, Line] = {}

    @property
    def end(self) -> int:
        return self.base + len(self.raw)

    def extend(self, lines: list[str]) -> None:
        self.raw.extend(lines)

    def raw_line(self, i: int) -> str:
        return self.raw[i - self.base]

    def get(self, i: int) -> Line:
        got = self._split.get(i)
        if got is None:
            ctx, body = split_prefix(self.raw[i - self.base])
            q = (
                ctx != ""
                and body[:1] in (" ", "\t", "[")
                and "<EOI>" not in body
                and bool(_QUESTIONABLE.match(body))
            )
            got = Line(ctx, body, q)
            self._split[i] = got
        return got

    def drop_before(self, i: int) -> None:
        if i <= self.base:
            return
        del self.raw[: i - self.base]
        self.base = i
        self._split = {k: v for k, v in self._split.items() if k >= i}
