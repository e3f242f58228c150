"""Console lines: bytes cut into lines, the prefix a serial console or dmesg puts before
the kernel text, and the bounded window of lines the scanner holds while it reads a log."""

from __future__ import annotations

import re
from typing import NamedTuple

# A line longer than this is cut (its rest skipped): far above a console line's < 1 KiB,
# it bounds what one line of random bytes can hold in memory.
MAX_LINE_BYTES = 64 << 10
# A log file is read (and its lines handed to the scanner) this many bytes at a time.
BLOCK_BYTES = 1 << 20


class LineSplitter:
    """Bytes fed in log order, out as lines without their newlines, as `text.split("\\n")`
    of the decoded text would give them. A line is cut at MAX_LINE_BYTES and the rest of
    it skipped, so that no line, however long, is held whole. Decoding a line at a time
    gives the same text as decoding all of it, as a UTF-8 sequence never holds a newline
    byte.

    With `universal_newlines`, "\\r\\n" and a lone "\\r" end a line too, as in
    `Path.read_text()` (what a run's console log was always read with); without, a "\\r"
    stays in its line (`oomrace parse-log`'s reading, whose prefix split drops a last one).
    """

    def __init__(self, universal_newlines: bool = False) -> None:
        self._universal = universal_newlines
        self._carry = b""  # the start of a line whose end is not read yet
        self._skipping = False  # inside the rest of an overlong line

    def feed(self, chunk: bytes) -> list[str]:
        """The lines this chunk ends (maybe none)."""
        if self._skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                return []
            chunk, self._skipping = chunk[newline + 1 :], False
        parts = chunk.split(b"\n")
        parts[0] = self._carry + parts[0]
        self._carry = parts.pop()
        if len(self._carry) >= MAX_LINE_BYTES:
            parts.append(self._carry)
            self._carry, self._skipping = b"", True
        if not parts:
            return []
        lines = b"\n".join(part[:MAX_LINE_BYTES] for part in parts).decode(
            "utf-8", errors="replace").split("\n")
        if not self._universal:
            return lines
        return [piece for line in lines
                for piece in (line[:-1] if line.endswith("\r") else line).split("\r")]

    def rest(self) -> list[str]:
        """The lines of the text so far that `feed` has not given: the last one, whose
        newline is not read (`[""]` when the text ends in one). An overlong last line
        counts as ended, as if its newline had been read."""
        text = self._carry.decode("utf-8", errors="replace")
        return text.split("\r") if self._universal else [text]


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

    def copy(self) -> Window:
        twin = Window()
        twin.raw, twin.base, twin._split = self.raw.copy(), self.base, self._split.copy()
        return twin

    def drop_before(self, i: int) -> None:
        if i <= self.base:
            return
        del self.raw[: i - self.base]
        self.base = i
        self._split = {k: v for k, v in self._split.items() if k >= i}
