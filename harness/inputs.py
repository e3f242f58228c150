"""Checks for values that come from users and files: numbers and path components.

One place, so the CLI, the matrix loader and the lab merge refuse the same things the
same way (a UsageError naming the value and what would be accepted).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO, NoReturn

from .errors import UsageError, shown

# A cell id or similar name: one path component, no separators, not "." or "..".
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*")


def positive_number(value: object, what: str) -> float:
    """`value` (text or a number) as a finite float > 0; UsageError otherwise.

    float() accepts "nan" and "inf", and nan passes every `<=` check, so an infinite
    --duration would never stop: both are refused here.
    """
    if isinstance(value, bool):
        number = math.nan
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    else:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise UsageError(f"{what} must be a finite number > 0, not {value!r}")
    return number


# A file name may be 255 bytes; an id is a folder name with room for a suffix.
MAX_COMPONENT_CHARS = 200


def safe_component(name: object, what: str) -> str:
    """`name` if it is one harmless path component (letters, digits, . _ + -) short
    enough to be a file name."""
    if not isinstance(name, str) or len(name) > MAX_COMPONENT_CHARS \
            or _SAFE_COMPONENT.fullmatch(name) is None:
        raise UsageError(f"{what} {shown(repr(name))} is not a plain name (letters, digits, "
                         f"'.', '_', '+', '-'; no '/' or '..'; at most {MAX_COMPONENT_CHARS} "
                         "characters); the input is corrupt or hostile")
    return name


def _open_problem(exc: OSError) -> str:
    """Why opening a file failed, in words for the one-line error."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if exc.errno == errno.ELOOP:
        return "a loop of symbolic links"
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long for the file system"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is not a folder"
    return f"cannot read it ({exc.strerror or exc})"


def open_regular(path: str | os.PathLike[str], option: str, fix: str = "") -> BinaryIO:
    """`path` open for reading when it is a regular file (a symlink to one is followed);
    otherwise a one-line UsageError naming `option`, the path, the problem and `fix`.

    Every option that takes an input file comes through here: a FIFO would block the
    command forever, /dev/zero never ends, and a directory or a symlink loop must say what
    it is rather than "no such file" or a traceback.
    """
    hint = f"; {fix}" if fix else ""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        problem = _open_problem(exc) if isinstance(exc, OSError) else "not a valid path"
        raise UsageError(f"{option} {shown(path)}: {problem}{hint}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    os.close(fd)
    what = "a directory" if stat.S_ISDIR(mode) else \
        "a FIFO" if stat.S_ISFIFO(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
    raise UsageError(f"{option} {shown(path)}: {what}, not a regular file{hint}")


def regular_file(path: str | os.PathLike[str], option: str, fix: str = "") -> Path:
    """`path`, resolved, when it is a regular file (checked as open_regular does): for a
    file handed to another program (the compiler, nm) or read later."""
    with open_regular(path, option, fix):
        pass
    return Path(os.path.realpath(path))


def read_regular(path: str | os.PathLike[str], option: str, limit: int,
                 fix: str = "") -> bytes:
    """The bytes of a regular file of at most `limit` bytes (UsageError beyond it)."""
    with open_regular(path, option, fix) as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"{option} {shown(path)}: cannot read it "
                             f"({exc.strerror or exc})") from None
    if len(data) > limit:
        hint = f"; {fix}" if fix else ""
        raise UsageError(f"{option} {shown(path)}: larger than {limit} bytes{hint}")
    return data


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (the usage block is behind --help), exit 2;
    sub-parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
