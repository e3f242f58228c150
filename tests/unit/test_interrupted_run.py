"""SIGTERM during the second guest of `oomrace run --arch aarch64 --arch x86_64 --json
out.json` (issue 23, item 6): both result.json files were written, but out.json and the
run-level ktap were lost although aarch64 had finished. The real run_one and a real
SIGTERM; the guests are stand-ins (no QEMU)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import cli, run, signals
from harness.cli import commands
from harness.guest import GuestArtifacts
from harness.kernel.image import ResolvedKernel
from harness.kernel_log.stream import ConsoleFile
from harness.machine import MachineOptions
from harness.runner import CommandResult


@pytest.fixture(autouse=True)
def _restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (*signals.HANDLED, signal.SIGINT)}
    signals.reset()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signals.reset()


class Serial:
    """Answers the smoke workload's commands as a guest of `arch` would."""

    name = "serial"

    def __init__(self, arch: str) -> None:
        self.arch = arch

    def run(self, command: Any, timeout: float, check: bool = False) -> CommandResult:
        if command == ["oomrace-hello"]:
            return CommandResult("oomrace-hello", json.dumps({"machine": self.arch}), 0, 0.1)
        if command == ["sh", "-c", "exit 3"]:
            return CommandResult("exit 3", "", 3, 0.1)
        return CommandResult(str(command), "0\n", 0, 0.1)


class StandInGuest:
    """aarch64 boots and passes the smoke workload; x86_64's boot gets a real SIGTERM."""

    def __init__(self, arch: Any, image: object, workdir: Path, options: MachineOptions,
                 extra_initrd: tuple[Path, ...] = ()) -> None:
        self.arch, self.accel, self.boot_seconds = arch, "tcg", 1.0
        self.options = replace(options, ssh=False)  # the smoke workload then needs serial only
        self.artifacts = GuestArtifacts(workdir, workdir / "console.log", workdir / "dmesg.txt")
        self.console_reader = ConsoleFile(self.artifacts.console_log)
        self.serial: Serial | None = Serial(arch.name)
        self.ssh = None

    def __enter__(self) -> StandInGuest:
        self.artifacts.console_log.write_text("Booting Linux on physical CPU 0x0\n")
        if self.arch.name == "x86_64":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in here
            raise AssertionError("SIGTERM did not interrupt the boot")
        return self

    def __exit__(self, *exc: object) -> None:
        self.artifacts.dmesg.write_text("dmesg\n")

    def run(self, command: Any, timeout: float = 60, check: bool = False) -> CommandResult:
        assert self.serial is not None
        return self.serial.run(command, timeout, check)

    @property
    def runner(self) -> Serial:
        assert self.serial is not None
        return self.serial


def test_sigterm_in_the_second_guest_keeps_the_first_in_the_files_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = SimpleNamespace(description="fake", path=tmp_path / "Image", release="6.1",
                            vmlinux=None)
    monkeypatch.setattr(commands.resolve, "resolve_kernel",
                        lambda requested, arch, kconfig: ResolvedKernel(requested, arch, image))
    monkeypatch.setattr(run, "Guest", StandInGuest)
    out = tmp_path / "out.json"
    code = cli.main(["run", "--arch", "aarch64", "--arch", "x86_64", "--scenario", "smoke",
                     "--artifacts", str(tmp_path / "artifacts"), "--json", str(out)])
    assert code == 128 + signal.SIGTERM
    runs = json.loads(out.read_text())["runs"]
    assert [(r["arch"], r["verdict"]) for r in runs] == [("aarch64", "clean"),
                                                         ("x86_64", "error")]
    assert runs[1]["reason"] == "interrupted (SIGTERM received)"
    (run_dir,) = (tmp_path / "artifacts").iterdir()
    ktap = (run_dir / "ktap").read_text()
    assert "ok 1 aarch64" in ktap and "not ok 2 x86_64" in ktap
