"""Running host programs: the one helper for a plain command.

Every command runs in its own process group with a bounded timeout and captured output;
on a timeout, Ctrl-C or SIGTERM the whole group is ended (a `make` takes its compilers
with it), and a failure is one error type naming the command and the tail of its output.
Callers that must stream output (QEMU, the kernel build's make) keep their own Popen but
end it with `end_group`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError, MissingToolError

DEFAULT_TIMEOUT = 600.0
"""Seconds a plain command may take unless its caller knows better (apt, git, make)."""

TAIL_CHARS = 3000
"""How much of a failed command's output an error carries: the end, where the cause is."""


class CommandError(HarnessError):
    """A host command failed or timed out; carries the command and its output's tail."""

    def __init__(self, argv: Sequence[str], problem: str, output: str) -> None:
        self.argv = tuple(argv)
        self.output_tail = output.strip()[-TAIL_CHARS:]
        text = f"{' '.join(self.argv)} {problem}"
        super().__init__(f"{text}:\n{self.output_tail}" if self.output_tail else text)


@dataclass(frozen=True)
class Limits:
    """Resource limits for a command that reads user input (a compiler given the user's
    C file, which may `#include "/dev/zero"`): its address space and CPU seconds, set in
    the child before it runs, so the kernel ends it instead of the host's OOM killer."""

    memory_bytes: int
    cpu_seconds: int

    def apply(self) -> None:
        """Set the limits in this process (the child, between fork and exec)."""
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds))

    def describe(self) -> str:
        return f"{self.memory_bytes >> 20} MiB of memory, {self.cpu_seconds} s of CPU"


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def end_group(proc: subprocess.Popen[str] | subprocess.Popen[bytes], grace: float = 10.0,
              first: int = signal.SIGTERM) -> None:
    """`first` (SIGTERM) to `proc`'s process group, SIGKILL after `grace` seconds: nothing
    it started outlives it. `proc` must have been started in a group of its own. Asked
    to stop again (Ctrl-C) while waiting, it goes on to SIGKILL at once."""
    for sig, wait in ((first, grace), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue


def run(argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, check: bool = True,
        cwd: Path | None = None, env: Mapping[str, str] | None = None,
        package: str | None = None, limits: Limits | None = None) -> Completed:
    """Run `argv` to completion, output captured as text (under `limits` when given). A
    missing program is a MissingToolError naming `package` (default: the program's
    name); a timeout, and with `check` a non-zero exit, is a CommandError."""
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace", start_new_session=True,
            preexec_fn=limits.apply if limits is not None else None)
    except FileNotFoundError:
        raise MissingToolError(argv[0], package or Path(argv[0]).name) from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_group(proc, grace=2.0)
        stdout, stderr = proc.communicate()
        raise CommandError(argv, f"did not finish within {timeout:.0f} s",
                           stdout + stderr) from None
    except BaseException:  # Ctrl-C, SIGTERM: the command goes with us
        end_group(proc, grace=2.0)
        raise
    done = Completed(tuple(argv), proc.returncode, stdout, stderr)
    if check and done.returncode != 0:
        raise CommandError(argv, f"failed (exit {done.returncode})", done.output)
    return done


def interactive(argv: Sequence[str]) -> int:
    """Run `argv` on this terminal (stdin, stdout, stderr inherited; same process group,
    so it may read the terminal) and return its exit status."""
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.Popen(argv)
    except FileNotFoundError:
        raise MissingToolError(argv[0], Path(argv[0]).name) from None
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        raise
