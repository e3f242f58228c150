"""The build cache's kernel wing and its bounds: built kernels in
``cache_root()/kbuild/<key>`` and persistent build directories in
``cache_root()/kbuild-dirs/<key>``; what they hold (`oomrace cache`, with sizes and last
use) and removing the least recently used (`oomrace cache prune`, and after each
incremental build). The layout names used to find them live here."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ... import atomicio, cache

log = logging.getLogger(__name__)

KIND = "kbuild"  # cache_root()/kbuild/<key>: built kernels
LAST_USED = ".last-used"  # touched in a kernel entry each time a build asks for it
DIRS_KIND = "kbuild-dirs"  # cache_root()/kbuild-dirs/<key>: persistent build directories
RECORD = "build-dir.json"  # a build directory's record: origin, last commit, state
MAX_BUILD_DIRS_ENV = "OOMRACE_MAX_BUILD_DIRS"
DEFAULT_MAX_BUILD_DIRS = 4
"""A 6.1 build directory is its checkout (~1.3 GB) plus objects (~0.3-1 GB)."""


@dataclass(frozen=True)
class KernelEntry:
    """One built kernel in cache_root()/kbuild/<key>."""

    key: str
    path: Path
    recipe: str
    arch: str
    source: str
    last_used: float  # when a build last asked for it (else when it was built)
    bytes: int

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "path": str(self.path), "recipe": self.recipe,
                "arch": self.arch, "source": self.source, "last_used": round(self.last_used),
                "bytes": self.bytes}


def kernel_entries() -> list[KernelEntry]:
    """The built kernels, the most recently used first."""
    kind = cache.cache_root() / KIND
    found = []
    for path in sorted(kind.iterdir()) if kind.is_dir() else []:
        record = path / "kernel.json"
        if path.name.startswith(".") or not record.is_file():
            continue  # a build in progress, failed builds' logs, hints
        info = atomicio.read_json_object(record) or {}
        found.append(KernelEntry(
            key=path.name, path=path, recipe=str(info.get("recipe", "?")),
            arch=str(info.get("arch", "?")), source=str(info.get("source_identity", "?")),
            last_used=max(record.stat().st_mtime, _mtime(path / LAST_USED)),
            bytes=tree_bytes(path)))
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def listing() -> dict[str, object]:
    entries = kernel_entries()
    dirs = build_dirs()
    return {"cache": str(cache.cache_root()),
            "kernels": [e.to_dict() for e in entries],
            "build_dirs": [d.to_dict() for d in dirs],
            "kernels_bytes": sum(e.bytes for e in entries),
            "build_dirs_bytes": sum(d.bytes or 0 for d in dirs)}


# --- build directories -------------------------------------------------------------------


def build_dirs_root() -> Path:
    path = cache.cache_root() / DIRS_KIND
    path.mkdir(parents=True, exist_ok=True)
    return path


def max_build_dirs() -> int:
    try:
        return max(1, int(os.environ.get(MAX_BUILD_DIRS_ENV, DEFAULT_MAX_BUILD_DIRS)))
    except ValueError:
        return DEFAULT_MAX_BUILD_DIRS


@dataclass(frozen=True)
class DirInfo:
    key: str
    path: Path
    origin: str
    in_place: bool
    last_commit: str | None
    last_used: float
    bytes: int | None  # None: not measured

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "path": str(self.path), "origin": self.origin,
                "in_place": self.in_place, "last_commit": self.last_commit,
                "last_used": round(self.last_used), "bytes": self.bytes}


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def build_dirs(measure: bool = True) -> list[DirInfo]:
    """The build directories, most recently used first."""
    found = []
    for path in sorted(build_dirs_root().iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        record = atomicio.read_json_object(path / RECORD) or {}
        used = record.get("last_used")
        found.append(DirInfo(
            key=path.name, path=path, origin=str(record.get("origin", "?")),
            in_place=record.get("in_place") is True,
            last_commit=record.get("last_commit") if isinstance(
                record.get("last_commit"), str) else None,
            last_used=float(used) if isinstance(used, int | float) else path.stat().st_mtime,
            bytes=tree_bytes(path) if measure else None))
    return sorted(found, key=lambda d: d.last_used, reverse=True)


def prune_build_dirs(max_dirs: int | None = None, max_bytes: int | None = None,
          keep: Sequence[str] = ()) -> list[DirInfo]:
    """Remove the least recently used build directories beyond `max_dirs` or beyond
    `max_bytes` in all; a directory in use (its lock held) is skipped. The removed ones."""
    dirs = build_dirs(measure=max_bytes is not None)
    removed: list[DirInfo] = []
    total = 0
    for i, d in enumerate(dirs):
        total += d.bytes or 0
        # A plain tree's build directory is useless once the tree is gone (a git
        # history's clone holds its own objects).
        gone = d.in_place and not Path(d.origin).exists()
        over = gone or (max_dirs is not None and i >= max_dirs) or (
            max_bytes is not None and total > max_bytes)
        if not over or d.key in keep:
            continue
        with cache._lock_if_free(build_dirs_root() / f".{d.key}.lock") as free:
            if not free:
                continue
            shutil.rmtree(d.path, ignore_errors=True)
        total -= d.bytes or 0
        removed.append(d)
        log.info("removed build directory %s (%s)", d.path, d.origin)
    return removed


def prune(max_dirs: int | None, max_bytes: int | None,
          kernels_unused_days: float | None) -> dict[str, object]:
    """Remove build directories beyond the limits (least recently used first) and kernel
    entries no build has asked for in the given days; what was removed."""
    dirs = prune_build_dirs(max_dirs=max_dirs, max_bytes=max_bytes)
    removed: list[KernelEntry] = []
    if kernels_unused_days is not None:
        cutoff = time.time() - kernels_unused_days * 86400
        for e in kernel_entries():
            if e.last_used >= cutoff:
                continue
            # Under the entry's lock: never under a run that is rebuilding it.
            with cache.locked(e.path.parent / f".{e.key}.lock"):
                shutil.rmtree(e.path, ignore_errors=True)
            removed.append(e)
    return {"removed_build_dirs": [d.to_dict() for d in dirs],
            "removed_kernels": [e.to_dict() for e in removed]}


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / (1 << 20):.0f} MiB"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def text(data: dict[str, object]) -> str:
    """The listing as lines for a person."""
    lines = [f"cache: {data['cache']}"]
    kernels = data.get("kernels", [])
    dirs = data.get("build_dirs", [])
    assert isinstance(kernels, list) and isinstance(dirs, list)
    lines.append(f"kernels ({len(kernels)}, {_size(int(str(data['kernels_bytes'])))}):")
    for k in kernels:
        lines.append(f"  {k['key']}  {_when(k['last_used'])}  {_size(k['bytes']):>9}  "
                     f"{k['recipe']} {k['arch']} {k['source']}")
    lines.append(f"build directories ({len(dirs)}, "
                 f"{_size(int(str(data['build_dirs_bytes'])))}; last used first):")
    for d in dirs:
        commit = (d["last_commit"] or "-")[:12]
        lines.append(f"  {d['key']}  {_when(d['last_used'])}  {_size(d['bytes']):>9}  "
                     f"{d['origin']} @ {commit}")
    return "\n".join(lines)
