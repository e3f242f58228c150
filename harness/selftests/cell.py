"""A lab cell of scenario `kselftest:vm`: the whole mm suite in one guest, one verdict.

The verdict speaks the lab's language: `clean` when the runner finished and every test
passed or skipped itself, `failed` when a selftest failed (named in the reason; one whose
failure is a known precondition of our guest, `suite.Selftest.known_failure`, is named
but does not count),
`crashed` when the kernel printed a crash report or the guest stopped mid-run, `error`
when the guest could not be booted or the suite not built. Each test's result is kept in
the cell folder (kselftest.json, kselftest.ktap)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import ktap, rootfs
from ..guest import Guest
from ..kernel.image import KernelImage
from ..machine import MachineOptions
from . import build, layer, run, suite

_PASSING = (ktap.Result.PASS, ktap.Result.SKIP, ktap.Result.XFAIL, ktap.Result.TODO)


@dataclass(frozen=True)
class CellOutcome:
    verdict: str
    reason: str
    suite_run: run.SuiteRun
    qemu_argv: tuple[str, ...]
    boot_seconds: float | None


def verdict_of(result: run.SuiteRun) -> tuple[str, str]:
    """(verdict, reason) of a suite's run, as the module's docstring says."""
    counts = {r.value: sum(1 for t in result.results if t.result is r) for r in ktap.Result}
    tally = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    if result.reports:
        return "crashed", f"{result.reports[0]} ({tally})"
    unfinished = [t.name for t in result.results if t.result.unfinished]
    if not result.finished or unfinished:
        where = f" in {unfinished[0]}" if unfinished else ""
        return "crashed", f"the guest stopped{where}: {result.problem or 'no end marker'}"
    failed = [t.name for t in result.results if t.result not in _PASSING]
    known = [name for name in failed if _known_failure(name, result.arch)]
    also = f"; known to fail in our guest: {', '.join(known)}" if known else ""
    failed = [name for name in failed if name not in known]
    if failed:
        return "failed", (f"{len(failed)} selftest(s) failed: {', '.join(failed)} "
                          f"({tally}{also})")
    if known:
        return "clean", f"every selftest passed, skipped itself or failed as known ({tally}{also})"
    return "clean", f"every selftest passed or skipped itself ({tally})"


def _known_failure(name: str, arch: str) -> str:
    return next((t.known_failure_on(arch) for t in suite.SELFTESTS if t.name == name), "")


def run_cell(image: KernelImage, options: MachineOptions, directory: Path,
             per_test: float = run.PER_TEST_TIMEOUT) -> CellOutcome:
    """Build (or find) the suite for the kernel's source, boot, run every test."""
    arch = image.arch
    built = build.build(run.selftest_source(image), arch)
    initramfs = layer.with_selftests(rootfs.build(arch), built)
    tests = suite.planned(list(built.built), default_tier_only=False)
    with Guest(arch, image, directory, options, initramfs=initramfs) as guest:
        result = run.run_suite(guest, built, tests, per_test)
        argv, boot = tuple(guest.artifacts.qemu_argv), guest.boot_seconds
    run.save(result, directory)
    verdict, reason = verdict_of(result)
    return CellOutcome(verdict, reason, result, argv, boot)


_KTAP_WORDS = {  # a selftest's result as the result line kselftest itself would print
    ktap.Result.PASS: (True, ""), ktap.Result.SKIP: (True, "SKIP"),
    ktap.Result.XFAIL: (True, "XFAIL"), ktap.Result.TODO: (False, "TODO"),
    ktap.Result.FAIL: (False, ""), ktap.Result.CRASHED: (False, "ERROR the guest stopped"),
    ktap.Result.MISSING: (False, "ERROR never run: the guest stopped"),
}


def cell_ktap(cell_id: str, expected: str, verdict: str, reason: str,
              result: run.SuiteRun) -> str:
    """The cell as KTAP v1: one test named by the cell id, `ok` when the verdict is the
    expected one, with each selftest as a subtest."""
    lines = ["KTAP version 1", "1..1", f"# oomrace lab cell {cell_id}: expected {expected}",
             "  KTAP version 1", f"  1..{len(result.results)}"]
    for number, test in enumerate(result.results, start=1):
        ok, directive = _KTAP_WORDS[test.result]
        comment = " ".join(f"{directive} {test.reason}".split())
        lines.append(f"  {'ok' if ok else 'not ok'} {number} {test.name}"
                     + (f" # {comment}" if comment else ""))
    passed = verdict == expected
    tail = "" if passed else " # " + " ".join(f"{verdict}: {reason}".replace("#", "-").split())
    lines.append(f"{'ok' if passed else 'not ok'} 1 {cell_id}{tail}")
    return "\n".join(lines) + "\n"
