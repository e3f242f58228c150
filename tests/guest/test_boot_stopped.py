"""A harness stopped (SIGSTOP) in the middle of a real boot for longer than its idle
timeout, then continued (issue 23, item 5): the boot still succeeds and dmesg.txt is
written. The probe saw "printed nothing for 60 s ... try --cpu cortex-a57" and no
dmesg.txt. Debian's x86_64 kernel, the harness in its own process with a 5 s idle
timeout, stopped for 15 s once the kernel has begun to print."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import REPO, qemu_processes_with

pytestmark = [pytest.mark.guest, pytest.mark.full]  # a boot and a 30 s stop: over 40 s

BOOT = """
import sys
from pathlib import Path
from harness.kernel import resolve
from harness.arches import get_arch
from harness.guest import Guest
from harness.machine import MachineOptions

arch, work = get_arch("x86_64"), Path(sys.argv[1])
image = resolve.resolve("debian", arch)
print("launching", flush=True)
options = MachineOptions(idle_timeout=20, boot_timeout=600, ssh=False)
with Guest(arch, image, work, options) as guest:
    print("booted", guest.run(["uname", "-m"], timeout=120).stdout.strip(), flush=True)
"""


@pytest.mark.timeout(900)
def test_a_stopped_harness_still_boots_its_guest(tmp_path: Path) -> None:
    work = tmp_path / "guest"
    harness = subprocess.Popen([sys.executable, "-c", BOOT, str(work)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert harness.stdout is not None and harness.stdout.readline() == "launching\n"
        console = work / "console.log"
        deadline = time.monotonic() + 300
        while not (console.is_file() and console.stat().st_size > 0):
            assert time.monotonic() < deadline and harness.poll() is None, "no console output"
            time.sleep(0.2)
        os.kill(harness.pid, signal.SIGSTOP)  # the kernel has begun to print
        time.sleep(30)  # past the idle timeout (20 s) and the clock's stop gap (10 s)
        os.kill(harness.pid, signal.SIGCONT)
        out, err = harness.communicate(timeout=600)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
    assert harness.returncode == 0, err[-3000:]
    assert "booted x86_64" in out
    assert "Linux version" in (work / "dmesg.txt").read_text()
    assert qemu_processes_with(str(work)) == []
