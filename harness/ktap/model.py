"""The typed tree a KTAP/TAP document parses into, and its JSON edge.

One home for what a test's outcome can be: `Result`. The KTAP v1 spec
(Documentation/dev-tools/ktap.rst) has `ok`/`not ok` plus the directives SKIP, TODO,
XFAIL, TIMEOUT and ERROR; a parser of output that stops mid-run also needs the tests
that never got their result line."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .. import schema


class Result(StrEnum):
    PASS = "pass"        # ok, no directive (or one we do not know: the spec says fall back)
    FAIL = "fail"        # not ok; also with TIMEOUT or ERROR (kept in `directive`)
    SKIP = "skip"        # # SKIP, whether ok or not ok
    TODO = "todo"        # # TODO: not expected to pass yet
    XFAIL = "xfail"      # # XFAIL: expected to fail (kselftest)
    CRASHED = "crashed"  # its output began (a header, subtests) but its result line never came
    MISSING = "missing"  # in a plan, never begun: the run stopped first

    @property
    def unfinished(self) -> bool:
        return self in (Result.CRASHED, Result.MISSING)


@dataclass(frozen=True)
class KtapTest:
    """One test: its result line (or, when the output ended first, what is known of it)."""

    number: int
    name: str                      # the description; "" when unknown
    result: Result
    ok: bool | None = None         # the line's own word; None without a result line
    directive: str | None = None   # SKIP, TODO, XFAIL, TIMEOUT, ERROR (upper case)
    reason: str = ""               # the text after the directive, or after '#' without one
    diagnostics: tuple[str, ...] = ()  # '# ...' lines that came before its result line
    output: tuple[str, ...] = ()   # unknown lines that came before it (kernel messages...)
    subtests: tuple[KtapTest, ...] = ()
    plan: int | None = None        # its subtests' plan (1..N), when it has one
    line: int | None = None        # 1-based line of its result line in the text

    @property
    def label(self) -> str:
        """The name, or `test N` for a test whose name never came."""
        return self.name or f"test {self.number}"

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], KtapTest]]:
        here = (*path, self.label)
        yield here, self
        for sub in self.subtests:
            yield from sub.walk(here)

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, "result": self.result.value,
                "ok": self.ok, "directive": self.directive, "reason": self.reason,
                "diagnostics": list(self.diagnostics), "output": list(self.output),
                "plan": self.plan, "line": self.line,
                "subtests": [t.to_json() for t in self.subtests]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KtapTest:
        return cls(number=int(data["number"]), name=str(data.get("name", "")),
                   result=Result(data["result"]), ok=data.get("ok"),
                   directive=data.get("directive"), reason=str(data.get("reason", "")),
                   diagnostics=tuple(data.get("diagnostics", ())),
                   output=tuple(data.get("output", ())), plan=data.get("plan"),
                   line=data.get("line"),
                   subtests=tuple(cls.from_json(t) for t in data.get("subtests", ())))


@dataclass(frozen=True)
class KtapDocument:
    """A whole KTAP/TAP document: the top level's tests, and how the parse went."""

    version: str | None            # "KTAP version 1", "TAP version 13"...; None if absent
    plan: int | None
    tests: tuple[KtapTest, ...]
    diagnostics: tuple[str, ...] = ()  # top-level '#' lines after the last result line
    bailed_out: str | None = None  # the reason of a TAP "Bail out!"
    errors: tuple[str, ...] = ()   # what did not follow the format (numbers, versions)
    truncated: bool = False        # the parse stopped at one of its limits (see errors)

    @property
    def complete(self) -> bool:
        """Every test, at every level, has its result line and no plan is short (a plan
        past the parser's limit on tests lists fewer MISSING tests than it lacks)."""
        if self.truncated or len(self.tests) < (self.plan or 0):
            return False
        return not any(t.result.unfinished or len(t.subtests) < (t.plan or 0)
                       for _, t in self.walk())

    def walk(self) -> Iterator[tuple[tuple[str, ...], KtapTest]]:
        """Every test, depth first, with the names from the top level down to it."""
        for test in self.tests:
            yield from test.walk()

    def flatten(self, leaves_only: bool = True) -> list[tuple[tuple[str, ...], Result]]:
        """(path of names, result) for every test without subtests (or every test): what
        a pytest plugin turns into one test result each."""
        return [(path, t.result) for path, t in self.walk()
                if not leaves_only or not t.subtests]

    def counts(self) -> dict[str, int]:
        """How many leaf tests have each result (results absent from the tree: 0)."""
        found = dict.fromkeys((r.value for r in Result), 0)
        for _, result in self.flatten():
            found[result.value] += 1
        return found

    def to_json(self) -> dict[str, Any]:
        return schema.versioned({
            "version": self.version, "plan": self.plan, "complete": self.complete,
            "counts": self.counts(), "bailed_out": self.bailed_out,
            "errors": list(self.errors), "truncated": self.truncated,
            "diagnostics": list(self.diagnostics),
            "tests": [t.to_json() for t in self.tests]})

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "ktap.json") -> KtapDocument:
        schema.check_version(data, where)
        return cls(version=data.get("version"), plan=data.get("plan"),
                   tests=tuple(KtapTest.from_json(t) for t in data.get("tests", ())),
                   diagnostics=tuple(data.get("diagnostics", ())),
                   bailed_out=data.get("bailed_out"), errors=tuple(data.get("errors", ())),
                   truncated=bool(data.get("truncated", False)))
