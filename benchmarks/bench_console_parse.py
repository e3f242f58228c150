"""The console log's parse cost per stress batch, over a long run: the old way (read
console.log and parse it from the start after every batch) against the new one (one
stream reader per guest, fed the bytes QEMU appended since the last batch).

A run is simulated on a file that grows as a guest's console.log does: per batch, filler
lines (the recorded boot log's non-report lines, re-stamped) and real recorded reports
(the `pagealloc: memory corruption` report of tests/data/kernel_logs and lkdtm's reports
from tests/data/lkdtm) are appended, then the workload's question is asked: how many new
memory-corruption reports did this batch print? Both ways must give the same counts.

    python benchmarks/bench_console_parse.py [--batches 300] [--reports 2] [--filler 150]
        [--way old] [--way new]   (default both)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import kernel_log, verdict  # noqa: E402

DATA = REPO / "tests" / "data"
_STAMP = re.compile(r"^\[ *\d+\.\d+\]")
SHOWN = (1, 100, 200, 300)


def _report_blocks() -> list[list[str]]:
    """The reports of the recorded logs, each as its raw lines (timestamps kept)."""
    blocks = []
    for path in [DATA / "kernel_logs" / "aarch64-v6.1-reaper-fullmm-mrelease.log",
                 *sorted((DATA / "lkdtm").glob("*/*.log"))]:
        raw = path.read_text(errors="replace").split("\n")
        for report in kernel_log.parse("\n".join(raw)).reports:
            end = report.start_line + len(report.lines)
            blocks.append(raw[report.start_line:end])
    return blocks


def _filler() -> list[str]:
    """Console lines that start no report: the recorded boot log's, stamped."""
    raw = (DATA / "kernel_logs" / "aarch64-v6.1-reaper-fullmm-mrelease.log").read_text()
    return [ln.rstrip("\r") for ln in raw.split("\n")[:130] if _STAMP.match(ln)]


def _batch_text(n: int, reports: list[list[str]], filler: list[str], n_reports: int,
                n_filler: int) -> str:
    """What batch `n` prints on the console: filler and `n_reports` recorded reports,
    stamped with this batch's time."""
    lines = [filler[(n * 7 + i) % len(filler)] for i in range(n_filler)]
    for k in range(n_reports):
        at = (k + 1) * len(lines) // (n_reports + 1)
        lines[at:at] = reports[(n * n_reports + k) % len(reports)]
    stamp = f"[{100.0 + n:12.6f}]"
    return "".join(_STAMP.sub(stamp, ln) + "\n" for ln in lines)


def _old_way(console: Path) -> Callable[[], int]:
    """What the workload did: read the log and parse it all, count its corruptions."""
    seen = 0

    def batch_end() -> int:
        nonlocal seen
        text = console.read_text(errors="replace")
        now = sum(1 for r in kernel_log.parse(text).reports if verdict.is_corruption(r))
        new, seen = now - seen, now
        return new
    return batch_end


def _new_way(console: Path) -> Callable[[], int] | None:
    """One reader for the run: the reports since the last batch's cursor."""
    reader_type = getattr(kernel_log, "ConsoleFile", None)
    if reader_type is None:
        return None
    reader = reader_type(console)
    cursor = reader.cursor()

    def batch_end() -> int:
        nonlocal cursor
        new, cursor = reader.since(cursor)
        return verdict.corruption_count(new)
    return batch_end


def simulate(way: Callable[[Path], Callable[[], int] | None], args: argparse.Namespace,
             reports: list[list[str]], filler: list[str]) -> tuple[list[float], list[int]] | None:
    """Per-batch seconds spent on the console and per-batch new corruption counts."""
    with tempfile.TemporaryDirectory() as tmp:
        console = Path(tmp) / "console.log"
        with console.open("w") as f:
            f.write("\n".join(filler) + "\n")
        batch_end = way(console)
        if batch_end is None:
            return None
        costs, counts = [], []
        for n in range(1, args.batches + 1):
            with console.open("a") as f:
                f.write(_batch_text(n, reports, filler, args.reports, args.filler))
            started = time.perf_counter()
            counts.append(batch_end())
            costs.append(time.perf_counter() - started)
        return costs, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--reports", type=int, default=2, help="reports per batch")
    parser.add_argument("--filler", type=int, default=150, help="filler lines per batch")
    parser.add_argument("--way", action="append", choices=("old", "new"), default=None)
    args = parser.parse_args()
    ways = args.way or ["old", "new"]
    reports, filler = _report_blocks(), _filler()
    batch_bytes = len(_batch_text(1, reports, filler, args.reports, args.filler))
    print(f"{args.batches} batches, {args.reports} recorded reports + {args.filler} filler "
          f"lines each (~{batch_bytes // 1024} KiB a batch, "
          f"~{batch_bytes * args.batches / 2**20:.1f} MiB at the end)")
    shown = [n for n in SHOWN if n <= args.batches]
    print(f"{'way':<6}" + "".join(f"{f'batch {n}':>12}" for n in shown) + f"{'total':>10}")
    results = {}
    for name, way in (("old", _old_way), ("new", _new_way)):
        if name not in ways:
            continue
        got = simulate(way, args, reports, filler)
        if got is None:
            print(f"{name:<6}(not in this tree)")
            continue
        costs, counts = got
        results[name] = counts
        print(f"{name:<6}" + "".join(f"{costs[n - 1] * 1e3:>10.2f}ms" for n in shown)
              + f"{sum(costs):>9.2f}s")
    if len(results) == 2 and results["old"] != results["new"]:
        print("the two ways counted different reports per batch", file=sys.stderr)
        return 1
    counted = {name: sum(counts) for name, counts in results.items()}
    print(f"corruption reports counted: {counted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
