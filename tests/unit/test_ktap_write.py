"""The KTAP form of runs and lab cells, read back with our own parser (the kernel's own
parser checks the same documents in tests/ktap/test_ktap_oracle.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import cli, ktap, run
from harness.arches import get_arch
from harness.kernel.image import KernelImage, ResolvedKernel
from harness.ktap import write
from harness.workload import SmokeCheck, WorkloadResult
from tests.conftest import kernel_report, stress_workload


def fake_result(arch: str = "aarch64", verdict: str = "corrupted", **kw: Any) -> run.RunResult:
    values: dict[str, Any] = dict(
        arch=arch, kernel="v6.1-reaper-fullmm", verdict=verdict, reason="2 of 3 batches",
        workdir="/w", console_log="/w/console.log", dmesg="/w/dmesg.txt",
        scenario="mrelease", workload=stress_workload(3, 2, iterations=75, checker=1),
        reports=(kernel_report("pagealloc: memory corruption"),))
    values.update(kw)
    return run.RunResult(**values)


def test_a_run_is_one_test_per_guest_with_its_batches() -> None:
    clean = fake_result("x86_64", "clean", reason="no corruption", reports=(),
                        workload=stress_workload(2, 0, iterations=50))
    text = write.run_document([fake_result(), clean])
    assert text.startswith("KTAP version 1\n1..2\n")
    doc = ktap.parse(text)
    assert not doc.errors and doc.complete
    assert [(t.name, t.result.value, t.reason) for t in doc.tests] == [
        ("aarch64", "fail", "verdict corrupted"), ("x86_64", "pass", "verdict clean")]
    assert [(p, r.value) for p, r in doc.flatten()] == [
        (("aarch64", "batch_1"), "fail"), (("aarch64", "batch_2"), "fail"),
        (("aarch64", "batch_3"), "pass"), (("x86_64", "batch_1"), "pass"),
        (("x86_64", "batch_2"), "pass")]
    diagnostics = "\n".join(doc.tests[0].diagnostics)
    assert "verdict corrupted (2 of 3 batches), expected clean" in diagnostics
    assert "detected 2/3 batches, rate 0.67, 95% CI [0.21, 0.94]" in diagnostics
    assert "first: pagealloc: memory corruption" in diagnostics
    assert doc.tests[0].subtests[0].diagnostics == (
        "batch_1: 25 iterations in 1.0 s, 0 checker record(s), 0 kernel report(s)",)


def test_batches_the_budget_planned_but_never_ran_are_skipped() -> None:
    stopped = fake_result(workload=stress_workload(2, 1, iterations=50))
    doc = ktap.parse(write.run_document([stopped], iterations=100))
    assert [t.result.value for t in doc.tests[0].subtests] == ["fail", "pass", "skip", "skip"]
    assert doc.tests[0].subtests[3].reason.startswith("not run: the run stopped first")


def test_a_batch_that_failed_is_an_error_and_a_guest_that_never_ran_is_skipped() -> None:
    data = stress_workload(1, 0, iterations=25).to_json()
    data.update(error="oomrace-stress exited 139")  # the next batch raised: not recorded
    failed = fake_result(verdict="error", workload=WorkloadResult.from_json(data))
    unbooted = fake_result("x86_64", "error", workload=WorkloadResult("mrelease", "error"),
                           error="the guest did not boot within 180 s", reports=())
    doc = ktap.parse(write.run_document([failed, unbooted]))
    second = doc.tests[0].subtests[1]
    assert (second.result, second.directive, second.reason) == (
        ktap.Result.FAIL, "ERROR", "oomrace-stress exited 139")
    never = doc.tests[1].subtests
    assert [(t.result.value, t.directive) for t in never] == [("skip", "SKIP")]
    assert "did not boot" in never[0].reason and doc.tests[1].result is ktap.Result.FAIL


def test_smoke_checks_are_the_subtests_and_names_lose_their_hash() -> None:
    checks = (SmokeCheck("serial", 0, "aarch64", True), SmokeCheck("ssh", 1, None, True))
    smoke = fake_result(arch="aarch64", verdict="error", scenario="smoke", reports=(),
                        workload=WorkloadResult("smoke", "error", checks=checks))
    doc = ktap.parse(write.document([write.GuestTest("odd #name\nwith lines", smoke)]))
    assert doc.tests[0].name == "odd -name with lines"
    assert [(t.name, t.result.value) for t in doc.tests[0].subtests] == [
        ("smoke_serial", "pass"), ("smoke_ssh", "fail")]


def test_a_run_writes_ktap_beside_result_json(tmp_path: Path) -> None:
    image = KernelImage(path=tmp_path / "Image", arch=get_arch("aarch64"), description="fake")
    spec = run.RunSpec(kernel=ResolvedKernel("fake", get_arch("aarch64"), image),
                       scenario="mrelease")
    seen = run.Seen(0.0, "2026-01-01T00:00:00+00:00", image=image, error="no guest")
    result = run.finish(spec, seen, tmp_path)
    doc = ktap.parse((tmp_path / write.FILE_NAME).read_text())
    assert (tmp_path / "result.json").is_file() and result.verdict == "error"
    assert [(t.name, t.result.value) for t in doc.tests] == [("aarch64", "fail")]


def test_format_ktap_and_json_on_stdout_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--format", "ktap", "--json"]) == 2
    assert "--format ktap and --json on stdout" in capsys.readouterr().err
