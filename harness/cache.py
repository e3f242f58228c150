"""A content-addressed cache under the user's cache dir, safe for two runs at once.

Entries are directories named by a hash of their inputs. An entry is built in a
temporary sibling directory and renamed into place, under an exclusive file lock,
so a reader never sees a half-built entry and two builders never race.

A builder that dies (SIGKILL, a power cut) leaves its temporary directory behind. Its
name records the key and the builder's pid; the next `entry()` of that kind removes it
once the key's lock is free, i.e. once no live process is building that key.

Every entry is sealed with a manifest of its files (sizes, and content hashes when the
entry is small enough to hash quickly) and checked against it on every hit: an entry
truncated by a full disk, edited through a hard link or half deleted is rebuilt instead
of booted. An entry from before manifests is sealed as it is on its first hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import atomicio
from .errors import UsageError, shown

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """$OOMRACE_CACHE, else $XDG_CACHE_HOME/oomrace, else ~/.cache/oomrace."""
    explicit = os.environ.get("OOMRACE_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "oomrace"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"the cache {shown(root)} (from $OOMRACE_CACHE or $XDG_CACHE_HOME) "
                         "is not a folder; point $OOMRACE_CACHE at a folder") from None
    except OSError as e:
        raise UsageError(f"the cache {shown(root)} cannot be created ({e.strerror}); point "
                         "$OOMRACE_CACHE at a folder you can write to") from None
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


MANIFEST = ".oomrace-manifest.json"
MANIFEST_SCHEMA = 1
# Hashing a kernel image and an initramfs (tens of MB) costs a few hundredths of a second
# a hit; a source tree (GBs, 80,000 files) is checked by size alone, which still catches
# truncation and deletion.
HASH_LIMIT_BYTES = 128 << 20


def _entry_files(root: Path) -> list[Path]:
    """The regular files of an entry, sorted, the manifest itself excluded."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink() and path.name != MANIFEST:
                found.append(path)
    return sorted(found)


def seal(root: Path) -> None:
    """Write the manifest of the entry at `root`: each file's size, and its sha256 when
    the whole entry is small enough to hash on every hit."""
    files = _entry_files(root)
    sizes = {str(p.relative_to(root)): p.stat().st_size for p in files}
    hashed = sum(sizes.values()) <= HASH_LIMIT_BYTES
    record: dict[str, object] = {"schema_version": MANIFEST_SCHEMA, "sizes": sizes}
    if hashed:
        record["sha256"] = {str(p.relative_to(root)): file_digest(p) for p in files}
    atomicio.write_json(root / MANIFEST, record)


def damage(root: Path) -> str | None:
    """Why the entry at `root` no longer matches its manifest, or None when it does. Files
    added since (a git object, a log) are allowed; a file missing or changed is not."""
    record = atomicio.read_json_object(root / MANIFEST)
    if record is None or record.get("schema_version") != MANIFEST_SCHEMA:
        return f"{MANIFEST} is missing or unreadable"
    sizes, hashes = record.get("sizes"), record.get("sha256", {})
    if not isinstance(sizes, dict) or not isinstance(hashes, dict):
        return f"{MANIFEST} has the wrong shape"
    for rel, size in sizes.items():
        path = root / rel
        try:
            if path.is_symlink() or path.stat().st_size != size:
                return f"{rel} changed size"
        except OSError:
            return f"{rel} is missing"
        if rel in hashes and file_digest(path) != hashes[rel]:
            return f"{rel} changed content"
    return None


def _seal_legacy(final: Path, lock: Path | None) -> None:
    """An entry built before manifests existed: seal it as it is, under its lock (taken
    here unless the caller holds it: flock would wait on our own second descriptor)."""
    with contextlib.nullcontext() if lock is None else locked(lock):
        if final.is_dir() and not (final / MANIFEST).exists():
            seal(final)


def entry(kind: str, key: str, build: Callable[[Path], None],
          valid: Callable[[Path], bool] | None = None) -> Path:
    """Return the cache directory for (kind, key), calling build(tmpdir) to fill it once.

    `build` writes into an empty temporary directory; on success it is renamed to the
    entry's final path. On failure nothing is left behind and the error propagates.
    An existing entry that fails `valid` (a corrupt record in it) or no longer matches its
    manifest is removed and rebuilt.
    """
    final = cache_root() / kind / key
    lock = cache_root() / kind / f".{key}.lock"

    def usable(holding_lock: bool) -> bool:
        if not final.is_dir():
            return False
        if not (final / MANIFEST).exists():
            _seal_legacy(final, None if holding_lock else lock)
        problem = damage(final)
        if problem is not None:
            log.warning("cache: %s/%s is damaged (%s): rebuilding it", kind, key, problem)
            return False
        return valid is None or valid(final)

    remove_stale(final.parent)  # what a killed builder of this kind left behind
    if usable(holding_lock=False):
        return final
    with locked(lock):
        if usable(holding_lock=True):
            return final
        if final.exists():  # corrupt: move it aside first, so the rename below can succeed
            stale = final.with_name(f".{key}.stale.{os.getpid()}")
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = _new_temporary(final)
        try:
            build(tmp)
            seal(tmp)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
