"""Time `oomrace parse-log` on a 1 GB console log and measure its peak memory.

The log (in a temporary folder, removed afterwards) is ordinary boot and user-space noise
with crash reports scattered through it: at the start, at the end and evenly between.
`oomrace parse-log` runs in a subprocess; its wall time and peak RSS
(`getrusage(RUSAGE_CHILDREN)`) are printed, and every report must be found.
Run: python benchmarks/bench_parse_log.py [--mb 1024] [--reports 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

NOISE = [
    "[   12.345678] random: crng init done",
    "[   12.400000][ T1] systemd[1]: Started Journal Service.",
    "[   13.000001] audit: type=1400 audit(1700000000.000:1): avc: denied { read } for pid=1",
    "oomrace-stress: iteration 41 ok, rss=512MB",
    "[   14.123456] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready",
    "[   15.000000] EXT4-fs (sda): mounted filesystem with ordered data mode. Opts: (null)",
]
CRASHES = [
    "[   41.123456] pagealloc: memory corruption\n"
    "[   41.123600] CPU: 3 PID: 212 Comm: oomrace-stress Not tainted 6.1.0 #1\n"
    "[   41.123800] Call trace:\n"
    "[   41.123900]  dump_backtrace+0xe4/0x140\n"
    "[   41.124400]  get_page_from_freelist+0x8d4/0x1000\n",
    "[   50.000000] WARNING: CPU: 0 PID: 1 at mm/oom_kill.c:123 __oom_reap_task_mm+0x10/0x20\n"
    "[   50.000001] RIP: 0010:__oom_reap_task_mm+0x10/0x20\n"
    "[   50.000002] Call Trace:\n"
    "[   50.000003]  oom_reaper+0x1a0/0x3c0\n",
    "[   60.000000] BUG: KASAN: use-after-free in unmap_page_range+0x10/0x20\n"
    "[   60.000001] Write of size 8 at addr ffff888012345678 by task stress/42\n"
    "[   60.000002] Call Trace:\n"
    "[   60.000003]  unmap_page_range+0x10/0x20\n",
]


def write_log(path: Path, target: int, reports: int) -> None:
    """`reports` crash reports spread over `target` bytes of noise (first and last lines
    included); streamed to disk, never held whole."""
    noise = ("\n".join(NOISE) + "\n") * 2000
    gap = max(0, target // max(1, reports - 1))
    with path.open("w") as f:
        for n in range(reports):
            f.write(CRASHES[n % len(CRASHES)])
            if n < reports - 1:
                written = 0
                while written < gap:
                    f.write(noise)
                    written += len(noise)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=int, default=1024, help="log size in MiB (default 1024)")
    ap.add_argument("--reports", type=int, default=50, help="crash reports in it (default 50)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-parse-log-") as tmp:
        log = Path(tmp) / "console.log"
        t0 = time.perf_counter()
        write_log(log, args.mb << 20, args.reports)
        size = log.stat().st_size
        print(f"wrote {size / (1 << 20):.0f} MiB with {args.reports} reports "
              f"in {time.perf_counter() - t0:.1f} s")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "harness", "parse-log", str(log)],
                              env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    found = sum(1 for line in done.stdout.splitlines() if line.startswith("  line "))
    print(f"oomrace parse-log: exit {done.returncode}, {found} reports found, "
          f"{wall:.1f} s wall ({size / (1 << 20) / wall:.0f} MiB/s), peak RSS {peak_mib:.0f} MiB")
    if done.returncode != 1 or found != args.reports:
        print(done.stderr or done.stdout[-2000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
