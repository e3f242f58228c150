"""Shared helpers for the test suite (the oomrace pytest plugin supplies the guest fixtures)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent

# CI runs the property tests on the same examples every time (a red CI must mean a change
# broke something, not that a new random draw found an old fault); local runs keep drawing
# new ones, and what they find becomes a test.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def missing_shared(problem: str) -> None:
    """Something from ../shared is absent: a newcomer's clone skips the test, saying
    why; CI, which always has ../shared beside the clone, fails it instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{problem} (CI runs with ../shared beside the clone)")
    pytest.skip(problem)


def qemu_processes_with(marker: str) -> list[int]:
    """PIDs of live QEMU processes whose command line mentions `marker` (a unique path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1].split()[0]
        except OSError:
            continue
        if "qemu-system" in cmdline and marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for running `python -m harness` from the repo in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def stress_workload(trials: int, detections: int, iterations: int = 0,
                    checker: int = 0) -> Any:
    """A stress WorkloadResult with `detections` of `trials` batches detected, for fake
    runs (the figures go through the JSON edge, as a result.json would give them)."""
    from harness.workload import WorkloadResult

    batches = [{"status": "corrupted" if i < detections else "clean",
                "iterations": iterations // max(1, trials), "checker_corruptions": 0,
                "kernel_reports": 0, "detected": i < detections, "seconds": 1.0}
               for i in range(trials)]
    record = {"source": "checker", "address": "0x1000", "expected": "0x0", "found": "0x1",
              "provenance": None, "seconds_since_reap": None, "bad_words": 1, "round": 0,
              "pass": 0, "pid": 1}
    return WorkloadResult.from_json({
        "name": "oom", "status": "corrupted" if detections else "clean", "trials": trials,
        "batches": batches, "iterations": iterations, "corruptions": [record] * checker})


def kernel_report(title: str) -> Any:
    """A kernel_log.Report with only a title, for fake runs."""
    from dataclasses import fields

    from harness.kernel_log import Report

    values: dict[str, Any] = {f.name: None for f in fields(Report)}
    values.update(title=title, type="", frames=(), lines=(), start_line=0, symbolized=())
    return Report(**values)
