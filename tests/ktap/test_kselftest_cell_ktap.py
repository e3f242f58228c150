"""A kselftest:vm lab cell's `ktap` file against the kernel's own KTAP parser."""

from __future__ import annotations

from types import ModuleType

from harness import ktap
from harness.selftests import cell, run

from .conftest import oracle, ours, theirs


def _suite_run(results: list[run.SelftestResult]) -> run.SuiteRun:
    return run.SuiteRun(arch="aarch64", kernel="k", suite="vm", source="s",
                        planned=tuple(r.name for r in results), results=tuple(results))


def test_a_kselftest_cells_ktap_passes_the_kernels_own_parser(kunit_parser: ModuleType) -> None:
    """The cell's `ktap` file (one test per cell, a subtest per selftest) as kunit_parser.py
    of the 6.1 tree reads it: the same names and statuses as ours."""
    results = [run.SelftestResult("mrelease_test", ktap.Result.PASS),
               run.SelftestResult("soft-dirty", ktap.Result.SKIP, "SKIP", "no soft-dirty"),
               run.SelftestResult("userfaultfd", ktap.Result.FAIL, None, "exit=1"),
               run.SelftestResult("khugepaged", ktap.Result.MISSING)]
    for verdict in ("crashed", "clean"):
        text = cell.cell_ktap("aarch64-debian-kselftest:vm-r0", "clean", verdict, "why #1",
                              _suite_run(results))
        document = ktap.parse(text)
        assert not document.errors and document.complete
        assert [t.name for t in document.tests[0].subtests] == [r.name for r in results]
        assert document.tests[0].ok is (verdict == "clean")
        assert ours(document.tests[0]) == theirs(oracle(kunit_parser, text).subtests[0])
