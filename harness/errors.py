"""Every error the harness raises on purpose derives from HarnessError.

Each carries a message that names the problem and, where there is one, the fix.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import traceback
from pathlib import Path

# Exit codes shared by every entry point; what each means is told in harness/cli/exits.py
# (and README "Exit codes", which a test keeps equal to it).
EXIT_OK = 0
EXIT_VERDICT = 1  # a guest not clean, a crash found, a cell not as expected, ...
EXIT_BAD_INPUT = 2
EXIT_REGRESSION = 3  # lab: a regression against the previous night
EXIT_HARNESS_BUG = 70  # EX_SOFTWARE: an exception the harness did not expect
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away


# A path longer than this is shortened in messages (the message stays one readable line).
_SHOWN_PATH_CHARS = 160


def shown(path: object) -> str:
    """`path` as an error message shows it: whole, or its ends around '...' when long."""
    text = str(path)
    if len(text) <= _SHOWN_PATH_CHARS:
        return text
    half = _SHOWN_PATH_CHARS // 2
    return f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def first_line(text: str | None) -> str:
    """An error's first line, for a one-line message ("unknown error" when it is empty)."""
    return text.strip().splitlines()[0] if text and text.strip() else "unknown error"


def error_key(text: str | None) -> str:
    """An error's first line with its paths and numbers masked: the same failure at two
    places (two bisect steps' folders, pids, addresses) gives the same key."""
    line = re.sub(r"/\S+", "PATH", first_line(text))
    return re.sub(r"\b(0x)?[0-9a-f]*[0-9][0-9a-f]*\b", "N", line)


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


class GuestCommandTimeout(GuestCommandError):
    """A command in the guest did not end within its timeout (the guest may hang)."""


def save_traceback(exc: BaseException) -> Path:
    """Write `exc`'s traceback under the cache dir (else the temp dir) and return the file,
    so a harness bug costs the user one line on the terminal but loses nothing."""
    from .cache import cache_root  # cache imports nothing from here; kept local anyway

    def in_cache() -> Path:
        return cache_root() / "tracebacks"

    def in_tmp() -> Path:
        return Path(tempfile.gettempdir())

    text = "".join(traceback.format_exception(exc))
    name = f"traceback-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (in_cache, in_tmp):
        try:
            path = folder() / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return path
        except (OSError, HarnessError):  # HarnessError: $OOMRACE_CACHE is not a folder
            continue
    return Path("/dev/null")  # nowhere writable: the message still names the exception


def harness_bug(prog: str, exc: BaseException) -> int:
    """The one-line report of an unexpected exception; returns EXIT_HARNESS_BUG."""
    import sys

    path = save_traceback(exc)
    what = f"{type(exc).__name__}: {exc}".splitlines()[0]
    print(f"{prog}: internal error (a harness bug, please report it): {what}; "
          f"traceback saved in {path}", file=sys.stderr)
    return EXIT_HARNESS_BUG
