"""The user's own reproducer: a C file built statically for the guest's arch (cached by
content, put in the initramfs as /bin/oomrace-repro) or a command line for the guest's
shell. Each run of it is one trial: it reproduced when it exited non-zero or the kernel
printed a new report while it ran (the workload is workload.ReproWorkload).

A run past the reproducer's timeout (--repro-timeout, default REPRO_RUN_TIMEOUT) is
killed in the guest and recorded as timed out, with its output, and the runs go on; it
counts as reproduced: a hang (a lockup, a task stuck in the kernel) is what a reproducer
that does not come back usually shows. A reproducer that is only slow needs a larger
--repro-timeout. A guest that does not answer even then ends the runs (that run timed
out too), but not as an infrastructure error."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from . import cache, proc
from .arches import Arch
from .cpio import CpioWriter
from .errors import UsageError
from .inputs import regular_file
from .tools import arch_tools, require

GUEST_PATH = "/bin/oomrace-repro"
CFLAGS = ("-std=gnu11", "-static", "-O2", "-pthread")
COMPILE_SCHEME = 1  # bump when the build below changes
ERROR_LINES = 3  # the compiler's first error lines shown in the one-line error
COMPILE_TIMEOUT = 300.0
# What compiling a reproducer may take: a C file of a few hundred lines needs well under
# 1 GiB and a few seconds; `#include "/dev/zero"` would otherwise grow until the host's
# OOM killer ends something.
COMPILE_LIMITS = proc.Limits(memory_bytes=4 << 30, cpu_seconds=240)
REPRO_RUN_TIMEOUT = 120.0  # seconds one run of a reproducer may take, by default
KILLED = 128 + 9  # the shell's exit status of a run its timeout ended (SIGKILL)


@dataclass(frozen=True)
class Reproducer:
    """What to run in the guest: `exec` (a command line for the guest's shell) or a C
    `source` file (compiled for the guest's arch). Exactly one is set."""

    exec_command: str | None = None
    source: Path | None = None
    timeout: float = REPRO_RUN_TIMEOUT  # seconds one run may take (--repro-timeout)

    @classmethod
    def from_options(cls, exec_command: str | None, source: str | Path | None,
                     timeout: float | None = None) -> Reproducer | None:
        """The reproducer of --exec / --repro (and --repro-timeout), checked; None when
        neither is given."""
        if exec_command is not None and source is not None:
            raise UsageError("give --exec COMMAND or --repro FILE.c, not both")
        if timeout is not None and not (math.isfinite(timeout) and timeout >= 1):
            raise UsageError(f"--repro-timeout {timeout}: give the seconds one run may "
                             "take, at least 1")
        limit = REPRO_RUN_TIMEOUT if timeout is None else float(timeout)
        if exec_command is not None:
            if not exec_command.strip():
                raise UsageError("--exec needs a command, not an empty string")
            return cls(exec_command=exec_command, timeout=limit)
        if source is None:
            return None
        path = regular_file(Path(source).expanduser(), "--repro",
                            "give the reproducer's C source")
        if path.suffix != ".c":
            raise UsageError(f"--repro {source}: not a C file (the name must end in .c); "
                             "for a script or a command use --exec")
        return cls(source=path, timeout=limit)

    @property
    def kind(self) -> str:
        return "exec" if self.exec_command is not None else "program"

    def describe(self) -> str:
        return f"--exec {self.exec_command!r}" if self.exec_command is not None \
            else f"--repro {self.source}"

    def command(self) -> str:
        """The guest shell's command line for one run. The run gets a session of its own
        and a watcher kills that whole session (the run's children too, which would hold
        an SSH channel open) once it has run for `timeout` seconds: exit status KILLED.
        All in `sh -c`: the console's shell has job control, under which `setsid` forks
        and returns at once."""
        run = GUEST_PATH if self.exec_command is None else \
            f"sh -c {shlex.quote(self.exec_command)}"
        # The watcher's sleep goes with it when the run ends first: no process is left.
        watcher = (f"trap 'kill $s; exit' TERM; sleep {math.ceil(self.timeout)} & s=$!; "
                   "wait $s && kill -KILL -$p")
        script = (f"setsid {run} & p=$!; ({watcher}) >/dev/null 2>&1 & w=$!; wait $p; "
                  "rc=$?; kill $w 2>/dev/null; exit $rc")
        return f"sh -c {shlex.quote(script)}"

    def timed_out(self, exit_code: int, seconds: float) -> bool:
        """Whether a run that ended so was killed by its timeout (a program killed by
        SIGKILL of its own as late counts the same: either way it reproduced)."""
        return exit_code == KILLED and seconds >= math.ceil(self.timeout) - 0.5

    def initrd_part(self, arch: Arch) -> Path | None:
        """A cpio archive with the compiled program, appended to the initramfs."""
        return None if self.source is None else build(self.source, arch) / "repro.cpio"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "exec": self.exec_command,
                "source": None if self.source is None else str(self.source),
                "timeout": self.timeout}


def _compiler_version(arch: Arch) -> str:
    require(next(t for t in arch_tools(arch) if t.program == arch.c_compiler))
    out = proc.run([arch.c_compiler, "--version"], timeout=60, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def compile_error(source: Path, output: str, returncode: int = 1) -> str:
    """The one-line error of a reproducer that does not compile: its first error lines,
    and the compiler's limits when they may be what ended it."""
    errors = [line.strip() for line in output.splitlines() if re.search(r"\berror\b", line)]
    shown = "; ".join((errors or [line.strip() for line in output.splitlines()
                                  if line.strip()])[:ERROR_LINES]) or "no output"
    if returncode < 0 or "out of memory" in output or "killed" in output.lower():
        shown += f" (the compiler may use {COMPILE_LIMITS.describe()})"
    return f"--repro {source} does not compile: {shown}"


def build(source: Path, arch: Arch) -> Path:
    """The cache entry holding `source` compiled statically for `arch` (`repro`) and a
    cpio archive with it at GUEST_PATH (`repro.cpio`); UsageError when it does not build."""
    compiler = _compiler_version(arch)
    key = cache.digest("repro", COMPILE_SCHEME, arch.name, compiler, CFLAGS,
                       cache.file_digest(source))

    def make(out: Path) -> None:
        binary = out / "repro"
        try:
            done = proc.run([arch.c_compiler, *CFLAGS, "-o", str(binary), str(source)],
                            timeout=COMPILE_TIMEOUT, check=False, limits=COMPILE_LIMITS)
        except proc.CommandError:  # the timeout
            raise UsageError(f"--repro {source} did not compile within "
                             f"{COMPILE_TIMEOUT:.0f} s; does it include a device or a "
                             "huge file?") from None
        if done.returncode != 0:
            raise UsageError(compile_error(source, done.stdout + "\n" + done.stderr,
                                           done.returncode))
        with CpioWriter(out / "repro.cpio") as cpio:
            cpio.file(GUEST_PATH.lstrip("/"), binary.read_bytes(), 0o755)

    return cache.entry("repro", key, make)


@dataclass(frozen=True)
class ReproRun:
    """One run of the reproducer: one trial."""

    exit_code: int  # NO_EXIT_CODE: the guest stopped answering (timed_out is then set)
    kernel_reports: int  # new kernel reports (any kind) printed during the run
    seconds: float
    timed_out: bool = False  # past the reproducer's timeout: killed, or the guest hung

    @property
    def reproduced(self) -> bool:
        return self.exit_code != 0 or self.kernel_reports > 0 or self.timed_out

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "reproduced": self.reproduced}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReproRun:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


NO_EXIT_CODE = -1


@dataclass(frozen=True)
class ReproSummary:
    """What the runs of a reproducer found."""

    reproducer: Reproducer
    runs: tuple[ReproRun, ...]
    first_output: str  # the output of the first run that reproduced (its tail)
    seconds: float
    error: str | None

    @property
    def trials(self) -> int:
        return len(self.runs)

    @property
    def detections(self) -> int:
        return sum(1 for r in self.runs if r.reproduced)

    @property
    def failures(self) -> int:
        """Runs that exited non-zero (a timed-out run among them)."""
        return sum(1 for r in self.runs if r.exit_code != 0)

    @property
    def timeouts(self) -> int:
        return sum(1 for r in self.runs if r.timed_out)

    @property
    def status(self) -> str:
        """failed (the reproducer's own word: it exited non-zero), clean or error; the
        kernel's reports are read by the verdict itself."""
        if self.failures:
            return "failed"
        return "error" if self.error or not self.runs else "clean"

    def to_json(self) -> dict[str, Any]:
        return {"reproducer": self.reproducer.to_json(), "trials": self.trials,
                "detections": self.detections, "failures": self.failures,
                "timeouts": self.timeouts,
                "runs": [r.to_json() for r in self.runs], "first_output": self.first_output,
                "seconds": self.seconds, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReproSummary:
        spec = data.get("reproducer") or {}
        source = spec.get("source")
        timeout = float(spec.get("timeout") or REPRO_RUN_TIMEOUT)
        return cls(reproducer=Reproducer(spec.get("exec"), Path(source) if source else None,
                                         timeout),
                   runs=tuple(ReproRun.from_json(r) for r in data.get("runs", [])),
                   first_output=str(data.get("first_output") or ""),
                   seconds=float(data.get("seconds") or 0.0), error=data.get("error"))
