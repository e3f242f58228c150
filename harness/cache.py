"""A content-addressed cache under the user's cache dir, safe for two runs at once.

Entries are directories named by a hash of their inputs. An entry is built in a
temporary sibling directory and renamed into place, under an exclusive file lock,
so a reader never sees a half-built entry and two builders never race.

A builder that dies (SIGKILL, a power cut) leaves its temporary directory behind. Its
name records the key and the builder's pid; the next `entry()` of that kind removes it
once the key's lock is free, i.e. once no live process is building that key.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
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


# `.<key>.tmp-<pid>-<hex>`: a build in progress or abandoned; `.<key>.stale.<pid>`: a
# corrupt entry moved aside for removal; `.<key>.<8 chars>`: tempfile.mkdtemp's name, used
# before the pid was recorded.
_TEMPORARY = re.compile(r"^\.(?P<key>.+)\.(?:tmp-\d+-[0-9a-f]{8}|stale\.\d+|[a-z0-9_]{8})$")


def _temporary_key(path: Path) -> str | None:
    """The key a leftover temporary directory of entry() belonged to, else None."""
    match = _TEMPORARY.match(path.name)
    if match is None or path.is_symlink() or not path.is_dir():
        return None
    return match["key"]


@contextmanager
def _lock_if_free(lock_path: Path) -> Iterator[bool]:
    """Take the flock on `lock_path` without waiting; yield whether it was free. The
    kernel drops a holder's flock when it dies (SIGKILL too), so a free lock means no
    live builder, with no pid reuse or pid namespace to mislead."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:  # never locked: nobody is building that key
        yield True
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        free = True
    except BlockingIOError:
        free = False
    try:
        yield free
    finally:
        os.close(fd)  # closing drops the lock


def remove_stale(kind_dir: Path) -> list[Path]:
    """Remove the temporary directories in `kind_dir` whose builder is gone, each under
    its key's lock; return them. A build still running keeps its directory."""
    removed: list[Path] = []
    if not kind_dir.is_dir():
        return removed
    for path in sorted(kind_dir.iterdir()):
        key = _temporary_key(path)
        if key is None:
            continue
        with _lock_if_free(kind_dir / f".{key}.lock") as free:
            if free and path.exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _new_temporary(final: Path) -> Path:
    """An empty directory beside `final` that names its key and this process."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    return tmp


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

    remove_stale(final.parent)  # what a killed builder of this kind left behind
    if usable():
        return final
    with locked(cache_root() / kind / f".{key}.lock"):
        if usable():
            return final
        if final.exists():  # corrupt: move it aside first, so the rename below can succeed
            stale = final.with_name(f".{key}.stale.{os.getpid()}")
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = _new_temporary(final)
        try:
            build(tmp)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
