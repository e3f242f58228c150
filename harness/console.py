"""The serial console: a pexpect stream over QEMU's stdio, and the serial command runner.

QEMU writes the console log file itself (chardev logfile=), so the log survives whatever
happens here. A reader thread drains QEMU's stdout continuously into a backlog so the guest
never stalls on a full pipe, and pexpect's matching runs over what the thread collected.
The backlog is bounded (MAX_QUEUED_BYTES, oldest dropped first): a guest printing for
hours while nobody expects anything must not fill the host's memory, and the log on disk
keeps every byte anyway.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import subprocess
import threading
import time
from collections import deque
from typing import IO, Any

import pexpect
from pexpect.spawnbase import SpawnBase

from .errors import GuestCommandError, GuestCommandTimeout
from .runner import Command, CommandResult, command_text

MAX_QUEUED_BYTES = 16 << 20


class ConsoleStream(SpawnBase):  # type: ignore[misc]
    """pexpect's expect()/send() over a running process's stdout/stdin pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        super().__init__(timeout=timeout, maxread=65536, encoding=None)
        assert proc.stdout is not None and proc.stdin is not None
        self.proc = proc
        self.pid = proc.pid
        self.closed = False
        self.crlf = b"\n"
        self._stdin: IO[bytes] = proc.stdin
        self._chunks: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._reader_done = False
        self.queued_bytes = 0
        self.dropped_bytes = 0
        self._eof = False
        self._pending = b""
        self.last_output = time.monotonic()
        self.total_bytes = 0
        self._thread = threading.Thread(
            target=self._drain, args=(proc.stdout,), name="qemu-console", daemon=True
        )
        self._thread.start()

    def _drain(self, stdout: IO[bytes]) -> None:
        fd = stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._ready:
                if not chunk:
                    self._reader_done = True
                    self._ready.notify_all()
                    return
                self.last_output = time.monotonic()
                self.total_bytes += len(chunk)
                self._chunks.append(chunk)
                self.queued_bytes += len(chunk)
                while self.queued_bytes > MAX_QUEUED_BYTES and len(self._chunks) > 1:
                    old = self._chunks.popleft()
                    self.queued_bytes -= len(old)
                    self.dropped_bytes += len(old)
                self._ready.notify_all()

    def _take(self, timeout: float | None) -> bytes | None:
        """Everything queued (waiting up to `timeout` for some); None at the end of output.
        pexpect.TIMEOUT when nothing came."""
        with self._ready:
            if timeout:
                self._ready.wait_for(lambda: self._chunks or self._reader_done, timeout)
            if self._chunks:
                data = b"".join(self._chunks)
                self._chunks.clear()
                self.queued_bytes = 0
                return data
            if self._reader_done:
                return None
        raise pexpect.TIMEOUT("no console output")

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> bytes:
        """Return what arrived, waiting up to `timeout`; pexpect.TIMEOUT / EOF otherwise."""
        if timeout == -1:
            timeout = self.timeout
        if not self._pending and not self._eof:
            item = self._take(timeout)
            if item is None:
                self._eof = True
            else:
                self._pending = item
        if not self._pending and self._eof:
            self.flag_eof = True
            raise pexpect.EOF("QEMU closed the console")
        data, self._pending = self._pending[:size], self._pending[size:]
        self._log(data, "read")
        return data

    def send(self, s: str | bytes) -> int:
        data = s.encode() if isinstance(s, str) else s
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as e:
            raise GuestCommandError("cannot write to the guest console: QEMU has exited") from e
        return len(data)

    def sendline(self, s: str | bytes = "") -> int:
        return self.send((s.encode() if isinstance(s, str) else s) + b"\n")

    def isalive(self) -> bool:
        return self.proc.poll() is None

    def close_input(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def drain_buffer(self) -> bytes:
        """Everything received but not yet consumed by a match (used after failures)."""
        data = bytes(self.buffer) if isinstance(self.buffer, bytes | bytearray) else b""
        while True:
            try:
                data += self.read_nonblocking(1 << 20, 0)
            except (pexpect.TIMEOUT, pexpect.EOF):
                return data


# The serial console is shared with the kernel: a printk can land between a command's
# lines (seen in CI: eth0's link-up message inside `uname -m` output under load). Our
# kernels stamp every console line (CONFIG_PRINTK_TIME), so such a line is recognisable.
# The runner keeps it (`dmesg` over serial prints exactly such lines); a caller that
# wants a command's own output drops them with this, or uses SSH.
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d{6}\](?:\[\s*[CT]\d+\])? .*\n?", re.M)


def without_kernel_lines(output: str) -> str:
    """A command's console output without the timestamped kernel lines mixed into it."""
    return _KERNEL_LINE.sub("", output)


class SerialRunner:
    """Runs shell commands on the serial console; random markers carry the exit code.
    Kernel messages printed meanwhile can appear in the output: see without_kernel_lines."""

    name = "serial"

    def __init__(self, console: ConsoleStream) -> None:
        self.console = console
        self._prepared = False
        self.busy = False

    def _prepare(self, timeout: float) -> None:
        # No echo, so the command line we type never shows up in the output we parse.
        self.console.sendline("stty -echo 2>/dev/null; export PS1=''")
        self._prepared = True
        self._roundtrip("true", timeout)

    def _roundtrip(self, script: str, timeout: float) -> tuple[str, int]:
        token = secrets.token_hex(6)
        start, end = f"OOMR-{token}-S", f"OOMR-{token}-E"
        if "\n" in script:
            # The console takes one line at a time; a multi-line script travels encoded.
            encoded = base64.b64encode(script.encode()).decode()
            script = f'eval "$(echo {encoded} | base64 -d)"'
        # Quotes split each marker in the typed line, so only echo's output can match; the
        # bare `echo` puts the end marker on a line of its own.
        line = (
            f"echo '{start[:5]}''{start[5:]}'; {script}; __rc=$?; echo; "
            f"echo '{end[:5]}''{end[5:]}':$__rc"
        )
        pattern = re.compile(
            re.escape(start.encode()) + rb"\r?\n(.*?)\r?\n" + re.escape(end.encode()) + rb":(\d+)",
            re.S,
        )
        self.busy = True
        self.console.sendline(line)
        index = self.console.expect([pattern, pexpect.EOF, pexpect.TIMEOUT], timeout=timeout)
        if index == 1:
            raise GuestCommandError(f"the guest console closed while running: {script}")
        if index == 2:
            raise GuestCommandTimeout(f"guest command timed out after {timeout:.0f} s: {script}")
        self.busy = False
        match: Any = self.console.match
        output = match.group(1).decode(errors="replace").replace("\r\n", "\n")
        return output, int(match.group(2))

    def run(self, command: Command, timeout: float, check: bool = False) -> CommandResult:
        script = command_text(command)
        started = time.monotonic()
        if not self._prepared:
            self._prepare(timeout)
        stdout, code = self._roundtrip(script, timeout)
        result = CommandResult(script, stdout, code, time.monotonic() - started)
        return result.check() if check else result
