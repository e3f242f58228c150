"""A short history for bisecting with the user's own reproducer: four commits on top of
the good end of test_bisect's history (Debian's 6.1, so its build is shared with that
test), one of which makes `echo 4 > /proc/sys/vm/drop_caches` oops every time. None of
our stress scenarios writes drop_caches, so only a user reproducer finds it.

Cached under the oomrace cache like test_bisect's history; a clone shares its objects."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness import cache

from . import test_bisect as base

HISTORY_SCHEME = 2  # 2: its own hard-linked objects, no alternates into the upstream
BUG_PATCH = Path(__file__).parent / "data" / "drop-caches-names-what.patch"

# (tag or None, subject, action) as in test_bisect.PLAN. With four commits after the
# good end, git tests the bug commit first and then the one before it: two builds.
PLAN: list[tuple[str | None, str, tuple[str, ...]]] = [
    (None, "docs: admin-guide: repro note 1", ("doc", "r1")),
    ("repro-bug", "fs/drop_caches: say what was dropped", ("patch", str(BUG_PATCH))),
    (None, "mm/memory: comment at the end of the file", ("comment", "mm/memory.c")),
    ("repro-bad", "docs: admin-guide: repro note 4", ("doc", "r4")),
]


def _build(out: Path, upstream: Path) -> None:
    tree = out / "repo"
    # A local clone hard-links the upstream's objects: no alternates path into another
    # cache entry, which may be rebuilt (or removed) under us.
    subprocess.run(["git", "-c", "gc.auto=0", "clone", "-q", "--no-checkout", str(upstream),
                    str(tree)], check=True)
    base.git(tree, "config", "gc.auto", "0")  # no repack inside a sealed cache entry
    base.git(tree, "checkout", "-q", "-b", "repro", "good-end")
    base.git(tree, "tag", "repro-good", "good-end")
    env = dict(os.environ, GIT_AUTHOR_NAME="oomrace", GIT_AUTHOR_EMAIL="oomrace@localhost",
               GIT_COMMITTER_NAME="oomrace", GIT_COMMITTER_EMAIL="oomrace@localhost")
    when = 1_800_000_000  # fixed dates: the same plan gives the same commits everywhere
    for tag, subject, action in PLAN:
        paths = base._apply(tree, action, [])
        base.git(tree, "add", "-f", "--", *paths)
        when += 3600
        stamp = f"@{when} +0000"
        base.git(tree, "commit", "-q", "-m", subject,
                 env=dict(env, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp))
        if tag:
            base.git(tree, "tag", tag)
    status = base.git(tree, "status", "--porcelain")
    assert not status, status


def history_repo() -> Path:
    """The cached repro history (a clone of test_bisect's history plus four commits)."""
    upstream = base.history_repo()
    key = cache.digest("repro-history", HISTORY_SCHEME, str(upstream), PLAN,
                       cache.file_digest(BUG_PATCH))
    return cache.entry("repro-history", key, lambda out: _build(out, upstream)) / "repo"


def fresh_clone(dest: Path) -> Path:
    """A clone without a working tree: a bisect reads commits from git's objects."""
    return base.shared_clone(history_repo(), dest, checkout=False)
