"""`oomrace bisect` on real kernels: a git history made from Debian's linux-source-6.1
with the reaper bug (0001) buried in harmless commits and one commit that breaks the
build. On aarch64 the bisect names the bug commit; on x86_64 the bad end does not
reproduce (x86 flushes anyway); `--find-fix` names the commit that applies 0002.

The history repository is built once and cached under the oomrace cache dir, keyed by
the Debian source and the patches; every test bisects in a fresh `git clone --shared`
of it, so the bisect state is always new.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import bisect, cache
from harness.kernel.build import recipes
from harness.kernel.build.source import debian_source
from harness.kernel.build.tree import apply_patch, patched_paths, unshare

from ..conftest import REPO

pytestmark = [pytest.mark.guest, pytest.mark.kernel_build, pytest.mark.slow]

HISTORY_SCHEME = 1
DEBIAN_PACKAGE = "linux-source-6.1"
BUG_PATCH = recipes.PATCHES_DIR / "0001-oom_reaper-gather-whole-mm-with-fullmm.patch"
FIX_PATCH = recipes.PATCHES_DIR / "0002-mmu_gather-fullmm-only-without-mm-users.patch"
DOC = "Documentation/admin-guide/README.rst"
BROKEN_FILE = "kernel/fork.c"  # compiled in every tinyconfig kernel

# (tag or None, subject, action). Actions: ("doc", n), ("comment", path), ("break",),
# ("unbreak",), ("patch", path). With 12 commits after the good end, git's first
# proposal is the 6th: the broken build, so the bisect must skip it.
PLAN: list[tuple[str | None, str, tuple[str, ...]]] = [
    (None, "docs: admin-guide: note 1", ("doc", "1")),
    (None, "mm/oom_kill: comment at the end of the file", ("comment", "mm/oom_kill.c")),
    (None, "docs: admin-guide: note 3", ("doc", "3")),
    (None, "mm/mmap: comment at the end of the file", ("comment", "mm/mmap.c")),
    (None, "docs: admin-guide: note 5", ("doc", "5")),
    ("broken-build", "fork: an unrelated change that breaks the build", ("break",)),
    ("build-fixed", "fork: fix the build again", ("unbreak",)),
    ("bug", "mm, oom_reaper: gather each vma with fullmm semantics", ("patch", str(BUG_PATCH))),
    (None, "docs: admin-guide: note 9", ("doc", "9")),
    (None, "mm/memory: comment at the end of the file", ("comment", "mm/memory.c")),
    (None, "docs: admin-guide: note 11", ("doc", "11")),
    ("bad-end", "docs: admin-guide: note 12", ("doc", "12")),
    (None, "docs: admin-guide: note 13", ("doc", "13")),
    ("fix", "mm, mmu_gather: only use fullmm when the mm has no users", ("patch", str(FIX_PATCH))),
    (None, "docs: admin-guide: note 15", ("doc", "15")),
    ("fixed-end", "docs: admin-guide: note 16", ("doc", "16")),
]


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _rewrite(path: Path, text: str) -> None:
    """Write a new file and rename it over `path`: a hard-linked twin keeps its data."""
    tmp = path.with_name(f".{path.name}.oomrace-new")
    tmp.write_text(text)
    shutil.copymode(path, tmp)
    os.replace(tmp, path)


def _apply(tree: Path, action: tuple[str, ...], broken_original: list[str]) -> list[str]:
    kind = action[0]
    if kind == "doc":
        p = tree / DOC
        _rewrite(p, p.read_text() + f"\n.. oomrace bisect test: note {action[1]}\n")
        return [DOC]
    if kind == "comment":
        p = tree / action[1]
        _rewrite(p, p.read_text() + "\n/* oomrace bisect test: a harmless comment */\n")
        return [action[1]]
    if kind == "break":
        p = tree / BROKEN_FILE
        broken_original.append(p.read_text())
        _rewrite(p, broken_original[0] + "\nint oomrace_broken_build = ;\n")
        return [BROKEN_FILE]
    if kind == "unbreak":
        _rewrite(tree / BROKEN_FILE, broken_original[0])
        return [BROKEN_FILE]
    if kind == "patch":
        patch = Path(action[1])
        paths = patched_paths(patch.read_text())
        for rel in paths:
            unshare(tree / rel)
        apply_patch(tree, patch)
        return paths
    raise ValueError(kind)


def _build_history(out: Path) -> None:
    source = debian_source(DEBIAN_PACKAGE)
    tree = out / "repo"
    subprocess.run(["cp", "-al", str(source.tree), str(tree)], check=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="oomrace", GIT_AUTHOR_EMAIL="oomrace@localhost",
               GIT_COMMITTER_NAME="oomrace", GIT_COMMITTER_EMAIL="oomrace@localhost")
    git(tree, "init", "-q", "-b", "main")
    # No auto gc: git detaches it, and a repack after the entry is sealed deletes loose
    # objects the manifest lists (the entry is then "damaged" and rebuilt on each use).
    git(tree, "config", "gc.auto", "0")
    git(tree, "config", "core.autocrlf", "false")
    # No automatic gc: after the commits below, git would repack the 80,000 loose objects
    # in the background, inside the sealed cache entry, which the next use then finds
    # damaged and rebuilds (minutes, each time).
    git(tree, "config", "gc.auto", "0")
    # Debian's tree ignores everything at the top level: add with -f.
    git(tree, "add", "-A", "-f")
    when = 1_700_000_000

    def commit(subject: str, tag: str | None) -> None:
        nonlocal when
        when += 3600
        stamp = f"@{when} +0000"
        git(tree, "commit", "-q", "-m", subject,
            env=dict(env, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp))
        if tag:
            git(tree, "tag", tag)

    commit(f"Debian {source.identity}", "good-end")
    broken_original: list[str] = []
    for tag, subject, action in PLAN:
        paths = _apply(tree, action, broken_original)
        git(tree, "add", "-f", "--", *paths)
        commit(subject, tag)
    status = git(tree, "status", "--porcelain")
    assert not status, status


def history_repo() -> Path:
    """The cached history repository (built on first use: a few minutes)."""
    source = debian_source(DEBIAN_PACKAGE)
    key = cache.digest("bisect-history", HISTORY_SCHEME, source.identity, PLAN,
                       cache.file_digest(BUG_PATCH), cache.file_digest(FIX_PATCH))
    return cache.entry("bisect-history", key, _build_history) / "repo"


def shared_clone(source: Path, dest: Path, checkout: bool = True) -> Path:
    """A new clone sharing `source`'s objects: its own refs and bisect state. Without
    `checkout` it has no working tree, which a bisect never needs (and the checkout of
    80,000 files costs about a minute here)."""
    no_checkout = [] if checkout else ["--no-checkout"]
    subprocess.run(["git", "clone", "-q", "--shared", *no_checkout, str(source), str(dest)],
                   check=True)
    return dest


def fresh_clone(dest: Path, checkout: bool = True) -> Path:
    """A clone of the cached history repository (see shared_clone)."""
    return shared_clone(history_repo(), dest, checkout)


def tag_sha(repo: Path, tag: str) -> str:
    return git(repo, "rev-parse", f"{tag}^{{commit}}")


@dataclass
class BisectRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    report: dict[str, object]


def oomrace_bisect(repo: Path, artifacts: Path, *args: str,
                   scenario: str | None = "mrelease") -> BisectRun:
    """`oomrace bisect` in a subprocess; scenario None for a user's reproducer in args."""
    json_path = artifacts / "bisect.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    argv = [sys.executable, "-m", "harness", "bisect", "--repo", str(repo),
            *(["--scenario", scenario] if scenario else []), "--artifacts", str(artifacts),
            "--json", str(json_path), *args]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.monotonic() - started
    report = json.loads(json_path.read_text()) if json_path.is_file() else {}
    print(proc.stdout)
    print(proc.stderr[-5000:], file=sys.stderr)
    return BisectRun(proc.returncode, proc.stdout, proc.stderr, seconds, report)


@pytest.mark.timeout(3600)
def test_bisect_names_the_bug_commit_on_aarch64(tmp_path: Path) -> None:
    repo = fresh_clone(tmp_path / "linux", checkout=False)  # no working tree at all
    head = git(repo, "rev-parse", "HEAD")
    run = oomrace_bisect(repo, tmp_path / "artifacts", "--arch", "aarch64",
                         "--good", "good-end", "--bad", "bad-end")
    assert run.returncode == 0, run.stderr
    assert git(repo, "rev-parse", "HEAD") == head
    result = run.report["result"]
    assert isinstance(result, dict)
    assert result["commit"] == tag_sha(repo, "bug"), run.stdout
    assert "gather each vma with fullmm" in str(result["subject"])
    assert float(result["confidence"]) >= 0.95, run.stdout
    steps = run.report["steps"]
    assert isinstance(steps, list)
    calibration = steps[0]["outcome"]
    assert isinstance(calibration, dict)
    assert calibration["trials"] == bisect.CALIBRATION_TRIALS  # trials of 5 iterations
    assert calibration["iterations"] == bisect.CALIBRATION_TRIALS * bisect.TRIAL_ITERATIONS
    broken = tag_sha(repo, "broken-build")
    assert any(s["commit"] == broken and s["verdict"] == "skip" for s in steps), run.stdout
    assert "is the first bad commit" not in run.stderr  # our report, not git's noise
    log = git(repo, "bisect", "log")
    assert f"# first bad commit: [{tag_sha(repo, 'bug')}]" in log
    print(f"aarch64 bisect: {run.seconds:.0f} s, {len(steps)} steps")


@pytest.mark.full  # an x86_64 6.1 build; the refusal logic is unit-tested (test_bisect_unit)
@pytest.mark.timeout(3600)
def test_bisect_refuses_a_bad_end_that_does_not_reproduce_on_x86_64(tmp_path: Path) -> None:
    repo = fresh_clone(tmp_path / "linux", checkout=False)
    run = oomrace_bisect(repo, tmp_path / "artifacts", "--arch", "x86_64",
                         "--good", "good-end", "--bad", "bad-end")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "did not reproduce" in run.stderr and "no bisect on a non-reproducing bug" in run.stderr
    # The repository is left as it was: no bisect in progress.
    assert not (repo / ".git" / "BISECT_START").exists()
    print(f"x86_64 refusal: {run.seconds:.0f} s")


@pytest.mark.full  # a second whole bisect; its logic is unit-tested (test_bisect_unit)
@pytest.mark.timeout(3600)
def test_find_fix_names_the_fix_commit_on_aarch64(tmp_path: Path) -> None:
    repo = fresh_clone(tmp_path / "linux", checkout=False)
    run = oomrace_bisect(repo, tmp_path / "artifacts", "--arch", "aarch64", "--find-fix",
                         "--bad", "bad-end", "--good", "fixed-end")
    assert run.returncode == 0, run.stderr
    result = run.report["result"]
    assert isinstance(result, dict)
    assert result["commit"] == tag_sha(repo, "fix"), run.stdout
    assert float(result["confidence"]) >= 0.95, run.stdout
    print(f"find-fix bisect: {run.seconds:.0f} s")
