"""Boot timeouts on the harness's own clock (issue 23, item 5). The probe: the harness
was stopped (SIGSTOP) 3 s into a boot for 70 s, then said "printed nothing for 60 s ...
try --cpu cortex-a57" and exit 1, although the console log had the ready marker at
6.6 s. Here a scripted console and a fake monotonic clock replay that boot; the guest
test (tests/guest/test_boot_stopped.py) does it with QEMU and a real SIGSTOP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pexpect
import pytest

from harness.arches import GuestSpec, get_arch
from harness.clock import RunningClock
from harness.errors import BootError
from harness.machine import READY, Machine, MachineOptions

MARKER = b"OOMRACE-READY ssh=1 release=6.1.0-fake cpus=2\n"


class FakeTime:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class ScriptedConsole:
    """What the harness's console stream shows, step by step: `print` (guest output
    arrives while the harness waits), `stop` (the harness is stopped for N seconds while
    QEMU writes to its log file; the stream's reader has not caught up yet when the
    harness runs again), `quiet` (a second with nothing), `ready` (the marker comes)."""

    def __init__(self, clock: FakeTime, log: Path, steps: list[tuple[str, float]]) -> None:
        self.clock, self.log, self.steps = clock, log, list(steps)
        self.total_bytes = 0
        self.last_output = clock.now  # what the stream's reader thread stamps
        self.match: Any = None

    def _print(self, data: bytes) -> None:
        with self.log.open("ab") as f:
            f.write(data)

    def expect(self, patterns: list[Any], timeout: float) -> int:
        kind, seconds = self.steps.pop(0) if self.steps else ("quiet", 1.0)
        self.clock.now += seconds if kind == "stop" else min(timeout, seconds)
        if kind == "print":
            self._print(b"[    1.000000] booting\n")
            self.total_bytes += 23
            self.last_output = self.clock.now
        elif kind == "stop":
            self._print(MARKER)  # QEMU logs it while the harness is stopped
        elif kind == "ready":
            self.total_bytes += len(MARKER)
            self.last_output = self.clock.now
            self.match = READY.search(MARKER)
            return 0
        return patterns.index(pexpect.TIMEOUT)


def boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: list[tuple[str, float]],
         idle: float = 60.0, log_ready: bool = False) -> Machine:
    clock = FakeTime()
    monkeypatch.setattr(time, "monotonic", clock)  # the machine's clock and the stream's
    log = tmp_path / "console.log"
    log.write_bytes(MARKER if log_ready else b"")
    spec = GuestSpec(kernel=tmp_path / "k", initrd=tmp_path / "i", cmdline="", console_log=log)
    machine = Machine(get_arch("aarch64"), spec,
                      MachineOptions(idle_timeout=idle, boot_timeout=180.0), tmp_path)
    machine._started = clock.now
    machine.console = ScriptedConsole(clock, log, steps)  # type: ignore[assignment]
    machine.proc = object()  # type: ignore[assignment]
    machine.wait_ready()
    return machine


def test_a_stopped_harness_does_not_time_its_guest_out(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    steps = [("print", 1.0)] * 3 + [("stop", 70.0), ("quiet", 1.0), ("ready", 0.1)]
    machine = boot(tmp_path, monkeypatch, steps)
    assert machine.boot is not None and machine.boot.release == "6.1.0-fake"
    assert machine._clock.stopped >= 70 and machine._clock.elapsed < 10


def test_a_stop_longer_than_the_boot_timeout_is_not_counted_either(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = boot(tmp_path, monkeypatch, [("print", 1.0), ("stop", 400.0), ("ready", 0.1)])
    assert machine.boot is not None


def test_output_in_the_log_file_ends_a_silence(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU writes the log itself: bytes there are progress though the stream lags."""
    steps = [("print", 1.0), *[("quiet", 1.0)] * 8, ("stop", 5.0), *[("quiet", 1.0)] * 8,
             ("ready", 0.1)]
    machine = boot(tmp_path, monkeypatch, steps, idle=10.0)
    assert machine.boot is not None


def test_a_ready_marker_already_in_the_log_wins(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    machine = boot(tmp_path, monkeypatch, [], idle=5.0, log_ready=True)
    assert machine.boot is not None and machine.boot.cpus == 2


def test_real_silence_is_still_a_boot_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BootError, match="printed nothing for 5 s"):
        boot(tmp_path, monkeypatch, [("print", 1.0)], idle=5.0)


def test_the_boot_timeout_still_holds_for_a_chatty_guest(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BootError, match="did not boot within 180 s"):
        boot(tmp_path, monkeypatch, [("print", 1.0)] * 400)


def test_the_clock_counts_ticks_and_skips_gaps() -> None:
    now = [0.0]
    clock = RunningClock(max_gap=10.0, now=lambda: now[0])
    for step in (1.0, 1.0, 9.5, 70.0, 0.5, 11.0, 2.0):
        now[0] += step
        clock.tick()
    assert clock.elapsed == pytest.approx(14.0) and clock.stopped == pytest.approx(81.0)
