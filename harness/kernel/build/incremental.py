"""Incremental kernel builds: a persistent build directory per (source, arch, config,
compiler), reused by every build of that source, so make's own dependency tracking
rebuilds only what a new commit or an edit changed.

A build directory lives in ``cache_root()/kbuild-dirs/<key>``:

- for a git working tree (``--source DIR`` of a git checkout, every bisect step), ``src/``
  is a clone of our own (``git clone --local --no-checkout``: the user's object files are
  hard-linked, nothing is written into their repository; commits it lacks later are
  fetched) and ``src/build`` the ``O=`` directory. It is shared by every clone of the same
  history (the key names the history's root commits, not the path), so a bisect in a
  fresh clone starts from the last build of that history. A build checks the wanted
  commit out there with ``git checkout``, which rewrites only the files that differ from
  the last build (make compares mtimes: a file rewritten unchanged would be rebuilt, and
  everything that includes it). The user's
  uncommitted changes are copied over it (only the files whose bytes differ), then the
  compat fixes and patches are applied, and the result is committed in the clone, so the
  next checkout moves from exactly what was built and touches only what differs;
- for a tree that is not a git checkout, built without patches, the tree is read in place
  (``make -C DIR O=<dir>/build``) and never written.

The key leaves out the commit and the patches: those are what changes from one build to
the next. A build directory is used by one build at a time (a lock beside it); the
least recently used are removed beyond prune.max_build_dirs() (``oomrace cache prune`` for
more).
Each kernel build still gets its own sealed cache entry (kbuild/<key>) recording the
commit, config, patches and compiler, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ... import atomicio, cache, proc, schema, signals
from ...errors import KernelError
from . import prune
from .source import SOURCE_TIMEOUT, Source
from .tree import CompatFix, apply_compat, apply_patch, patched_paths
from .tuxmake import BUILD_SUBDIR

log = logging.getLogger(__name__)

_COMMITTER = {
    "GIT_AUTHOR_NAME": "oomrace", "GIT_AUTHOR_EMAIL": "oomrace@localhost",
    "GIT_COMMITTER_NAME": "oomrace", "GIT_COMMITTER_EMAIL": "oomrace@localhost",
    "GIT_AUTHOR_DATE": "@0 +0000", "GIT_COMMITTER_DATE": "@0 +0000",
}


@dataclass(frozen=True)
class BuildDir:
    """One persistent build directory: `tree` is what make reads, `build` its O=."""

    key: str
    path: Path
    in_place: bool  # True: `tree` is the user's tree itself, read only

    @property
    def clone(self) -> Path:
        return self.path / "src"

    @property
    def lock(self) -> Path:
        return self.path.parent / f".{self.key}.lock"

    def tree_for(self, source: Source) -> Path:
        return source.tree if self.in_place else self.clone

    def build_for(self, source: Source) -> Path:
        return self.path / BUILD_SUBDIR if self.in_place else self.clone / BUILD_SUBDIR


@dataclass(frozen=True)
class Checkout:
    """What a build directory holds for one build."""

    tree: Path
    build: Path
    commit: str | None  # the commit built in our clone (patches and local changes in it)
    overlaid: tuple[str, ...]  # the user's uncommitted paths copied over the commit
    compat: tuple[str, ...]  # compat fixes applied


def incremental(source: Source, patched: bool) -> bool:
    """Whether a build of `source` goes through a persistent build directory: a git
    working tree always; a plain tree when nothing has to be patched into it."""
    if source.repo is not None and source.commit is not None:
        return True
    return source.kind == "tree" and not patched


def build_dir_key(source: Source, arch: str, config_key: str, compiler: str) -> str:
    return cache.digest("kbuild-dir", _origin(source), arch, config_key, compiler)


def _origin(source: Source) -> str:
    """What a build directory is for: a plain tree's path, or a git history's root
    commits (every clone of linux.git shares one build directory per config)."""
    if source.repo is None or source.commit is None:
        return f"tree:{source.tree}"
    roots = proc.run(["git", "-C", str(source.repo), "rev-list", "--max-parents=0",
                      source.commit], timeout=SOURCE_TIMEOUT,
                     env=dict(os.environ, GIT_OPTIONAL_LOCKS="0")).stdout.split()
    return "git:" + ",".join(sorted(roots))


@contextlib.contextmanager
def held(source: Source, key: str) -> Iterator[BuildDir]:
    """The build directory `key`, locked for one build; its record updated at the end,
    and the least recently used directories beyond the limit removed."""
    bd = BuildDir(key, prune.build_dirs_root() / key, in_place=source.repo is None)
    with cache.locked(bd.lock):
        bd.path.mkdir(exist_ok=True)
        _after_a_kill(bd)
        _write_record(bd, source, "building")
        try:
            yield bd
        finally:
            _write_record(bd, source, "idle")
    prune.prune_build_dirs(max_dirs=prune.max_build_dirs(), keep=(key,))


def _write_record(bd: BuildDir, source: Source, state: str) -> None:
    atomicio.write_json(bd.path / prune.RECORD, schema.versioned({
        "origin": str(source.repo or source.tree), "in_place": bd.in_place,
        "last_commit": source.commit, "state": state, "last_used": time.time(),
    }))


def _after_a_kill(bd: BuildDir) -> None:
    """A build killed outright (SIGKILL: no `finally`) may have left an object half
    written and newer than its source, which make would take as up to date: remove every
    object written since that build started. (Ctrl-C and SIGTERM need nothing: make
    deletes the target it was building.)"""
    record = atomicio.read_json_object(bd.path / prune.RECORD) or {}
    started = record.get("last_used")
    if record.get("state") != "building" or not isinstance(started, int | float):
        return
    log.warning("build directory %s: the last build there was killed; recompiling what "
                "it compiled", bd.path)
    for dirpath, dirnames, names in os.walk(bd.path):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in names:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if name.endswith(".o") and os.stat(path).st_mtime >= started:
                    os.unlink(path)


# --- our clone -------------------------------------------------------------------------


def _git(tree: Path, *args: str) -> str:
    # A git command in our clone is let finish on SIGTERM: cut short it could leave
    # index.lock behind (removed anyway on the next use, under the directory's lock).
    with signals.deferred():
        done = proc.run(["git", "-C", str(tree), *args], check=False, timeout=SOURCE_TIMEOUT,
                        env=dict(os.environ, GIT_OPTIONAL_LOCKS="0", **_COMMITTER))
    if done.returncode != 0:
        raise KernelError(f"git {' '.join(args[:3])} failed in our build clone {tree}: "
                          f"{done.output.strip()[-1500:]}")
    return done.stdout


def _ensure_clone(bd: BuildDir, repo: Path, commit: str) -> None:
    clone = bd.clone
    if (clone / ".git" / "HEAD").is_file():
        (clone / ".git" / "index.lock").unlink(missing_ok=True)  # a killed git's
        present = proc.run(["git", "-C", str(clone), "cat-file", "-e", f"{commit}^{{commit}}"],
                           check=False)
        if present.returncode != 0:  # another clone of the history, or newer commits
            _git(clone, "fetch", "-q", "--no-tags", str(repo), commit)
        return
    shutil.rmtree(clone, ignore_errors=True)
    with signals.deferred():
        proc.run(["git", "clone", "-q", "--local", "--no-checkout", str(repo), str(clone)],
                 timeout=SOURCE_TIMEOUT)
    # The O= directory sits inside the clone (kbuild then names sources `../x.c`, the
    # same in every build: ccache hits across build directories); git leaves it alone.
    # No detached auto gc outliving the build (our clone gains one small commit a build).
    _git(clone, "config", "gc.auto", "0")
    (clone / ".git" / "info").mkdir(exist_ok=True)
    (clone / ".git" / "info" / "exclude").write_text(f"/{BUILD_SUBDIR}/\n")


def check_out(bd: BuildDir, source: Source, compat: Sequence[CompatFix],
              patches: Sequence[Path], log_file: IO[str]) -> Checkout:
    """Make the build directory hold `source` with `compat` and `patches` applied."""
    if bd.in_place:
        return Checkout(source.tree, bd.build_for(source), None, (), ())
    assert source.repo is not None and source.commit is not None
    _ensure_clone(bd, source.repo, source.commit)
    clone = bd.clone
    started = time.monotonic()
    _git(clone, "checkout", "-q", "-f", "--detach", source.commit)
    _git(clone, "clean", "-fdq")  # what an interrupted build left (build/ is excluded)
    overlaid = overlay(clone, source.tree, source.dirty)
    applied = tuple(f.patch.name for f in compat if apply_compat(clone, f, log_file))
    touched = list(overlaid)
    for fix in compat:
        if fix.patch.name in applied:
            touched += patched_paths(fix.patch.read_text(errors="replace"))
    for patch in patches:
        apply_patch(clone, patch, log_file)
        touched += patched_paths(patch.read_text(errors="replace"))
    commit = source.commit
    if touched:  # committed, so the next checkout starts from exactly this tree
        _git(clone, "add", "-A", "-f", "--", *sorted(set(touched)))
        _git(clone, "commit", "-q", "--no-verify", "--allow-empty", "-m",
             f"oomrace build of {source.commit[:12]}: {len(overlaid)} local change(s), "
             f"{len(applied)} compat fix(es), {len(patches)} patch(es)")
        commit = _git(clone, "rev-parse", "HEAD").strip()
    log_file.write(f"# build directory {bd.path}: {source.commit} checked out in "
                   f"{time.monotonic() - started:.1f} s, {len(overlaid)} local change(s) "
                   f"copied over it\n")
    return Checkout(clone, clone / BUILD_SUBDIR, commit, overlaid, applied)


def overlay(dest: Path, src: Path, paths: Sequence[str]) -> tuple[str, ...]:
    """Copy each path from `src` to `dest` (deleting it where `src` has none), writing
    only the files whose bytes or link target differ; the paths written."""
    written: list[str] = []
    for rel in paths:
        if rel.startswith("/") or ".." in Path(rel).parts:
            continue  # git never names such a path; never write outside the clone
        s, d = src / rel, dest / rel
        if _same(s, d):
            continue
        if d.is_symlink() or d.is_file():
            d.unlink()
        elif d.is_dir() and not s.is_dir():
            shutil.rmtree(d)
        if s.is_symlink():
            d.parent.mkdir(parents=True, exist_ok=True)
            d.symlink_to(os.readlink(s))
        elif s.is_file():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
            os.utime(d)  # now, not the source's mtime: make must see it as new
        elif s.is_dir():
            continue  # a nested repository: not ours to copy
        written.append(rel)
    return tuple(written)


def _same(s: Path, d: Path) -> bool:
    if s.is_symlink() or d.is_symlink():
        return s.is_symlink() and d.is_symlink() and os.readlink(s) == os.readlink(d)
    if not s.exists() and not d.exists():
        return True
    if not (s.is_file() and d.is_file()):
        return False
    return (s.stat().st_mode == d.stat().st_mode and s.stat().st_size == d.stat().st_size
            and s.read_bytes() == d.read_bytes())


def objects_since(build_dir: Path, started: float) -> int:
    """Objects (re)built since `started` (time.time()): what an incremental build cost."""
    n = 0
    for dirpath, _dirs, names in os.walk(build_dir):
        for name in names:
            if name.endswith(".o"):
                with contextlib.suppress(OSError):
                    n += os.stat(os.path.join(dirpath, name)).st_mtime >= started
    return n
