"""`oomrace parse-log` as a CI gate: which crash reports are expected and which fail it.

A report is *gating* (it makes the exit code 1) unless an `--allow` pattern matches its
title; when `--fail-on` patterns are given, a report gates only if one of them matches
too. `--allow` wins over `--fail-on`: a known issue listed as allowed never fails the
gate, however broad the `--fail-on`. Patterns are Python regexes searched anywhere in
the title (as grep does; anchor them with `^` and `$` to match a whole title).

The titles come from the guest, so a crafted log can make a backtracking pattern such as
`(q+)+$` take minutes on one title. Patterns run on the `regex` module (the syntax of
`re`) with a time bound: a search past SEARCH_TIMEOUT fails closed (an --allow that
timed out does not allow, a --fail-on that timed out gates), the judgement says so,
and the pattern is not tried again on that log, so a log costs at most that bound once
per pattern.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex as re

from harness.errors import UsageError
from harness.inputs import read_regular

from .model import LogAnalysis, Report

# An --allow-file is a list of known issues, not a log: more than this is a mistake.
MAX_ALLOW_FILE_BYTES = 1 << 20
SEARCH_TIMEOUT = 0.5  # seconds one pattern may take on one title


@dataclass(frozen=True)
class Pattern:
    """One regex given to the gate, and where it was given (for errors and the JSON)."""

    text: str
    origin: str  # "--allow", "--fail-on" or "--allow-file known.txt:3"
    regex: re.Pattern[str]

    def describe(self) -> str:
        return f"{self.origin} {self.text!r}"

    def to_dict(self) -> dict[str, str]:
        return {"pattern": self.text, "from": self.origin}

    def search(self, title: str, slow: set[str]) -> bool | None:
        """Whether the pattern matches the title; None when it took longer than
        SEARCH_TIMEOUT, now or on an earlier title of this log (kept in `slow`)."""
        if self.describe() in slow:
            return None
        try:
            return self.regex.search(title, timeout=SEARCH_TIMEOUT) is not None
        except TimeoutError:
            slow.add(self.describe())
            return None


def compile_pattern(text: str, origin: str) -> Pattern:
    """The pattern, or UsageError naming the option and the pattern in one line."""
    if not text:
        raise UsageError(f"{origin} '': an empty pattern matches every report "
                         "(use '.' if that is meant)")
    try:
        regex = re.compile(text)
    except re.error as exc:  # the stubs lack msg and pos
        msg, pos = getattr(exc, "msg", str(exc)), getattr(exc, "pos", None)
        raise UsageError(f"{origin} {text!r}: bad regex: {msg} at position {pos}") from None
    except (OverflowError, RecursionError, ValueError) as exc:
        raise UsageError(f"{origin} {text!r}: bad regex: {exc}") from None
    return Pattern(text, origin, regex)


def read_allow_file(path: Path) -> list[Pattern]:
    """The patterns of an --allow-file: one regex per line; blank lines and lines whose
    first non-blank character is `#` are skipped; a line's outer whitespace is ignored."""
    data = read_regular(path, "--allow-file", MAX_ALLOW_FILE_BYTES,
                        "it should be a text file of regexes, one per line")
    try:
        # utf-8-sig: an editor's byte-order mark is not part of the first pattern.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"--allow-file {path}: not UTF-8 text") from None
    patterns = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(compile_pattern(line, f"--allow-file {path}:{number}"))
    return patterns


@dataclass(frozen=True)
class Judgement:
    """What the gate made of one report."""

    gating: bool
    reason: str  # "unexpected", "allowed" or "not matched by --fail-on"
    allowed_by: Pattern | None = None
    timed_out: tuple[Pattern, ...] = ()  # patterns past SEARCH_TIMEOUT: they failed closed

    def to_dict(self) -> dict[str, Any]:
        return {
            "gating": self.gating,
            "gate_reason": self.reason,
            "allowed_by": self.allowed_by.to_dict() if self.allowed_by else None,
            "timed_out": [p.to_dict() for p in self.timed_out],
        }

    def note(self) -> str:
        """The mark the summary puts after the report's title ("" when it gates)."""
        if self.allowed_by is not None:
            return f" [allowed by {self.allowed_by.describe()}]"
        if self.timed_out:
            names = ", ".join(p.describe() for p in self.timed_out)
            return (f" [gating: {names} took over {SEARCH_TIMEOUT:g} s on a title of this "
                    "log, so it counts as no --allow match and as a --fail-on match; "
                    "simplify the pattern]")
        return "" if self.gating else f" [not gating: {self.reason}]"


@dataclass(frozen=True)
class Gate:
    """The --allow and --fail-on patterns; with none, every report gates."""

    allow: tuple[Pattern, ...] = ()
    fail_on: tuple[Pattern, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.allow or self.fail_on)

    def judge(self, report: Report, slow: set[str] | None = None) -> Judgement:
        """Allowed, not matched by --fail-on or gating; `slow` holds the patterns that
        timed out on this log (they fail closed: the report gates)."""
        slow = set() if slow is None else slow
        timed_out = []
        for pattern in self.allow:
            found = pattern.search(report.title, slow)
            if found:
                return Judgement(False, "allowed", pattern)
            if found is None:
                timed_out.append(pattern)
        matched = [pattern.search(report.title, slow) for pattern in self.fail_on]
        timed_out += [p for p, found in zip(self.fail_on, matched, strict=True) if found is None]
        if self.fail_on and not any(found is not False for found in matched):
            return Judgement(False, "not matched by --fail-on")
        return Judgement(True, "unexpected", timed_out=tuple(timed_out))

    def apply(self, analysis: LogAnalysis) -> GatedAnalysis:
        slow: set[str] = set()
        return GatedAnalysis(analysis, self,
                             tuple(self.judge(r, slow) for r in analysis.reports))


@dataclass(frozen=True)
class GatedAnalysis:
    """A log's analysis and the gate's judgement of each of its reports, in order."""

    analysis: LogAnalysis
    gate: Gate
    judgements: tuple[Judgement, ...]

    @property
    def gating(self) -> int:
        """How many reports fail the gate (the exit code is 1 when any does)."""
        return sum(j.gating for j in self.judgements)

    def to_dict(self) -> dict[str, Any]:
        """The analysis's JSON, each report with its judgement, and the gate's result."""
        data = self.analysis.to_dict()
        data["reports"] = [{**r, **j.to_dict()}
                           for r, j in zip(data["reports"], self.judgements, strict=True)]
        data["gate"] = {
            "allow": [p.to_dict() for p in self.gate.allow],
            "fail_on": [p.to_dict() for p in self.gate.fail_on],
            "gating_reports": self.gating,
            "passed": not self.gating,
        }
        return data


def build_gate(allow: Sequence[str] = (), fail_on: Sequence[str] = (),
               allow_files: Sequence[Path] = ()) -> Gate:
    """The gate of parse-log's options; UsageError (exit 2) on a bad pattern or file."""
    allowed = [compile_pattern(text, "--allow") for text in allow]
    for path in allow_files:
        allowed += read_allow_file(path)
    return Gate(tuple(allowed), tuple(compile_pattern(t, "--fail-on") for t in fail_on))


NO_GATE = Gate()
