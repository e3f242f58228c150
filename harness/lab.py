"""Nightly lab runs: a matrix of cells (arch x kernel x scenario x repeat), each run as one
pytest test in parallel with pytest-xdist, with a summary, JUnit XML, an HTML report and a
comparison against previous nights.

    oomrace lab configs/nightly.toml --out lab/2024-05-01 --history lab [-j N] [--shard i/N]
    oomrace lab merge shard-1 shard-2 --out lab/2024-05-01

The matrix file (see configs/nightly.toml for the format) is checked before anything is
built: an unknown key or an impossible cell is refused with its line. The runner builds
what the selected cells need (one thread per arch), writes ``plan.json`` into the night's
folder and runs ``tests/lab/lab_cells.py`` under pytest with ``-n N``; each cell writes
``cells/<id>/cell.json`` (and the run's logs) as soon as it ends, so an interrupted night
keeps every finished cell. The night's ``summary.json``, ``junit.xml`` and ``report.html``
are then made from those records, which is also how ``merge`` joins shard outputs.

This module is also the pytest plugin of the lab run (``-p harness.lab``): it prints a line
per finished cell with what is done, running and left.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from . import __version__, atomicio, cache, kbuild, kernels, rootfs, signals, stress
from .arches import ALIASES, ARCHES, get_arch
from .errors import HarnessError, UsageError
from .inputs import positive_number, safe_component
from .machine import MachineOptions
from .paths import PROJECT_ROOT
from .verdict import wilson_interval

EXPECTED = ("clean", "corrupted")
SCHEMA = 1
CELLS_MODULE = PROJECT_ROOT / "tests" / "lab" / "lab_cells.py"
PLAN_ENV = "OOMRACE_LAB_PLAN"
TOTAL_ENV = "OOMRACE_LAB_TOTAL"
GUEST_OVERHEAD_MB = 512  # host memory a guest needs beyond its own RAM (QEMU, TCG cache)

# --- the matrix ------------------------------------------------------------------------


class MatrixError(UsageError):
    """A matrix file that cannot be run; names the file, the line and the reason."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Cell:
    """One test of the night: a guest booted with a kernel, running a scenario once."""

    arch: str
    kernel: str
    scenario: str
    repeat: int = 0
    expected: str = "clean"
    iterations: int = 0
    duration_s: float = 30.0
    cpus: int = 8
    memory_mb: int = 1024
    boot_timeout: float = 300.0
    timeout: float = 900.0
    seed: int = 0
    writers: int | None = None
    accel: str = "tcg"
    line: int = 0  # the matrix entry this cell came from
    description: str = ""

    @property
    def id(self) -> str:
        return cell_id(self.arch, self.kernel, self.scenario, self.repeat)

    def options(self) -> MachineOptions:
        return MachineOptions(cpus=self.cpus, memory_mb=self.memory_mb, accel=self.accel,
                              boot_timeout=self.boot_timeout)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _label(kernel: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", kernel.rstrip("/").rsplit("/", 1)[-1])


def cell_id(arch: str, kernel: str, scenario: str, repeat: int) -> str:
    label = _label(kernel) if "/" in kernel else kernel
    return f"{arch}-{label}-{scenario}-r{repeat}"


@dataclass(frozen=True)
class Matrix:
    path: Path
    name: str
    cells: tuple[Cell, ...]
    sha256: str
    description: str = ""


TOP_KEYS = ("name", "description", "defaults", "cell")
CELL_KEYS = ("arch", "kernel", "scenario", "repeats", "expected", "iterations", "duration",
             "cpus", "memory", "boot_timeout", "timeout", "seed", "writers", "accel",
             "description")
DEFAULT_KEYS = tuple(k for k in CELL_KEYS if k != "description")
ACCELS = ("tcg", "kvm", "auto")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(#.*)?$")


class _Lines:
    """Where tables and keys are in a TOML text (tomllib gives values, not lines)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (table name, index among [[name]] entries, first line, last line), 1-based lines
        self.sections: list[tuple[str, int, int, int]] = []
        counts: dict[str, int] = {}
        current = ("", 0, 1)
        in_string = False
        for number, line in enumerate(self.lines, start=1):
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                in_string = not in_string
            match = None if in_string else _HEADER.match(line)
            if match is None:
                continue
            name = match.group(2).strip().strip('"')
            if "." in name:  # [cell.expected]: a sub-table of the current entry
                continue
            self.sections.append((current[0], current[1], current[2], number - 1))
            index = 0
            if match.group(1) == "[[":
                index = counts.get(name, 0)
                counts[name] = index + 1
            current = (name, index, number)
        self.sections.append((current[0], current[1], current[2], len(self.lines)))

    def _section(self, table: str, index: int) -> tuple[int, int] | None:
        for name, i, first, last in self.sections:
            if name == table and i == index:
                return first, last
        return None

    def header(self, table: str, index: int = 0) -> int | None:
        found = self._section(table, index)
        return found[0] if found else None

    def key(self, table: str, index: int, key: str) -> int | None:
        """The line of `key` in the table (or [[table]] entry number `index`)."""
        found = self._section(table, index)
        if found is None:
            return None
        first, last = found
        quoted = re.escape(key)
        plain = re.compile(rf"^\s*(\"{quoted}\"|'{quoted}'|{quoted})\s*[=.]")
        sub = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\.\s*{quoted}\s*\]")
        for number in range(first, last + 1):
            line = self.lines[number - 1]
            if plain.match(line) or (table and sub.match(line)):
                return number
        return first if table else None


@dataclass
class _Where:
    lines: _Lines
    path: Path
    table: str
    index: int

    def line(self, key: str | None = None) -> int | None:
        if key is None:
            return self.lines.header(self.table, self.index)
        found = self.lines.key(self.table, self.index, key)
        if found is None and not self.table:  # a top-level table: its header
            found = self.lines.header(key, 0)
        return found

    def error(self, key: str | None, reason: str) -> MatrixError:
        return MatrixError(self.path, self.line(key), reason)


def _describe(table: str, index: int) -> str:
    return f"[[{table}]] #{index + 1}" if table == "cell" else f"[{table}]"


def _check_keys(table: Mapping[str, Any], valid: Sequence[str], where: _Where,
                what: str) -> None:
    for key in table:
        if key not in valid:
            raise where.error(key, f"unknown key {key!r} in {what}; valid keys: "
                                   f"{', '.join(valid)}")


def _int(value: Any, key: str, where: _Where, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise where.error(key, f"{key} must be an integer >= {minimum}, not {value!r}")
    return value


def _number(value: Any, key: str, where: _Where) -> float:
    # TOML reads `nan` and `inf` as floats; positive_number refuses them with the rest.
    if isinstance(value, int | float):
        with contextlib.suppress(UsageError):
            return positive_number(value, key)
    raise where.error(key, f"{key} must be a number > 0 (finite, in seconds), not {value!r}")


def _names(value: Any, key: str, where: _Where) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise where.error(key, f"{key} must be a name or a non-empty list of names")
    if len(set(items)) != len(items):
        raise where.error(key, f"{key} lists a name twice: {items}")
    return list(items)


def _arch_name(name: str, where: _Where) -> str:
    canonical = ALIASES.get(name, name)
    if canonical not in ARCHES:
        raise where.error("arch", f"unknown arch {name!r}; valid arches: {', '.join(ARCHES)}")
    return canonical


def _scenarios() -> list[str]:
    return ["smoke", *(s.value for s in stress.Scenario)]


def _check_kernel(name: str, where: _Where, recipes: Sequence[str]) -> str:
    if name == "debian" or name in recipes:
        return name
    if "/" in name:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = where.path.parent / path
        if path.is_file():
            return str(path.resolve())
        raise where.error("kernel", f"kernel image {name} does not exist")
    raise where.error("kernel", f"unknown kernel {name!r}; valid kernels: "
                                f"{', '.join(['debian', *recipes])}, or a path to an image")


def _expected_for(value: Any, arch: str, where: _Where, arches: Sequence[str],
                  strict: bool = True) -> str:
    """The outcome for `arch`; `strict` (a table in the entry itself) also refuses arches
    the entry does not run, while a table in [defaults] may name more."""
    if isinstance(value, dict):
        for key, outcome in value.items():
            canonical = ALIASES.get(key, key)
            if canonical not in ARCHES:
                raise where.error("expected", f"expected names unknown arch {key!r}; valid "
                                              f"arches: {', '.join(ARCHES)}")
            if strict and canonical not in arches:
                raise where.error("expected", f"expected names arch {key!r}, which this entry "
                                              f"does not run (it runs {', '.join(arches)})")
            if outcome not in EXPECTED:
                raise where.error("expected", f"expected outcome for {key} must be clean or "
                                              f"corrupted, not {outcome!r}")
        byarch = {ALIASES.get(k, k): v for k, v in value.items()}
        if arch not in byarch:
            raise where.error("expected", f"expected gives no outcome for {arch}")
        return str(byarch[arch])
    if value not in EXPECTED:
        raise where.error("expected", f"expected must be clean or corrupted (or a table of "
                                      f"them by arch), not {value!r}")
    return str(value)


def parse_matrix(text: str, path: Path | str = "<matrix>",
                 recipes: Sequence[str] | None = None) -> Matrix:
    """Check and expand a matrix; MatrixError (with the line) for anything that is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"line (\d+)", str(e))
        raise MatrixError(path, int(match.group(1)) if match else None,
                          f"not valid TOML: {e}") from None
    if recipes is None:
        recipes = kbuild.recipe_names()
    lines = _Lines(text)
    top = _Where(lines, path, "", 0)
    _check_keys(data, TOP_KEYS, top, "the matrix (top level)")
    defaults = data.get("defaults", {})
    dwhere = _Where(lines, path, "defaults", 0)
    if not isinstance(defaults, dict):
        raise top.error("defaults", "defaults must be a table: [defaults]")
    _check_keys(defaults, DEFAULT_KEYS, dwhere, "[defaults]")
    entries = data.get("cell", [])
    if not isinstance(entries, list) or not entries:
        raise MatrixError(path, top.line("cell"),
                          "the matrix has no cells: add [[cell]] entries")
    cells: list[Cell] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = _Where(lines, path, "cell", index)
        if not isinstance(entry, dict):  # `cell = [1, 2]` instead of [[cell]] tables
            raise where.error(None, "each cell must be a table: write [[cell]] entries")
        _check_keys(entry, CELL_KEYS, where, _describe("cell", index))
        for cell in _expand(entry, defaults, where, dwhere, recipes):
            if cell.id in seen:
                raise where.error(None, f"cell {cell.id} is already in the matrix "
                                        f"(line {seen[cell.id]}); each cell may appear once")
            seen[cell.id] = cell.line
            cells.append(cell)
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise top.error("name", "name must be a string")
    description = data.get("description", "")
    return Matrix(path=path, name=name, cells=tuple(cells), description=str(description),
                  sha256=hashlib.sha256(text.encode()).hexdigest())


def _expand(entry: Mapping[str, Any], defaults: Mapping[str, Any], where: _Where,
            dwhere: _Where, recipes: Sequence[str]) -> list[Cell]:
    def get(key: str) -> tuple[Any, _Where] | None:
        if key in entry:
            return entry[key], where
        if key in defaults:
            return defaults[key], dwhere
        return None

    def need(key: str) -> tuple[Any, _Where]:
        found = get(key)
        if found is None:
            raise where.error(None, f"{_describe('cell', where.index)} has no {key} "
                                    f"(and [defaults] gives none)")
        return found

    value, w = need("arch")
    arches = [_arch_name(a, w) for a in _names(value, "arch", w)]
    value, w = need("kernel")
    kernel_names = [_check_kernel(k, w, recipes) for k in _names(value, "kernel", w)]
    value, w = need("scenario")
    scenarios = _names(value, "scenario", w)
    for s in scenarios:
        if s not in _scenarios():
            raise w.error("scenario", f"unknown scenario {s!r}; valid scenarios: "
                                      f"{', '.join(_scenarios())}")
    found = get("repeats")
    repeats = 1 if found is None else _int(found[0], "repeats", found[1], 1)
    found = get("iterations")
    iterations = 0 if found is None else _int(found[0], "iterations", found[1], 0)
    found = get("duration")
    duration = 30.0 if found is None else _number(found[0], "duration", found[1])
    found = get("memory")
    memory = 1024 if found is None else _int(found[0], "memory", found[1], 128)
    found = get("boot_timeout")
    boot_timeout = 300.0 if found is None else _number(found[0], "boot_timeout", found[1])
    found = get("seed")
    seed = None if found is None else _int(found[0], "seed", found[1], 0)
    found = get("accel")
    accel = "tcg" if found is None else found[0]
    if accel not in ACCELS:
        assert found is not None
        raise found[1].error("accel", f"accel must be one of {', '.join(ACCELS)}, "
                                      f"not {accel!r}")
    found = get("description")
    description = "" if found is None else str(found[0])
    expected_value, expected_where = get("expected") or ("clean", where)
    cpus_found = get("cpus")
    writers_found = get("writers")
    timeout_found = get("timeout")
    cells = []
    for arch in arches:
        expected = _expected_for(expected_value, arch, expected_where, arches,
                                 strict=expected_where is where)
        for kernel in kernel_names:
            for scenario in scenarios:
                smoke = scenario == "smoke"
                if smoke and expected == "corrupted":
                    raise expected_where.error("expected", f"{arch} {kernel} smoke cannot be "
                                                           "expected to corrupt: the smoke "
                                                           "scenario runs no stress")
                cpus = (2 if smoke else 8) if cpus_found is None else _int(
                    cpus_found[0], "cpus", cpus_found[1], 1)
                writers = None
                if writers_found is not None:
                    writers = _int(writers_found[0], "writers", writers_found[1], 1)
                    if writers >= cpus and not smoke:
                        raise writers_found[1].error(
                            "writers", f"writers ({writers}) must be fewer than the guest's "
                                       f"cpus ({cpus}): one vCPU runs the reaper")
                budget = boot_timeout + (60.0 if smoke else duration) + 120.0
                timeout = budget + 120.0
                if timeout_found is not None:
                    timeout = _number(timeout_found[0], "timeout", timeout_found[1])
                    if timeout < budget:
                        raise timeout_found[1].error(
                            "timeout", f"timeout {timeout:g} s is shorter than what the cell "
                                       f"needs: boot_timeout + duration + 120 s = {budget:g} s")
                for repeat in range(repeats):
                    cid = cell_id(arch, kernel, scenario, repeat)
                    cells.append(Cell(
                        arch=arch, kernel=kernel, scenario=scenario, repeat=repeat,
                        expected=expected, iterations=iterations, duration_s=duration,
                        cpus=cpus, memory_mb=memory, boot_timeout=boot_timeout,
                        timeout=timeout,
                        seed=(seed + repeat) if seed is not None else zlib.crc32(
                            cid.encode()) % (1 << 31),
                        writers=writers, accel=accel, line=where.line() or 0,
                        description=description,
                    ))
    return cells


def load_matrix(path: Path) -> Matrix:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MatrixError(path, None, f"cannot read the matrix: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise MatrixError(path, None, f"not UTF-8 text (byte {e.start}); save the matrix "
                                      "as UTF-8") from None
    return parse_matrix(text, path)


# --- selecting cells -----------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise UsageError(f"--shard must be i/N with 1 <= i <= N, not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard must be i/N with 1 <= i <= N, not {text!r}")
    return index, count


def shard_cells(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Shard `index` of `count` (1-based): round-robin over the sorted cell ids, so every
    machine computes the same slices, the slices are disjoint, and together they are all."""
    order = sorted(c.id for c in cells)
    mine = {cid for n, cid in enumerate(order) if n % count == index - 1}
    return [c for c in cells if c.id in mine]


def mem_available_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2048


def default_jobs(cells: Sequence[Cell], cores: int | None = None,
                 mem_free_mb: int | None = None) -> int:
    """Guests at once: half the cores (TCG guests run several vCPU threads each), and no
    more than the free memory holds; at least one, at most one per cell."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    mem_free_mb = mem_free_mb if mem_free_mb is not None else mem_available_mb()
    guest = max((c.memory_mb for c in cells), default=1024) + GUEST_OVERHEAD_MB
    jobs = max(1, min(cores // 2, mem_free_mb // guest))
    return max(1, min(jobs, len(cells))) if cells else 1


# --- the plan handed to pytest ---------------------------------------------------------------


@dataclass
class Plan:
    out: Path
    matrix: str
    matrix_name: str
    matrix_sha256: str
    cells: list[Cell]
    build_errors: dict[str, str] = field(default_factory=dict)
    shard: str | None = None

    def write(self) -> Path:
        path = self.out / "plan.json"
        data = {"out": str(self.out), "matrix": self.matrix, "matrix_name": self.matrix_name,
                "matrix_sha256": self.matrix_sha256, "shard": self.shard,
                "build_errors": self.build_errors, "cells": [c.to_dict() for c in self.cells]}
        _write_json(path, data)
        return path

    @classmethod
    def read(cls, path: Path) -> Plan:
        data = json.loads(path.read_text())
        return cls(out=Path(data["out"]), matrix=data["matrix"],
                   matrix_name=data["matrix_name"], matrix_sha256=data["matrix_sha256"],
                   cells=[Cell.from_dict(c) for c in data["cells"]],
                   build_errors=dict(data.get("build_errors", {})), shard=data.get("shard"))


def plan_from_env() -> Plan | None:
    path = os.environ.get(PLAN_ENV)
    return Plan.read(Path(path)) if path else None


def _write_json(path: Path, data: Any) -> None:
    """Write atomically: a reader (or an interrupted night) never sees half a file."""
    atomicio.write_json(path, data)


def build_key(arch: str, kernel: str) -> str:
    return f"{arch}:{kernel}"


def prepare(cells: Sequence[Cell], log: Any = None) -> dict[str, str]:
    """Build (or find cached) the initramfs and kernels the cells need, one thread per arch.
    Returns the build failures by build_key; their cells are recorded as errors."""
    wanted: dict[str, list[str]] = {}
    for c in cells:
        kernels_ = wanted.setdefault(c.arch, [])
        if c.kernel not in kernels_:
            kernels_.append(c.kernel)
    errors: dict[str, str] = {}
    lock = threading.Lock()
    stream = log or sys.stderr

    def work(arch_name: str, names: list[str]) -> None:
        arch = get_arch(arch_name)
        started = time.monotonic()
        try:
            rootfs.build(arch)
        except HarnessError as e:
            with lock:
                for name in names:
                    errors[build_key(arch_name, name)] = f"initramfs for {arch_name}: {e}"
            return
        for name in names:
            try:
                kernels.resolve(name, arch)
            except HarnessError as e:
                with lock:
                    errors[build_key(arch_name, name)] = f"kernel {name} for {arch_name}: {e}"
        print(f"[lab] {arch_name}: initramfs and {len(names)} kernel(s) ready in "
              f"{time.monotonic() - started:.0f} s", file=stream, flush=True)

    # Each thread waits for its own builds (no guest runs here, so PDEATHSIG is moot).
    threads = [threading.Thread(target=work, args=(a, k), name=f"lab-build-{a}")
               for a, k in wanted.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# --- one cell ---------------------------------------------------------------------------------


@functools.cache
def qemu_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except OSError:
        return "unknown"
    return out.splitlines()[0].strip() if out.strip() else "unknown"


@functools.cache
def host_record() -> dict[str, Any]:
    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(PROJECT_ROOT), *argv], capture_output=True,
                                  text=True, timeout=30, check=False).stdout.strip()
        except OSError:
            return ""

    mem_total = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return {
        "hostname": platform.node(), "platform": platform.platform(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "memory_mb": mem_total,
        "python": platform.python_version(), "oomrace": __version__,
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _config_compiler(config: Path | None) -> str | None:
    if config is None or not config.is_file():
        return None
    match = re.search(r'^CONFIG_CC_VERSION_TEXT="([^"]*)"', config.read_text(errors="replace"),
                      re.M)
    return match.group(1) if match else None


def repro_command(cell: Cell) -> str:
    argv = ["oomrace", "run", "--arch", cell.arch, "--kernel", cell.kernel,
            "--scenario", cell.scenario, "--cpus", str(cell.cpus), "--memory",
            str(cell.memory_mb), "--accel", cell.accel, "--boot-timeout", f"{cell.boot_timeout:g}"]
    if cell.scenario != "smoke":
        argv += ["--iterations", str(cell.iterations), "--duration", f"{cell.duration_s:g}",
                 "--seed", str(cell.seed)]
        if cell.writers is not None:
            argv += ["--writers", str(cell.writers)]
    return " ".join(argv)


def repro_record(cell: Cell, qemu_argv: Sequence[str]) -> dict[str, Any]:
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
    }
    try:
        image = kernels.resolve(cell.kernel, arch)
        record["kernel"] = {
            "spec": cell.kernel, "description": image.description, "path": str(image.path),
            "release": image.release, "source": dict(image.source),
            "source_identity": image.source.get("identity") or image.source.get("version"),
            "patches": [p for p in image.source.get("patches", "").split(",") if p],
            "config": str(image.config) if image.config else None,
            "config_sha256": cache.file_digest(image.config) if image.config and
            image.config.is_file() else None,
            "compiler": _config_compiler(image.config),
            "cmdline_extra": list(image.cmdline_extra),
        }
    except HarnessError as e:
        record["kernel"] = {"spec": cell.kernel, "error": str(e)}
    try:
        record["initramfs"] = rootfs.build(arch).key
    except HarnessError as e:
        record["initramfs"] = f"error: {e}"
    return record


def cell_dir(out: Path, cid: str) -> Path:
    return out / "cells" / cid


def base_record(cell: Cell) -> dict[str, Any]:
    return {
        "id": cell.id, "arch": cell.arch, "kernel": cell.kernel, "scenario": cell.scenario,
        "repeat": cell.repeat, "expected": cell.expected, "verdict": "error",
        "reason": "not run", "outcome": "fail", "iterations": 0, "trials": 0,
        "detections": 0, "rate": None, "ci95": [0.0, 1.0], "seconds": 0.0,
        "boot_seconds": None, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "error": None, "cell": cell.to_dict(),
        "paths": {k: f"cells/{cell.id}/{v}" for k, v in
                  (("dir", ""), ("console", "console.log"), ("dmesg", "dmesg.txt"),
                   ("result", "result.json"), ("record", "cell.json"))},
        "reports": [], "events": [], "repro": {},
    }


def outcome(expected: str, verdict: str) -> str:
    return "pass" if verdict == expected else "fail"


def run_cell(cell: Cell, plan: Plan) -> dict[str, Any]:
    """Run one cell into cells/<id>/ and write its cell.json at once. Never raises for a
    failed run (a timeout from pytest-timeout included); KeyboardInterrupt passes through."""
    from .run import RunSpec, run_one  # the guest machinery, only where guests run

    directory = cell_dir(plan.out, cell.id)
    if directory.exists():
        shutil.rmtree(directory)  # a re-run (--lf) into the same night replaces the cell
    directory.mkdir(parents=True)
    record = base_record(cell)
    started = time.monotonic()
    qemu_argv: list[str] = []
    try:
        failure = plan.build_errors.get(build_key(cell.arch, cell.kernel))
        if failure is not None:
            record["reason"] = record["error"] = f"build failed: {failure}"
        else:
            kernel = kernels.resolve_kernel(cell.kernel, get_arch(cell.arch))
            spec = RunSpec(kernel=kernel, scenario=cell.scenario,
                           options=cell.options(), iterations=cell.iterations,
                           duration_s=cell.duration_s, seed=cell.seed, writers=cell.writers)
            result = run_one(spec, directory).to_json()
            qemu_argv = result["qemu_argv"]
            work = result["workload"]
            record.update({k: result[k] for k in (
                "verdict", "reason", "error", "boot_seconds", "reports", "events",
                "kernel_description", "taint")})
            if "trials" in work:
                record.update({k: work[k] for k in ("iterations", "trials", "detections",
                                                    "rate", "ci95")})
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # pytest-timeout's Failed and anything unforeseen
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Timeout" in text:
            text = f"the cell did not finish within its timeout of {cell.timeout:g} s ({text})"
        record.update({"verdict": "error", "reason": text, "error": text})
    with signals.deferred():  # a finished cell is recorded before a SIGTERM ends the worker
        record["seconds"] = round(time.monotonic() - started, 3)
        record["outcome"] = outcome(cell.expected, record["verdict"])
        record["repro"] = repro_record(cell, qemu_argv)
        for initrd in directory.glob("initrd-*.cpio"):  # a copy of a cached file
            initrd.unlink()
        _write_json(directory / "cell.json", record)
    return record


def junit_properties(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The figures of a cell, as JUnit <property> name/value pairs."""
    low, high = record.get("ci95") or [0.0, 1.0]
    rate = record.get("rate")
    repro = record.get("repro") or {}
    kernel = repro.get("kernel") or {}
    props = [
        ("arch", record["arch"]), ("kernel", record["kernel"]),
        ("scenario", record["scenario"]), ("repeat", record["repeat"]),
        ("expected", record["expected"]), ("verdict", record["verdict"]),
        ("reason", record.get("reason") or ""), ("iterations", record.get("iterations", 0)),
        ("trials", record.get("trials", 0)), ("detections", record.get("detections", 0)),
        ("rate", "" if rate is None else f"{rate:.4f}"), ("ci95_low", f"{low:.4f}"),
        ("ci95_high", f"{high:.4f}"), ("seconds", record.get("seconds", 0)),
        ("console_log", record["paths"]["console"]), ("dmesg", record["paths"]["dmesg"]),
        ("seed", (record.get("cell") or {}).get("seed", "")),
        ("qemu_version", (repro.get("qemu") or {}).get("version", "")),
        ("kernel_source", kernel.get("source_identity") or ""),
        ("config_sha256", kernel.get("config_sha256") or ""),
    ]
    return [(name, str(value)) for name, value in props]


def failure_message(record: Mapping[str, Any]) -> str:
    return (f"{record['id']}: expected {record['expected']}, got {record['verdict']} "
            f"({record.get('reason')}); console log: {record['paths']['console']}")


# --- nights: summaries, comparison, history --------------------------------------------------


def read_records(out: Path, ids: Iterable[str]) -> list[dict[str, Any]]:
    """The cell.json of every planned cell that finished (in any run into this night)."""
    records = []
    for cid in ids:
        path = cell_dir(out, cid) / "cell.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):  # a damaged cell.json counts as not finished
            records.append(record)
    return records


def compact(record: Mapping[str, Any]) -> dict[str, Any]:
    """A cell for summary.json: everything but the full reports and events (in cell.json)."""
    titles: dict[str, int] = {}
    for report in record.get("reports") or []:
        titles[report.get("title", "?")] = titles.get(report.get("title", "?"), 0) + 1
    kinds: dict[str, int] = {}
    for event in record.get("events") or []:
        kinds[event.get("kind", "?")] = kinds.get(event.get("kind", "?"), 0) + 1
    out = {k: v for k, v in record.items() if k not in ("reports", "events")}
    out["report_titles"] = titles
    out["event_counts"] = kinds
    return out


def totals(cells: Sequence[Mapping[str, Any]], planned: Sequence[str]) -> dict[str, Any]:
    by_verdict: dict[str, int] = {}
    for c in cells:
        by_verdict[c["verdict"]] = by_verdict.get(c["verdict"], 0) + 1
    passed = sum(1 for c in cells if c["outcome"] == "pass")
    return {"planned": len(planned), "finished": len(cells), "passed": passed,
            "failed": len(cells) - passed, "not_run": len(set(planned) - {c["id"] for c in cells}),
            "by_verdict": by_verdict}


def make_summary(records: Sequence[Mapping[str, Any]], planned: Sequence[str], *,
                 name: str, matrix: str, matrix_sha256: str, started_at: str,
                 seconds: float, jobs: int | None = None, shard: str | None = None,
                 interrupted: bool = False, night: str = "") -> dict[str, Any]:
    cells = sorted((compact(r) for r in records), key=lambda c: c["id"])
    return {
        "schema": SCHEMA, "kind": "oomrace-lab-night", "night": night, "name": name,
        "matrix": matrix, "matrix_sha256": matrix_sha256, "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1), "jobs": jobs, "shard": shard,
        "interrupted": interrupted, "host": host_record(), "planned": sorted(planned),
        "totals": totals(cells, planned), "cells": cells, "comparison": None,
    }


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json of a night, given the night's folder or the file itself."""
    file = path / "summary.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except OSError as e:
        raise UsageError(f"cannot read {file}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"{file} is not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise UsageError(f"{file} is not an oomrace lab summary (no cells)")
    data.setdefault("night", file.parent.name)
    return data


def intervals_disjoint(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[1] < b[0] or b[1] < a[0]


def _interval(cell: Mapping[str, Any]) -> tuple[float, float]:
    low, high = wilson_interval(int(cell.get("detections") or 0), int(cell.get("trials") or 0))
    return low, high


def compare(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Regressions and fixes from the previous night to this one, cell by cell.

    Regressions: a cell that was clean and now corrupts or crashes (unless it is expected to
    corrupt), an expected-corrupted cell that stopped reproducing, a detection rate whose 95%
    Wilson interval no longer overlaps the previous one, and a cell that passed and now
    fails for any other reason (a boot error, say). Fixes: a cell that failed and now passes.
    """
    before = {c["id"]: c for c in previous.get("cells", [])}
    regressions: list[dict[str, Any]] = []
    fixes: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for cell in current.get("cells", []):
        old = before.get(cell["id"])
        if old is None:
            continue
        cid, was, now = cell["id"], old["verdict"], cell["verdict"]
        expected = cell.get("expected", "clean")
        found = None
        if was == "clean" and now in ("corrupted", "crashed") and (
                expected == "clean" or now == "crashed"):
            found = ("now-corrupts" if now == "corrupted" else "now-crashes",
                     f"was clean, now {now}: {cell.get('reason')}")
        elif expected == "corrupted" and was == "corrupted" and now != "corrupted":
            found = ("stopped-reproducing", f"was corrupted, now {now}: {cell.get('reason')}")
        elif old.get("outcome") == "pass" and cell.get("outcome") != "pass":
            found = ("now-fails", f"was {was} (pass), now {now}: {cell.get('reason')}")
        if found is not None:
            regressions.append({"id": cid, "kind": found[0], "detail": found[1],
                                "previous": was, "current": now})
        elif old.get("outcome") != "pass" and cell.get("outcome") == "pass":
            fixes.append({"id": cid, "kind": "fixed", "detail": f"was {was}, now {now}",
                          "previous": was, "current": now})
        if int(old.get("trials") or 0) and int(cell.get("trials") or 0):
            a, b = _interval(old), _interval(cell)
            if intervals_disjoint(a, b):
                shift = {"id": cid, "kind": "rate-shift",
                         "detail": f"detection rate moved from {old.get('rate'):.2f} "
                                   f"[{a[0]:.2f}, {a[1]:.2f}] to {cell.get('rate'):.2f} "
                                   f"[{b[0]:.2f}, {b[1]:.2f}]: the 95% intervals do not "
                                   "overlap", "previous": old.get("rate"),
                         "current": cell.get("rate")}
                changes.append(shift)
                if not any(r["id"] == cid for r in regressions):
                    regressions.append(shift)
    now_ids = {c["id"] for c in current.get("cells", [])}
    return {
        "previous": {"night": previous.get("night", ""), "name": previous.get("name"),
                     "finished_at": previous.get("finished_at")},
        "regressions": regressions, "fixes": fixes, "rate_changes": changes,
        "new": sorted(now_ids - set(before)), "missing": sorted(set(before) - now_ids),
    }


def history_nights(history: Path | None, exclude: Path | None = None) -> list[dict[str, Any]]:
    """Previous nights' summaries from a folder holding one folder per night, oldest first."""
    if history is None or not history.is_dir():
        return []
    nights = []
    skip = exclude.resolve() if exclude is not None else None
    for entry in sorted(history.iterdir()):
        if not (entry / "summary.json").is_file() or entry.resolve() == skip:
            continue
        try:
            summary = read_summary(entry)
        except UsageError:
            continue
        summary["night"] = entry.name
        nights.append(summary)
    nights.sort(key=lambda s: (str(s.get("finished_at") or ""), s["night"]))
    return nights


# --- JUnit -------------------------------------------------------------------------------------


def junit_xml(summary: Mapping[str, Any]) -> ET.ElementTree:
    """One <testcase> per cell (named as pytest names the cell), its figures as properties."""
    cells = summary.get("cells", [])
    failed = [c for c in cells if c["outcome"] != "pass"]
    not_run = sorted(set(summary.get("planned", [])) - {c["id"] for c in cells})
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", {
        "name": f"oomrace-lab.{summary.get('name', 'lab')}", "tests": str(len(cells) +
                                                                         len(not_run)),
        "failures": str(len(failed)), "errors": "0", "skipped": str(len(not_run)),
        "time": f"{sum(float(c.get('seconds') or 0) for c in cells):.3f}",
        "timestamp": str(summary.get("started_at", "")),
        "hostname": str((summary.get("host") or {}).get("hostname", "")),
    })
    for cell in cells:
        case = ET.SubElement(suite, "testcase", {
            "classname": "tests.lab.lab_cells", "name": f"test_cell[{cell['id']}]",
            "time": f"{float(cell.get('seconds') or 0):.3f}"})
        props = ET.SubElement(case, "properties")
        for name, value in junit_properties(cell):
            ET.SubElement(props, "property", {"name": name, "value": value})
        if cell["outcome"] != "pass":
            failure = ET.SubElement(case, "failure", {"message": failure_message(cell)})
            failure.text = failure_message(cell)
    for cid in not_run:
        case = ET.SubElement(suite, "testcase", {"classname": "tests.lab.lab_cells",
                                                 "name": f"test_cell[{cid}]", "time": "0"})
        ET.SubElement(case, "skipped", {"message": "not run (interrupted or deselected)"})
    ET.indent(suites)
    return ET.ElementTree(suites)


# --- writing a night ----------------------------------------------------------------------------


def finish_night(out: Path, summary: dict[str, Any], history: Path | None,
                 previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """Compare, then write summary.json, junit.xml and report.html into `out`."""
    from .lab_report import write_report

    if previous is not None:
        summary["comparison"] = compare(previous, summary)
    summary["night"] = summary.get("night") or out.name
    _write_json(out / "summary.json", summary)
    junit_xml(summary).write(out / "junit.xml", encoding="utf-8", xml_declaration=True)
    nights = history_nights(history, exclude=out)
    if previous is not None and not any(
            n.get("finished_at") == previous.get("finished_at") and
            n.get("night") == previous.get("night") for n in nights):
        nights.append(dict(previous))
        nights.sort(key=lambda s: str(s.get("finished_at") or ""))
    write_report(out / "report.html", summary, nights)
    return summary


def exit_code(summary: Mapping[str, Any]) -> int:
    """0 all cells as expected; 1 some cell not as expected; 3 a regression against the
    previous night; 130 interrupted (the finished cells are kept)."""
    if summary.get("interrupted"):
        return 130
    comparison = summary.get("comparison") or {}
    if comparison.get("regressions"):
        return 3
    return 0 if summary["totals"]["failed"] == 0 and summary["totals"]["not_run"] == 0 else 1


def print_night(summary: Mapping[str, Any], out: Path) -> None:
    t = summary["totals"]
    for c in summary["cells"]:
        rate = ""
        if c.get("trials"):
            rate = (f" rate {c['rate']:.2f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}] "
                    f"({c['detections']}/{c['trials']} batches, {c['iterations']} iterations)")
        print(f"  {'PASS' if c['outcome'] == 'pass' else 'FAIL'} {c['id']}: {c['verdict']} "
              f"(expected {c['expected']}){rate} {float(c.get('seconds') or 0):.0f} s")
    comparison = summary.get("comparison") or {}
    for r in comparison.get("regressions", []):
        print(f"  REGRESSION {r['id']}: {r['kind']}: {r['detail']}")
    for f in comparison.get("fixes", []):
        print(f"  FIXED {f['id']}: {f['detail']}")
    print(f"lab: {t['passed']} passed, {t['failed']} failed, {t['not_run']} not run of "
          f"{t['planned']} cells"
          + (f"; {len(comparison.get('regressions', []))} regression(s) against "
             f"{comparison['previous']['night']}" if comparison else "")
          + f"\n  summary: {out / 'summary.json'}\n  junit:   {out / 'junit.xml'}"
          f"\n  report:  {out / 'report.html'}", flush=True)


def _previous(args: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    if args.compare is not None:
        return read_summary(args.compare)
    nights = history_nights(args.history, exclude=out)
    return nights[-1] if nights else None


def _pytest_argv(plan_path: Path, out: Path, cache_dir: Path, args: argparse.Namespace,
                 jobs: int | None, collect_only: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "pytest", str(CELLS_MODULE), "-p", "harness.lab",
            "--rootdir", str(PROJECT_ROOT), "-o", f"cache_dir={cache_dir}",
            "-o", "junit_family=xunit1", "--no-header", "-q", "-p", "no:randomly",
            "-p", "no:benchmark"]
    if collect_only:
        argv += ["--collect-only"]
    else:
        argv += ["-n", str(jobs), "--dist", "worksteal", "-rN",
                 f"--junitxml={out / 'pytest-junit.xml'}", "--artifacts", str(out)]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.lf:
        argv += ["--lf"]
    return argv


def _collect(argv: list[str], env: Mapping[str, str]) -> list[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(env),
                          cwd=PROJECT_ROOT, timeout=300, check=False)
    ids = re.findall(r"::test_cell\[([^\]]+)\]", proc.stdout)
    if proc.returncode not in (0, 5):  # 5: nothing collected (all deselected)
        raise HarnessError(f"selecting cells with pytest failed:\n{proc.stdout[-2000:]}"
                           f"{proc.stderr[-2000:]}")
    return ids


def _start_pytest(argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """pytest and its xdist workers in a process group of their own, which the lab
    signals as a whole (_stop); pytest gets SIGTERM if the lab dies, even by SIGKILL."""
    return subprocess.Popen(argv, env=dict(env), cwd=PROJECT_ROOT, process_group=0,
                            preexec_fn=signals.on_parent_death(signal.SIGTERM))


def _stop(proc: subprocess.Popen[bytes], signum: int) -> None:
    """After Ctrl-C, SIGTERM or SIGHUP: the same signal to pytest and every worker (their
    own group, which a terminal's Ctrl-C does not reach), so each cell ends as on Ctrl-C
    and shuts its guest down; SIGKILL only if they do not end within two minutes."""
    for sig, wait in ((signum, 120.0), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # asked again: go on to the next step at once
            continue


def run_lab(args: argparse.Namespace) -> int:
    matrix = load_matrix(Path(args.target[0]))
    cells = list(matrix.cells)
    shard = None
    if args.shard:
        index, count = parse_shard(args.shard)
        cells = shard_cells(cells, index, count)
        shard = f"{index}/{count}"
    if args.list:
        for c in cells:
            print(c.id)
        return 0
    if args.out is None:
        raise UsageError("lab needs --out DIR for the night's results")
    out = make_out_dir(args.out.resolve())
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("-j must be at least 1")
    if importlib.util.find_spec("xdist") is None:
        raise UsageError("the lab runs cells with pytest-xdist, which is not installed: "
                         "pip install pytest-xdist (./bootstrap installs it)")
    previous = _previous(args, out)  # refuse a bad --compare before hours of work
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    plan = Plan(out=out, matrix=str(matrix.path.resolve()), matrix_name=matrix.name,
                matrix_sha256=matrix.sha256, cells=cells, shard=shard)
    plan_path = plan.write()
    # pytest's cache (for --lf) is shared by the nights next to this one, one per shard.
    cache_dir = ((args.history.resolve() if args.history else out.parent) /
                 ".oomrace-lab-cache" / (f"shard-{shard.replace('/', '-of-')}" if shard
                                         else "all"))
    env = {**os.environ, PLAN_ENV: str(plan_path)}
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    selected = cells
    if args.keyword or args.lf:
        ids = set(_collect(_pytest_argv(plan_path, out, cache_dir, args, None, True), env))
        selected = [c for c in cells if c.id in ids]
    jobs = args.jobs or default_jobs(selected)
    print(f"[lab] {matrix.name}: {len(selected)} of {len(matrix.cells)} cells"
          + (f" (shard {shard})" if shard else "") + f", {jobs} at once; results in {out}",
          flush=True)
    interrupted = False
    stopped_by: int = signal.SIGINT  # the signal that interrupted the night, for the exit status
    if selected:
        plan.build_errors = prepare(selected)
        for key, message in plan.build_errors.items():
            print(f"[lab] build failed: {key}: {message.splitlines()[0]}", flush=True)
        plan.write()
        env[TOTAL_ENV] = str(len(selected))
        proc = _start_pytest(_pytest_argv(plan_path, out, cache_dir, args, jobs), env)
        try:
            code = proc.wait()
            interrupted = code == 2 and len(read_records(out, [c.id for c in selected])) < len(
                selected)
        except KeyboardInterrupt as e:
            interrupted = True
            stopped_by = signals.exit_status(e) - 128
            _stop(proc, stopped_by)
    # The night holds the cells run now and those an earlier run into this folder finished
    # (a --lf re-run keeps the rest); cells left out with -k are not part of it.
    chosen = {c.id for c in selected}
    planned = [c.id for c in cells
               if c.id in chosen or (cell_dir(out, c.id) / "cell.json").is_file()]
    records = read_records(out, planned)
    summary = make_summary(records, planned, name=matrix.name, matrix=plan.matrix,
                           matrix_sha256=matrix.sha256, started_at=started_at,
                           seconds=time.monotonic() - started, jobs=jobs, shard=shard,
                           interrupted=interrupted, night=out.name)
    finish_night(out, summary, args.history, previous)
    print_night(summary, out)
    code = exit_code(summary)
    return 128 + int(stopped_by) if code == 130 else code


def merge(dirs: Sequence[Path], out: Path) -> dict[str, Any]:
    """Join the outputs of shards (or any nights of the same matrix) into one night in
    `out`: their cell folders are copied in and summary, JUnit and report made anew."""
    if not dirs:
        raise UsageError("lab merge needs the shard folders to merge")
    out = out.resolve()
    summaries = [read_summary(d) for d in dirs]
    digests = {s.get("matrix_sha256") for s in summaries}
    if len(digests) > 1:
        raise UsageError("the folders were run from different matrices (their matrix_sha256 "
                         "differ); merge only shards of one night")
    make_out_dir(out)
    records: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    planned: set[str] = set()
    for directory, summary in zip(dirs, summaries, strict=True):
        planned.update(_checked_ids(summary.get("planned", []), directory))
        for cell in summary["cells"]:
            _checked_ids([cell.get("id") if isinstance(cell, dict) else None], directory)
            if cell["id"] in records:
                raise UsageError(f"cell {cell['id']} is in both {origin[cell['id']]} and "
                                 f"{directory}; shards must not overlap")
            origin[cell["id"]] = directory
            source = cell_dir(directory.resolve(), cell["id"])
            target = cell_dir(out, cell["id"])
            if source.is_dir() and source.resolve() != target.resolve():
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(source, target)
            full = source / "cell.json"
            try:
                records[cell["id"]] = json.loads(full.read_text())
            except (OSError, ValueError):
                records[cell["id"]] = dict(cell)
            _check_record(records[cell["id"]], directory)
    first = summaries[0]
    started = min(str(s.get("started_at", "")) for s in summaries)
    seconds = max(float(s.get("seconds") or 0) for s in summaries)
    summary = make_summary(list(records.values()), sorted(planned), name=first.get("name", ""),
                           matrix=first.get("matrix", ""), matrix_sha256=first.get(
                               "matrix_sha256", ""), started_at=started, seconds=seconds,
                           interrupted=any(s.get("interrupted") for s in summaries),
                           night=out.name)
    summary["shards"] = [{"dir": str(d), "shard": s.get("shard"), "host": s.get("host"),
                          "cells": len(s["cells"])} for d, s in zip(dirs, summaries, strict=True)]
    finished = [str(s.get("finished_at", "")) for s in summaries]
    summary["finished_at"] = max(finished) if finished else summary["finished_at"]
    return summary


RECORD_KEYS = ("id", "arch", "kernel", "scenario", "repeat", "expected", "verdict", "outcome",
               "paths")


def _check_record(record: object, directory: Path) -> None:
    """A cell from a shard has what the summary, JUnit and report read from it."""
    if not isinstance(record, dict):
        raise UsageError(f"{directory}: a cell record is not a JSON object; the shard is "
                         "corrupt, run it again")
    missing = [k for k in RECORD_KEYS if k not in record]
    paths = record.get("paths")
    if not missing and not (isinstance(paths, dict) and {"console", "dmesg"} <= set(paths)):
        missing = ["paths.console/paths.dmesg"]
    if missing:
        raise UsageError(f"{directory}: cell {record.get('id')!r} lacks {', '.join(missing)}; "
                         "the shard's summary.json or cell.json is corrupt, run it again")


def make_out_dir(out: Path) -> Path:
    """--out as a folder (made when missing); a file in its place is a bad option."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"--out {out} is a file, not a folder; give a folder for the "
                         "night") from None
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create it ({e.strerror}); give a folder you "
                         "can write to") from None
    return out


def _checked_ids(ids: object, directory: Path) -> list[str]:
    """Cell ids from a shard's summary become folder names under --out: each must be one
    plain path component, or `../../x` would replace a folder outside it."""
    if not isinstance(ids, list):
        raise UsageError(f"{directory}/summary.json: planned must be a list of cell ids")
    return [safe_component(cid, f"{directory}/summary.json: cell id") for cid in ids]


def merge_lab(args: argparse.Namespace) -> int:
    if args.out is None:
        raise UsageError("lab merge needs --out DIR for the merged night")
    for flag, value in (("--shard", args.shard), ("-k", args.keyword), ("--lf", args.lf),
                        ("-j", args.jobs)):
        if value:
            raise UsageError(f"{flag} does not apply to lab merge")
    dirs = [Path(d) for d in args.target[1:]]
    out = args.out.resolve()
    previous = _previous(args, out)
    summary = merge(dirs, out)
    finish_night(out, summary, args.history, previous)
    print_night(summary, out)
    return exit_code(summary)


def main(args: argparse.Namespace) -> int:
    """`oomrace lab MATRIX ...` or `oomrace lab merge DIR... --out DIR`."""
    if args.target[0] == "merge" and not Path("merge").is_file():
        return merge_lab(args)
    if len(args.target) != 1:
        raise UsageError("lab takes one matrix file (or: lab merge DIR... --out DIR)")
    return run_lab(args)


# --- the pytest plugin of a lab run (-p harness.lab) ------------------------------------------


class LabProgress:
    """A line per finished cell: done / running / left, and the failures so far."""

    def __init__(self, total: int, config: pytest.Config) -> None:
        self.total = total
        self.config = config
        self.running: set[str] = set()
        self.done = 0
        self.failures: list[str] = []
        self.started = time.monotonic()

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, flush=True)

    @pytest.hookimpl
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.running.add(nodeid)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        finished = report.when == "call" or (report.when == "setup" and not report.passed)
        if not finished:
            return
        self.running.discard(report.nodeid)
        self.done += 1
        cid = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
        props = dict(report.user_properties)
        if not report.passed:
            self.failures.append(cid)
        figures = ""
        if props.get("trials") not in (None, "0", 0):
            figures = (f", rate {props.get('rate')} [{props.get('ci95_low')}, "
                       f"{props.get('ci95_high')}] over {props.get('trials')} batches")
        left = max(0, self.total - self.done - len(self.running))
        elapsed = time.monotonic() - self.started
        self._write(
            f"[lab {self.done}/{self.total} done, {len(self.running)} running, {left} left, "
            f"{elapsed / 60:.1f} min] {'PASS' if report.passed else 'FAIL'} {cid}: "
            f"{props.get('verdict', report.outcome)} (expected {props.get('expected', '?')})"
            f"{figures}" + (f" | failures so far: {', '.join(self.failures)}"
                            if self.failures else ""))


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(PLAN_ENV):
        signals.install()  # SIGTERM/SIGHUP end a cell like Ctrl-C: guest stopped, logs kept
    if os.environ.get(PLAN_ENV) and not hasattr(config, "workerinput"):
        total = int(os.environ.get(TOTAL_ENV, "0") or 0)
        config.pluginmanager.register(LabProgress(total, config), "oomrace-lab-progress")


__all__ = [
    "Cell", "Matrix", "MatrixError", "Plan", "compare", "default_jobs", "exit_code",
    "junit_xml", "load_matrix", "merge", "parse_matrix", "parse_shard",
    "run_cell", "shard_cells",
]
