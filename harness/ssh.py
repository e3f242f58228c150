"""SSH into the guest with paramiko: a key made for the run, QEMU's port on 127.0.0.1."""

from __future__ import annotations

import io
import os
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import GuestCommandError, GuestCommandTimeout, HarnessError
from .runner import Command, CommandResult, command_text


@dataclass(frozen=True)
class RunKey:
    """An ed25519 key pair made for one run; never written outside the run's folder."""

    private_openssh: str
    public_base64: str  # the key blob without the "ssh-ed25519 " prefix

    @classmethod
    def generate(cls) -> RunKey:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()
        return cls(private_openssh=private, public_base64=public.split()[1])

    def paramiko_key(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key(io.StringIO(self.private_openssh))

    def save(self, path: Path) -> None:
        # Created 0600 in one step (never readable by others, even for a moment), refusing
        # an existing file or a symlink planted in its place.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.private_openssh)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (QEMU binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _AcceptGuestHostKey(paramiko.MissingHostKeyPolicy):
    # Each guest makes a fresh host key at boot and listens only on a loopback port this
    # run chose, so there is no earlier key to compare with.
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        return None


class SSHRunner:
    """Runs commands over SSH; also copies files in and out (through `cat`, no SFTP)."""

    name = "ssh"

    def __init__(self, port: int, key: RunKey, connect_timeout: float = 60) -> None:
        self.port = port
        self._key = key
        self._client = self._connect(connect_timeout)

    def _connect(self, timeout: float) -> paramiko.SSHClient:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_AcceptGuestHostKey())
            try:
                client.connect(
                    "127.0.0.1", port=self.port, username="root", pkey=self._key.paramiko_key(),
                    timeout=10, banner_timeout=30, auth_timeout=30,
                    allow_agent=False, look_for_keys=False,
                )
                return client
            except (paramiko.SSHException, OSError) as e:
                client.close()
                last = e
                time.sleep(0.5)
        raise HarnessError(
            f"could not SSH into the guest on 127.0.0.1:{self.port} within {timeout:.0f} s: {last}"
        )

    def run(self, command: Command, timeout: float, check: bool = False,
            stdin: bytes | None = None) -> CommandResult:
        script = command_text(command)
        started = time.monotonic()
        output, code = self._exec(script, timeout, stdin)
        result = CommandResult(script, output.decode(errors="replace"), code,
                               time.monotonic() - started)
        return result.check() if check else result

    def _exec(self, script: str, timeout: float, stdin: bytes | None) -> tuple[bytes, int]:
        started = time.monotonic()
        try:
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                raise GuestCommandError("the SSH connection to the guest is closed")
            channel = transport.open_session(timeout=30)
            channel.settimeout(timeout)
            channel.set_combine_stderr(True)
            channel.exec_command(script)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            chunks: list[bytes] = []
            deadline = started + timeout
            while True:
                if time.monotonic() > deadline:
                    channel.close()
                    raise GuestCommandTimeout(
                        f"guest command timed out after {timeout:.0f} s: {script}"
                    )
                chunk = channel.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            code = channel.recv_exit_status()
            channel.close()
        except TimeoutError as e:
            raise GuestCommandTimeout(
                f"guest command timed out after {timeout:.0f} s: {script}"
            ) from e
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise GuestCommandError(f"the SSH channel failed while running {script}: {e}") from e
        return b"".join(chunks), code

    def put(self, local: Path, remote: str, mode: int = 0o755, timeout: float = 120) -> None:
        """Copy a host file into the guest."""
        quoted = shlex.quote(remote)
        self.run(f"cat > {quoted} && chmod {mode:o} {quoted}", timeout, check=True,
                 stdin=local.read_bytes())

    def get(self, remote: str, local: Path, timeout: float = 120) -> None:
        """Copy a guest file to the host."""
        data, code = self._exec(command_text(["cat", remote]), timeout, None)
        if code != 0:
            raise GuestCommandError(f"cannot read {remote} in the guest (exit {code})")
        local.write_bytes(data)

    def close(self) -> None:
        self._client.close()
