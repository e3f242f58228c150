"""Time `oomrace bisect` on the test history (tests/bisect): Debian's linux-source-6.1
with the reaper bug in the middle of 16 commits and a commit that breaks the build,
aarch64, `--confidence 0.99` by default, on incremental builds with a warm ccache.

Before the timed bisect it builds the good end once (the "warm" state: ccache filled and
the history's persistent build directory holding a build), then forgets the history's
built kernels (kbuild cache entries of its commits; --keep-kernels keeps them), so every
step really builds, incrementally. Prints the per-step split into build, boot and stress,
the wall time, the load average at the start and the end, and whether the answer is right.
Run: python benchmarks/bench_bisect.py [--arch aarch64] [--find-fix] [--confidence C]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import bisect, cache  # noqa: E402
from harness.bisect.state import BisectState  # noqa: E402
from harness.kernel.build import builder, prune, recipes  # noqa: E402
from tests.bisect.test_bisect import fresh_clone, git, history_repo, tag_sha  # noqa: E402


def forget_history_kernels(repo: Path) -> int:
    """Remove the kbuild cache entries built from the history's commits."""
    commits = set(git(repo, "rev-list", "--all").split())
    removed = 0
    kind = cache.cache_root() / prune.KIND
    for entry in kind.iterdir():
        record = entry / "kernel.json"
        if entry.name.startswith(".") or not record.is_file():
            continue
        identity = str(json.loads(record.read_text()).get("source_identity", ""))
        if identity.removeprefix("git:").split("+")[0] in commits:
            with cache.locked(kind / f".{entry.name}.lock"):
                shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def warm_up(repo: Path, arch: str) -> float:
    """Build the good end once: ccache and the history's build directory are warm."""
    started = time.monotonic()
    recipe = dataclasses.replace(recipes.load_recipe("v6.1"), patches=())
    builder.build(recipe, arch, source_path=repo, progress=False,
                 commit=tag_sha(repo, "good-end"))
    return time.monotonic() - started


def compiled(image: str | None) -> str:
    if not image:
        return "-"
    record = Path(image).parent / "kernel.json"
    if not record.is_file():
        return "-"
    return str(json.loads(record.read_text()).get("objects_compiled", "-"))


def step_table(state: BisectState) -> str:
    lines = [f"{'commit':<12}  {'role':<8}  {'verdict':<7}  {'build':>6}  {'objs':>5}  "
             f"{'boot':>5}  {'stress':>6}  {'trials':>6}  {'total':>6}"]
    for r in state.records:
        o = r.outcome
        boot = o.boot_seconds or 0.0
        stress = max(0.0, o.seconds - o.build_seconds - boot) if o.kind != "build_failed" \
            else 0.0
        built = f"{o.build_seconds:.0f}s" if o.kernel_built or o.kind == "build_failed" \
            else "hit"
        lines.append(f"{r.commit[:12]:<12}  {r.role:<8}  {r.verdict:<7}  {built:>6}  "
                     f"{compiled(o.kernel):>5}  {boot:>4.1f}s  {stress:>5.0f}s  "
                     f"{o.trials:>6}  {o.seconds:>5.0f}s")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="aarch64")
    parser.add_argument("--find-fix", action="store_true")
    parser.add_argument("--confidence", type=float, default=0.99)
    parser.add_argument("--calibration-batches", type=int, default=None,
                        help="trials on the bad end (default: the bisect's)")
    parser.add_argument("--trial-iterations", type=int, default=None,
                        help="iterations per trial (default: the bisect's)")
    parser.add_argument("--keep-kernels", action="store_true",
                        help="keep the history's built kernels (cache hits: no builds)")
    args = parser.parse_args()
    started = time.monotonic()
    history_repo()
    print(f"history repo ready in {time.monotonic() - started:.0f}s", flush=True)
    with tempfile.TemporaryDirectory(prefix="oomrace-bench-bisect-") as tmp:
        repo = fresh_clone(Path(tmp) / "linux", checkout=False)
        if not args.keep_kernels:
            forget_history_kernels(repo)
            print(f"warm-up build of the good end: {warm_up(repo, args.arch):.0f}s; "
                  f"forgot {forget_history_kernels(repo)} kernel(s) of the history",
                  flush=True)
        good, bad = ("fixed-end", "bad-end") if args.find_fix else ("good-end", "bad-end")
        config = bisect.BisectConfig(
            repo=repo, good=good, bad=bad, arch=args.arch, scenario="mrelease",
            find_fix=args.find_fix, calibration_batches=args.calibration_batches,
            trial_iterations=args.trial_iterations,
            confidence=args.confidence, artifacts=Path(tmp) / "artifacts")
        load_start = os.getloadavg()
        start = time.monotonic()
        state = bisect.start(config, bisect.KernelStepRunner(config, progress=False))
        wall = time.monotonic() - start
        load_end = os.getloadavg()
        result = state.result or {}
        expected = tag_sha(repo, "fix" if args.find_fix else "bug")
        print(bisect.report_text(state))
        print(step_table(state))
        steps = state.records
        build_s = sum(r.outcome.build_seconds for r in steps)
        boot_s = sum(r.outcome.boot_seconds or 0.0 for r in steps)
        print(f"bisect {args.arch}{' --find-fix' if args.find_fix else ''} --confidence "
              f"{args.confidence}: wall {wall:.0f}s (build {build_s:.0f}s, boot {boot_s:.0f}s, "
              f"stress and the rest {wall - build_s - boot_s:.0f}s), kernel builds "
              f"{bisect.kernel_builds(state)}, steps {len(steps)}, answer "
              f"{'correct' if result.get('commit') == expected else 'WRONG'}, confidence "
              f"{result.get('confidence', 0):.3f}; load average {load_start[0]:.1f} at the "
              f"start, {load_end[0]:.1f} at the end, on {os.cpu_count()} cores", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
