"""The user's own reproducer (--repro FILE.c, --exec COMMAND): its checks, its build with
the real host compiler, its workload on a fake guest, its typed result and its place in
the verdict and in bisect's signature."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness import kernel_log, repro, verdict
from harness.arches import get_arch
from harness.bisect import Signature, StepOutcome, classify
from harness.bisect.state import BisectConfig
from harness.errors import GuestCommandError, UsageError
from harness.repro import Reproducer, ReproRun, ReproSummary
from harness.runner import CommandResult, command_text
from harness.workload import ReproWorkload, WorkloadResult, get_workload

from ..conftest import REPO

OOPS = (REPO / "tests/data/lkdtm/aarch64/BUG.log").read_text()
OOPS_TITLE = kernel_log.parse(OOPS).reports[0].title
OOPS_REPORTS = len(kernel_log.parse(OOPS).reports)


# --- checks of the options -------------------------------------------------------------


def test_neither_option_means_no_reproducer() -> None:
    assert Reproducer.from_options(None, None) is None


def test_exec_is_a_guest_shell_command_line() -> None:
    found = Reproducer.from_options("echo 4 > /proc/sys/vm/drop_caches", None)
    assert found is not None and found.kind == "exec"
    assert "'echo 4 > /proc/sys/vm/drop_caches'" in found.command()  # in a timeout's wrapper
    assert found.initrd_part(get_arch("x86_64")) is None


@pytest.mark.parametrize(("exec_command", "source", "message"), [
    ("true", "x.c", "not both"),
    ("  ", None, "empty"),
    (None, "/nonexistent/bug.c", "no such file"),
])
def test_bad_options_are_one_line_errors(exec_command: str | None, source: str | None,
                                         message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        Reproducer.from_options(exec_command, source)
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_c_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "bug.sh"
    script.write_text("echo 4 > /proc/sys/vm/drop_caches\n")
    with pytest.raises(UsageError, match=r"not a C file .*--exec"):
        Reproducer.from_options(None, script)


def test_compile_error_shows_the_first_error_lines() -> None:
    output = ("bug.c: In function 'main':\nbug.c:3:5: error: 'x' undeclared\n"
              "bug.c:4:1: error: expected ';' before '}' token\nbug.c:5:1: error: third\n"
              "bug.c:6:1: error: fourth\n")
    text = repro.compile_error(Path("bug.c"), output)
    assert text.startswith("--repro bug.c does not compile: bug.c:3:5: error: 'x' undeclared")
    assert "third" in text and "fourth" not in text and "\n" not in text


# --- the build, with the real host compiler ---------------------------------------------


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OOMRACE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_reproducer_is_built_static_and_cached(tmp_path: Path, cache_dir: Path) -> None:
    source = tmp_path / "bug.c"
    source.write_text("#include <stdio.h>\nint main(void) { puts(\"hi\"); return 3; }\n")
    arch = get_arch("x86_64")
    part = Reproducer(source=source).initrd_part(arch)
    assert part is not None and part.is_file() and cache_dir in part.parents
    binary = part.parent / "repro"
    done = subprocess.run([str(binary)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (3, "hi\n")
    readelf = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                             check=False)
    assert "NEEDED" not in readelf.stdout  # static: runs in a bare initramfs
    assert b"bin/oomrace-repro" in part.read_bytes()  # where the guest finds it
    assert Reproducer(source=source).initrd_part(arch) == part  # a cache hit


def test_a_reproducer_that_does_not_compile_names_its_error(tmp_path: Path,
                                                           cache_dir: Path) -> None:
    source = tmp_path / "bug.c"
    source.write_text("int main(void) { return undeclared_thing; }\n")
    with pytest.raises(UsageError, match=r"does not compile: .*undeclared_thing") as info:
        Reproducer(source=source).initrd_part(get_arch("x86_64"))
    assert "\n" not in str(info.value)
    assert not list((cache_dir / "repro").glob("[!.]*"))  # nothing cached


def test_cli_run_refuses_a_bad_reproducer_before_booting(tmp_path: Path) -> None:
    source = tmp_path / "bug.c"
    source.write_text("int main(void) { return undeclared_thing; }\n")
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--kernel", str(tmp_path / "none"),
         "--repro", str(source), "--artifacts", str(tmp_path / "a")],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "does not compile" in done.stderr, done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--exec", "true", "--scenario", "oom"],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "drop --scenario oom" in done.stderr


# --- the workload on a fake guest ---------------------------------------------------------


class FakeRunner:
    """Answers each run with the next exit code; a code of None appends an oops to the
    console log first (as the kernel prints before the killed shell's exit reaches us)."""

    name = "fake"

    def __init__(self, console: Path, codes: Sequence[int | None]) -> None:
        self.console, self.codes, self.commands = console, list(codes), []  # type: ignore[var-annotated]

    def run(self, command: Sequence[str] | str, timeout: float,
            check: bool = False) -> CommandResult:
        self.commands.append(command_text(command))
        if not self.codes:
            raise GuestCommandError("timed out")
        code = self.codes.pop(0)
        if code is None:
            with self.console.open("a") as f:
                f.write(OOPS)
            code = -1
        return CommandResult(command_text(command), "out\n", code, 0.25)


class FakeArtifacts:
    def __init__(self, console: Path) -> None:
        self.console_log = console


class FakeGuest:
    def __init__(self, console: Path, codes: Sequence[int | None]) -> None:
        console.write_text("[    0.000000] Booting Linux\n")
        self.runner = FakeRunner(console, codes)
        self.artifacts = FakeArtifacts(console)
        self.console_reader = kernel_log.ConsoleFile(console)


def _run(tmp_path: Path, codes: Sequence[int | None], **budget: object) -> WorkloadResult:
    work = get_workload("repro", reproducer=Reproducer(exec_command="./bug"), **budget)  # type: ignore[arg-type]
    assert isinstance(work, ReproWorkload)
    return work.run(FakeGuest(tmp_path / "console.log", codes))  # type: ignore[arg-type]


def test_each_run_is_a_trial(tmp_path: Path) -> None:
    result = _run(tmp_path, [0, 0, 0], iterations=3)
    assert result.kind == "repro" and result.status == "clean"
    assert result.repro is not None
    assert (result.repro.trials, result.repro.detections) == (3, 0)


def test_a_kernel_report_or_an_exit_code_reproduces(tmp_path: Path) -> None:
    result = _run(tmp_path, [0, None, 5, 0], iterations=4)
    summary = result.repro
    assert summary is not None and result.status == "failed"
    assert [r.reproduced for r in summary.runs] == [False, True, True, False]
    assert [r.kernel_reports for r in summary.runs] == [0, OOPS_REPORTS, 0, 0]
    assert (summary.detections, summary.failures) == (2, 2)


def test_stop_on_first_detection(tmp_path: Path) -> None:
    result = _run(tmp_path, [0, None, 0], iterations=3, stop_on_first_detection=True)
    assert result.repro is not None and result.repro.trials == 2


def test_a_lost_guest_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    result = _run(tmp_path, [0], iterations=3)
    assert result.status == "error" and result.repro is not None
    assert "timed out" in (result.repro.error or "")


def test_the_result_round_trips_through_json(tmp_path: Path) -> None:
    result = _run(tmp_path, [None], iterations=1)
    data = json.loads(json.dumps(result.to_json()))
    assert data["kind"] == "repro" and data["repro"]["reproducer"]["kind"] == "exec"
    assert WorkloadResult.from_json(data) == result


def test_an_old_workload_json_reads_without_repro() -> None:
    old = WorkloadResult.from_json({"name": "smoke", "status": "clean", "checks": []})
    assert old.repro is None and old.kind == "smoke"


# --- verdict and bisect -------------------------------------------------------------------


def test_the_verdict_of_a_failed_reproducer() -> None:
    assert verdict.decide("failed", [], None).verdict == "failed"
    report = kernel_log.parse(OOPS).reports
    assert verdict.decide("failed", report, None).verdict == "crashed"  # the report says more
    assert "failed" in verdict.VERDICTS


def test_a_reproducer_signature_counts_crashes_and_exit_codes() -> None:
    sig = Signature(False, (OOPS_TITLE,), failure=True, crashes=True)
    oops = StepOutcome("ran", trials=1, detections=1, failures=1, crash_titles=[OOPS_TITLE])
    assert classify(oops, sig, set(), 5)[0] == "bad"
    exit_only = StepOutcome("ran", trials=1, detections=1, failures=1)
    assert classify(exit_only, sig, set(), 5) == ("bad", "signature seen: the reproducer "
                                                         "exited non-zero")
    assert classify(StepOutcome("ran", trials=5), sig, set(), 5)[0] == "good"
    # our scenarios: a crash is not the bug but an unrelated report
    assert classify(oops, Signature(True, ()), set(), 5)[0] == "skip"


def test_an_old_signature_reads_as_a_scenario_signature() -> None:
    sig = Signature.from_dict({"checker": True, "titles": ["x"]})
    assert (sig.failure, sig.crashes) == (False, False)


def test_bisect_config_with_a_reproducer(tmp_path: Path) -> None:
    cfg = BisectConfig(repo=tmp_path, good="a", bad="b", arch="aarch64",
                       exec_command="echo 4 > /proc/sys/vm/drop_caches",
                       append=["quiet"], cpu="cortex-a57")
    assert cfg.iterations_per_trial == 1 and "--exec" in cfg.workload
    again = BisectConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    old = {k: v for k, v in cfg.to_dict().items()
           if k not in ("repro", "exec_command", "append", "cpu")}
    assert BisectConfig.from_dict(old).reproducer() is None  # a state file from before


def test_repro_summary_counts() -> None:
    summary = ReproSummary(Reproducer(exec_command="x"),
                           (ReproRun(0, 0, 1.0), ReproRun(1, 0, 1.0), ReproRun(0, 2, 1.0)),
                           "", 3.0, None)
    assert (summary.trials, summary.detections, summary.failures) == (3, 2, 1)
    assert summary.status == "failed"
