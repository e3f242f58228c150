"""Boot-to-ready through the harness vs. raw QEMU with the same argv, per arch.

    python benchmarks/bench_boot.py [--arch x86_64 --arch aarch64] [--kernel debian] [--runs 3]

"raw" starts the identical QEMU command line with subprocess and reads its stdout until
the init's ready marker; "harness" is Machine launch-to-ready (what every test pays),
and "guest" adds the SSH connection. The goal is harness/raw <= 1.15.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.arches import parse_arch_list
from harness.guest import Guest
from harness.kernel import resolve
from harness.machine import MachineOptions

READY = b"OOMRACE-READY"


def raw_boot(argv: list[str], timeout: float = 300) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    seen = b""
    try:
        while READY not in seen:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk or time.monotonic() - started > timeout:
                raise RuntimeError("raw QEMU did not reach the ready marker")
            seen = seen[-64:] + chunk
        return time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", default=None)
    parser.add_argument("--kernel", default="debian")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for arch in parse_arch_list(args.arch or ["all"]):
        image = resolve.resolve(args.kernel, arch)
        harness_s, guest_s, raw_s = [], [], []
        with tempfile.TemporaryDirectory(prefix="oomrace-bench-") as tmp:
            for i in range(args.runs):
                t0 = time.monotonic()
                with Guest(arch, image, Path(tmp) / f"h{i}", MachineOptions()) as g:
                    guest_s.append(time.monotonic() - t0)
                    assert g.machine is not None and g.machine.boot is not None
                    harness_s.append(g.machine.boot.seconds)
                    argv = list(g.machine.argv)
                    g.dmesg_text = ""  # skip dmesg collection: not part of boot
                raw_s.append(raw_boot(argv))
        h, g_, r = (statistics.median(x) for x in (harness_s, guest_s, raw_s))
        rows.append((arch.name, image.description, r, h, g_))
    print(f"{'arch':<8} {'raw qemu':>9} {'harness':>9} {'+ssh':>9} {'ratio':>6}  kernel")
    for name, desc, r, h, g_ in rows:
        print(f"{name:<8} {r:>8.2f}s {h:>8.2f}s {g_:>8.2f}s {h / r:>6.2f}  {desc}")
    print(f"(median of {args.runs} runs; ratio = harness / raw; goal <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
