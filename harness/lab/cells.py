"""The cells of a night: the plan (handed to pytest as plan.json), what the cells need
made ready once per night (initramfs and kernels, each (arch, kernel) resolved once),
what a cell runs, and what it takes to run it again. engine.run_cell runs one."""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import __version__, cache, paths, rootfs, schema
from ..arches import get_arch
from ..errors import HarnessError
from ..kernel import resolve
from ..kernel.image import KernelImage, ResolvedKernel, option
from ..proc import run
from .matrix import Cell
from .record import write_json
from .repro_cmd import repro_command

if TYPE_CHECKING:
    from ..run import RunSpec

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
    """git in the checkout the harness runs from; "" from an installed wheel (whose
    site-packages may sit inside some other repository)."""
    checkout = paths.checkout()
    if checkout is None:
        return ""
    try:
        return run(["git", "-C", str(checkout), *argv], timeout=30,
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


# --- what a cell runs ---------------------------------------------------------------------


def cell_spec(cell: Cell, kernel: ResolvedKernel) -> RunSpec:
    """What a cell runs, for the local engine and LAVA's alike."""
    from ..run import RunSpec

    return RunSpec(kernel=kernel, scenario=cell.scenario, options=cell.options(),
                   iterations=cell.iterations, duration_s=cell.duration_s, seed=cell.seed,
                   writers=cell.writers)
