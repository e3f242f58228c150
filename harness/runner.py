"""The one interface that serial and SSH command runners share."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import GuestCommandError


@dataclass(frozen=True)
class CommandResult:
    """What one command in the guest gave back."""

    command: str
    stdout: str
    exit_code: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> CommandResult:
        """Raise GuestCommandError unless the command exited 0."""
        if self.exit_code != 0:
            raise GuestCommandError(
                f"guest command failed with exit code {self.exit_code}: {self.command}\n"
                f"{self.stdout[-2000:]}"
            )
        return self


Command = Sequence[str] | str
"""An argv (quoted for the guest shell here) or a shell script written by the caller."""


def command_text(command: Command) -> str:
    """Turn an argv into one shell-safe string; a string is taken as a script as it is."""
    if isinstance(command, str):
        return command
    return shlex.join(command)


class Runner(Protocol):
    """Runs commands in a guest and returns output plus exit code."""

    name: str

    def run(self, command: Command, timeout: float, check: bool = False) -> CommandResult:
        """Run `command`; raise GuestCommandError on timeout or a lost channel."""
        ...
