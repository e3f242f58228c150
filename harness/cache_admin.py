"""`oomrace cache`: what the build cache holds (kernel entries and build directories,
with sizes and last use) and `oomrace cache prune` to bound it."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import atomicio, cache, kbuild_incr
from .kbuild_tuxmake import KIND
from .kernel_build import LAST_USED


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
            bytes=kbuild_incr.tree_bytes(path)))
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def listing() -> dict[str, object]:
    entries = kernel_entries()
    dirs = kbuild_incr.build_dirs()
    return {"cache": str(cache.cache_root()),
            "kernels": [e.to_dict() for e in entries],
            "build_dirs": [d.to_dict() for d in dirs],
            "kernels_bytes": sum(e.bytes for e in entries),
            "build_dirs_bytes": sum(d.bytes or 0 for d in dirs)}


def prune(max_dirs: int | None, max_bytes: int | None,
          kernels_unused_days: float | None) -> dict[str, object]:
    """Remove build directories beyond the limits (least recently used first) and kernel
    entries no build has asked for in the given days; what was removed."""
    dirs = kbuild_incr.prune(max_dirs=max_dirs, max_bytes=max_bytes)
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
