"""A reproducer that runs past its time (issue 23, item 9): "guest command timed out after
120 s", 0 runs counted, the whole run an error. Now --repro-timeout sets the limit, a run
past it is killed in the guest and recorded as timed out with its output, the runs go
on, and a timed-out run counts as reproduced (a hang is what such a reproducer shows)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness import cli
from harness.bisect.state import BisectConfig
from harness.errors import GuestCommandTimeout, UsageError
from harness.kernel_log.stream import ConsoleFile
from harness.repro import KILLED, REPRO_RUN_TIMEOUT, Reproducer, ReproSummary
from harness.runner import CommandResult, command_text
from harness.workload import REPRO_GRACE, ReproWorkload, WorkloadResult, get_workload


class TimingRunner:
    """Each run ends as scripted: ("ok", s), ("killed", s) as the guest's watcher ends a
    run at its timeout, or "hang" (the guest does not answer within the host's limit)."""

    name = "fake"

    def __init__(self, script: Sequence[tuple[str, float] | str]) -> None:
        self.script, self.timeouts = list(script), []  # type: ignore[var-annotated]

    def run(self, command: Sequence[str] | str, timeout: float,
            check: bool = False) -> CommandResult:
        self.timeouts.append(timeout)
        step = self.script.pop(0)
        if step == "hang":
            raise GuestCommandTimeout(f"guest command timed out after {timeout:.0f} s")
        kind, seconds = step
        code = KILLED if kind == "killed" else 0
        return CommandResult(command_text(command), f"{kind} output\n", code, seconds)


class Guest:
    def __init__(self, console: Path, script: Sequence[tuple[str, float] | str]) -> None:
        console.write_text("[    0.000000] Booting Linux\n")
        self.runner = TimingRunner(script)
        self.artifacts = type("Artifacts", (), {"console_log": console})()
        self.console_reader = ConsoleFile(console)


def run(tmp_path: Path, script: Sequence[tuple[str, float] | str], timeout: float,
        iterations: int) -> tuple[WorkloadResult, TimingRunner]:
    reproducer = Reproducer.from_options("./bug", None, timeout)
    work = get_workload("repro", reproducer=reproducer, iterations=iterations,
                        duration_s=3600)
    assert isinstance(work, ReproWorkload)
    guest = Guest(tmp_path / "console.log", script)
    return work.run(guest), guest.runner  # type: ignore[arg-type]


def test_a_run_past_the_timeout_is_recorded_and_the_runs_go_on(tmp_path: Path) -> None:
    result, runner = run(tmp_path, [("ok", 1.0), ("killed", 5.1), ("ok", 1.0)], 5, 3)
    summary = result.repro
    assert summary is not None and summary.error is None
    assert [r.timed_out for r in summary.runs] == [False, True, False]
    assert [r.reproduced for r in summary.runs] == [False, True, False]
    assert (summary.trials, summary.detections, summary.timeouts) == (3, 1, 1)
    assert summary.first_output == "killed output\n"  # the timed-out run's output
    assert result.status == "failed"  # reproduced, not an infrastructure error
    assert runner.timeouts == [5 + REPRO_GRACE] * 3


def test_a_guest_that_hangs_ends_the_runs_as_a_timed_out_trial(tmp_path: Path) -> None:
    """The probe's case: the run never came back. It is a trial that reproduced."""
    result, _ = run(tmp_path, [("ok", 1.0), "hang", ("ok", 1.0)], 120, 3)
    summary = result.repro
    assert summary is not None and summary.error is None and result.status == "failed"
    assert [(r.timed_out, r.reproduced) for r in summary.runs] == [(False, False),
                                                                    (True, True)]
    data = json.loads(json.dumps(result.to_json()))
    assert data["repro"]["timeouts"] == 1 and data["repro"]["reproducer"]["timeout"] == 120
    assert WorkloadResult.from_json(data) == result


def test_an_exit_of_137_before_the_timeout_is_not_a_timeout(tmp_path: Path) -> None:
    result, _ = run(tmp_path, [("killed", 2.0)], 60, 1)
    assert result.repro is not None and not result.repro.runs[0].timed_out
    assert result.repro.runs[0].reproduced  # still a non-zero exit


def test_old_results_and_states_read_with_the_default() -> None:
    old = {"reproducer": {"kind": "exec", "exec": "./bug", "source": None},
           "runs": [{"exit_code": 0, "kernel_reports": 0, "seconds": 1.0}]}
    summary = ReproSummary.from_json(old)
    assert summary.reproducer.timeout == REPRO_RUN_TIMEOUT and not summary.runs[0].timed_out
    config = BisectConfig(repo=Path("r"), good="a", bad="b", arch="x86_64",
                          exec_command="./bug", repro_timeout=300)
    data = config.to_dict()
    assert BisectConfig.from_dict(data).reproducer() == Reproducer("./bug", None, 300.0)
    del data["repro_timeout"]
    assert BisectConfig.from_dict(data).reproducer() == Reproducer("./bug")


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "x"])
def test_a_bad_repro_timeout_is_refused(value: str, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    code = cli.main(["run", "--exec", "true", "--repro-timeout", value,
                     "--artifacts", str(tmp_path)])
    assert code == 2 and "--repro-timeout" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="at least 1"):
        Reproducer.from_options("true", None, 0.5)


def test_the_guest_command_kills_the_run_and_its_children_at_the_timeout() -> None:
    """The command line the guest's shell runs, on this host's sh and setsid (the guest's
    are busybox's): killed after 1 s with every process it started, exit KILLED."""
    marker = "37.123"  # a sleep no one else runs
    reproducer = Reproducer.from_options(f"sleep {marker} & sleep {marker}; echo never",
                                         None, 1)
    assert reproducer is not None
    started = time.monotonic()
    done = subprocess.run(["sh", "-c", reproducer.command()], capture_output=True,
                          text=True, timeout=30)
    seconds = time.monotonic() - started
    assert done.returncode == KILLED and "never" not in done.stdout
    assert 1.0 <= seconds < 10 and reproducer.timed_out(done.returncode, seconds)
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == ""
    quick = Reproducer.from_options("echo \"it's quick\"; exit 3", None, 29)
    assert quick is not None
    done = subprocess.run(["sh", "-c", quick.command()], capture_output=True, text=True,
                          timeout=20)
    assert (done.returncode, done.stdout) == (3, "it's quick\n")
    time.sleep(0.2)  # and the watcher's `sleep 29` is gone with it
    assert subprocess.run(["pgrep", "-x", "-f", "sleep 29"], capture_output=True).stdout == b""
