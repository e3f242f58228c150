"""Figures for the race: how fast the bug shows, and how fast clean kernels iterate.

    python benchmarks/bench_race.py [--bug-seconds 60] [--clean-seconds 15]

For aarch64 + v6.1-reaper-fullmm (mrelease, 8 vCPUs): boot time, time from the guest
being ready to the first detection, and detections per minute (kernel corruption
reports and checker records). For the clean v6.1 kernel: iterations per second for
every scenario on both arches.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.arches import get_arch
from harness.kernel.resolve import resolve_kernel
from harness.machine import MachineOptions
from harness.run import RunSpec, run_one
from harness.verdict import is_corruption

OPTIONS = MachineOptions(cpus=8, memory_mb=1024)
SCENARIOS = ("mrelease", "oom", "munmap", "madvise")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bug-seconds", type=float, default=60.0)
    parser.add_argument("--clean-seconds", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oomrace-bench-race-") as tmp:
        bug = run_one(RunSpec(kernel=resolve_kernel("v6.1-reaper-fullmm", get_arch("aarch64")),
                              scenario="mrelease", options=OPTIONS,
                              duration_s=args.bug_seconds, seed=1), Path(tmp) / "bug")
        work = bug.workload.to_json()
        minutes = work["seconds"] / 60
        kernel_reports = sum(1 for r in bug.reports if is_corruption(r))
        print("aarch64 + v6.1-reaper-fullmm, mrelease, 8 vCPUs")
        print(f"  verdict                        {bug.verdict}")
        print(f"  boot to ready                  {bug.boot_seconds:.1f} s")
        first = work["first_detection_seconds"]
        print("  ready to first detection       "
              + ("none" if first is None else f"{first:.1f} s"))
        print(f"  stress time                    {work['seconds']:.0f} s, "
              f"{work['iterations']} iterations")
        print(f"  kernel corruption reports/min  {kernel_reports / minutes:.1f}")
        print(f"  checker records/min            {work['checker_corruptions'] / minutes:.1f}")
        print(f"  batches with corruption        {work['detections']}/{work['trials']}")
        print()
        print(f"clean kernel v6.1, {args.clean_seconds:.0f} s per cell: iterations per second")
        print(f"  {'scenario':<10} {'x86_64':>8} {'aarch64':>8}")
        for scenario in SCENARIOS:
            rates = []
            for arch in ("x86_64", "aarch64"):
                kernel = resolve_kernel("v6.1", get_arch(arch))
                r = run_one(RunSpec(kernel=kernel, scenario=scenario, options=OPTIONS,
                                    duration_s=args.clean_seconds, seed=1),
                            Path(tmp) / f"{scenario}-{arch}")
                w = r.workload.to_json()
                ok = r.verdict == "clean"
                rates.append(f"{w['iterations'] / w['seconds']:.1f}" if ok and w.get("seconds")
                             else r.verdict)
            print(f"  {scenario:<10} {rates[0]:>8} {rates[1]:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
