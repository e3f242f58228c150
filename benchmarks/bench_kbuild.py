"""Time kernel builds: cold (empty ccache), patch-only rebuild (warm ccache), cache hit.

Uses a scratch cache (so the cold build is really cold) that shares the unpacked
Debian source with the normal cache, and prints one line per measurement.
Run: python benchmarks/bench_kbuild.py [--arch aarch64] [--arch x86_64]
Takes several minutes per arch on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import cache  # noqa: E402
from harness.kernel.build import builder, recipes, source  # noqa: E402


def timed(recipe: str, arch: str) -> float:
    start = time.monotonic()
    builder.build(recipe, arch, progress=False)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", action="append", default=[])
    parser.add_argument("--keep", action="store_true", help="keep the scratch cache")
    args = parser.parse_args()
    arches = args.arch or ["aarch64", "x86_64"]
    shared_sources = cache.cache_root() / "sources"
    scratch = Path(tempfile.mkdtemp(prefix="oomrace-bench-kbuild-"))
    if shared_sources.is_dir():
        (scratch / "sources").symlink_to(shared_sources)
    os.environ["OOMRACE_CACHE"] = str(scratch)
    try:
        source.resolve_source(recipes.load_recipe("v6.1").source)  # unpack outside the timing
        for arch in arches:
            cold = timed("v6.1", arch)
            patched = timed("v6.1-reaper-fullmm", arch)
            hit = timed("v6.1-reaper-fullmm", arch)
            print(
                f"{arch}: cold {cold:.0f}s, patch-only rebuild {patched:.0f}s, "
                f"cache hit {hit:.2f}s",
                flush=True,
            )
    finally:
        if args.keep:
            print(f"scratch cache kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
