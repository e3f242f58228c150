"""Time `oomrace bisect` on the test history (tests/bisect): Debian's linux-source-6.1
with the reaper bug buried in harmless commits and a commit that breaks the build.

Prints the wall time, the number of kernel builds (new builds, and kernels found in the
build cache), the steps and the answer. Kernels built by an earlier run are cache hits:
the first run after a change to the history or the recipe is the "warm ccache" number.
Run: python benchmarks/bench_bisect.py [--arch aarch64] [--find-fix]
Takes about 10 minutes on 2 cores (warm ccache).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import bisect  # noqa: E402
from tests.bisect.test_bisect import fresh_clone, history_repo, tag_sha  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="aarch64")
    parser.add_argument("--find-fix", action="store_true")
    parser.add_argument("--calibration-batches", type=int, default=6)
    args = parser.parse_args()
    started = time.monotonic()
    history_repo()
    print(f"history repo ready in {time.monotonic() - started:.0f}s", flush=True)
    with tempfile.TemporaryDirectory(prefix="oomrace-bench-bisect-") as tmp:
        clone_start = time.monotonic()
        repo = fresh_clone(Path(tmp) / "linux")
        print(f"fresh clone in {time.monotonic() - clone_start:.0f}s", flush=True)
        good, bad = ("fixed-end", "bad-end") if args.find_fix else ("good-end", "bad-end")
        config = bisect.BisectConfig(
            repo=repo, good=good, bad=bad, arch=args.arch, scenario="mrelease",
            find_fix=args.find_fix, calibration_batches=args.calibration_batches,
            artifacts=Path(tmp) / "artifacts")
        start = time.monotonic()
        state = bisect.start(config, bisect.KernelStepRunner(config, progress=False))
        wall = time.monotonic() - start
        result = state.result or {}
        expected = tag_sha(repo, "fix" if args.find_fix else "bug")
        kernels = sum(1 for r in state.records if r.outcome.kind != "build_failed")
        print(bisect.report_text(state))
        print(f"bisect {args.arch}{' --find-fix' if args.find_fix else ''}: wall {wall:.0f}s, "
              f"kernel builds {bisect.kernel_builds(state)} "
              f"(kernels booted {kernels}, steps {len(state.records)}), "
              f"answer {'correct' if result.get('commit') == expected else 'WRONG'}, "
              f"confidence {result.get('confidence', 0):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
