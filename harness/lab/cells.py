"""Running cells: the night's plan (handed to pytest as plan.json), what the cells need
made ready once per night (initramfs and kernels, each (arch, kernel) resolved once),
and one cell run into cells/<id>/ with its record written as soon as it ends."""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import __version__, cache, rootfs, schema, signals
from ..arches import get_arch
from ..errors import HarnessError
from ..kernel import resolve
from ..kernel.image import KernelImage, ResolvedKernel, option
from ..paths import PROJECT_ROOT
from ..proc import run
from ..selftests.suite import LAB_SCENARIO
from .matrix import Cell, repro_command
from .record import CellRecord, cell_dir, outcome, write_json

if TYPE_CHECKING:
    from ..run import RunResult, RunSpec

PLAN_ENV = "OOMRACE_LAB_PLAN"
TOTAL_ENV = "OOMRACE_LAB_TOTAL"


def build_key(arch: str, kernel: str) -> str:
    return f"{arch}:{kernel}"


@dataclass
class Plan:
    """What the pytest run of a night reads: the cells, the kernels resolved for them
    (by build_key) and what failed to build."""

    out: Path
    matrix: str
    matrix_name: str
    matrix_sha256: str
    cells: list[Cell]
    build_errors: dict[str, str] = field(default_factory=dict)
    shard: str | None = None
    kernels: dict[str, ResolvedKernel] = field(default_factory=dict)

    def write(self) -> Path:
        path = self.out / "plan.json"
        write_json(path, {
            "out": str(self.out), "matrix": self.matrix, "matrix_name": self.matrix_name,
            "matrix_sha256": self.matrix_sha256, "shard": self.shard,
            "build_errors": self.build_errors, "cells": [c.to_dict() for c in self.cells],
            "kernels": {key: {"requested": k.requested, "image": k.image.to_dict()}
                        for key, k in self.kernels.items()}})
        return path

    @classmethod
    def read(cls, path: Path) -> Plan:
        data = json.loads(path.read_text())
        schema.check_version(data, str(path))
        return cls(out=Path(data["out"]), matrix=data["matrix"],
                   matrix_name=data["matrix_name"], matrix_sha256=data["matrix_sha256"],
                   cells=[Cell.from_dict(c) for c in data["cells"]],
                   build_errors=dict(data.get("build_errors", {})), shard=data.get("shard"),
                   kernels={key: _resolved_from_dict(k)
                            for key, k in data.get("kernels", {}).items()})


def _resolved_from_dict(data: Mapping[str, Any]) -> ResolvedKernel:
    image = KernelImage.from_dict(data["image"])
    return ResolvedKernel(str(data["requested"]), image.arch, image)


def plan_from_env() -> Plan | None:
    path = os.environ.get(PLAN_ENV)
    return Plan.read(Path(path)) if path else None


@dataclass
class Prepared:
    """The kernels of a night, resolved once, and what could not be made, by build_key."""

    kernels: dict[str, ResolvedKernel] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def prepare(cells: Sequence[Cell], log: IO[str] | None = None) -> Prepared:
    """Build (or find cached) the initramfs and resolve each (arch, kernel) the cells need,
    once for the night, one thread per arch. Cells whose build failed are recorded as
    errors."""
    wanted: dict[str, list[str]] = {}
    for c in cells:
        names = wanted.setdefault(c.arch, [])
        if c.kernel not in names:
            names.append(c.kernel)
    prepared = Prepared()
    stream = log or sys.stderr
    # Each thread waits for its own builds (no guest runs here, so PDEATHSIG is moot).
    threads = [threading.Thread(target=_prepare_arch, args=(a, k, prepared, stream),
                                name=f"lab-build-{a}") for a, k in wanted.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return prepared


def _prepare_arch(arch_name: str, names: list[str], prepared: Prepared,
                  stream: IO[str]) -> None:
    arch = get_arch(arch_name)
    started = time.monotonic()
    try:
        rootfs.build(arch)
    except HarnessError as e:
        with prepared.lock:
            for name in names:
                prepared.errors[build_key(arch_name, name)] = f"initramfs for {arch_name}: {e}"
        return
    for name in names:
        key = build_key(arch_name, name)
        try:
            kernel = resolve.resolve_kernel(name, arch)
        except HarnessError as e:
            with prepared.lock:
                prepared.errors[key] = f"kernel {name} for {arch_name}: {e}"
            continue
        with prepared.lock:
            prepared.kernels[key] = kernel
    print(f"[lab] {arch_name}: initramfs and {len(names)} kernel(s) ready in "
          f"{time.monotonic() - started:.0f} s", file=stream, flush=True)


# --- what it takes to run a cell again ---------------------------------------------------------


@functools.cache
def qemu_version(binary: str) -> str:
    try:
        out = run([binary, "--version"], timeout=30, check=False).stdout
    except HarnessError:  # missing, or hung: the record says so instead of failing
        return "unknown"
    return out.splitlines()[0].strip() if out.strip() else "unknown"


def _git(*argv: str) -> str:
    try:
        return run(["git", "-C", str(PROJECT_ROOT), *argv], timeout=30,
                   check=False).stdout.strip()
    except HarnessError:
        return ""


def _mem_total_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 0


@functools.cache
def host_record() -> dict[str, Any]:
    return {
        "hostname": platform.node(), "platform": platform.platform(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "memory_mb": _mem_total_mb(),
        "python": platform.python_version(), "oomrace": __version__,
        "commit": _git("rev-parse", "HEAD") or None,
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def kernel_record(spec: str, image: KernelImage) -> dict[str, Any]:
    return {
        "spec": spec, "description": image.description, "path": str(image.path),
        "release": image.release, "source": image.source.to_dict(),
        "source_identity": image.source.source_identity,
        "patches": list(image.source.patches or ()),
        "config": str(image.config) if image.config else None,
        "config_sha256": cache.file_digest(image.config) if image.config and
        image.config.is_file() else None,
        "compiler": option(image.config, "CC_VERSION_TEXT", unquote=True),
        "cmdline_extra": list(image.cmdline_extra),
    }


def repro_record(cell: Cell, qemu_argv: Sequence[str], kernel: ResolvedKernel | None,
                 kernel_error: str | None = None) -> dict[str, Any]:
    """What it takes to run this cell again: QEMU, kernel, workload, host."""
    arch = get_arch(cell.arch)
    record: dict[str, Any] = {
        "command": repro_command(cell),
        "qemu": {"binary": arch.qemu_binary, "version": qemu_version(arch.qemu_binary),
                 "argv": list(qemu_argv)},
        "workload": {"scenario": cell.scenario, "iterations": cell.iterations,
                     "duration_s": cell.duration_s, "seed": cell.seed, "writers": cell.writers,
                     "cpus": cell.cpus, "memory_mb": cell.memory_mb, "accel": cell.accel},
        "host": host_record(),
        "kernel": (kernel_record(cell.kernel, kernel.image) if kernel is not None else
                   {"spec": cell.kernel, "error": kernel_error or "not resolved"}),
    }
    try:
        record["initramfs"] = rootfs.build(arch).key
    except HarnessError as e:
        record["initramfs"] = f"error: {e}"
    return record


# --- one cell ---------------------------------------------------------------------------------


def run_cell(cell: Cell, plan: Plan) -> CellRecord:
    """Run one cell into cells/<id>/ and write its cell.json at once. Never raises for a
    failed run (a timeout from pytest-timeout included); KeyboardInterrupt passes through."""
    directory = cell_dir(plan.out, cell.id)
    if directory.exists():
        shutil.rmtree(directory)  # a re-run (--lf) into the same night replaces the cell
    directory.mkdir(parents=True)
    record = CellRecord(cell=cell)
    started = time.monotonic()
    key = build_key(cell.arch, cell.kernel)
    kernel = plan.kernels.get(key)
    qemu_argv: Sequence[str] = ()
    result: RunResult | None = None
    failure = plan.build_errors.get(key)
    try:
        if failure is not None:
            record = replace(record, reason=f"build failed: {failure}",
                             error=f"build failed: {failure}")
        else:
            if kernel is None:  # a plan made without prepare(): resolve it here
                kernel = resolve.resolve_kernel(cell.kernel, get_arch(cell.arch))
            record, qemu_argv, result = _run(cell, kernel, directory, record)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # pytest-timeout's Failed and anything unforeseen
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Timeout" in text:
            text = f"the cell did not finish within its timeout of {cell.timeout:g} s ({text})"
        record = replace(record, verdict="error", reason=text, error=text)
    with signals.deferred():  # a finished cell is recorded before a SIGTERM ends the worker
        record = replace(record, seconds=round(time.monotonic() - started, 3),
                         outcome=outcome(cell.expected, record.verdict),
                         repro=repro_record(cell, qemu_argv, kernel, failure))
        for initrd in directory.glob("initrd-*.cpio"):  # a copy of a cached file
            initrd.unlink()
        record.write(plan.out)
        write_cell_ktap(directory, record, result)
    return record


def write_cell_ktap(directory: Path, record: CellRecord, result: RunResult | None) -> None:
    """The cell as KTAP, judged by its expectation (over the run's own `ktap`)."""
    from ..ktap import write as ktap

    suite_json = directory / "kselftest.json"
    if record.cell.scenario == LAB_SCENARIO and suite_json.is_file():
        from ..selftests import cell as selftest_cell
        from ..selftests import run as selftest_run

        suite_run = selftest_run.SuiteRun.from_json(json.loads(suite_json.read_text()))
        text = selftest_cell.cell_ktap(record.id, record.expected, record.verdict,
                                       record.reason or "", suite_run)
        ktap.write(directory / ktap.FILE_NAME, text)
        return
    ktap.write(directory / ktap.FILE_NAME, ktap.cell_document(record, result))


def cell_spec(cell: Cell, kernel: ResolvedKernel) -> RunSpec:
    """What a cell runs, for the local engine and LAVA's alike."""
    from ..run import RunSpec

    return RunSpec(kernel=kernel, scenario=cell.scenario, options=cell.options(),
                   iterations=cell.iterations, duration_s=cell.duration_s, seed=cell.seed,
                   writers=cell.writers)


def _run(cell: Cell, kernel: ResolvedKernel, directory: Path,
         record: CellRecord) -> tuple[CellRecord, Sequence[str], RunResult | None]:
    """The guest run of a cell on the kernel the night resolved."""
    from ..run import run_one  # the guest machinery, only where guests run

    if cell.scenario == LAB_SCENARIO:
        return _run_selftests(cell, kernel, directory, record)
    result = run_one(cell_spec(cell, kernel), directory)
    return record_from_result(record, result), result.qemu_argv, result


def record_from_result(record: CellRecord, result: RunResult) -> CellRecord:
    """A cell's record from its run's result: the local engine's and LAVA's alike."""
    record = replace(
        record, verdict=result.verdict, reason=result.reason, error=result.error,
        boot_seconds=result.boot_seconds, reports=tuple(r.to_dict() for r in result.reports),
        events=tuple(e.to_dict() for e in result.events),
        kernel_description=result.kernel_description, taint=result.taint.to_json())
    stress = result.stress
    if stress is not None:
        record = replace(record, iterations=stress.iterations, trials=stress.trials,
                         detections=stress.detections, rate=stress.rate, ci95=stress.ci95)
    return record


def _run_selftests(cell: Cell, kernel: ResolvedKernel, directory: Path,
                   record: CellRecord) -> tuple[CellRecord, Sequence[str], None]:
    """A kselftest cell: the suite's verdict, its kernel reports and console events."""
    from .. import kernel_log
    from ..selftests import cell as selftest_cell

    done = selftest_cell.run_cell(kernel.image, cell.options(), directory)
    console = directory / "console.log"
    parsed = kernel_log.parse(console.read_text(errors="replace") if console.is_file() else "")
    record = replace(record, verdict=done.verdict, reason=done.reason,
                     boot_seconds=done.boot_seconds,
                     reports=tuple(r.to_dict() for r in parsed.reports),
                     events=tuple(e.to_dict() for e in parsed.events),
                     kernel_description=done.suite_run.kernel)
    return record, done.qemu_argv, None
