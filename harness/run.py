"""One run: resolve the kernel, boot, run the workload, read the kernel's log, decide,
and write the results. A failure at any step still leaves result.json and the logs."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import atomicio, kernel_log, kernels, signals, taint, verdict
from .arches import Arch
from .errors import HarnessError, UsageError
from .guest import Guest
from .kernels import KernelImage
from .machine import MachineOptions
from .workload import Workload, WorkloadResult, check_supported, get_workload


@dataclass(frozen=True)
class RunSpec:
    arch: Arch
    kernel: str = "debian"
    scenario: str = "smoke"
    options: MachineOptions = field(default_factory=MachineOptions)
    iterations: int = 0
    duration_s: float = 30.0
    seed: int | None = None
    writers: int | None = None
    stop_on_first_detection: bool = False
    max_trials: int = 0  # stress: stop after this many batches (0: budget only)
    image: KernelImage | None = None  # the kernel, when the caller has resolved it already

    def workload(self) -> Workload:
        return get_workload(self.scenario, iterations=self.iterations,
                            duration_s=self.duration_s, seed=self.seed, writers=self.writers,
                            stop_on_first_detection=self.stop_on_first_detection,
                            max_trials=self.max_trials)

    def resolve_kernel(self) -> KernelImage:
        """The kernel image, checked to support the scenario (UsageError before boot)."""
        image = self.image or kernels.resolve(self.kernel, self.arch)
        check_supported(self.scenario, image.release)
        return image


@dataclass
class RunResult:
    arch: str
    kernel: str
    verdict: str
    reason: str
    workdir: str
    console_log: str
    dmesg: str
    kernel_description: str | None = None
    kernel_path: str | None = None
    scenario: str = "smoke"
    accel: str | None = None
    boot_seconds: float | None = None
    seconds: float = 0.0
    started_at: str = ""
    qemu_argv: list[str] = field(default_factory=list)
    workload: dict[str, Any] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    taint: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        atomicio.write_json(path, self.to_dict())


def new_run_dir(artifacts: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = artifacts / f"run-{stamp}-{secrets.token_hex(2)}"
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except OSError as e:  # a path through a regular file, no permission, read-only...
        raise UsageError(f"--artifacts {artifacts}: cannot create {run_dir} "
                         f"({e.strerror or e}); give a folder you can write to") from None
    return run_dir


def _read_taint(guest: Guest) -> int | None:
    try:
        result = guest.run(["cat", "/proc/sys/kernel/tainted"], timeout=30)
    except HarnessError:
        return None
    return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else None


def run_one(spec: RunSpec, workdir: Path) -> RunResult:
    """Run `spec` with everything kept under `workdir`; never raises HarnessError."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = RunResult(
        arch=spec.arch.name, kernel=spec.kernel, verdict="error", reason="not started",
        workdir=str(workdir), console_log=str(workdir / "console.log"),
        dmesg=str(workdir / "dmesg.txt"), scenario=spec.scenario,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    workload = WorkloadResult(spec.scenario, "error")
    try:
        image = spec.resolve_kernel()
        result.kernel_description, result.kernel_path = image.description, str(image.path)
        guest = Guest(spec.arch, image, workdir, spec.options)
        try:
            with guest:
                result.accel = guest.accel
                result.boot_seconds = guest.boot_seconds
                result.taint["before"] = _read_taint(guest)
                workload = spec.workload().run(guest)
                result.taint["after"] = _read_taint(guest)
                result.taint["new"] = taint.new_taint(result.taint["before"],
                                                      result.taint["after"])
        finally:
            result.qemu_argv = guest.artifacts.qemu_argv
    except HarnessError as e:
        result.error = str(e)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP: say so in result.json
        result.error = f"interrupted ({e or 'Ctrl-C'})"
        raise
    finally:
        with signals.deferred():  # a SIGTERM now waits until result.json is written
            _finish(result, workload, workdir, started)
    return result


def _finish(result: RunResult, workload: WorkloadResult, workdir: Path,
            started: float) -> None:
    """Read the logs, decide the verdict and write result.json."""
    result.workload = workload.to_dict()
    analysis = _analyse(workdir)
    result.reports = [r.to_dict() for r in analysis.reports]
    result.events = [e.to_dict() for e in analysis.events]
    decided = verdict.decide(workload.status, analysis.reports, result.error)
    result.verdict, result.reason = decided.verdict, decided.reason
    result.seconds = round(time.monotonic() - started, 3)
    result.write(workdir / "result.json")


def _analyse(workdir: Path) -> kernel_log.LogAnalysis:
    """Read the console log: it holds every kernel message dmesg has at the default log
    level, and also what the kernel printed after the guest stopped answering."""
    console = workdir / "console.log"
    text = console.read_text(errors="replace") if console.is_file() else ""
    return kernel_log.parse(text)
