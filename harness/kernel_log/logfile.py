"""`oomrace parse-log`: a console log file (or stdin, as `-`) read as a stream of lines
(a 1 GB log in bounded memory), its analysis, the gate's judgement (`gate`), and the
summary or JSON printed."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
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
        return scan(_blocks(f))
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


def _blocks(f: IO[bytes]) -> Iterator[list[str]]:
    """The file's lines without their newlines, a block per read (`lines.LineSplitter`)."""
    splitter = LineSplitter()
    while chunk := f.read(BLOCK_BYTES):
        if lines := splitter.feed(chunk):
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
