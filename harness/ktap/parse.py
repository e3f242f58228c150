"""KTAP/TAP text in, a typed tree out: `parse(text) -> KtapDocument`.

Reads KTAP v1 (Documentation/dev-tools/ktap.rst), TAP 13 and TAP 14 as a guest prints
them: version lines, plans, result lines with SKIP/TODO/XFAIL/TIMEOUT/ERROR directives,
'#' diagnostic lines, unknown lines (kernel messages in a console log), and subtests
nested by indentation (KTAP: a version line two spaces in; TAP 14 and KUnit: a
'# Subtest: NAME' line, four spaces in). Output that stops mid-run (a crash, a timeout,
TAP's 'Bail out!') loses no test: a test whose output began but whose result line never
came is CRASHED, and the rest of every plan is MISSING.

Bounded: the text is the guest's, so it is read in time and memory linear in its size
and capped (lines.Limits), without recursion. Past a limit the parse stops as if the
output had (`truncated`), and `errors` says which limit; a plan larger than what may be
listed keeps its number (`plan`) but lists its MISSING tests only up to the cap on
tests, so `counts()["missing"]` is then a lower bound: `complete` stays False."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .lines import LIMITS, Limits, Line, number, read, result_text
from .model import KtapDocument, KtapTest, Result

# A directive is the first word after '#', in any case, as TAP parsers read it ("skipped"
# is a SKIP); any other text there is the line's diagnostic data.
_DIRECTIVE = re.compile(r"(SKIP|TODO|XFAIL|TIMEOUT|ERROR)\w*[:\s]*(.*)$", re.IGNORECASE)
_ACCEPTED = {"KTAP": (1,), "TAP": (13, 14)}
_STRUCTURAL = ("version", "plan", "result", "header")


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


def parse(text: str, limits: Limits = LIMITS) -> KtapDocument:
    """The KTAP/TAP document in `text` (lines before its first version line, or before its
    first plan or result line when it has none, are ignored). Never raises on bad input:
    what did not follow the format, or went past a limit, is listed in `errors`."""
    return _Parser(limits).document(text)


class _Parser:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.errors: list[str] = []
        self.bailed: str | None = None
        self.truncated = False
        self.tests_left = limits.tests
        self.chars_left = limits.kept_chars
        self.ktap = False
        self.stack: list[_Block] = []

    def error(self, message: str) -> None:
        if len(self.errors) < self.limits.errors:
            self.errors.append(message)
        elif len(self.errors) == self.limits.errors:
            self.errors.append(f"more than {self.limits.errors} errors; the rest are not "
                               "listed")

    def stop(self, message: str) -> None:
        """Read no further: the output is taken as ending here."""
        self.error(message)
        self.truncated = True

    def kept(self, text: str) -> str:
        """`text`, or as much of it as the limit on kept text leaves."""
        if len(text) > self.chars_left and self.chars_left >= 0:
            self.error(f"more than {self.limits.kept_chars} characters of names, "
                       "diagnostics and output; the rest are not kept")
            self.chars_left = -1  # said once
        if self.chars_left <= 0:
            return ""
        self.chars_left -= len(text)
        return text

    def document(self, text: str) -> KtapDocument:
        top: _Block | None = None
        for line in read(text, self.stop, self.limits):
            if top is None:
                self.ktap = line.text.startswith("KTAP")  # KTAP results need a number
                top = _Block(indent=line.indent)
                self.stack = [top]
            if not self.line(line):
                break
        if top is None:
            return KtapDocument(version=None, plan=None, tests=(),
                                errors=("no KTAP or TAP output (no version, plan or result "
                                        "line)",))
        while self.stack:
            self.end_block()
        return KtapDocument(version=top.version, plan=top.plan, tests=tuple(top.tests),
                            diagnostics=tuple(top.diagnostics), bailed_out=self.bailed,
                            errors=tuple(self.errors), truncated=self.truncated)

    def line(self, line: Line) -> bool:
        """Read one line into the level it belongs to; False once nothing more is read
        (the document's end, a bail-out, a limit)."""
        if self.tests_left <= 0:
            self.stop(f"line {line.number}: more than {self.limits.tests} tests; the rest "
                      "of the output is not read")
            return False
        while True:
            block = self.stack[-1]
            structural = line.kind in _STRUCTURAL
            if block.full or (structural and line.indent < block.indent):
                if len(self.stack) == 1:  # the top level's end: the document's
                    return False
                self.end_block()
                continue
            if structural and (line.indent > block.indent or (
                    line.kind == "version" and block.started)):
                if len(self.stack) <= self.limits.depth:
                    self.nest(block, line)
                    continue
                self.error(f"line {line.number}: nested more than {self.limits.depth} "
                           "levels deep; read as output")
                line = Line(line.number, line.indent, "other", line.text)
            self.take(block, line)
            return self.bailed is None and not self.truncated

    def nest(self, block: _Block, line: Line) -> None:
        if block.pending is not None:  # subtests twice with no result line between
            self.crashed(block, block.pending)
        same = line.indent == block.indent
        if same:
            self.error(f"line {line.number}: a version line inside a test at the same "
                       "indentation; read as the start of its subtests")
        self.stack.append(_Block(indent=line.indent, bounded=same, name=block.header,
                                 lead=(block.diagnostics, block.output)))
        block.header, block.diagnostics, block.output = "", [], []

    def end_block(self) -> None:
        """Close the innermost level: its unfinished subtests CRASHED, the rest of its
        plan MISSING; its tests wait for their parent's result line."""
        block = self.stack.pop()
        if block.pending is not None:
            self.crashed(block, block.pending)
        self.missing(block)
        if self.stack:
            self.stack[-1].pending = block

    def take(self, block: _Block, line: Line) -> None:
        """One line of `block`'s own level."""
        assert line.match is not None or line.kind in ("diag", "other")
        if line.kind == "version":
            block.version = line.text
            self.check_version(line)
        elif line.kind == "plan":
            self.plan(block, line)
        elif line.kind == "header":
            assert line.match is not None
            nested = block.indent > 0 or block.bounded  # the top level has no name
            name = self.kept(line.match.group(1))
            if nested and block.plan is None and not block.tests and not block.name:
                block.name = name  # KUnit: version, header, plan
            else:
                block.header = name  # TAP 14: the header, then the subtests
        elif line.kind == "bail":
            assert line.match is not None
            self.bailed = self.kept(line.match.group(1)) or "Bail out!"
        elif line.kind == "result" and self.ktap and line.match and not line.match.group(2):
            block.output.append(self.kept(line.text))
        elif line.kind == "result":
            self.result(block, line)
        elif line.kind == "diag":
            block.diagnostics.append(self.kept(line.text))
        else:
            block.output.append(self.kept(line.text))

    def plan(self, block: _Block, line: Line) -> None:
        assert line.match is not None
        if block.plan is not None:
            self.error(f"line {line.number}: a second plan")
        planned = number(line.match.group(1), self.limits)
        if planned is None:
            self.error(f"line {line.number}: a plan of {len(line.match.group(1))} digits; "
                       "ignored")
            return
        block.plan = planned

    def result(self, block: _Block, line: Line) -> None:
        assert line.match is not None
        word, digits = line.match.groups()
        name, comment = result_text(line)
        expected = len(block.tests) + 1
        given = expected if digits is None else number(digits, self.limits)
        if given is None:
            self.error(f"line {line.number}: a test number of {len(digits)} digits; "
                       f"read as {expected}")
            given = expected
        elif given != expected:
            self.error(f"line {line.number}: test number {digits}, expected {expected}")
        ok = word == "ok"
        result, directive, reason = _outcome(ok, comment or "")
        sub, block.pending = block.pending, None
        header = sub.name if sub is not None else block.header
        block.header = ""
        test = KtapTest(
            number=given, name=self.kept(name) or header, result=result, ok=ok,
            directive=directive, reason=self.kept(reason),
            diagnostics=tuple(block.diagnostics), output=tuple(block.output),
            subtests=tuple(sub.tests) if sub else (), plan=sub.plan if sub else None,
            line=line.number)
        if sub is not None:
            test = replace(test, diagnostics=(*sub.lead[0], *sub.diagnostics, *test.diagnostics),
                           output=(*sub.lead[1], *sub.output, *test.output))
        block.diagnostics, block.output = [], []
        self.tests_left -= 1
        block.tests.append(test)

    def crashed(self, block: _Block, sub: _Block) -> None:
        """Subtests whose parent's result line never came: the parent CRASHED."""
        self.tests_left -= 1  # past the limit by at most one per level, at the end
        block.tests.append(KtapTest(
            number=len(block.tests) + 1, name=sub.name, result=Result.CRASHED,
            diagnostics=(*sub.lead[0], *sub.diagnostics, *block.diagnostics),
            output=(*sub.lead[1], *sub.output, *block.output), subtests=tuple(sub.tests),
            plan=sub.plan))
        block.diagnostics, block.output = [], []
        block.pending = None

    def missing(self, block: _Block) -> None:
        """The rest of the block's plan, MISSING, as far as the limit on tests allows."""
        missing = max(0, (block.plan or 0) - len(block.tests))
        listed = min(missing, max(0, self.tests_left))
        if listed < missing:
            self.error(f"a plan of {block.plan} tests: {missing - listed} of its missing "
                       f"tests are not listed (at most {self.limits.tests} tests are)")
        first = len(block.tests) + 1
        block.tests += [KtapTest(number=n, name="", result=Result.MISSING)
                        for n in range(first, first + listed)]
        self.tests_left -= listed

    def check_version(self, line: Line) -> None:
        assert line.match is not None
        kind, digits = line.match.group(1), line.match.group(2)
        given = number(digits, self.limits)
        if given not in _ACCEPTED[kind]:
            shown = digits if given is not None else f"of {len(digits)} digits"
            self.error(f"line {line.number}: {kind} version {shown} (this parser reads "
                       f"KTAP 1 and TAP 13, 14)")


def _outcome(ok: bool, comment: str) -> tuple[Result, str | None, str]:
    """The result, directive and reason of a result line's word and its '# ...' text."""
    match = _DIRECTIVE.match(comment)
    if match is None:
        return (Result.PASS if ok else Result.FAIL), None, comment.strip()
    directive, reason = match.group(1).upper(), match.group(2).strip()
    by_directive = {"SKIP": Result.SKIP, "TODO": Result.TODO, "XFAIL": Result.XFAIL}
    return by_directive.get(directive, Result.PASS if ok else Result.FAIL), directive, reason
