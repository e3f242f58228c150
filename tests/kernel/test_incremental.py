"""`kernel build --source DIR` of a git tree, incremental: a tree touched in one file
rebuilds in seconds in our persistent build directory, and DIR is left as it was.

The tree is a clone of the bisect tests' history (Debian's linux-source-6.1 committed
with `git add -A -f`), at a commit of its own so that the first build really happens in
the build directory (ccache makes it a warm build: the v6.1 recipe compiled these files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bisect.test_bisect import fresh_clone, git
from tests.conftest import REPO

pytestmark = [pytest.mark.kernel_build, pytest.mark.slow, pytest.mark.timeout(3600)]

TOUCHED = "mm/oom_kill.c"


def _build(tree: Path, out: Path) -> tuple[dict[str, object], float]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "harness", "kernel", "build", "--source", str(tree),
         "--arch", "aarch64", "--no-progress", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(out.read_text())[0]
    record = json.loads((Path(built["directory"]) / "kernel.json").read_text())
    return record, seconds


def _snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file of the tree, .git included."""
    found = {}
    for dirpath, _dirs, names in os.walk(tree):
        for name in names:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            found[os.path.relpath(p, tree)] = (st.st_size, st.st_mtime_ns)
    return found


def test_one_file_touched_rebuilds_in_seconds_and_the_tree_is_unchanged(
        tmp_path: Path) -> None:
    tree = fresh_clone(tmp_path / "linux")
    git(tree, "checkout", "-q", "-b", "mine", "good-end")
    doc = tree / "Documentation" / "admin-guide" / "README.rst"
    doc.write_text(doc.read_text() + f"\n.. {tmp_path.name}\n")  # a commit no cache has
    git(tree, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "mine")
    first, first_s = _build(tree, tmp_path / "first.json")
    assert first["local_changes"] == []
    print(f"first build (in a new or reused build directory): {first_s:.0f} s, "
          f"{first['objects_compiled']} of {first['objects']} objects compiled")

    touched = tree / TOUCHED
    touched.write_text(touched.read_text() + "\n/* touched by the incremental test */\n")
    status = git(tree, "status", "--porcelain", "--ignored")
    assert status == f"M {TOUCHED}"  # (git() strips the leading space)
    snapshot = _snapshot(tree)
    second, second_s = _build(tree, tmp_path / "second.json")
    print(f"one file touched: rebuilt in {second_s:.1f} s, {second['objects_compiled']} "
          f"objects compiled")
    assert second["local_changes"] == [TOUCHED]
    assert second["source_identity"] != first["source_identity"]
    assert second["build_dir"] == first["build_dir"]
    # make's own dependency tracking: the touched file's object, not the tree.
    assert 1 <= int(str(second["objects_compiled"])) <= 20, second
    # DIR byte for byte: what git sees, and every file's size and mtime, .git included.
    assert git(tree, "status", "--porcelain", "--ignored") == status
    assert _snapshot(tree) == snapshot
