"""A content-addressed cache under the user's cache dir, safe for two runs at once.

Entries are directories named by a hash of their inputs. An entry is built in a
temporary sibling directory and renamed into place, under an exclusive file lock,
so a reader never sees a half-built entry and two builders never race.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    """$OOMRACE_CACHE, else $XDG_CACHE_HOME/oomrace, else ~/.cache/oomrace."""
    explicit = os.environ.get("OOMRACE_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "oomrace"
    root.mkdir(parents=True, exist_ok=True)
    return root


def digest(*parts: object) -> str:
    """A short stable hash of JSON-able parts (paths are hashed by name, not content)."""
    blob = json.dumps([str(p) if isinstance(p, Path) else p for p in parts], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (blocks until the other holder is done)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def entry(kind: str, key: str, build: Callable[[Path], None],
          valid: Callable[[Path], bool] | None = None) -> Path:
    """Return the cache directory for (kind, key), calling build(tmpdir) to fill it once.

    `build` writes into an empty temporary directory; on success it is renamed to the
    entry's final path. On failure nothing is left behind and the error propagates.
    An existing entry that fails `valid` (a corrupt record in it) is removed and rebuilt.
    """
    final = cache_root() / kind / key

    def usable() -> bool:
        return final.is_dir() and (valid is None or valid(final))

    if usable():
        return final
    with locked(cache_root() / kind / f".{key}.lock"):
        if usable():
            return final
        if final.exists():  # corrupt: move it aside first, so the rename below can succeed
            stale = final.with_name(f".{key}.stale.{os.getpid()}")
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            build(tmp)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
