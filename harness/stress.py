"""Drive the guest stress program (rootfs/guest/oomrace-stress.c) and read its report.

The program prints one JSON object per line on stdout, each with an ``"event"``:
``start``, ``progress``, ``corruption``, ``error`` and a final ``summary``. On a
serial console those lines arrive mixed with kernel messages, with carriage
returns, and sometimes cut short when the guest dies; ``parse_output`` takes what
it can and ignores the rest.

Exit codes of the program: 0 clean, 1 corrupted, 2 usage error, 3 runtime error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from .errors import GuestCommandError, UsageError
from .kernel.version import older_than
from .runner import Runner

DEFAULT_BINARY = "/bin/oomrace-stress"

EXIT_CLEAN = 0
EXIT_CORRUPTED = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3

TIMEOUT_GRACE_S = 60.0

STRESS_CPUS = 8
"""vCPUs of a stress guest (`run`, `bisect`, `evaluate`, a lab cell), unless given: the
reaper's and the writers' threads race on vCPUs of their own."""

STRESS_HOST_CPUS = 1
"""Host CPUs a stress guest's QEMU runs on under TCG unless --host-cpus says: with every
vCPU on one host core, a writer's vCPU is paused mid-block most of the time, which is how
the reapers' races show under TCG (see machine.host_cpu_set)."""
"""How much longer than --duration a run may take before the runner gives up.

The program bounds its own waits to duration + 5 s and arms alarm() at
duration + 65 s, so a run past this grace means the guest itself is stuck."""

Status = Literal["clean", "corrupted", "error"]


class Scenario(StrEnum):
    """How the writers' memory is freed under them."""

    MRELEASE = "mrelease"
    """SIGKILL through a pidfd, then process_mrelease() at once (Linux >= 5.15)."""
    OOM = "oom"
    """The victim outgrows a cgroup v2 memory.max: memcg OOM killer + oom_reaper."""
    MUNMAP = "munmap"
    """One thread munmaps (and re-mmaps) pages the other threads store to."""
    MADVISE = "madvise"
    """One thread MADV_DONTNEEDs pages the other threads store to."""
    MREMAP = "mremap"
    """mremap() moves a clean shmem mapping while single pages are punched out of it;
    reader threads of the old address report stale reads (CVE-2018-18281)."""

    def unsupported_by(self, release: str | None) -> str | None:
        """Why a kernel of `release` cannot run this scenario; None when it can (or when
        the release is unknown: the program then says so itself)."""
        need = REQUIREMENTS.get(self)
        if need is None or not older_than(release, need[0]):
            return None
        return (f"scenario {self.value} needs Linux >= {need[0]} ({need[1]}), and this "
                f"kernel is {release}; use --scenario oom, munmap or madvise")

    @classmethod
    def strongest_for(cls, release: str | None) -> Scenario:
        """The scenario that reaches the reaper most directly on this kernel:
        process_mrelease where it exists, the OOM killer and oom_reaper before."""
        return cls.MRELEASE if cls.MRELEASE.unsupported_by(release) is None \
            and release is not None else cls.OOM

    @classmethod
    def parse(cls, name: str) -> Scenario:
        """The scenario called `name`; UsageError naming the valid ones otherwise."""
        try:
            return cls(name)
        except ValueError:
            valid = ", ".join(s.value for s in cls)
            raise UsageError(f"unknown stress scenario {name!r}; choose one of: {valid}") from None


CONCURRENT_SCENARIOS = frozenset({Scenario.MREMAP})
"""Scenarios whose race needs vCPUs running at the same moment instead: a reader must run
while the mover's vCPU is inside mremap(). On arm64 4.14.2 with one host CPU a 15 s run
caught nothing (the move's vCPU had the core to itself); on both, every run did."""


def tcg_host_cpus(scenario: str | None) -> int:
    """The host CPUs a stress guest of `scenario` gets under TCG by default (0: all)."""
    return 0 if scenario in CONCURRENT_SCENARIOS else STRESS_HOST_CPUS


REQUIREMENTS: dict[Scenario, tuple[str, str]] = {
    Scenario.MRELEASE: ("5.15", "the process_mrelease system call"),
}
"""The oldest kernel each scenario runs on, and what it needs from it."""


@dataclass(frozen=True)
class StressOptions:
    """The command line of one oomrace-stress run; None leaves the program's default."""

    scenario: Scenario = Scenario.MRELEASE
    iterations: int = 0
    """Stop after this many reaps/victims; 0: only the duration bounds the run."""
    duration_s: float = 10.0
    writers: int | None = None
    """Writer threads (program default: online CPUs - 1, within 2..16)."""
    region_mb: int | None = None
    """The victim's memory, all of it freed by each reap (program default 16; for mremap the
    size of the moved mapping, mostly holes, default 4096)."""
    hot_pages: int | None = None
    """Pages each writer stores to continuously (program default 8)."""
    seed: int | None = None
    checker: bool = True
    checker_mb: int | None = None
    """Memory the checker allocates, fills and verifies per round (program default 16)."""
    window_ms: int | None = None
    """How long the checker keeps allocating after each reap (program default 50)."""
    pause_us: int | None = None
    """munmap/madvise: pause between two frees (program default 200)."""
    pin: bool = True
    """Put reaper + checker on one CPU and the writers on the others."""
    progress_interval_s: float | None = None
    cgroup_root: str | None = None
    """oom: where cgroup v2 is mounted (program default /sys/fs/cgroup)."""
    inject_corruption: bool = False
    """Plant one foreign word in the checker's memory: a run must then report
    "corrupted" with provenance INJECTED_PROVENANCE (a self-test of the detector)."""

    def __post_init__(self) -> None:
        if not isinstance(self.scenario, Scenario):
            object.__setattr__(self, "scenario", Scenario.parse(str(self.scenario)))
        if self.duration_s <= 0:
            raise UsageError(f"stress duration must be positive, got {self.duration_s}")
        if self.iterations < 0:
            raise UsageError(f"stress iterations must be >= 0, got {self.iterations}")
        if self.progress_interval_s is not None and self.progress_interval_s <= 0:
            raise UsageError(
                f"stress progress interval must be positive, got {self.progress_interval_s}"
            )
        positive = {
            "writers": self.writers,
            "region_mb": self.region_mb,
            "hot_pages": self.hot_pages,
            "checker_mb": self.checker_mb,
            "window_ms": self.window_ms,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise UsageError(f"stress {name} must be >= 1, got {value}")
        if self.writers is not None and self.writers > 64:
            raise UsageError(f"stress writers must be <= 64, got {self.writers}")
        for name, value in {"seed": self.seed, "pause_us": self.pause_us}.items():
            if value is not None and value < 0:
                raise UsageError(f"stress {name} must be >= 0, got {value}")

    def argv(self, binary: str = DEFAULT_BINARY) -> list[str]:
        """The command that runs this configuration in the guest."""
        args = [
            binary,
            "--scenario",
            self.scenario.value,
            "--iterations",
            str(self.iterations),
            "--duration",
            _seconds(self.duration_s),
        ]
        optional: list[tuple[str, int | float | str | None]] = [
            ("--writers", self.writers),
            ("--region-mb", self.region_mb),
            ("--hot-pages", self.hot_pages),
            ("--seed", self.seed),
            ("--checker-mb", self.checker_mb),
            ("--window-ms", self.window_ms),
            ("--pause-us", self.pause_us),
            ("--progress-interval", self.progress_interval_s),
            ("--cgroup-root", self.cgroup_root),
        ]
        for flag, value in optional:
            if value is None:
                continue
            args += [flag, _seconds(value) if isinstance(value, float) else str(value)]
        args.append("--checker" if self.checker else "--no-checker")
        if not self.pin:
            args.append("--no-pin")
        if self.inject_corruption:
            args.append("--inject-corruption")
        args.append("--json")
        return args

    def default_timeout(self) -> float:
        """A runner timeout that a healthy run never reaches."""
        return self.duration_s + TIMEOUT_GRACE_S


def _seconds(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Provenance:
    """Who stored a foreign word: decoded from the writer tag it carries."""

    pid: int
    thread: int
    """Writer thread index; 255 is the victim's main thread (its first-touch fill)."""
    iteration: int


INJECTED_PROVENANCE = Provenance(pid=4242, thread=7, iteration=99)
"""What --inject-corruption plants (see oomrace-stress.c INJECT_*)."""


@dataclass(frozen=True)
class Corruption:
    """One corrupted page as reported by the checker (or a writer's self-check)."""

    source: str
    """"checker" (its fresh pages held a foreign word), "writer" (self-check) or
    "reader" (a stale read through an old address: the mremap scenario)."""
    address: int
    expected: int
    found: int
    provenance: Provenance | None
    """None when the found word is not a writer's (e.g. zero, or poison)."""
    seconds_since_reap: float | None
    bad_words: int
    round: int
    pass_index: int
    pid: int
    evidence: str | None = None
    """What proves a reader's stale read: "page_poison" (a freed page), "checker_page" (a
    page the checker reused), "other_file_page", "writer_page" or "unknown_owner"."""
    seconds_since_remap: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "address": f"0x{self.address:016x}",
            "expected": f"0x{self.expected:016x}",
            "found": f"0x{self.found:016x}",
            "provenance": (
                None
                if self.provenance is None
                else {
                    "pid": self.provenance.pid,
                    "thread": self.provenance.thread,
                    "iteration": self.provenance.iteration,
                }
            ),
            "seconds_since_reap": self.seconds_since_reap,
            "bad_words": self.bad_words,
            "round": self.round,
            "pass": self.pass_index,
            "pid": self.pid,
            "evidence": self.evidence,
            "seconds_since_remap": self.seconds_since_remap,
        }


@dataclass(frozen=True)
class StressError:
    """An "error" line: which syscall or step failed, with errno."""

    message: str
    syscall: str
    errno: int
    errno_name: str
    fatal: bool

    def __str__(self) -> str:
        errno = f" ({self.errno_name}, errno {self.errno})" if self.errno else ""
        return f"{self.syscall}: {self.message}{errno}"


@dataclass
class StressResult:
    """What one oomrace-stress run reported."""

    scenario: str
    iterations: int
    reaps: int
    reap_failures_gone: int
    """Reaps that found the victim already gone (ESRCH): expected, not errors."""
    corruptions: list[Corruption]
    counters: dict[str, int | float]
    """Every numeric counter of the summary (or of the last progress line)."""
    exit_code: int
    status: Status
    elapsed: float
    summary: dict[str, Any] | None
    """The raw summary line; None when the run never printed one (killed, cut short)."""
    start: dict[str, Any] | None = None
    errors: list[StressError] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    ignored_lines: int = 0
    """Lines that were not the program's JSON (kernel messages, shell noise)."""

    @property
    def clean(self) -> bool:
        return self.status == "clean"

    @property
    def corrupted(self) -> bool:
        return self.status == "corrupted"

    @property
    def complete(self) -> bool:
        """True when the program got as far as its summary line."""
        return self.summary is not None

    def error_text(self) -> str:
        """The errors in one message (or why there is no summary)."""
        parts = [str(e) for e in self.errors]
        if self.summary is None:
            parts.append(f"no summary line (exit code {self.exit_code}): the run was cut short")
        return "; ".join(parts) or f"exit code {self.exit_code}"

    def raise_for_error(self) -> StressResult:
        """Raise GuestCommandError if the run failed (a corruption is a finding, not an error)."""
        if self.status == "error":
            raise GuestCommandError(f"oomrace-stress {self.scenario} failed: {self.error_text()}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "status": self.status,
            "exit_code": self.exit_code,
            "elapsed": self.elapsed,
            "iterations": self.iterations,
            "reaps": self.reaps,
            "reap_failures_gone": self.reap_failures_gone,
            "corruptions": [c.to_dict() for c in self.corruptions],
            "counters": dict(self.counters),
            "errors": [
                {
                    "message": e.message,
                    "syscall": e.syscall,
                    "errno": e.errno,
                    "errno_name": e.errno_name,
                    "fatal": e.fatal,
                }
                for e in self.errors
            ],
            "start": self.start,
            "summary": self.summary,
            "ignored_lines": self.ignored_lines,
        }


# --------------------------------------------------------------------------- parsing

_MARKER = '{"event"'
_DECODER = json.JSONDecoder()


def parse_events(stdout: str) -> tuple[list[dict[str, Any]], int]:
    """The program's JSON objects in order, and how many other lines were skipped.

    A console line may carry a prefix (a shell prompt, the tail of a kernel
    message) before the object, or trailing garbage after it; a line cut short
    or broken in the middle by a kernel message is skipped.
    """
    events: list[dict[str, Any]] = []
    ignored = 0
    for raw in stdout.splitlines():
        line = raw.strip().replace("\r", "")
        if not line:
            continue
        start = line.find(_MARKER)
        if start < 0:
            ignored += 1
            continue
        try:
            obj, _ = _DECODER.raw_decode(line, start)
        except json.JSONDecodeError:
            ignored += 1
            continue
        if isinstance(obj, dict) and isinstance(obj.get("event"), str):
            events.append(obj)
        else:
            ignored += 1
    return events, ignored


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return default
    return default


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _provenance(value: Any) -> Provenance | None:
    if not isinstance(value, dict):
        return None
    return Provenance(
        pid=_int(value.get("pid")),
        thread=_int(value.get("thread")),
        iteration=_int(value.get("iteration")),
    )


def parse_corruption(event: Mapping[str, Any]) -> Corruption:
    """One "corruption" line as a record (hex strings become ints)."""
    return Corruption(
        source=str(event.get("source", "checker")),
        address=_int(event.get("address")),
        expected=_int(event.get("expected")),
        found=_int(event.get("found")),
        provenance=_provenance(event.get("provenance")),
        seconds_since_reap=_float_or_none(event.get("seconds_since_reap")),
        bad_words=_int(event.get("bad_words"), 1),
        round=_int(event.get("round")),
        pass_index=_int(event.get("pass")),
        pid=_int(event.get("pid")),
        evidence=str(event["evidence"]) if isinstance(event.get("evidence"), str) else None,
        seconds_since_remap=_float_or_none(event.get("seconds_since_remap")),
        raw=dict(event),
    )


def _parse_error(event: Mapping[str, Any]) -> StressError:
    return StressError(
        message=str(event.get("message", "")),
        syscall=str(event.get("syscall", "")),
        errno=_int(event.get("errno")),
        errno_name=str(event.get("errno_name", "")),
        fatal=bool(event.get("fatal", True)),
    )


def _counters(event: Mapping[str, Any] | None) -> dict[str, int | float]:
    if event is None:
        return {}
    return {
        k: v
        for k, v in event.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "exit_code"
    }


def _status(
    summary: Mapping[str, Any] | None,
    corruptions: list[Corruption],
    counters: Mapping[str, int | float],
    exit_code: int,
) -> Status:
    # A corruption is the finding the whole run exists for: it wins over errors.
    if corruptions or counters.get("corruptions", 0) or exit_code == EXIT_CORRUPTED:
        return "corrupted"
    # Clean needs all three: a summary, a clean status in it, and exit code 0.
    if summary is not None and summary.get("status") == "clean" and exit_code == EXIT_CLEAN:
        return "clean"
    return "error"


def parse_output(stdout: str, exit_code: int | None = None) -> StressResult:
    """Read a run's stdout. `exit_code` (from the runner) wins over the summary's own."""
    events, ignored = parse_events(stdout)
    start = next((e for e in events if e["event"] == "start"), None)
    summary = next((e for e in reversed(events) if e["event"] == "summary"), None)
    progress = [e for e in events if e["event"] == "progress"]
    corruptions = [parse_corruption(e) for e in events if e["event"] == "corruption"]
    errors = [_parse_error(e) for e in events if e["event"] == "error"]

    counters = _counters(summary if summary is not None else (progress[-1] if progress else None))
    if exit_code is None:
        exit_code = _int(summary.get("exit_code"), EXIT_RUNTIME) if summary else EXIT_RUNTIME
    scenario = str((summary or start or {}).get("scenario", ""))
    return StressResult(
        scenario=scenario,
        iterations=_int(counters.get("iterations")),
        reaps=_int(counters.get("reaps")),
        reap_failures_gone=_int(counters.get("reap_failures_gone")),
        corruptions=corruptions,
        counters=counters,
        exit_code=exit_code,
        status=_status(summary, corruptions, counters, exit_code),
        elapsed=float(counters.get("elapsed", 0.0)),
        summary=summary,
        start=start,
        errors=errors,
        progress=progress,
        ignored_lines=ignored,
    )


# --------------------------------------------------------------------------- running


def run(
    runner: Runner,
    options: StressOptions,
    timeout: float | None = None,
    binary: str = DEFAULT_BINARY,
) -> StressResult:
    """Run oomrace-stress in the guest and parse its report.

    Returns the result whatever its status (a corruption is what we look for;
    call `raise_for_error()` to turn a failed run into an exception). Raises
    UsageError when the program rejected its arguments, and GuestCommandError
    when it did not run at all or the runner timed out.
    """
    limit = options.default_timeout() if timeout is None else timeout
    if limit <= 0:
        raise UsageError(f"stress timeout must be positive, got {limit}")
    done = runner.run(options.argv(binary), timeout=limit, check=False)
    result = parse_output(done.stdout, exit_code=done.exit_code)
    if done.exit_code == EXIT_USAGE and result.start is None:
        raise UsageError(
            f"oomrace-stress rejected its arguments: {done.command}\n{done.stdout[-2000:]}"
        )
    if result.start is None and result.summary is None and not result.corruptions:
        raise GuestCommandError(
            f"oomrace-stress did not run (exit code {done.exit_code}): {done.command}\n"
            f"{done.stdout[-2000:]}"
        )
    if result.elapsed == 0.0:
        result.elapsed = done.seconds
    return result
