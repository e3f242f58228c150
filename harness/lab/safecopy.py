"""Copying a shard's cell folder into a merged night, never leaving either folder.

A shard's folder was written by another machine (or by anyone): a `dmesg.txt` that is a
symlink to /outside/secret, a cell that holds `etcdir -> /etc`, a night whose `cells`
folder is a link elsewhere. Everything here goes through directory file descriptors and
O_NOFOLLOW: a symlink inside a shard is skipped with a warning (never read), and every
name written is one component created under the cell's folder in --out, so no path can
lead out of the inputs or out of --out whatever the shard holds.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError, shown

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 64 << 20  # a cell.json holds a run's reports: far below this
MAX_DEPTH = 16  # a cell folder is two levels deep; deeper is skipped, not followed
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20


class MissingFile(UsageError):
    """The file to read is not there (the caller may have a stand-in)."""


@contextlib.contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_dir(name: str | Path, dir_fd: int | None = None) -> int:
    """A directory's fd; OSError ELOOP when it is a symlink (which O_DIRECTORY reports
    as ENOTDIR), ENOTDIR when it is something else."""
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except NotADirectoryError:
        if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, "a symbolic link", str(name)) from None
        raise


def read_json(name: str | Path, what: str, dir_fd: int | None = None) -> Any:
    """The JSON in a regular file that is not a symlink; UsageError naming `what`."""
    try:
        with closing_fd(os.open(name, _FILE, dir_fd=dir_fd)) as fd:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UsageError(f"{what}: not a regular file; the shard is corrupt")
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_JSON_BYTES and (chunk := os.read(fd, _CHUNK)):
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks)
    except FileNotFoundError:
        raise MissingFile(f"{what}: no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(f"{what}: a symbolic link; a shard's files must be its "
                             "own, not links to elsewhere") from None
        raise UsageError(f"{what}: cannot read it ({e.strerror or e})") from None
    if len(data) > MAX_JSON_BYTES:
        raise UsageError(f"{what}: larger than {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{what} is not JSON: {str(e)[:100]}") from None


def cells_folder(out: Path) -> int:
    """The fd of --out's `cells` folder (made when missing); UsageError when it is a
    symlink or not a folder, which would send the merge's writes elsewhere."""
    path = out / "cells"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    try:
        return open_dir(path)
    except OSError as e:
        problem = "a symbolic link" if e.errno == errno.ELOOP else \
            "not a folder" if e.errno == errno.ENOTDIR else e.strerror
        raise UsageError(f"--out {shown(out)}: its cells folder is {problem}; give a "
                         "night folder of its own") from None


def copy_cell(source_fd: int, cells_fd: int, cid: str, where: str) -> None:
    """Copy the cell folder open as `source_fd` to `cid` in --out's cells folder
    (replacing what is there), skipping symlinks and special files with a warning."""
    with contextlib.suppress(FileNotFoundError):
        found = os.stat(cid, dir_fd=cells_fd, follow_symlinks=False)
        source = os.fstat(source_fd)
        if (found.st_dev, found.st_ino) == (source.st_dev, source.st_ino):
            return  # the shard is --out itself: the cell is already in place
        if stat.S_ISDIR(found.st_mode):
            shutil.rmtree(cid, dir_fd=cells_fd)
        else:
            os.unlink(cid, dir_fd=cells_fd)
    os.mkdir(cid, 0o755, dir_fd=cells_fd)
    with closing_fd(open_dir(cid, cells_fd)) as target_fd:
        _copy_dir(source_fd, target_fd, where, 0)


def _copy_dir(source_fd: int, target_fd: int, where: str, depth: int) -> None:
    with os.scandir(source_fd) as entries:
        names = sorted(e.name for e in entries)
    for name in names:
        st = os.stat(name, dir_fd=source_fd, follow_symlinks=False)
        here = f"{where}/{name}"
        if stat.S_ISLNK(st.st_mode):
            log.warning("lab merge: skipped %s: a symbolic link (not followed)", here)
        elif stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
            os.mkdir(name, 0o755, dir_fd=target_fd)
            with closing_fd(open_dir(name, source_fd)) as sub_source, \
                    closing_fd(open_dir(name, target_fd)) as sub_target:
                _copy_dir(sub_source, sub_target, here, depth + 1)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(name, source_fd, target_fd, stat.S_IMODE(st.st_mode) & 0o755)
        else:
            log.warning("lab merge: skipped %s: not a regular file or folder", here)


def _copy_file(name: str, source_fd: int, target_fd: int, mode: int) -> None:
    with closing_fd(os.open(name, _FILE, dir_fd=source_fd)) as src, \
            closing_fd(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                        | os.O_CLOEXEC, mode | 0o600, dir_fd=target_fd)) as dst:
        if not stat.S_ISREG(os.fstat(src).st_mode):  # swapped since it was listed
            return
        while chunk := os.read(src, _CHUNK):
            while chunk:
                chunk = chunk[os.write(dst, chunk):]
