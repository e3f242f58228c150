"""Time to the first detection of the seed bug on its own kernel, over several runs.

    python benchmarks/bench_seed_kernel.py [--runs 5] [--max-seconds 120]

Each run boots aarch64 Linux 4.14.2 (recipe v4.14.2, 8 vCPUs on one host CPU as
`oomrace run` does for stress, page_poison=1) and runs
the `oom` scenario (memcg OOM killer + oom_reaper) until the first batch that shows
corruption. Prints per run: boot time, seconds from the guest being ready to the first
detection, batches and iterations until then; then the median time to first detection.
Needs the 4.14.2 tarball (../shared/linux or $OOMRACE_KERNEL_SOURCES).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness.arches import get_arch
from harness.kernel.resolve import resolve_kernel
from harness.machine import MachineOptions
from harness.run import RunSpec, run_one


def options(host_cpus: int) -> MachineOptions:
    return MachineOptions(cpus=8, memory_mb=1024, host_cpus=host_cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--kernel", default="v4.14.2")
    parser.add_argument("--host-cpus", type=int, default=1,
                        help="host CPUs for QEMU (oomrace run's default for stress: 1; 0: all)")
    args = parser.parse_args()
    firsts: list[float] = []
    print(f"aarch64 {args.kernel}, oom scenario, 8 vCPUs on {args.host_cpus or 'all'} host "
          "CPU(s), stop at the first detection")
    print(f"  {'run':>3} {'boot s':>7} {'first s':>8} {'batches':>8} {'iterations':>10}  verdict")
    with tempfile.TemporaryDirectory(prefix="oomrace-bench-seed-") as tmp:
        for i in range(args.runs):
            spec = RunSpec(kernel=resolve_kernel(args.kernel, get_arch("aarch64")), scenario="oom",
                           options=options(args.host_cpus), duration_s=args.max_seconds, seed=i + 1,
                           stop_on_first_detection=True)
            r = run_one(spec, Path(tmp) / f"run{i}")
            w = r.workload.to_json()
            first = w.get("first_detection_seconds")
            if first is not None:
                firsts.append(first)
            boot = f"{r.boot_seconds:.1f}" if r.boot_seconds is not None else "-"
            shown = f"{first:.1f}" if first is not None else "none"
            print(f"  {i + 1:>3} {boot:>7} {shown:>8} {w.get('trials', 0):>8} "
                  f"{w.get('iterations', 0):>10}  {r.verdict}", flush=True)
    if firsts:
        print(f"median time to first detection: {statistics.median(firsts):.1f} s "
              f"({len(firsts)}/{args.runs} runs detected within {args.max_seconds:.0f} s)")
    else:
        print(f"no run detected the bug within {args.max_seconds:.0f} s")
    return 0 if len(firsts) == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
