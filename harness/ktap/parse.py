"""KTAP/TAP text in, a typed tree out: `parse(text) -> KtapDocument`.

Reads KTAP v1 (Documentation/dev-tools/ktap.rst), TAP 13 and TAP 14 as a guest prints
them: version lines, plans, result lines with SKIP/TODO/XFAIL/TIMEOUT/ERROR directives,
'#' diagnostic lines, unknown lines (kernel messages in a console log), and subtests
nested by indentation (KTAP: a version line two spaces in; TAP 14 and KUnit: a
'# Subtest: NAME' line, four spaces in). Output that stops mid-run (a crash, a timeout,
TAP's 'Bail out!') loses no test: a test whose output began but whose result line never
came is CRASHED, and the rest of every plan is MISSING."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .model import KtapDocument, KtapTest, Result

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")  # printk's time prefix in a console log
_VERSION = re.compile(r"(K?TAP) version (\d+)\s*$")
_PLAN = re.compile(r"1\.\.(\d+)\s*(?:#\s*(.*))?$")
_RESULT = re.compile(r"(ok|not ok)(?=\s|$)\s*(\d+)?\s*(?:- )?([^#]*?)\s*(?:#\s*(.*))?$")
_HEADER = re.compile(r"# Subtest:\s*(.*?)\s*$")
_BAIL = re.compile(r"Bail out!\s*(.*)$")
# A directive is the first word after '#', in any case, as TAP parsers read it ("skipped"
# is a SKIP); any other text there is the line's diagnostic data.
_DIRECTIVE = re.compile(r"(SKIP|TODO|XFAIL|TIMEOUT|ERROR)\w*[:\s]*(.*)$", re.IGNORECASE)
_ACCEPTED = {"KTAP": (1,), "TAP": (13, 14)}
_STRUCTURAL = ("version", "plan", "result", "header")


@dataclass(frozen=True)
class _Line:
    number: int   # 1-based, in the text given
    indent: int   # spaces in from the document's own indentation
    kind: str     # version, plan, result, header, bail, diag, other
    text: str     # without indentation; for diag: after '# '
    match: re.Match[str] | None = None


@dataclass
class _Block:
    """One level of tests being read: a document's top level or a test's subtests."""

    indent: int
    bounded: bool = False      # nested at its parent's indentation: ends with its plan
    version: str | None = None
    plan: int | None = None
    name: str = ""             # its parent test's name, from a '# Subtest: NAME' line
    header: str = ""           # a '# Subtest: NAME' naming the next test of this level
    tests: list[KtapTest] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    lead: tuple[list[str], list[str]] = ([], [])  # the parent's lines from before it began
    pending: _Block | None = None  # subtests read, waiting for their parent's result line

    @property
    def started(self) -> bool:
        return bool(self.version or self.plan is not None or self.tests or self.pending)

    @property
    def full(self) -> bool:
        return self.bounded and self.plan is not None and len(self.tests) >= self.plan


def parse(text: str) -> KtapDocument:
    """The KTAP/TAP document in `text` (lines before its first version line, or before its
    first plan or result line when it has none, are ignored). Never raises on bad input:
    what did not follow the format is listed in `errors`."""
    return _Parser(_lines(text)).document()


def _lines(text: str) -> list[_Line]:
    raw = [_TIMESTAMP.sub("", line.rstrip().expandtabs(8)) for line in text.splitlines()]
    start, prefix = _start(raw)
    if start is None:
        return []
    first = raw[start][len(prefix):]
    base = len(first) - len(first.lstrip(" "))  # the version line's indentation is level 0
    # A line without the document's prefix is not part of it (None: an unknown line).
    own: list[str | None] = [line[len(prefix):] if line.startswith(prefix) else None
                             for line in raw[start:]]
    lines = []
    for number, line in enumerate(_kselftest_nesting(own), start + 1):
        if line is None:
            lines.append(_Line(number, 0, "other", raw[number - 1].strip()))
            continue
        body = line.lstrip(" ")
        lines.append(_classify(number, max(0, len(line) - len(body) - base), body))
    return lines


_PREFIXED_VERSION = re.compile(r"( *)# (K?TAP version \d+)\s*$")


def _kselftest_nesting(lines: list[str | None]) -> list[str | None]:
    """kselftest's runner nests a test program's own TAP under its result by prefixing
    each of its lines with '# ' (tools/testing/selftests/kselftest/runner.sh). From such a
    '# TAP version' line on, the run of '#' lines at its indentation is read as a subtest
    two spaces in; nested again ('# # TAP version'), it goes two more."""
    out = list(lines)
    for i in range(1, len(out)):  # the document's own version line is never nested
        found = _PREFIXED_VERSION.match(out[i] or "")
        if found is None:
            continue
        pad = found.group(1)
        j = i
        while j < len(out) and ((out[j] or "").startswith(pad + "# ") or out[j] == pad + "#"):
            out[j] = pad + "  " + (out[j] or "")[len(pad) + 2:]
            j += 1
    return out


def _start(raw: list[str]) -> tuple[int | None, str]:
    """The first line of the document and the text every line of it starts with (a
    kselftest runner's '# ', a logging prefix), found from its version line."""
    for i, line in enumerate(raw):
        found = _VERSION.search(line)
        if found:
            before = line[:found.start()]
            return i, before.rstrip(" ") + " " if before.strip() else ""
    for i, line in enumerate(raw):
        if _PLAN.match(line.lstrip()) or _RESULT.match(line.lstrip()):
            return i, ""
    return None, ""


def _classify(number: int, indent: int, body: str) -> _Line:
    for kind, pattern in (("version", _VERSION), ("plan", _PLAN), ("result", _RESULT),
                          ("header", _HEADER), ("bail", _BAIL)):
        match = pattern.match(body)
        if match:
            return _Line(number, indent, kind, body, match)
    if body.startswith("#"):
        return _Line(number, indent, "diag", body[1:].removeprefix(" "))
    return _Line(number, indent, "other", body)


class _Parser:
    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        self.i = 0
        self.errors: list[str] = []
        self.bailed: str | None = None
        # KTAP requires a result line's number; TAP does not. In KTAP, "ok" without one is
        # some other message (a console line), never a result.
        self.ktap = bool(lines) and lines[0].text.startswith("KTAP")

    def document(self) -> KtapDocument:
        if not self.lines:
            return KtapDocument(version=None, plan=None, tests=(),
                                errors=("no KTAP or TAP output (no version, plan or result "
                                        "line)",))
        top = self.block(_Block(indent=self.lines[0].indent))
        return KtapDocument(version=top.version, plan=top.plan, tests=tuple(top.tests),
                            diagnostics=tuple(top.diagnostics), bailed_out=self.bailed,
                            errors=tuple(self.errors))

    def block(self, block: _Block) -> _Block:
        """Read `block`'s lines until a line of an outer level, the end of the text or a
        bail-out; then close it: unfinished subtests CRASHED, the rest of the plan MISSING."""
        while self.i < len(self.lines) and self.bailed is None and not block.full:
            line = self.lines[self.i]
            structural = line.kind in _STRUCTURAL
            if structural and line.indent < block.indent:
                break
            if structural and (line.indent > block.indent or (
                    line.kind == "version" and block.started)):
                self.nested(block, line)
                continue
            self.i += 1
            self.take(block, line)
        self.close(block)
        return block

    def nested(self, block: _Block, line: _Line) -> None:
        if block.pending is not None:  # subtests twice with no result line between
            self.crashed(block, block.pending)
        same = line.indent == block.indent
        if same:
            self.errors.append(f"line {line.number}: a version line inside a test at the "
                               "same indentation; read as the start of its subtests")
        sub = self.block(_Block(indent=line.indent, bounded=same, name=block.header,
                                lead=(block.diagnostics, block.output)))
        block.header, block.diagnostics, block.output = "", [], []
        block.pending = sub

    def take(self, block: _Block, line: _Line) -> None:
        """One line of `block`'s own level."""
        assert line.match is not None or line.kind in ("diag", "other")
        if line.kind == "version":
            block.version = line.text
            self.check_version(line)
        elif line.kind == "plan":
            assert line.match is not None
            if block.plan is not None:
                self.errors.append(f"line {line.number}: a second plan")
            block.plan = int(line.match.group(1))
        elif line.kind == "header":
            assert line.match is not None
            nested = block.indent > 0 or block.bounded  # the top level has no name
            if nested and block.plan is None and not block.tests and not block.name:
                block.name = line.match.group(1)  # KUnit: version, header, plan
            else:
                block.header = line.match.group(1)  # TAP 14: the header, then the subtests
        elif line.kind == "bail":
            assert line.match is not None
            self.bailed = line.match.group(1) or "Bail out!"
        elif line.kind == "result" and self.ktap and line.match and not line.match.group(2):
            block.output.append(line.text)
        elif line.kind == "result":
            block.tests.append(self.result(block, line))
        elif line.kind == "diag":
            block.diagnostics.append(line.text)
        else:
            block.output.append(line.text)

    def result(self, block: _Block, line: _Line) -> KtapTest:
        assert line.match is not None
        word, number, name, comment = line.match.groups()
        expected = len(block.tests) + 1
        if number is None:
            number = expected  # TAP allows a result line without its number
        elif int(number) != expected:
            self.errors.append(f"line {line.number}: test number {number}, expected {expected}")
        ok = word == "ok"
        result, directive, reason = _outcome(ok, comment or "")
        sub, block.pending = block.pending, None
        header = sub.name if sub is not None else block.header
        block.header = ""
        test = KtapTest(
            number=int(number), name=name or header, result=result, ok=ok, directive=directive,
            reason=reason, diagnostics=tuple(block.diagnostics), output=tuple(block.output),
            subtests=tuple(sub.tests) if sub else (), plan=sub.plan if sub else None,
            line=line.number)
        if sub is not None:
            test = replace(test, diagnostics=(*sub.lead[0], *sub.diagnostics, *test.diagnostics),
                           output=(*sub.lead[1], *sub.output, *test.output))
        block.diagnostics, block.output = [], []
        return test

    def crashed(self, block: _Block, sub: _Block) -> None:
        """Subtests whose parent's result line never came: the parent CRASHED."""
        block.tests.append(KtapTest(
            number=len(block.tests) + 1, name=sub.name, result=Result.CRASHED,
            diagnostics=(*sub.lead[0], *sub.diagnostics, *block.diagnostics),
            output=(*sub.lead[1], *sub.output, *block.output), subtests=tuple(sub.tests),
            plan=sub.plan))
        block.diagnostics, block.output = [], []
        block.pending = None

    def close(self, block: _Block) -> None:
        if block.pending is not None:
            self.crashed(block, block.pending)
        missing = (block.plan or 0) - len(block.tests)
        for number in range(len(block.tests) + 1, len(block.tests) + 1 + max(0, missing)):
            block.tests.append(KtapTest(number=number, name="", result=Result.MISSING))

    def check_version(self, line: _Line) -> None:
        assert line.match is not None
        kind, number = line.match.group(1), int(line.match.group(2))
        if number not in _ACCEPTED[kind]:
            self.errors.append(f"line {line.number}: {kind} version {number} (this parser "
                               f"reads KTAP 1 and TAP 13, 14)")


def _outcome(ok: bool, comment: str) -> tuple[Result, str | None, str]:
    """The result, directive and reason of a result line's word and its '# ...' text."""
    match = _DIRECTIVE.match(comment)
    if match is None:
        return (Result.PASS if ok else Result.FAIL), None, comment.strip()
    directive, reason = match.group(1).upper(), match.group(2).strip()
    by_directive = {"SKIP": Result.SKIP, "TODO": Result.TODO, "XFAIL": Result.XFAIL}
    return by_directive.get(directive, Result.PASS if ok else Result.FAIL), directive, reason
