"""Our runs in KTAP v1 (Documentation/dev-tools/ktap.rst), derived from the typed results.

A document holds one test per guest (a run's arch, or a lab cell), each with one subtest
per scenario batch (stress) or per runner check (smoke). A batch is `ok` when it showed
no corruption; one that did is `not ok` (with XFAIL when the lab cell expects the bug),
one that failed is `not ok ... # ERROR`, and the iterations of the budget that no batch
ran are `ok ... # SKIP` batches. A guest is `ok` when its verdict is the one wanted
(clean for a run; the cell's expectation in a lab). The verdict, the detection rate and
its 95% interval are '#' diagnostic lines before the guest's result line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import atomicio
from ..workload import BATCH_ITERATIONS, StressSummary

if TYPE_CHECKING:  # run imports this module; a lab record needs no guest machinery
    from ..lab.record import CellRecord
    from ..run import RunResult

FILE_NAME = "ktap"
"""The KTAP file in every run folder (beside result.json) and lab cell folder."""

INDENT = "  "  # one level of KTAP nesting


@dataclass(frozen=True)
class GuestTest:
    """One guest as a KTAP test: its run and what it is judged against."""

    name: str
    result: RunResult | None  # None: the guest never ran (a lab cell whose build failed)
    expected: str = "clean"   # the verdict that makes the test `ok`
    planned_iterations: int = 0  # the run's --iterations (0: its duration alone bounds it)
    not_run: str = ""         # why it has no run result (a failed build, a cell timeout)


@dataclass(frozen=True)
class _Sub:
    name: str
    ok: bool
    comment: str = ""  # after ' # ': a directive and its reason, or diagnostic data
    diagnostics: tuple[str, ...] = ()


def document(tests: Sequence[GuestTest], header: Sequence[str] = ()) -> str:
    """The KTAP text of `tests` (at least one subtest each, so that no parent is empty)."""
    lines = ["KTAP version 1", f"1..{len(tests)}", *(f"# {_line(h)}" for h in header)]
    for number, test in enumerate(tests, 1):
        lines += _guest_lines(number, test)
    return "\n".join(lines) + "\n"


def run_document(results: Sequence[RunResult], iterations: int = 0) -> str:
    """`oomrace run`'s result: one test per guest."""
    tests = [GuestTest(r.arch, r, planned_iterations=iterations) for r in results]
    scenarios = sorted({r.scenario for r in results})
    return document(tests, [f"oomrace run: {len(results)} guest(s), scenario "
                            f"{', '.join(scenarios)}"])


def cell_document(record: CellRecord, result: RunResult | None) -> str:
    """A lab cell: one test named by the cell id, `ok` when the verdict is as expected."""
    test = GuestTest(record.id, result, expected=record.expected,
                     planned_iterations=record.cell.iterations,
                     not_run=record.reason or "no run result")
    return document([test], [f"oomrace lab cell {record.id}: expected {record.expected}"])


def write(path: Path, text: str) -> None:
    atomicio.write_text(path, text)


def _line(text: str) -> str:
    """One line of text (a reason may span several), for a diagnostic or a comment."""
    return " ".join(str(text).split())


def _name(text: str) -> str:
    """A test name: one line without '#', which would start the result line's comment."""
    return _line(text).replace("#", "-") or "unnamed"


def _result_line(number: int, name: str, ok: bool, comment: str) -> str:
    word = "ok" if ok else "not ok"
    return f"{word} {number} {_name(name)}" + (f" # {_line(comment)}" if comment else "")


def _guest_lines(number: int, test: GuestTest) -> list[str]:
    subs = _subtests(test)
    lines = [f"{INDENT}KTAP version 1", f"{INDENT}1..{len(subs)}"]
    for sub_number, sub in enumerate(subs, 1):
        lines += [f"{INDENT}# {_line(d)}" for d in sub.diagnostics]
        lines.append(INDENT + _result_line(sub_number, sub.name, sub.ok, sub.comment))
    verdict = test.result.verdict if test.result is not None else "error"
    lines += [f"# {_line(d)}" for d in _guest_diagnostics(test)]
    lines.append(_result_line(number, test.name, verdict == test.expected,
                              f"verdict {verdict}"))
    return lines


def _guest_diagnostics(test: GuestTest) -> list[str]:
    result, name = test.result, _name(test.name)
    if result is None:
        return [f"{name}: no result: {test.not_run}", f"{name}: expected {test.expected}"]
    lines = [f"{name}: kernel {result.kernel_description or result.kernel}, scenario "
             f"{result.scenario}, arch {result.arch}",
             f"{name}: verdict {result.verdict} ({result.reason}), expected {test.expected}"]
    stress = result.stress
    if stress is not None:
        low, high = stress.ci95
        rate = "n/a" if stress.rate is None else f"{stress.rate:.2f}"
        lines.append(f"{name}: detected {stress.detections}/{stress.trials} batches, rate "
                     f"{rate}, 95% CI [{low:.2f}, {high:.2f}], {stress.iterations} iterations, "
                     f"{stress.checker_corruptions} checker record(s)")
    if result.reports:
        lines.append(f"{name}: {len(result.reports)} kernel report(s), first: "
                     f"{result.reports[0].title}")
    if result.error:
        lines.append(f"{name}: error: {result.error}")
    return lines


def _subtests(test: GuestTest) -> list[_Sub]:
    result = test.result
    if result is None:
        return [_Sub("batch_1", True, f"SKIP no result: {test.not_run}")]
    if result.stress is not None:
        return _batches(result.stress, test)
    checks = result.workload.checks or ()
    subs = [_Sub(f"{result.scenario}_{c.runner}", c.passed(result.arch),
                 diagnostics=(f"{c.runner}: hello exit {c.hello_exit_code}, machine "
                              f"{c.guest_machine}, exit code carried {c.exit_code_carried}",))
            for c in checks]
    return subs or [_Sub(f"{result.scenario}_1", True,
                         f"SKIP not run: {result.error or result.reason}")]


def _batches(stress: StressSummary, test: GuestTest) -> list[_Sub]:
    expect_bug = test.expected == "corrupted"
    subs = []
    for i, batch in enumerate(stress.batches, 1):
        diagnostics = (f"batch_{i}: {batch.iterations} iterations in {batch.seconds:.1f} s, "
                       f"{batch.checker_corruptions} checker record(s), "
                       f"{batch.kernel_reports} kernel report(s)",)
        if batch.status == "error":
            comment = f"ERROR {stress.error or 'the stress program failed'}"
            subs.append(_Sub(f"batch_{i}", False, comment, diagnostics))
        elif batch.detected:
            comment = ("XFAIL corruption detected, as expected" if expect_bug
                       else "corruption detected")
            subs.append(_Sub(f"batch_{i}", False, comment, diagnostics))
        else:
            subs.append(_Sub(f"batch_{i}", True, diagnostics=diagnostics))
    if stress.error and (not stress.batches or stress.batches[-1].status != "error"):
        subs.append(_Sub(f"batch_{len(subs) + 1}", False, f"ERROR {stress.error}"))
    # Iterations the budget asked for and no batch ran: as many full batches as they make
    # (a batch that hits its time limit first runs fewer, so this is a lower bound).
    left = max(0, test.planned_iterations - stress.iterations)
    why = ("an earlier batch failed" if stress.error else
           "the run stopped first (its duration, or its first detection)")
    subs += [_Sub(f"batch_{len(subs) + n}", True, f"SKIP not run: {why}")
             for n in range(1, math.ceil(left / BATCH_ITERATIONS) + 1)]
    return subs or [_Sub("batch_1", True, "SKIP not run: no batch started")]
