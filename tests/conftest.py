"""Shared helpers for the test suite (the oomrace pytest plugin supplies the guest fixtures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
