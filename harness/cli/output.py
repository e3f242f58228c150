"""Where a command's output goes: results (summaries, JSON) to stdout, progress through
`logging` to stderr, and `--json [FILE]` with one meaning for every command."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

from .. import atomicio
from ..errors import HarnessError

STDOUT = "-"
"""The --json value meaning stdout: what `--json` alone stands for (as kunit.py does)."""

_results: list[TextIO] = []
"""While --json goes to stdout: the real stdout, kept for the JSON (everything else the
command prints is sent to stderr so the JSON stays parseable)."""


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json", nargs="?", const=STDOUT, default=None, metavar="FILE",
        help=f"write {what} as JSON to FILE; to stdout with no FILE or '-' (the human "
             "text then goes to stderr)")


def write_json(destination: str | None, payload: Any) -> None:
    """`payload` as JSON to the --json destination: nothing for None, stdout for STDOUT,
    else the file, written atomically."""
    if destination is None:
        return
    text = json.dumps(payload, indent=2, default=str) + "\n"
    if destination != STDOUT:
        atomicio.write_output(Path(destination), text, "--json")
        return
    write_result_text(text)


def write_result_text(text: str) -> None:
    """A command's result in a text format (KTAP) to the real stdout, as write_json does
    for STDOUT: the command runs under json_on_stdout, which sent its prints to stderr."""
    stream = _results[-1] if _results else sys.stdout
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise StdoutError(exc) from None


class StdoutError(HarnessError):
    """Stdout cannot take the output (a full disk, /dev/full): one line, not a bug."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"cannot write the output to stdout ({exc.strerror or exc}); "
                         "redirect it somewhere with room, or use --json FILE")


class _GuardedStdout:
    """sys.stdout while a command runs: a write or flush that fails (a full disk,
    /dev/full) is a StdoutError, one line, instead of an OSError from any print()."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """sys.stdout guarded (see _GuardedStdout) for the block, restored after."""
    saved = sys.stdout
    sys.stdout = cast(TextIO, _GuardedStdout(saved))
    try:
        yield
    finally:
        sys.stdout = saved


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so that the interpreter's last flush of a stdout that
    failed does not print a second error at exit."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def json_on_stdout(active: bool) -> Iterator[None]:
    """While a command runs with `--json` to stdout, send everything else to stderr: our
    prints (sys.stdout) and, when stdout is a real file descriptor, what child processes
    (a lab's pytest) print to fd 1."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved_fd = _stdout_fd_moved_to_stderr()
    # Unbuffered (FileIO, write_through): a write that fails leaves nothing to retry.
    real = io.TextIOWrapper(io.FileIO(saved_fd, "w", closefd=False), encoding="utf-8",
                            write_through=True) if saved_fd is not None else sys.stdout
    _results.append(real)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _results.pop()
        try:
            real.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc) from None
        finally:
            if saved_fd is not None:
                os.dup2(saved_fd, 1)
                os.close(saved_fd)


def _stdout_fd_moved_to_stderr() -> int | None:
    """A copy of fd 1 after pointing fd 1 at stderr; None when sys.stdout is not fd 1
    (captured in a test, or replaced by a caller): then only Python's stdout moves."""
    try:
        if sys.stdout.fileno() != 1 or sys.stderr.fileno() != 2:
            return None
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


# --- logging ------------------------------------------------------------------------


class _ProgressFormatter(logging.Formatter):
    """Our info lines read as plain progress ("oomrace: downloading ..."); debug lines and
    warnings name their level and module."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO:
            return f"oomrace: {record.getMessage()}"
        return f"oomrace: {record.levelname.lower()}: {record.name}: {record.getMessage()}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test's capture, or after a
    redirect), never to a stream closed since the handler was made."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def configure_logging(verbosity: int) -> None:
    """Progress of the `harness` loggers on stderr: info by default, debug with -v;
    paramiko (and other libraries) only warnings unless -vv."""
    handler = _StderrHandler()
    handler.setFormatter(_ProgressFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):  # main() may run more than once in a process (tests)
        if getattr(old, "oomrace", False):
            root.removeHandler(old)
    handler.oomrace = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger("harness").setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
