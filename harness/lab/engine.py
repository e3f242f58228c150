"""One cell, whichever engine runs it: the skeleton (a fresh cells/<id>/ folder, the
night's kernel, a failed build's record, then the figures, the repro record, cell.json
and the cell's KTAP, each written once) around the engine's guest part.

An engine is how a cell's guest runs (labgrid's driver under a strategy): LocalEngine
boots it here, lava.LavaEngine hands it to LAVA as a job. Each returns the run's
RunResult; run_cell does everything else, the same for both.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .. import signals
from ..arches import get_arch
from ..kernel import resolve
from ..kernel.image import ResolvedKernel
from ..selftests.suite import LAB_SCENARIO
from .cells import Plan, build_key, cell_spec, repro_record
from .matrix import Cell
from .record import CellRecord, cell_dir, outcome

if TYPE_CHECKING:
    from ..run import RunResult


class Engine(Protocol):
    """How the guest part of a cell runs."""

    # Files of the cell's folder a re-run needs besides the command, by repro key.
    repro_files: Mapping[str, str]

    def run_guest(self, cell: Cell, kernel: ResolvedKernel, directory: Path) -> RunResult:
        """Boot `kernel` for `cell`, run its scenario and leave the logs and result.json
        in `directory`; no KTAP (run_cell writes the cell's). A failed run is a result;
        whatever it raises instead, run_cell records as the cell's error."""
        ...


class LocalEngine:
    """The guest on this machine, in the pytest worker that runs the cell."""

    repro_files: Mapping[str, str] = {}

    def run_guest(self, cell: Cell, kernel: ResolvedKernel, directory: Path) -> RunResult:
        from ..run import run_one  # the guest machinery, only where guests run

        if cell.scenario == LAB_SCENARIO:
            return _run_selftests(cell, kernel, directory)
        return run_one(cell_spec(cell, kernel), directory, write_ktap=False)


def run_cell(cell: Cell, plan: Plan, engine: Engine | None = None) -> CellRecord:
    """Run one cell into cells/<id>/ (on this machine unless `engine` says otherwise) and
    write its cell.json and ktap at once. Never raises for a failed run (a timeout from
    pytest-timeout included); KeyboardInterrupt passes through."""
    engine = engine or LocalEngine()
    directory = cell_dir(plan.out, cell.id)
    if directory.exists():
        shutil.rmtree(directory)  # a re-run (--lf) into the same night replaces the cell
    directory.mkdir(parents=True)
    record = CellRecord(cell=cell)
    started = time.monotonic()
    key = build_key(cell.arch, cell.kernel)
    kernel, failure = plan.kernels.get(key), plan.build_errors.get(key)
    result: RunResult | None = None
    try:
        if failure is not None:
            record = replace(record, reason=f"build failed: {failure}",
                             error=f"build failed: {failure}")
        else:
            if kernel is None:  # a plan made without prepare(): resolve it here
                kernel = resolve.resolve_kernel(cell.kernel, get_arch(cell.arch))
            result = engine.run_guest(cell, kernel, directory)
            record = record_from_result(record, result)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # pytest-timeout's Failed and anything unforeseen
        text = _error_text(cell, e)
        record = replace(record, verdict="error", reason=text, error=text)
    with signals.deferred():  # a finished cell is recorded before a SIGTERM ends the worker
        repro = repro_record(cell, result.qemu_argv if result else (), kernel, failure)
        repro.update({key: str(directory / name) for key, name in engine.repro_files.items()
                      if (directory / name).is_file()})
        record = replace(record, seconds=round(time.monotonic() - started, 3),
                         outcome=outcome(cell.expected, record.verdict), repro=repro)
        for initrd in directory.glob("initrd-*.cpio"):  # a copy of a cached file
            initrd.unlink()
        record.write(plan.out)
        write_cell_ktap(directory, record, result)
    return record


def _error_text(cell: Cell, error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "Timeout" in text:
        text = f"the cell did not finish within its timeout of {cell.timeout:g} s ({text})"
    return text


def record_from_result(record: CellRecord, result: RunResult) -> CellRecord:
    """A cell's record from its run's result."""
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


def write_cell_ktap(directory: Path, record: CellRecord, result: RunResult | None) -> None:
    """The cell as KTAP, judged by its expectation: the cell folder's only `ktap`."""
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


def _run_selftests(cell: Cell, kernel: ResolvedKernel, directory: Path) -> RunResult:
    """A kselftest cell: the suite's verdict, with the kernel's reports and console
    events, as a RunResult (the suite's own results are in kselftest.json)."""
    from ..run import RunResult
    from ..selftests import cell as selftest_cell
    from ..workload import WorkloadResult

    done = selftest_cell.run_cell(kernel.image, cell.options(), directory)
    console, parsed = directory / "console.log", done.console
    status = done.verdict if done.verdict in ("clean", "failed") else "error"
    return RunResult(
        arch=cell.arch, kernel=cell.kernel, verdict=done.verdict, reason=done.reason,
        workdir=str(directory), console_log=str(console), dmesg=str(directory / "dmesg.txt"),
        kernel_description=done.suite_run.kernel, kernel_path=str(kernel.image.path),
        scenario=cell.scenario, boot_seconds=done.boot_seconds, qemu_argv=done.qemu_argv,
        workload=WorkloadResult(cell.scenario, status), reports=tuple(parsed.reports),
        events=tuple(parsed.events))
