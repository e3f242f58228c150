"""Real guests: Debian kernels (or --kernel) booted under QEMU on each --arch."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.console import without_kernel_lines
from harness.errors import BootError, GuestCommandError
from harness.guest import Guest

from ..conftest import REPO, qemu_processes_with


def test_serial_and_ssh_run_commands_with_exit_codes(guest: Guest) -> None:
    assert guest.serial is not None and guest.ssh is not None
    for runner in (guest.serial, guest.ssh):
        r = runner.run("uname -m; echo two", timeout=60)
        assert r.exit_code == 0
        # A kernel message (eth0 coming up) may land in serial output while the guest is new.
        assert without_kernel_lines(r.stdout).splitlines() == [guest.arch.name, "two"]
        assert runner.run(["sh", "-c", "echo out; exit 7"], timeout=60).exit_code == 7
        hello = json.loads(without_kernel_lines(
            runner.run(["oomrace-hello"], timeout=60, check=True).stdout))
        assert hello["machine"] == guest.arch.name and hello["cpus"] == guest.options.cpus


def test_ssh_copies_files_both_ways(guest: Guest, tmp_path: Path) -> None:
    assert guest.ssh is not None
    payload = bytes(range(256)) * 64
    (tmp_path / "in.bin").write_bytes(payload)
    guest.ssh.put(tmp_path / "in.bin", "/tmp/in.bin", mode=0o644)
    assert guest.ssh.run(["wc", "-c", "/tmp/in.bin"], 60).stdout.split()[0] == str(len(payload))
    guest.ssh.get("/tmp/in.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == payload


def test_dmesg_collected_when_the_guest_ends(guest_arch: str,
                                             guest_factory: Callable[..., Guest]) -> None:
    g = guest_factory(guest_arch)
    g.run(["sh", "-c", "echo oomrace-dmesg-probe > /dev/kmsg"], timeout=60, check=True)
    g.close()
    dmesg = g.artifacts.dmesg.read_text()
    assert "oomrace-dmesg-probe" in dmesg
    assert "Linux version" in dmesg
    assert g.machine is not None and g.machine.proc is None  # QEMU is gone
    assert qemu_processes_with(str(g.workdir)) == []


def test_command_timeout_keeps_the_console_log(guest_arch: str,
                                               guest_factory: Callable[..., Guest]) -> None:
    g = guest_factory(guest_arch)
    with pytest.raises(GuestCommandError, match="timed out"):
        g.serial.run("echo before-silence; sleep 600", timeout=3)  # type: ignore[union-attr]
    # the guest is still usable over SSH, and the console log holds what it printed
    assert g.run(["true"], timeout=60).ok
    g.close()
    assert "before-silence" in g.artifacts.console_log.read_text()
    assert qemu_processes_with(str(g.workdir)) == []


@pytest.mark.timeout(120)
@pytest.mark.kernel_reports(r"^kernel panic: ")
def test_panic_during_boot_is_reported_quickly(guest_arch: str,
                                               guest_factory: Callable[..., Guest]) -> None:
    # The panic must end the boot at once, not by the boot timeout (typically ~6 s here;
    # the limit only guards against a hang on a loaded machine).
    with pytest.raises(BootError) as e:
        guest_factory(guest_arch, cmdline_extra=("rdinit=/nonexistent", "init=/nonexistent"),
                      boot_timeout=60.0)
    assert "kernel panic while booting: Kernel panic - not syncing" in str(e.value)
    assert Path(e.value.console_log).read_text().count("Kernel panic") >= 1


@pytest.mark.timeout(120)
def test_silent_guest_times_out_with_log_kept(guest_arch: str,
                                              guest_factory: Callable[..., Guest],
                                              oomrace_artifacts: Path) -> None:
    # The init stops before its ready marker and the kernel has nothing more to say.
    with pytest.raises(BootError, match="printed nothing for 20 s") as e:
        guest_factory(guest_arch, cmdline_extra=("oomrace.stall",), idle_timeout=20.0)
    log = Path(e.value.console_log).read_text()
    assert "Linux version" in log and "oomrace-init: stalling as asked" in log
    assert qemu_processes_with(str(Path(e.value.console_log).parent)) == []


def test_cli_run_writes_json(guest_arch: str, tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "result.json"
    r = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--arch", guest_arch, "--json", str(out),
         "--duration", "10", "--artifacts", str(tmp_path / "art")],
        cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    for key in ("arch", "kernel", "verdict", "console_log", "dmesg"):
        assert key in result
    assert result["arch"] == guest_arch and result["verdict"] == "clean"
    assert Path(result["console_log"]).stat().st_size > 0
    assert "Linux version" in Path(result["dmesg"]).read_text()
    assert f"{guest_arch}: CLEAN" in r.stdout
    # Without --scenario: the strongest scenario Debian's 6.1 supports, then the pointer
    # to the seed bug on its own kernel.
    assert result["scenario"] == "mrelease" and result["workload"]["trials"] >= 1
    assert r.stdout.rstrip().splitlines()[-1].strip() == "oomrace evaluate v4.14.2"
