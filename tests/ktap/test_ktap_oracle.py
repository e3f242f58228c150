"""The kernel's own KTAP parser as the oracle: tools/testing/kunit/kunit_parser.py from
the Debian 6.1 source tree the kernel recipes build (kernel.build.source gets it the way a
kernel build does: apt installs linux-source-6.1 when missing, the cache holds it unpacked).

Our KTAP files must parse there with no error and the same tests, names and statuses as
the typed results they come from; and our parser must read the kunit tool's own test
logs as it does."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness import ktap, run
from harness.ktap import write
from harness.workload import SmokeCheck, WorkloadResult
from tests.conftest import kernel_report, stress_workload

from .conftest import kunit_status, leaf_counts, oracle, ours, theirs


def result(arch: str, verdict: str, workload: WorkloadResult, **kw: Any) -> run.RunResult:
    return run.RunResult(arch=arch, kernel="v6.1-reaper-fullmm", verdict=verdict,
                         reason="r", workdir="/w", console_log="/w/c", dmesg="/w/d",
                         scenario=workload.name, workload=workload, **kw)


def documents() -> dict[str, str]:
    """KTAP documents from typed results covering each kind of test we write."""
    failed = stress_workload(2, 0, iterations=50).to_json()
    failed.update(error="oomrace-stress exited 139")
    corrupted = result("aarch64", "corrupted", stress_workload(4, 3, iterations=100, checker=2),
                       reports=(kernel_report("pagealloc: memory corruption"),))
    clean = result("x86_64", "clean", stress_workload(3, 0, iterations=75))
    broken = result("aarch64", "error", WorkloadResult.from_json(failed), error="exit 139")
    unbooted = result("x86_64", "error", WorkloadResult("mrelease", "error"), error="no boot")
    smoke = result("aarch64", "clean", WorkloadResult("smoke", "clean", checks=(
        SmokeCheck("serial", 0, "aarch64", True), SmokeCheck("ssh", 0, "aarch64", True))))
    return {
        "two guests": write.run_document([corrupted, clean]),
        "budget cut short": write.run_document([clean], iterations=150),
        "failed batch and no boot": write.run_document([broken, unbooted]),
        "smoke": write.run_document([smoke]),
        "cell expecting the bug": write.document([write.GuestTest(
            "aarch64-v6.1-reaper-fullmm-mrelease-r0", corrupted, expected="corrupted")]),
        "cell never built": write.document([write.GuestTest(
            "x86_64-v6.1-mrelease-r0", None, not_run="build failed: tuxmake")]),
    }


@pytest.mark.parametrize("name", list(documents()))
def test_our_ktap_passes_the_kernels_parser(kunit_parser: ModuleType, name: str) -> None:
    text = documents()[name]
    doc = ktap.parse(text)
    main = oracle(kunit_parser, text)
    assert main.counts.errors == 0, f"kunit_parser found errors in:\n{text}"
    assert [theirs(t) for t in main.subtests] == [ours(t) for t in doc.tests]
    counts = main.counts
    assert {"passed": counts.passed, "failed": counts.failed, "skipped": counts.skipped,
            "crashed": counts.crashed} == leaf_counts(doc)
    assert main.status.name in ("SUCCESS", "FAILURE", "SKIPPED")
    assert not doc.errors and doc.complete


def test_the_source_results_are_what_both_parsers_see(kunit_parser: ModuleType) -> None:
    """Against the typed results themselves: two guests, 4 + 3 batches, 3 detected."""
    main = oracle(kunit_parser, documents()["two guests"])
    assert [(t.name, t.status.name, len(t.subtests)) for t in main.subtests] == [
        ("aarch64", "FAILURE", 4), ("x86_64", "SUCCESS", 3)]
    assert (main.counts.passed, main.counts.failed) == (4, 3)


KUNIT_LOGS = [  # every log in tools/testing/kunit/test_data of 6.1
    "test_config_printk_time.log", "test_insufficient_memory.log",
    "test_interrupted_tap_output.log", "test_is_test_passed-all_passed.log",
    "test_is_test_passed-all_passed_nested.log", "test_is_test_passed-failure.log",
    "test_is_test_passed-kselftest.log", "test_is_test_passed-missing_plan.log",
    "test_is_test_passed-no_tests_no_plan.log", "test_is_test_passed-no_tests_run_no_header.log",
    "test_is_test_passed-no_tests_run_with_header.log", "test_kernel_panic_interrupt.log",
    "test_multiple_prefixes.log", "test_output_isolated_correctly.log",
    "test_output_with_prefix_isolated_correctly.log", "test_parse_ktap_output.log",
    "test_parse_subtest_header.log", "test_pound_no_prefix.log", "test_pound_sign.log",
    "test_skip_all_tests.log", "test_skip_tests.log", "test_strip_hyphen.log"]


# kselftest's runner nests a program's TAP under '# ' (runner.sh); kunit_parser 6.1 reads
# those lines as diagnostics, we read them as subtests: there the top levels must agree.
KSELFTEST_NESTED = {"test_is_test_passed-kselftest.log"}


@pytest.mark.parametrize("log", KUNIT_LOGS)
def test_our_parser_reads_kunits_test_logs_as_kunit_does(
        kunit_parser: ModuleType, kunit_dir: Path, log: str) -> None:
    text = (kunit_dir / "test_data" / log).read_text(errors="replace")
    main = oracle(kunit_parser, text)
    doc = ktap.parse(text)
    if log in KSELFTEST_NESTED:
        assert [(t.name, kunit_status(t)) for t in doc.tests] == [
            (t.name, t.status.name) for t in main.subtests]
        assert all(len(t.subtests) == 2 for t in doc.tests)
        return
    counts = main.counts
    assert leaf_counts(doc) == {"passed": counts.passed, "failed": counts.failed,
                                "skipped": counts.skipped, "crashed": counts.crashed}
