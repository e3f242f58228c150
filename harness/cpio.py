"""A writer for the newc cpio format the kernel unpacks as its initramfs.

Written here rather than by the `cpio` tool so that device nodes and root ownership
can be recorded without being root, and so the bytes are reproducible (fixed mtimes).
"""

from __future__ import annotations

import stat
from pathlib import Path
from types import TracebackType
from typing import BinaryIO


class CpioWriter:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: BinaryIO = path.open("wb")
        self._ino = 1

    def __enter__(self) -> CpioWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._entry("TRAILER!!!", 0, b"")
        self._file.close()

    def _entry(self, name: str, mode: int, data: bytes, rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\x00"
        fields = [
            self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0,
        ]
        self._ino += 1
        header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        self._write_padded(header + encoded)
        self._write_padded(data)

    def _write_padded(self, blob: bytes) -> None:
        self._file.write(blob)
        pad = (-self._file.tell()) % 4
        if pad:
            self._file.write(b"\x00" * pad)

    def directory(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm, b"")

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, b"", rdev=(major, minor))
