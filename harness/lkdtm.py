"""Real crash reports on demand: LKDTM crash types, provoked in a guest booted with the
`v6.1-lkdtm` recipe, and the titles the console parser must give them.

    oomrace record-lkdtm --arch all --out tests/data/lkdtm   # record console logs
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import kernel_log
from .arches import parse_arch_list
from .errors import HarnessError
from .guest import Guest
from .kernel import resolve
from .machine import MachineOptions

RECIPE = "v6.1-lkdtm"
TRIGGER = "/sys/kernel/debug/provoke-crash/DIRECT"
# Detectors made quick enough for a test: report a hung task after 2 s, a soft lockup
# after 2 * 1 s.
SYSCTLS = (("kernel/hung_task_timeout_secs", "2"), ("kernel/watchdog_thresh", "1"))


@dataclass(frozen=True)
class CrashType:
    name: str  # what is written to provoke-crash/DIRECT
    title: str  # the title the parser must produce
    wait_s: float = 30.0  # how long the report may take to appear


# One title per crash type on every arch: the x86_64 fragment's frame-pointer unwinder
# gives reliable stacks there too (tinyconfig's guess unwinder printed every frame as a
# `? ` guess, and the titles said "in corrupted", as syzkaller's do for such a stack).
CRASH_TYPES: tuple[CrashType, ...] = (
    CrashType("EXCEPTION",
              "BUG: unable to handle kernel NULL pointer dereference in lkdtm_EXCEPTION"),
    CrashType("BUG", "kernel BUG in lkdtm_BUG"),
    CrashType("WARNING", "WARNING in lkdtm_WARNING"),
    CrashType("CORRUPT_LIST_ADD", "BUG: corrupted list in lkdtm_CORRUPT_LIST_ADD"),
    # Stalls are named after the frame just above the syscall entry (syzkaller's
    # convention: a stall spins anywhere); for LKDTM that is debugfs's write handler.
    CrashType("SOFTLOCKUP", "BUG: soft lockup in full_proxy_write", wait_s=60.0),
    CrashType("HUNG_TASK", "INFO: task hung in lkdtm_HUNG_TASK", wait_s=60.0),
    CrashType("PANIC", "kernel panic: dumptest"),
)


def crash_type(name: str) -> CrashType:
    for c in CRASH_TYPES:
        if c.name == name:
            return c
    valid = ", ".join(c.name for c in CRASH_TYPES)
    raise HarnessError(f"unknown LKDTM crash type {name!r}; valid: {valid}")


def provoke(guest: Guest, crash: CrashType) -> str:
    """Provoke `crash` and return the console log once a report has appeared (or the
    wait is over). The guest may be unusable afterwards."""
    settings = "; ".join(f"echo {v} > /proc/sys/{k}" for k, v in SYSCTLS)
    guest.run(f"{settings}; test -w {TRIGGER}", timeout=60, check=True)
    # In the background: the writer may oops, hang or take the kernel down with it.
    guest.run(f"(echo {crash.name} > {TRIGGER}) >/dev/null 2>&1 &", timeout=60)
    log = guest.artifacts.console_log
    deadline = time.monotonic() + crash.wait_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if kernel_log.parse(text).reports:
            time.sleep(2.0)  # let the rest of the report reach the console
            return log.read_text(errors="replace")
        time.sleep(0.5)
    return log.read_text(errors="replace")


def record(arch_names: list[str], out: Path, names: list[str] | None = None) -> int:
    """Record one console log per crash type and arch into out/<arch>/<TYPE>.log."""
    failures = 0
    for arch in parse_arch_list(arch_names):
        image = resolve.resolve(RECIPE, arch)
        for crash in CRASH_TYPES:
            if names and crash.name not in names:
                continue
            with tempfile.TemporaryDirectory(prefix="oomrace-lkdtm-") as workdir, \
                    Guest(arch, image, Path(workdir), MachineOptions(cpus=2)) as guest:
                text = provoke(guest, crash)
            titles = [r.title for r in kernel_log.parse(text).reports]
            target = out / arch.name / f"{crash.name}.log"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            ok = bool(titles) and titles[0] == crash.title
            failures += not ok
            print(f"{arch.name:<8} {crash.name:<18} {'ok  ' if ok else 'DIFF'} "
                  f"{titles[0] if titles else '(no report)'}", flush=True)
    return 1 if failures else 0
