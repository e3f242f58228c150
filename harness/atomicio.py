"""Writing files so that a reader never sees half of one.

Results, summaries, the bisect state and cache records are read by other processes (a
lab merge, a resumed bisect, a second run sharing the cache) and must survive a crash or
Ctrl-C mid-write: the text goes to a temporary file in the same folder, is fsync'ed, and
os.replace() swaps it in, so the path holds either the old file or the whole new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (mode 0666 minus the umask, like open())."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
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


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an
    object (a cache record left corrupt is then rebuilt instead of crashing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
