"""The QEMU process: launch, boot detection and a shutdown that always happens.

Machine is a context manager in the manner of QEMU's own QEMUMachine: leaving it ends
QEMU (a soft `reboot -f`, then SIGTERM, then SIGKILL to its process group, every wait
bounded), and the console log stays on disk whatever happened.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import pexpect

from .accel import check as accel_check
from .arches import Arch, GuestSpec, qemu_argv
from .clock import RunningClock
from .console import ConsoleStream
from .errors import BootError, GuestCommandError, HarnessError, LaunchError, UsageError
from .kernel_log import boot_oops_pattern
from .ssh import free_port
from .tools import arch_tools, require

READY = re.compile(rb"OOMRACE-READY ssh=(\d) release=(\S+) cpus=(\d+)")
PANIC = re.compile(rb"Kernel panic - not syncing[^\r\n]*")
HOSTFWD_FAILED = "Could not set up host forwarding rule"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class MachineOptions:
    cpus: int = 2
    memory_mb: int = 1024
    accel: str = "tcg"
    cmdline_extra: tuple[str, ...] = field(default=())
    boot_timeout: float = 180.0
    idle_timeout: float = 60.0  # no console output for this long during boot is a failure
    cpu: str | None = None  # TCG CPU model; None: chosen from the arch and kernel version
    host_cpus: int = 0  # host CPUs QEMU may run on; 0: all (see host_cpu_set)
    shutdown_timeout: float = 10.0
    ssh: bool = True


_DEFAULTS = MachineOptions()
_T = TypeVar("_T")


def given(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def machine_options(cpus: int | None = None, memory_mb: int | None = None,
                    accel: str | None = None, cmdline_extra: Iterable[str] = (),
                    boot_timeout: float | None = None, idle_timeout: float | None = None,
                    cpu: str | None = None, host_cpus: int | None = None,
                    shutdown_timeout: float | None = None,
                    ssh: bool | None = None) -> MachineOptions:
    """A guest's machine options from a user's settings (`run`, `boot` and `evaluate`
    options, a lab cell, a bisect's config, a guest test's arguments): the one place
    they are checked (UsageError naming the option and what it takes). What is not given
    (None) keeps MachineOptions' default."""
    d = _DEFAULTS
    options = MachineOptions(
        cpus=given(cpus, d.cpus), memory_mb=given(memory_mb, d.memory_mb),
        accel=given(accel, d.accel), cmdline_extra=tuple(cmdline_extra),
        boot_timeout=given(boot_timeout, d.boot_timeout),
        idle_timeout=given(idle_timeout, d.idle_timeout), cpu=cpu,
        host_cpus=given(host_cpus, d.host_cpus),
        shutdown_timeout=given(shutdown_timeout, d.shutdown_timeout), ssh=given(ssh, d.ssh))
    if options.cpus < 1 or options.memory_mb < 128:
        raise UsageError("--cpus must be at least 1 and --memory at least 128 (MiB)")
    if options.host_cpus < 0:
        raise UsageError("--host-cpus must be >= 0 (0: all host CPUs)")
    accel_check(options.accel)
    return options


@dataclass(frozen=True)
class BootInfo:
    seconds: float
    ssh: bool
    release: str
    cpus: int


class _Progress:
    """How long the console has been silent, on the harness's own clock: any new byte on
    the stream or in QEMU's log file (which QEMU writes itself) ends a silence."""

    def __init__(self, clock: RunningClock) -> None:
        self.clock = clock
        self.seen = (-1, -1)
        self.since = 0.0
        self.silent_for = 0.0

    def check(self, stream_bytes: int, log_bytes: int) -> float:
        """Seconds on the clock since the launch, after noting what the console shows."""
        now = self.clock.tick()
        if (stream_bytes, log_bytes) != self.seen:
            self.seen, self.since = (stream_bytes, log_bytes), now
        self.silent_for = now - self.since
        return now


def _die_with_parent() -> None:
    # Runs in the child before exec: QEMU gets SIGKILL if the harness dies, even by SIGKILL.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def host_cpu_set(count: int) -> set[int]:
    """`count` of the host CPUs this process may use (empty: no restriction).

    Why restrict: under TCG a stale-TLB store of a racing writer shows only when the host
    has paused that vCPU's thread in the middle of a translated block, so the writer
    finishes the block after the reaper freed its page. Fewer host CPUs than vCPUs make
    that the usual case instead of an accident of the host's load. Runs at once start at
    different CPUs (by pid), so that two of them do not share one."""
    allowed = sorted(os.sched_getaffinity(0))
    if count <= 0 or count >= len(allowed):
        return set()
    start = os.getpid() % len(allowed)
    return {allowed[(start + i) % len(allowed)] for i in range(count)}


class Machine:
    def __init__(self, arch: Arch, spec: GuestSpec, options: MachineOptions,
                 workdir: Path) -> None:
        self.arch = arch
        self.spec = spec
        self.options = options
        self.workdir = workdir
        self.console_log = spec.console_log
        self.stderr_log = workdir / "qemu-stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.console: ConsoleStream | None = None
        self.argv: list[str] = []
        self.boot: BootInfo | None = None
        self.exit_code: int | None = None
        self._started = 0.0
        self._clock = RunningClock()
        self.last_pid: int | None = None

    # --- lifecycle --------------------------------------------------------------------

    def __enter__(self) -> Machine:
        try:
            self.launch()
            self.wait_ready()
        except BaseException as e:
            try:
                self.close()
            except HarnessError as survivor:  # keep the boot failure as the error
                e.add_note(str(survivor))
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def launch(self, attempts: int = 3) -> None:
        """Start QEMU; a forwarded port taken by another run in the meantime is retried."""
        require(next(t for t in arch_tools(self.arch) if t.program == self.arch.qemu_binary))
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            if self.options.ssh:
                self.spec = replace(self.spec, ssh_port=free_port())
            self.argv = qemu_argv(self.arch, self.spec)
            self._spawn()
            if not self._failed_to_bind() or attempt == attempts - 1:
                return
            self.close()

    def _spawn(self) -> None:
        cpus = host_cpu_set(self.options.host_cpus)

        def before_exec() -> None:
            _die_with_parent()
            if cpus:
                os.sched_setaffinity(0, cpus)

        with self.stderr_log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                start_new_session=True, preexec_fn=before_exec, bufsize=0,
            )
        self._started = time.monotonic()
        self._clock = RunningClock()
        self.console = ConsoleStream(self.proc)

    def _failed_to_bind(self) -> bool:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            return False
        return HOSTFWD_FAILED in self.stderr_text()

    def stderr_text(self) -> str:
        try:
            return self.stderr_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 60) -> str:
        return "\n".join(self.console_text().splitlines()[-lines:])

    # --- boot -------------------------------------------------------------------------

    def wait_ready(self) -> BootInfo:
        """Wait for the init's ready marker; BootError on panic, oops, silence or timeout.
        Both timeouts run on the harness's own clock (a stop of the harness is not the
        guest's silence), any new console output ends a silence, and a ready marker
        already in the console log wins over either timeout."""
        assert self.console is not None and self.proc is not None
        options = self.options
        # An oops before the ready marker means the kernel is not fit to test (which
        # reports count as an oops is family data: kernel_log's boot_oops).
        patterns = [READY, PANIC, boot_oops_pattern(), pexpect.EOF, pexpect.TIMEOUT]
        progress = _Progress(self._clock)
        while True:
            now = progress.check(self.console.total_bytes, self._log_size())
            late = now >= options.boot_timeout
            if late or progress.silent_for > options.idle_timeout:
                ready = self._ready_in_log()
                if ready is not None:
                    return ready
                what = (f"the guest did not boot within {options.boot_timeout:.0f} s" if late
                        else self._silence_message())
                raise BootError(what, str(self.console_log), self.console_tail())
            index = self.console.expect(patterns, timeout=min(1.0, options.boot_timeout - now))
            if index == 0:
                return self._booted(self.console.match)
            if index in (1, 2):
                found = self.console.match.group(0).decode(errors="replace").strip()
                self._collect_crash_tail(seconds=5.0)
                what = "kernel panic" if index == 1 else "kernel oops"
                raise BootError(f"{what} while booting: {found}",
                                str(self.console_log), self.console_tail())
            if index == 3:
                self._wait_exit(5)
                if self.console.total_bytes == 0:
                    raise LaunchError(f"{self.arch.qemu_binary} exited at once "
                                      f"(exit code {self.proc.returncode})",
                                      self.argv, self.stderr_text())
                raise BootError(
                    f"QEMU exited (code {self.proc.returncode}) before the guest was ready",
                    str(self.console_log), self.console_tail(),
                )

    def _booted(self, match: re.Match[bytes]) -> BootInfo:
        self.boot = BootInfo(
            seconds=time.monotonic() - self._started, ssh=match.group(1) == b"1",
            release=match.group(2).decode(), cpus=int(match.group(3)),
        )
        return self.boot

    def _log_size(self) -> int:
        try:
            return self.console_log.stat().st_size
        except OSError:
            return 0

    def _ready_in_log(self) -> BootInfo | None:
        """The boot, when QEMU's own console log holds the ready marker (read by the
        stream only after a stop of the harness, or not yet)."""
        try:
            data = self.console_log.read_bytes()
        except OSError:
            return None
        found = READY.search(data)
        return None if found is None else self._booted(found)

    def _silence_message(self) -> str:
        """Silence from the first byte often means the kernel cannot run on the CPU model."""
        assert self.console is not None
        what = f"the guest printed nothing for {self.options.idle_timeout:.0f} s while booting"
        if self.spec.accel != "tcg":
            return what
        cpu = self.spec.cpu or self.arch.cpu
        what += f" (QEMU -cpu {cpu})"
        if self.console.total_bytes == 0 and self.arch.old_kernel_cpu \
                and cpu != self.arch.old_kernel_cpu:
            what += (f"; an older kernel may hang on this CPU model before its first "
                     f"message: try --cpu {self.arch.old_kernel_cpu}")
        return what

    def _collect_crash_tail(self, seconds: float) -> None:
        """Let the rest of a crash report reach the log (QEMU exits on panic=-1)."""
        assert self.console is not None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            index = self.console.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=1.0)
            if index == 0 or time.monotonic() - self.console.last_output > 1.0:
                return

    # --- shutdown ---------------------------------------------------------------------

    def _wait_exit(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _reaped(self) -> bool:
        """Whether QEMU was waited for; its pid (and group id) may then be reused."""
        return self.proc is None or self.proc.returncode is not None

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._reaped():  # never signal a pid that may now be another process's
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def close(self) -> None:
        """End QEMU: soft reboot, SIGTERM, SIGKILL; each step waits a bounded time.
        HarnessError if QEMU outlives SIGKILL (it is still running: say so, loudly)."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.console is not None:
            # ^C frees a busy shell; -no-reboot turns the reboot into QEMU's exit. A dead
            # pipe just means QEMU is already going away.
            with contextlib.suppress(GuestCommandError):
                self.console.send(b"\x03\nreboot -f\n")
            self._wait_exit(self.options.shutdown_timeout)
        if not self._reaped():
            self._signal_group(signal.SIGTERM)
            if not self._wait_exit(5):
                # SIGKILL to the group: QEMU and anything it left in it.
                self._signal_group(signal.SIGKILL)
                self._wait_exit(5)
        if self.console is not None:
            self.console.close_input()
            self.console.join(5)
        self.last_pid = self.proc.pid
        if not self._reaped():
            raise HarnessError(
                f"QEMU (pid {self.proc.pid}) survived SIGKILL for 5 s (stuck in the kernel?); "
                f"it is still running: check `ps -o stat,wchan -p {self.proc.pid}`")
        self.proc = None
