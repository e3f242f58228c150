"""`oomrace parse-log`: a console log file (or stdin, as `-`) read as a stream of lines
(a 1 GB log in bounded memory), its analysis, the gate's judgement (`gate`), and the
summary or JSON printed."""

from __future__ import annotations

import codecs
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from harness.errors import UsageError
from harness.inputs import open_regular
from harness.schema import versioned

from .gate import NO_GATE, Gate, GatedAnalysis
from .lines import BLOCK_BYTES, LineSplitter
from .model import LogAnalysis
from .scanner import scan
from .symbols import location_of, stack_lines

STDIN = "-"
"""The log name that reads stdin (a pipe: `dmesg | oomrace parse-log -`)."""

# The encodings a log saved on Windows or by PowerShell comes in: the byte-order mark,
# and which bytes of each ASCII character are NUL (UTF-32 first: its LE mark starts with
# UTF-16 LE's).
_WIDE = (("utf-32-le", codecs.BOM_UTF32_LE, (1, 2, 3)),
         ("utf-32-be", codecs.BOM_UTF32_BE, (0, 1, 2)),
         ("utf-16-le", codecs.BOM_UTF16_LE, (1,)), ("utf-16-be", codecs.BOM_UTF16_BE, (0,)))
_SNIFF_BYTES = 4096


def parse_file(path: str | Path) -> LogAnalysis:
    """Parse a console log file line by line; UsageError if it is missing, unreadable or
    not a regular file (a FIFO would block, /dev/zero never ends). `-` reads stdin,
    whatever it is: the caller asked for a stream and gets one, in bounded memory."""
    if str(path) == STDIN:
        return _parse_stream(_stdin(), "on stdin")
    p = Path(path)
    with _open_regular(p) as f:
        return _parse_stream(f, str(p))


def log_name(path: str | Path) -> str:
    """How the summary names the log."""
    return "<stdin>" if str(path) == STDIN else str(path)


def _parse_stream(f: IO[bytes], name: str) -> LogAnalysis:
    try:
        return scan(_blocks(_utf8_chunks(f)))
    except OSError as exc:
        raise UsageError(f"console log {name}: cannot read it ({exc.strerror or exc})") from None


def _stdin() -> IO[bytes]:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise UsageError("console log on stdin: there is no stdin to read")
    return stream  # type: ignore[no-any-return]


def _open_regular(p: Path) -> IO[bytes]:
    return open_regular(p, "console log", "save the log to a file, or pipe it in: "
                                          "... | oomrace parse-log -")


def text_encoding(start: bytes) -> tuple[str, int]:
    """The encoding of a log that begins with `start`, and the length of its byte-order
    mark to skip. A console log is mostly ASCII, so UTF-16 or UTF-32 shows as NULs in
    the same bytes of nearly every character (and in almost none of the others), with or
    without a mark; a console's stray NULs come in runs instead, and bytes that only look
    like a mark (FF FE in a log of random bytes) are not enough."""
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8", len(codecs.BOM_UTF8)
    for encoding, bom, nuls in _WIDE:
        skip = len(bom) if start.startswith(bom) else 0
        if _ascii_in(start[skip:skip + _SNIFF_BYTES], 4 if len(bom) == 4 else 2, nuls):
            return encoding, skip
    return "utf-8", 0


def _ascii_in(sample: bytes, width: int, nuls: tuple[int, ...]) -> bool:
    units = len(sample) // width
    if units < 8:
        return False
    for offset in range(width):
        share = sample[offset:units * width:width].count(0) / units
        if (share < 0.9) if offset in nuls else (share > 0.1):
            return False
    return True


def _utf8_chunks(f: IO[bytes]) -> Iterator[bytes]:
    """The file's bytes as UTF-8, a block at a time: a log in UTF-16 or UTF-32 (found by
    text_encoding) is decoded as it is read (bad sequences become U+FFFD)."""
    first = f.read(BLOCK_BYTES)
    encoding, skip = text_encoding(first)
    chunks = itertools.chain([first[skip:]], iter(lambda: f.read(BLOCK_BYTES), b""))
    if encoding == "utf-8":
        yield from chunks
        return
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for chunk in chunks:
        yield decoder.decode(chunk).encode("utf-8", errors="replace")
    yield decoder.decode(b"", final=True).encode("utf-8", errors="replace")


def _blocks(chunks: Iterable[bytes]) -> Iterator[list[str]]:
    """The lines without their newlines, a block per read (`lines.LineSplitter`: long
    lines cut), NUL bytes dropped: a serial console's noise, which would otherwise stick
    to the start of the next line and hide its message from the scanner."""
    splitter = LineSplitter()
    for chunk in chunks:
        if lines := splitter.feed(chunk.replace(b"\x00", b"")):
            yield lines
    yield splitter.rest()


def summary(gated: GatedAnalysis, path: str) -> str:
    """The human summary: each report (marked when the gate allowed it or does not count
    it; with its stack's file:line once symbolized), the events, and the gate's result
    when it has patterns."""
    analysis = gated.analysis
    out: list[str] = []
    if not analysis.reports:
        out.append(f"{path}: no crash found")
    else:
        out.append(f"{path}: {len(analysis.reports)} crash report(s)")
        for r, judgement in zip(analysis.reports, gated.judgements, strict=True):
            extra = f" [garbled: {r.garbled_reason}]" if r.garbled else ""
            extra += judgement.note()
            out.append(f"  line {r.start_line + 1}: {r.title} ({r.type}){extra}")
            where = ", ".join(
                s
                for s in (
                    f"arch {r.arch}" if r.arch else "",
                    f"cpu {r.cpu}" if r.cpu is not None else "",
                    f"pid {r.pid}" if r.pid is not None else "",
                    f"comm {r.comm}" if r.comm else "",
                    f"taint {r.taint!r}" if r.taint else "",
                    f"file {r.guilty_file}" if r.guilty_file else "",
                )
                if s
            )
            if where:
                out.append(f"    {where}")
            if r.symbolized:
                at = location_of(r.symbolized, r.guilty_function)
                out.append(f"    stack{f' (guilty: {at})' if at else ''}:")
                out.extend(f"      {line}" for line in stack_lines(r.symbolized))
    counts: dict[str, int] = {}
    for e in analysis.events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    if counts:
        out.append("events: " + ", ".join(f"{k} x{v}" for k, v in counts.items()))
    if gated.gate.active:
        out.append(_gate_line(gated))
    return "\n".join(out)


def _gate_line(gated: GatedAnalysis) -> str:
    allowed = sum(j.allowed_by is not None for j in gated.judgements)
    parts = [f"{gated.gating} unexpected", f"{allowed} allowed"]
    if gated.gate.fail_on:
        parts.append(f"{len(gated.judgements) - gated.gating - allowed} not matched by --fail-on")
    return f"gate: {'FAIL' if gated.gating else 'pass'} ({', '.join(parts)})"


def parse_log_main(path: str, as_json: bool, gate: Gate = NO_GATE) -> int:
    """`oomrace parse-log FILE [--json]`: 0 no gating crash (with no patterns: no crash),
    1 one found, 2 error."""
    try:
        gated = gate.apply(parse_file(path))
    except UsageError as exc:
        print(f"oomrace parse-log: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(versioned(gated.to_dict()), indent=2))
    else:
        print(summary(gated, log_name(path)))
    return 1 if gated.gating else 0
