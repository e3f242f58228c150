"""The mm selftests' logic without guests: the suite table, the guest command, reading the
runner's KTAP (cut mid-run too) into one result per test, a lab cell's verdict and its
matrix entry. The real build and guests are in tests/guest/test_kselftest_vm.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ktap, lab
from harness.selftests import build, cell, layer, run, suite

RUNNER_OUTPUT = f"""\
oomrace# {layer.BEGIN_MARKER}
TAP version 13
1..3
# selftests: vm: mrelease_test
# Success reaping a child with 1MB of memory allocations
ok 1 selftests: vm: mrelease_test
# selftests: vm: userfaultfd
# userfaultfd syscall not available in this kernel
ok 2 selftests: vm: userfaultfd # SKIP
# selftests: vm: on-fault-limit
# mmap should fail
# TAP version 13
# 1..2
# ok 1 first check
# not ok 2 second check
# # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:0 error:0
not ok 3 selftests: vm: on-fault-limit # exit=1
{layer.END_MARKER}
"""


def _built(tmp_path: Path) -> build.SelftestBuild:
    return build.SelftestBuild(root=tmp_path, arch="aarch64", suite_dir="vm", source="s",
                               compiler="gcc", built=("mrelease_test", "userfaultfd"),
                               left_out={"ksm_tests": "numa.h: No such file"})


def _tests(*names: str) -> list[suite.Selftest]:
    return [suite.selftest(n) for n in names]


def test_args_variable_is_the_name_runner_sh_reads() -> None:
    assert suite.selftest("mlock2-tests").args_variable == "KSELFTEST_MLOCK2_TESTS_ARGS"
    assert suite.selftest("userfaultfd").args_variable == "KSELFTEST_USERFAULTFD_ARGS"


def test_planned_keeps_table_order_and_only_built_programs() -> None:
    built = ["userfaultfd", "mrelease_test", "transhuge-stress", "mlock2-tests"]
    assert [t.name for t in suite.planned(built, False)] == [
        "mrelease_test", "mlock2-tests", "userfaultfd"]
    assert [t.name for t in suite.planned(built, True)] == ["mrelease_test", "mlock2-tests"]
    assert suite.selftest("mrelease_test").default_tier  # the bar, in every CI run
    assert not set(suite.NOT_TESTS) & {t.name for t in suite.SELFTESTS}


def test_guest_command_quotes_arguments_and_tees_to_the_console(tmp_path: Path) -> None:
    command = run.guest_command(_built(tmp_path), _tests("mrelease_test", "userfaultfd"), 90)
    assert command == ("KSELFTEST_USERFAULTFD_ARGS='anon 20 16' sh /kselftest/run.sh vm 90 "
                       "mrelease_test userfaultfd 2>&1 | tee /dev/console")


def test_results_come_from_the_runners_own_lines() -> None:
    tests = _tests("mrelease_test", "userfaultfd", "on-fault-limit")
    document = ktap.parse(run.ktap_section(RUNNER_OUTPUT))
    results = run.results_of(document, tests)
    assert [(r.name, r.result) for r in results] == [
        ("mrelease_test", ktap.Result.PASS), ("userfaultfd", ktap.Result.SKIP),
        ("on-fault-limit", ktap.Result.FAIL)]
    assert "Success reaping a child with 1MB of memory allocations" in results[0].output
    assert results[1].directive == "SKIP"
    assert "mmap should fail" in results[2].output  # kselftest.h's TAP, nested under it
    assert results[2].output[-2:] == ("ok 1 first check", "not ok 2 second check")


def test_a_run_cut_mid_test_leaves_that_test_and_the_rest_unfinished() -> None:
    cut = RUNNER_OUTPUT.split("ok 2 ")[0]  # the guest died inside userfaultfd
    tests = _tests("mrelease_test", "userfaultfd", "on-fault-limit")
    results = run.results_of(ktap.parse(run.ktap_section(cut)), tests)
    assert results[0].result is ktap.Result.PASS
    assert all(r.result.unfinished for r in results[1:]), results
    assert run.ktap_section("no marker at all") == ""


def _suite_run(results: list[run.SelftestResult], **kw: object) -> run.SuiteRun:
    return run.SuiteRun(arch="aarch64", kernel="k", suite="vm", source="s",
                        planned=tuple(r.name for r in results), results=tuple(results),
                        **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("results", "extra", "verdict", "words"), [
    ([("a", ktap.Result.PASS), ("b", ktap.Result.SKIP)], {}, "clean", "1 pass, 1 skip"),
    ([("a", ktap.Result.PASS), ("b", ktap.Result.FAIL)], {}, "failed", "failed: b"),
    ([("a", ktap.Result.PASS), ("on-fault-limit", ktap.Result.FAIL)], {}, "clean",
     "known to fail in our guest: on-fault-limit"),
    ([("a", ktap.Result.PASS), ("b", ktap.Result.MISSING)],
     {"finished": False, "problem": "guest command timed out"}, "crashed", "in b: guest"),
    ([("a", ktap.Result.PASS)], {"reports": ("BUG: Bad page state in x",)}, "crashed",
     "Bad page state"),
])
def test_cell_verdict(results: list[tuple[str, ktap.Result]], extra: dict[str, object],
                      verdict: str, words: str) -> None:
    found = cell.verdict_of(_suite_run([run.SelftestResult(n, r) for n, r in results],
                                       **extra))
    assert found[0] == verdict and words in found[1]


def test_suite_run_round_trips_through_json(tmp_path: Path) -> None:
    original = _suite_run([run.SelftestResult("a", ktap.Result.SKIP, "SKIP", "", ("x",))],
                          left_out={"ksm_tests": "numa.h"}, ktap_text="TAP version 13\n")
    path = run.save(original, tmp_path)
    assert (tmp_path / run.KTAP_FILE).read_text() == "TAP version 13\n"
    import json
    assert run.SuiteRun.from_json(json.loads(path.read_text())) == original


def test_the_lab_takes_a_kselftest_cell() -> None:
    text = """name = "k"
[[cell]]
arch = ["aarch64", "x86_64"]
kernel = "debian"
scenario = "kselftest:vm"
"""
    cells = lab.parse_matrix(text, "m.toml", recipes=["v6.1"]).cells
    assert [c.id for c in cells] == ["aarch64-debian-kselftest:vm-r0",
                                     "x86_64-debian-kselftest:vm-r0"]
    assert cells[0].cpus == 2 and not cells[0].stress
    assert cells[0].timeout >= cells[0].boot_timeout + suite.CELL_BUDGET_S
    assert "test_kselftest_vm.py" in lab.repro_command(cells[0])
    with pytest.raises(lab.MatrixError, match="kselftest:vm cannot be expected to corrupt"):
        lab.parse_matrix(text + 'expected = "corrupted"\n', "m.toml", recipes=["v6.1"])

