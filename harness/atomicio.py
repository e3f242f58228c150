"""Writing files so that a reader never sees half of one.

Results, summaries, the bisect state and cache records are read by other processes (a
lab merge, a resumed bisect, a second run sharing the cache) and must survive a crash or
Ctrl-C mid-write: the text goes to a temporary file in the same folder, is fsync'ed, and
os.replace() swaps it in, so the path holds either the old file or the whole new one.

A file the user names (`--json FILE`) goes through write_output, which first asks what
the path is: a regular file (or a new name in an existing folder) is replaced atomically
and keeps its mode; a symlink is followed and its target written, the link kept; a
character device (/dev/null, a terminal) and /dev/stdout are written in place, as a shell
redirect would; a directory, a FIFO, a socket or a missing folder is refused in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import Any

from .errors import UsageError, shown

IN_PLACE_STREAMS = {"/dev/stdout": 1, "/dev/stderr": 2, "/dev/fd/1": 1, "/dev/fd/2": 2,
                    "/proc/self/fd/1": 1, "/proc/self/fd/2": 2}
"""Names of this process's own output: written on the open descriptor, never reopened
(reopening a redirected stdout would truncate what was printed before)."""


def write_text(path: Path, text: str, like: os.stat_result | None = None) -> None:
    """Replace `path` with `text` atomically (mode 0666 minus the umask, like open(); with
    `like`, the mode, and as root the owner, of the file it replaces)."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        if like is not None:
            os.fchmod(fd, stat.S_IMODE(like.st_mode))
            if os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.fchown(fd, like.st_uid, like.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON, atomically (anything not JSON-able is written as str)."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_output(path: Path, text: str, option: str = "--json") -> None:
    """`text` into a file the user named (see the module's docstring for what each kind
    of path gets); UsageError, one line naming `option`, when it cannot be written."""
    name = str(path)
    try:
        if name in IN_PLACE_STREAMS:
            fd = IN_PLACE_STREAMS[name]
            (sys.stdout if fd == 1 else sys.stderr).flush()  # what was printed comes first
            _write_fd(fd, text)
            return
        real = Path(os.path.realpath(path))  # a symlink's target is what gets written
        try:
            found: os.stat_result | None = os.stat(real)
        except FileNotFoundError:
            found = None
        if found is None:
            if not real.parent.is_dir():
                raise UsageError(f"{option} {shown(path)}: the folder {shown(real.parent)} "
                                 "does not exist; create it or give another path")
            write_text(real, text)
        elif stat.S_ISREG(found.st_mode):
            write_text(real, text, like=found)
        elif stat.S_ISCHR(found.st_mode):
            _write_device(real, text)
        else:
            what = "a directory" if stat.S_ISDIR(found.st_mode) else \
                "a FIFO" if stat.S_ISFIFO(found.st_mode) else "not a regular file"
            raise UsageError(f"{option} {shown(path)}: {what}; give a file name to write "
                             "(or '-' for stdout)")
    except OSError as exc:
        raise UsageError(f"{option} {shown(path)}: cannot write it "
                         f"({exc.strerror or exc})") from None
    except ValueError:  # a NUL byte in the name
        raise UsageError(f"{option} {shown(path)}: not a valid path") from None


def _write_fd(fd: int, text: str) -> None:
    data = text.encode("utf-8")
    while data:
        data = data[os.write(fd, data):]


def _write_device(path: Path, text: str) -> None:
    """A character device (/dev/null, a tty) written as a shell redirect would."""
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _write_fd(fd, text)
    finally:
        os.close(fd)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an
    object (a cache record left corrupt is then rebuilt instead of crashing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
