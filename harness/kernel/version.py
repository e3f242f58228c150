"""Kernel versions: comparing them, and reading one out of a kernel image.

The version decides what a guest can do (process_mrelease needs 5.15), which QEMU CPU
model boots it, and which toolchain fixes an old tree needs.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

from ..errors import UsageError

_BANNER = re.compile(rb"Linux version (\d+\.\d+[\w.+-]*) \(")
_SCAN_LIMIT = 64 << 20  # an uncompressed arm64 Image is ~4-40 MB; the banner is in .rodata


def version_tuple(version: str) -> tuple[int, int, int]:
    """(major, minor, sub) of 4.14.2, 6.1.0-rc3-foo, 5.15; UsageError for anything else."""
    m = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version.strip())
    if m is None:
        raise UsageError(f"{version!r} is not a kernel version (expected X.Y or X.Y.Z)")
    major, minor, sub = (int(n) for n in m.groups(default="0"))
    return major, minor, sub


def older_than(release: str | None, version: str) -> bool:
    """Whether `release` is known and older than `version`."""
    return release is not None and version_tuple(release) < version_tuple(version)


def image_release(path: Path) -> str | None:
    """The release in a kernel image's banner ("Linux version 4.14.2 (...)"), if found.

    A bzImage says where its version string is in the setup header (0x20e); an arm64
    Image holds the banner uncompressed, a gzipped one after decompression."""
    try:
        with path.open("rb") as f:
            head = f.read(0x240)
            if len(head) >= 0x210 and head[0x202:0x206] == b"HdrS":
                offset = int.from_bytes(head[0x20E:0x210], "little")
                if offset:
                    f.seek(offset + 0x200)
                    text = f.read(128).split(b"\0")[0].decode(errors="replace")
                    return text.split()[0] if text.split() else None
            f.seek(0)
            opener = gzip.open if head[:2] == b"\x1f\x8b" else open
        with opener(path, "rb") as data:
            blob = data.read(_SCAN_LIMIT)
    except (OSError, EOFError, zlib.error):
        return None
    m = _BANNER.search(blob)
    return m.group(1).decode() if m else None
