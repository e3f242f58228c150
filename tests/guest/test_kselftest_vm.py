"""The kernel's own mm selftests (tools/testing/selftests/vm of the kernel's source) in
real guests, one pytest result per selftest and arch.

One guest per arch runs every selected selftest through kselftest's runner (the first
test of an arch boots it; the others read its results). The default tier runs the few
quick ones of `suite.SELFTESTS` (mrelease_test among them); the rest are marked `full`.
Kernel: --oomrace-kernel (Debian's 6.1 by default), selftests from the same source.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import ktap, rootfs
from harness.arches import get_arch, parse_arch_list
from harness.errors import HarnessError
from harness.guest import Guest
from harness.kernel.image import KernelImage
from harness.machine import MachineOptions
from harness.selftests import build, layer, run, suite

# Every selected test at its limit, plus the build (about a minute per arch) and the boot.
SUITE_TIMEOUT = 3600
_RUNS: dict[str, run.SuiteRun | BaseException] = {}
pytestmark = pytest.mark.guest


def _params() -> list[object]:
    return [pytest.param(t.name, id=t.name,
                         marks=() if t.default_tier else (pytest.mark.full, pytest.mark.slow))
            for t in suite.SELFTESTS]


def _selected(session: pytest.Session, arch: str) -> list[str]:
    """The selftests this session runs on `arch` (after -m, -k and friends)."""
    names = []
    for item in session.items:
        params = getattr(item, "callspec", None)
        if item.originalname == "test_mm_selftest" and params is not None \
                and params.params.get("guest_arch") == arch:
            names.append(params.params["selftest"])
    return names


def _suite_run(request: pytest.FixtureRequest, arch: str, image: KernelImage,
               folder: Path) -> run.SuiteRun:
    target = get_arch(arch)
    built = build.build(run.selftest_source(image), target)
    initramfs = layer.with_selftests(rootfs.build(target), built)
    tests = suite.planned(list(built.built), default_tier_only=False)
    wanted = set(_selected(request.session, arch))
    tests = [t for t in tests if t.name in wanted]
    options = MachineOptions(cpus=2, memory_mb=run.GUEST_MEMORY_MB,
                             accel=request.config.getoption("oomrace_accel"))
    with Guest(target, image, folder, options, initramfs=initramfs) as guest:
        result = run.run_suite(guest, built, tests)
    run.save(result, folder)
    return result


@pytest.fixture
def suite_run(request: pytest.FixtureRequest, guest_arch: str, oomrace_artifacts: Path,
              kernel_for: Callable[[str, str], KernelImage]) -> run.SuiteRun:
    """The run of this arch's selected selftests, made by the first test that asks."""
    if guest_arch not in _RUNS:
        image = kernel_for(request.config.getoption("oomrace_kernel"), guest_arch)
        folder = oomrace_artifacts / f"kselftest-vm-{guest_arch}"
        try:
            _RUNS[guest_arch] = _suite_run(request, guest_arch, image, folder)
        except BaseException as e:  # every test of the arch reports it, not only the first
            _RUNS[guest_arch] = e
            raise
    found = _RUNS[guest_arch]
    if isinstance(found, BaseException):
        raise found
    return found


def _describe(result: run.SelftestResult, whole: run.SuiteRun) -> str:
    lines = [f"{result.name} on {whole.arch} ({whole.kernel}): {result.result.value}"
             + (f" # {result.directive} {result.reason}".rstrip() if result.directive else "")]
    if whole.problem:
        lines.append(f"the run stopped: {whole.problem}")
    return "\n".join([*lines, *result.output[-40:]])


@pytest.mark.timeout(SUITE_TIMEOUT)
@pytest.mark.parametrize("selftest", _params())
def test_mm_selftest(selftest: str, guest_arch: str, suite_run: run.SuiteRun,
                     request: pytest.FixtureRequest) -> None:
    """The selftest's own verdict: pass, its own skip (KSFT_SKIP), or a failure with its
    output; a test the guest never finished fails as crashed or missing."""
    if selftest in suite_run.left_out:
        pytest.skip(f"not built for {guest_arch}: {suite_run.left_out[selftest]}")
    if selftest not in suite_run.planned:
        pytest.skip(f"{selftest} is not in this tree's suite")
    result = suite_run.result(selftest)
    # user_properties, not record_property: the latter warns under JUnit's xunit2.
    request.node.user_properties.append(("kselftest_result", result.result.value))
    text = _describe(result, suite_run)
    if result.result is ktap.Result.SKIP:
        pytest.skip(f"skipped by the selftest itself: {result.reason or 'KSFT_SKIP'}")
    if result.result in (ktap.Result.XFAIL, ktap.Result.TODO):
        pytest.xfail(text)
    known = suite.selftest(selftest).known_failure_on(guest_arch)
    if known and result.result is ktap.Result.FAIL:
        pytest.xfail(f"a precondition our guest does not meet: {known}\n{text}")
    assert result.result is ktap.Result.PASS, text


def test_runner_finished_every_selected_selftest(guest_arch: str,
                                                 suite_run: run.SuiteRun) -> None:
    """We never skip a test for the guest: every planned test has the runner's own
    result, and the runner reached its end; its KTAP is kept beside its JSON."""
    assert suite_run.finished, suite_run.problem
    assert [r.name for r in suite_run.results] == list(suite_run.planned)
    assert not [r.name for r in suite_run.results if r.result.unfinished]
    assert suite_run.ktap_text.count("selftests: vm: ") >= len(suite_run.planned)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("arch", [pytest.param("aarch64"),
                                  pytest.param("x86_64", marks=pytest.mark.full)])
def test_a_hang_and_a_crash_mid_run_still_give_results(
        arch: str, request: pytest.FixtureRequest, oomrace_artifacts: Path,
        kernel_for: Callable[[str, str], KernelImage]) -> None:
    """A selftest past its limit is the runner's TIMEOUT; a guest that panics mid-run (sysrq
    from the serial console once the first test is done) still gives a SuiteRun: the done
    test's result, the rest unfinished, the panic among its reports, the console log kept."""
    chosen = parse_arch_list(request.config.getoption("oomrace_arch") or ["all"])
    if arch not in {a.name for a in chosen}:
        pytest.skip(f"{arch} is not among --oomrace-arch")
    target = get_arch(arch)
    image = kernel_for(request.config.getoption("oomrace_kernel"), arch)
    built = build.build(run.selftest_source(image), target)
    initramfs = layer.with_selftests(rootfs.build(target), built)
    folder = oomrace_artifacts / f"kselftest-crash-{arch}"
    options = MachineOptions(cpus=2, memory_mb=run.GUEST_MEMORY_MB,
                             accel=request.config.getoption("oomrace_accel"))
    with Guest(target, image, folder, options, initramfs=initramfs) as guest:
        hung = run.run_suite(guest, built, [suite.selftest("mremap_test")], per_test=1)
        assert hung.finished and hung.results[0].result is ktap.Result.FAIL
        assert hung.results[0].directive == "TIMEOUT", hung.ktap_text
        tests = [suite.selftest(n) for n in ("mrelease_test", "compaction_test", "thuge-gen")]
        crash = threading.Thread(target=_panic_after_first_result, args=(guest,), daemon=True)
        crash.start()
        died = run.run_suite(guest, built, tests, per_test=120)
        crash.join(timeout=60)
    assert not died.finished and died.problem
    assert died.results[0].result is ktap.Result.PASS, died.ktap_text
    assert [r.result.unfinished for r in died.results[1:]] == [True, True], died.results
    assert any("sysrq" in title.lower() or "panic" in title.lower() for title in died.reports)
    assert guest.artifacts.console_log.stat().st_size > 0


def _panic_after_first_result(guest: Guest) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = guest.artifacts.console_log.read_text(errors="replace")
        if "ok 1 selftests: vm: mrelease_test" in text.rsplit(layer.BEGIN_MARKER, 1)[-1]:
            break
        time.sleep(0.5)
    assert guest.serial is not None
    with contextlib.suppress(HarnessError):  # the shell dies with the guest
        guest.serial.run("echo c > /proc/sysrq-trigger", timeout=20)
