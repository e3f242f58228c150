"""Stack frames as places in the source: what a symbolizer (`harness.symbolize`) reads
from a report's lines (`FrameRef`), what it fills in (`SymbolizedFrame`), and the stack
printed with file:line the way syzkaller prints a symbolized report.

Pure data and text: no tools run here, so the parser stays a parser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# `func+0x1c/0x40`, `func.isra.0+0x1c/0x40 [module]`: the symbol, its offset and size.
# The lookbehind keeps a frame inside a longer token (`0010:func+...` still matches after
# the colon) from starting mid-name.
FRAME_REF = re.compile(
    r"(?<![\w.$])(?P<symbol>[A-Za-z_.$][\w.$]*)\+0x(?P<offset>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r"(?:\s+\[(?P<module>[\w-]+)\])?"
)
# Lines that give the faulting instruction itself rather than a return address: the
# register dump's pc, and a WARNING header (`WARNING: CPU: 0 PID: 1 at file:line func+..`).
_PC_LINE = re.compile(r"^\s*(?:RIP: |pc : |PC is at |EIP: |WARNING: .* at )")
_UNRELIABLE = re.compile(r"^\s*(?:\[<?[0-9a-f]+>?\]\s*)?\? ")


@dataclass(frozen=True)
class FrameRef:
    """One `func+0xoff/0xsize` in a report's lines, before it is looked up."""

    line: int  # index into Report.lines
    symbol: str
    offset: int
    size: int
    module: str | None  # `[mod]` after the frame: its symbols are not in vmlinux
    exact: bool  # the faulting pc: looked up as is (a return address is looked up - 1)
    reliable: bool  # not a `? ` frame (a stack word the unwinder only guessed at)

    @property
    def text(self) -> str:
        return f"{self.symbol}+0x{self.offset:x}/0x{self.size:x}"


@dataclass(frozen=True)
class SourceLocation:
    function: str
    file: str  # relative to the kernel tree when the symbolizer could tell its root
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "file": self.file, "line": self.line}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceLocation:
        return cls(str(data["function"]), str(data["file"]), int(data["line"]))


@dataclass(frozen=True)
class SymbolizedFrame:
    """A frame with its source locations, as `addr2line -i` gives them: the innermost
    inlined function first, the frame's own function (where the call or fault is) last."""

    line: int  # index into Report.lines
    frame: str  # `func+0x1c/0x40`, as in the log
    reliable: bool
    locations: tuple[SourceLocation, ...]

    @property
    def location(self) -> SourceLocation:
        """Where in the frame's own function: the place decode_stacktrace.sh prints."""
        return self.locations[-1]

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "frame": self.frame, "reliable": self.reliable,
                "locations": [loc.to_dict() for loc in self.locations]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SymbolizedFrame:
        return cls(int(data["line"]), str(data["frame"]), bool(data["reliable"]),
                   tuple(SourceLocation.from_dict(d) for d in data["locations"]))


def frame_refs(lines: Sequence[str]) -> list[FrameRef]:
    """Every frame in a report's lines, in order. The pc line (`RIP:`, `pc :`) is exact,
    and so is the call-trace entry repeating it (arm64 starts its trace with the pc);
    every other frame is a return address."""
    pcs: set[str] = set()
    refs: list[FrameRef] = []
    for i, text in enumerate(lines):
        pc_line = _PC_LINE.match(text) is not None
        reliable = _UNRELIABLE.match(text) is None
        for m in FRAME_REF.finditer(text):
            ref = FrameRef(i, m["symbol"], int(m["offset"], 16), int(m["size"], 16),
                           m["module"], pc_line, reliable)
            if pc_line:
                pcs.add(ref.text)
            elif ref.text in pcs:
                ref = FrameRef(ref.line, ref.symbol, ref.offset, ref.size, ref.module,
                               True, reliable)
                pcs.discard(ref.text)  # only the first repeat is the pc itself
            refs.append(ref)
    return refs


def stack_lines(frames: Sequence[SymbolizedFrame]) -> list[str]:
    """The frames with file:line, as syzkaller prints a symbolized stack (and our parser
    reads back): a frame gets its own function's location, after a line per function
    inlined into it, `name file:line [inline]`; a `? ` frame keeps its mark."""
    out: list[str] = []
    for f in frames:
        mark = "" if f.reliable else "? "
        out.extend(f"{mark}{loc.function} {loc} [inline]" for loc in f.locations[:-1])
        out.append(f"{mark}{f.frame} {f.location}")
    return out


def location_of(frames: Sequence[SymbolizedFrame], function: str | None) -> SourceLocation | None:
    """Where `function` (a report's guilty function) is in its stack: in the first reliable
    frame that inlines it or is it; None when no frame does."""
    if function is None:
        return None
    for f in frames:
        if not f.reliable:
            continue
        inlined = next((loc for loc in f.locations if loc.function == function), None)
        if inlined is not None:
            return inlined
        if re.split(r"[.+]", f.frame, maxsplit=1)[0] == function:
            return f.location
    return None
