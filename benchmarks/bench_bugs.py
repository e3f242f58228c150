"""The known-bug table's figures: each ready bug of the corpus on its arches.

    python benchmarks/bench_bugs.py [ID ...] [--runs 3] [--arch A]

Runs `oomrace bugs` (configs/bugs.toml): per bug and arch, the bug kernel `--runs` times,
each run to its first detection (so a median time to detection), then the fix kernel for
the entry's fix budget. Prints the detection table: detected/trials with the exact 95%
interval, the median seconds from guest ready to the first detecting batch's end, the
fix's clean batches and iterations with the 95% upper bound on its rate, the evidence.
Needs the 4.14.2 tarball (../shared/linux or $OOMRACE_KERNEL_SOURCES) for its entries.
"""

from __future__ import annotations

import argparse
import sys

from harness.cli import main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ids", nargs="*", help="corpus entries (default: every ready one)")
    p.add_argument("--runs", type=int, default=3, help="bug runs per arch (default 3)")
    p.add_argument("--arch", action="append", default=None, help="arches (repeatable)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """The table is printed; each run's folder stays under oomrace-artifacts/."""
    argv = ["bugs", *args.ids, "--runs", str(args.runs)]
    for arch in args.arch or []:
        argv += ["--arch", arch]
    return main(argv)


if __name__ == "__main__":
    sys.exit(run(parse_args(sys.argv[1:])))
