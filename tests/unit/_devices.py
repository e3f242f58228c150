"""Character devices for tests of output paths: a private node made in the test's folder
(as root), so that a regression which replaces the device it writes to replaces that node,
never the system's /dev/null or /dev/full; without the right to mknod, the system's node
(which such a process cannot replace either: /dev is not writable to it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

NUMBERS = {"null": (1, 3), "zero": (1, 5), "full": (1, 7)}


def char_device(folder: Path, name: str) -> Path:
    path = folder / f"dev-{name}"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(*NUMBERS[name]))
    except PermissionError:
        return Path("/dev") / name
    return path
