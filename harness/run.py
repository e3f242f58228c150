"""One run: boot a resolved kernel, run the workload, read the kernel's log, decide,
and write the results. A failure at any step still leaves result.json and the logs."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import atomicio, kernel_log, schema, signals, symbolize, verdict
from .arches import Arch
from .errors import HarnessError, UsageError
from .guest import Guest
from .kernel.image import KernelImage, ResolvedKernel
from .ktap import write as ktap
from .machine import MachineOptions
from .repro import Reproducer
from .taint import TaintChange
from .workload import (
    BATCH_ITERATIONS,
    StressSummary,
    Workload,
    WorkloadResult,
    check_supported,
    get_workload,
)


@dataclass(frozen=True)
class RunSpec:
    """One run of a scenario on a kernel resolved already (kernels.resolve_kernel): the
    caller resolves once per run, per lab night or per bisect step, never run_one."""

    kernel: ResolvedKernel
    scenario: str = "smoke"
    options: MachineOptions = field(default_factory=MachineOptions)
    iterations: int = 0
    duration_s: float = 30.0
    seed: int | None = None
    writers: int | None = None
    stop_on_first_detection: bool = False
    max_trials: int = 0  # stress: stop after this many batches (0: budget only)
    batch_iterations: int = BATCH_ITERATIONS  # stress: iterations per batch (one trial)
    # The user's own reproducer instead of the scenario (scenario is then "repro").
    reproducer: Reproducer | None = None

    @property
    def arch(self) -> Arch:
        return self.kernel.arch

    def workload(self) -> Workload:
        return get_workload(self.scenario, iterations=self.iterations,
                            duration_s=self.duration_s, seed=self.seed, writers=self.writers,
                            stop_on_first_detection=self.stop_on_first_detection,
                            max_trials=self.max_trials, reproducer=self.reproducer,
                            batch_iterations=self.batch_iterations)

    def checked(self) -> RunSpec:
        """This spec, once its workload and budget are valid and its kernel can run the
        scenario (UsageError before anything boots)."""
        self.workload()
        check_supported(self.scenario, self.kernel.release)
        return self


@dataclass(frozen=True)
class RunResult:
    """What one run found; result.json is its to_json()."""

    arch: str
    kernel: str  # as requested: debian, a recipe name or a path
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
    qemu_argv: tuple[str, ...] = ()
    workload: WorkloadResult = field(default_factory=lambda: WorkloadResult("", "error"))
    reports: tuple[kernel_log.Report, ...] = ()
    events: tuple[kernel_log.Event, ...] = ()
    taint: TaintChange = field(default_factory=TaintChange)
    error: str | None = None
    # How the reports' frames got file:line from the kernel's vmlinux (or why not).
    symbolization: str | None = None

    @property
    def stress(self) -> StressSummary | None:
        return self.workload.stress

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(qemu_argv=list(self.qemu_argv), workload=self.workload.to_json(),
                    reports=[r.to_dict() for r in self.reports],
                    events=[e.to_dict() for e in self.events], taint=self.taint.to_json())
        return schema.versioned(data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "result.json") -> RunResult:
        schema.check_version(data, where)
        typed: dict[str, Any] = {
            "qemu_argv": tuple(data.get("qemu_argv") or ()),
            "workload": WorkloadResult.from_json(data.get("workload") or {}),
            "reports": tuple(kernel_log.Report.from_dict(r) for r in data.get("reports", [])),
            "events": tuple(kernel_log.Event.from_dict(e) for e in data.get("events", [])),
            "taint": TaintChange.from_json(data.get("taint") or {}),
        }
        plain: dict[str, Any] = {f.name: data[f.name] for f in fields(cls)
                 if f.name not in typed and f.name in data}
        return cls(**plain, **typed)

    def write(self, path: Path) -> None:
        atomicio.write_json(path, self.to_json())


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


@dataclass
class Seen:
    """What a run learned before it ended, however it ended."""

    started: float
    started_at: str
    image: KernelImage | None = None
    accel: str | None = None
    boot_seconds: float | None = None
    qemu_argv: tuple[str, ...] = ()
    taint_before: int | None = None
    taint_after: int | None = None
    workload: WorkloadResult | None = None
    error: str | None = None


def run_one(spec: RunSpec, workdir: Path) -> RunResult:
    """Run `spec` with everything kept under `workdir`; never raises HarnessError."""
    workdir.mkdir(parents=True, exist_ok=True)
    seen = Seen(time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        image = spec.checked().kernel.image
        seen.image = image
        extra = spec.reproducer.initrd_part(spec.arch) if spec.reproducer else None
        guest = Guest(spec.arch, image, workdir, spec.options,
                      extra_initrd=() if extra is None else (extra,))
        try:
            with guest:
                seen.accel, seen.boot_seconds = guest.accel, guest.boot_seconds
                seen.taint_before = _read_taint(guest)
                seen.workload = spec.workload().run(guest)
                seen.taint_after = _read_taint(guest)
        finally:
            seen.qemu_argv = tuple(guest.artifacts.qemu_argv)
    except HarnessError as e:
        seen.error = str(e)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP: say so in result.json
        seen.error = f"interrupted ({e or 'Ctrl-C'})"
        raise
    finally:
        with signals.deferred():  # a SIGTERM now waits until result.json is written
            result = finish(spec, seen, workdir)
    return result


def finish(spec: RunSpec, seen: Seen, workdir: Path) -> RunResult:
    """Read the logs, decide the verdict and write result.json: the end of every run,
    ours or one a LAVA worker ran (harness.lab.lava), whose console log is in workdir."""
    workload = seen.workload or WorkloadResult(spec.scenario, "error")
    analysis = _analyse(workdir)
    located = symbolize.symbolize_reports(
        analysis.reports, seen.image.vmlinux if seen.image else None, spec.arch)
    decided = verdict.decide(workload.status, analysis.reports, seen.error)
    result = RunResult(
        arch=spec.arch.name, kernel=spec.kernel.requested, verdict=decided.verdict,
        reason=decided.reason, workdir=str(workdir), console_log=str(workdir / "console.log"),
        dmesg=str(workdir / "dmesg.txt"),
        kernel_description=seen.image.description if seen.image else None,
        kernel_path=str(seen.image.path) if seen.image else None, scenario=spec.scenario,
        accel=seen.accel, boot_seconds=seen.boot_seconds,
        seconds=round(time.monotonic() - seen.started, 3), started_at=seen.started_at,
        qemu_argv=seen.qemu_argv, workload=workload, reports=located.reports,
        events=tuple(analysis.events),
        taint=TaintChange(seen.taint_before, seen.taint_after), error=seen.error,
        symbolization=located.note or None)
    result.write(workdir / "result.json")
    ktap.write(workdir / ktap.FILE_NAME, ktap.run_document([result], spec.iterations))
    return result


def _analyse(workdir: Path) -> kernel_log.LogAnalysis:
    """Read the console log: it holds every kernel message dmesg has at the default log
    level, and also what the kernel printed after the guest stopped answering."""
    console = workdir / "console.log"
    text = console.read_text(errors="replace") if console.is_file() else ""
    return kernel_log.parse(text)
