"""Wall time of a lab matrix run serially (-n 1) and in parallel (-n 2), and the speed-up.

    python benchmarks/bench_lab.py [--matrix configs/ci-matrix.toml] [--jobs 1 --jobs 2]

Each run is a full `oomrace lab` (kernels and initramfs come from the cache, so this is
the guests' time plus the harness's); the nights are kept under a temporary folder and
their verdicts are printed so a speed-up that lost cells shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_night(matrix: Path, out: Path, jobs: int) -> tuple[float, dict[str, object]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness", "lab", str(matrix), "--out",
                           str(out), "-n", str(jobs)], capture_output=True, text=True, env=env,
                          cwd=REPO, check=False)
    seconds = time.monotonic() - started
    if not (out / "summary.json").is_file():
        sys.exit(f"lab -n {jobs} wrote no summary (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return seconds, json.loads((out / "summary.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, default=REPO / "configs" / "ci-matrix.toml")
    parser.add_argument("--jobs", type=int, action="append", default=None)
    args = parser.parse_args()
    jobs_list = args.jobs or [1, 2]
    rows = []
    with tempfile.TemporaryDirectory(prefix="oomrace-bench-lab-") as tmp:
        for jobs in jobs_list:
            seconds, summary = run_night(args.matrix, Path(tmp) / f"n{jobs}", jobs)
            totals = summary["totals"]
            assert isinstance(totals, dict)
            cells = summary["cells"]
            assert isinstance(cells, list)
            cell_seconds = sum(float(c.get("seconds") or 0) for c in cells)
            rows.append((jobs, seconds, cell_seconds, totals))
            print(f"-n {jobs}: {seconds:.0f} s wall, {cell_seconds:.0f} s of cells, "
                  f"{totals['passed']} passed / {totals['failed']} failed", flush=True)
    base = rows[0][1]
    print(f"\nmatrix {args.matrix.name}, {os.cpu_count()} cores\n")
    print("| jobs | wall | sum of cell times | speed-up | cells passed |")
    print("| --- | --- | --- | --- | --- |")
    for jobs, seconds, cell_seconds, totals in rows:
        print(f"| {jobs} | {seconds:.0f} s | {cell_seconds:.0f} s | {base / seconds:.2f}x | "
              f"{totals['passed']}/{totals['planned']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
