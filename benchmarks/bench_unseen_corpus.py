"""Score the crash parser on logs it was never tuned on, the way the corpus test does.

The directory holds files in the shared corpus's format (`KEY: value` headers with
TITLE/ALT/TYPE, a blank line, the console log): for instance report files of
syzkaller's pkg/report/testdata/linux/report that are not in the shared corpus. Keep
it outside the repository; never read its misses to write a special case (a rule must
be general, seen on the tuning part or documented by syzkaller), or the figure stops
meaning "unseen".

Run: python benchmarks/bench_unseen_corpus.py [DIR]   (default: $OOMRACE_UNSEEN_CORPUS)
     --misses prints the misses (for a post-mortem only, after the figure is recorded).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.unit.test_crash_corpus import Score, load_case  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("dir", nargs="?", default=os.environ.get("OOMRACE_UNSEEN_CORPUS"))
    ap.add_argument("--misses", action="store_true", help="print the misses too")
    args = ap.parse_args(argv)
    if not args.dir:
        ap.error("give a directory or set OOMRACE_UNSEEN_CORPUS")
    d = Path(args.dir)
    files = sorted(p for p in d.iterdir() if p.is_file() and p.name != "README.md")
    if not files:
        print(f"no logs in {d}", file=sys.stderr)
        return 2
    score = Score()
    for path in files:
        score.add(load_case(path))
    score.report(f"unseen corpus {d}", show_misses=args.misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
