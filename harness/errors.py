"""Every error the harness raises on purpose derives from HarnessError.

Each carries a message that names the problem and, where there is one, the fix.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of all harness errors; `str()` is meant for the user."""


class UsageError(HarnessError):
    """Bad input from the user: unknown arch, bad option, missing file."""


class MissingToolError(HarnessError):
    """A host program the harness needs is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        self.tool = tool
        self.package = package
        super().__init__(
            f"{tool} is not installed; install it with: sudo apt-get install {package}"
            " (or run `oomrace doctor` for everything that is missing)"
        )


class KernelError(HarnessError):
    """A kernel image is missing, not a kernel, of the wrong arch, or failed to build."""


class RootfsError(HarnessError):
    """The initramfs could not be built."""


class LaunchError(HarnessError):
    """QEMU did not start; carries the command line and what QEMU printed."""

    def __init__(self, message: str, argv: list[str], output: str) -> None:
        self.argv = argv
        self.output = output
        super().__init__(f"{message}\ncommand: {' '.join(argv)}\noutput:\n{output.strip()}")


class BootError(HarnessError):
    """The guest did not reach its ready marker: panic, oops, silence or timeout."""

    def __init__(self, message: str, console_log: str, excerpt: str = "") -> None:
        self.console_log = console_log
        self.excerpt = excerpt
        text = f"{message} (console log: {console_log})"
        if excerpt:
            text += f"\n{excerpt.strip()}"
        super().__init__(text)


class GuestCommandError(HarnessError):
    """A command in the guest timed out, lost its channel, or failed when asked to check."""
