"""What runs inside a booted guest. Each workload returns a status the verdict reads:
clean, corrupted or error, plus details for the result JSON."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

from . import kernel_log, stress, verdict
from .errors import HarnessError, UsageError
from .guest import Guest
from .runner import Runner


@dataclass(frozen=True)
class SmokeCheck:
    """One runner's end-to-end check in the smoke workload."""

    runner: str
    hello_exit_code: int | None
    guest_machine: str | None
    exit_code_carried: bool

    def passed(self, arch: str) -> bool:
        return self.hello_exit_code == 0 and self.guest_machine == arch \
            and self.exit_code_carried

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SmokeCheck:
        return cls(runner=str(data["runner"]), hello_exit_code=data.get("hello_exit_code"),
                   guest_machine=data.get("guest_machine"),
                   exit_code_carried=bool(data.get("exit_code_carried")))


BATCH_ITERATIONS = 25
"""Iterations in one stress batch (one trial), unless a workload is given another size."""


@dataclass(frozen=True)
class StressBatch:
    """One batch of a stress workload: one Bernoulli trial."""

    status: str
    iterations: int
    checker_corruptions: int
    kernel_reports: int  # new kernel corruption reports during the batch
    detected: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StressBatch:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


STRESS_TOTALS = ("iterations", "reaps", "reap_failures_gone", "oom_kills", "oom_late",
                 "stuck_victims")
"""The program's counters a stress workload sums over its batches."""


@dataclass(frozen=True)
class StressSummary:
    """What a stress workload found over all its batches."""

    batches: tuple[StressBatch, ...]
    totals: Mapping[str, int]  # STRESS_TOTALS, summed over the batches
    corruptions: tuple[stress.Corruption, ...]
    first_detection_seconds: float | None
    seconds: float
    error: str | None

    @property
    def trials(self) -> int:
        return len(self.batches)

    @property
    def detections(self) -> int:
        return sum(1 for b in self.batches if b.detected)

    @property
    def rate(self) -> float | None:
        return self.detections / self.trials if self.trials else None

    @property
    def ci95(self) -> tuple[float, float]:
        return verdict.wilson_interval(self.detections, self.trials)

    @property
    def iterations(self) -> int:
        return int(self.totals.get("iterations", 0))

    @property
    def checker_corruptions(self) -> int:
        return len(self.corruptions)

    @property
    def status(self) -> str:
        if self.detections:
            return "corrupted"
        return "error" if self.error or not self.trials else "clean"

    def to_json(self) -> dict[str, Any]:
        return {
            "trials": self.trials, "detections": self.detections, "rate": self.rate,
            "ci95": list(self.ci95), **{k: self.totals.get(k, 0) for k in STRESS_TOTALS},
            "checker_corruptions": self.checker_corruptions,
            "corruptions": [c.to_dict() for c in self.corruptions],
            "first_detection_seconds": self.first_detection_seconds,
            "seconds": self.seconds, "batches": [b.to_json() for b in self.batches],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StressSummary:
        # A corruption record is written in the program's own format: parse it back so.
        return cls(
            batches=tuple(StressBatch.from_json(b) for b in data.get("batches", [])),
            totals={k: int(data.get(k) or 0) for k in STRESS_TOTALS},
            corruptions=tuple(stress.parse_corruption(c) for c in data.get("corruptions", [])),
            first_detection_seconds=data.get("first_detection_seconds"),
            seconds=float(data.get("seconds") or 0.0), error=data.get("error"),
        )


@dataclass(frozen=True)
class WorkloadResult:
    """A workload's own word (clean, corrupted or error) and its details: the smoke
    checks or the stress summary."""

    name: str
    status: str  # clean | corrupted | error
    checks: tuple[SmokeCheck, ...] | None = None
    stress: StressSummary | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "status": self.status}
        if self.checks is not None:
            data["checks"] = [c.to_json() for c in self.checks]
        if self.stress is not None:
            data.update(self.stress.to_json())
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkloadResult:
        checks = data.get("checks")
        return cls(
            name=str(data.get("name", "")), status=str(data.get("status", "error")),
            checks=None if checks is None else tuple(SmokeCheck.from_json(c) for c in checks),
            stress=StressSummary.from_json(data) if "trials" in data else None,
        )


class Workload(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, guest: Guest) -> WorkloadResult: ...


@dataclass(frozen=True)
class SmokeWorkload:
    """Proves the guest works end to end: both runners, exit codes, a guest program."""

    name: str = "smoke"
    timeout: float = 60.0

    def run(self, guest: Guest) -> WorkloadResult:
        checks = [self._check(runner) for runner in (guest.serial, guest.ssh)
                  if runner is not None]
        ok = bool(checks) and all(c.passed(guest.arch.name) for c in checks)
        if guest.options.ssh and guest.ssh is None:
            ok = False
        return WorkloadResult(self.name, "clean" if ok else "error", checks=tuple(checks))

    def _check(self, runner: Runner) -> SmokeCheck:
        hello = runner.run(["oomrace-hello"], self.timeout)
        false = runner.run(["sh", "-c", "exit 3"], self.timeout)
        machine = None
        if hello.ok:
            try:
                machine = json.loads(hello.stdout.strip().splitlines()[-1])["machine"]
            except (ValueError, KeyError, IndexError):
                machine = None
        return SmokeCheck(runner=runner.name, hello_exit_code=hello.exit_code,
                          guest_machine=machine, exit_code_carried=false.exit_code == 3)


WORKLOADS: dict[str, Workload] = {"smoke": SmokeWorkload()}


def _kernel_corruption_reports(console_log: Path) -> int:
    """How many memory-corruption reports the kernel has printed so far."""
    try:
        text = console_log.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for r in kernel_log.parse(text).reports if verdict.is_corruption(r))


@dataclass(frozen=True)
class StressWorkload:
    """oomrace-stress in batches: each batch is one Bernoulli trial (did this batch show
    corruption, from the checker or in the kernel's log?), which gives a detection rate
    with an interval, a time to first detection, and an early stop for bisection."""

    options: stress.StressOptions
    iterations: int = 0  # total over all batches; 0 = until the duration is spent
    duration_s: float = 30.0
    batch_iterations: int = BATCH_ITERATIONS
    batch_seconds: float = 10.0
    stop_on_first_detection: bool = False
    max_trials: int = 0  # stop after this many batches; 0: only the budget bounds the run

    @property
    def name(self) -> str:
        return str(self.options.scenario)

    def _next_batch(self, done: int, remaining_s: float) -> stress.StressOptions:
        count = self.batch_iterations
        if self.iterations:
            count = min(count, self.iterations - done)
        return replace(self.options, iterations=count,
                       duration_s=max(1.0, min(self.batch_seconds, remaining_s)))

    def run(self, guest: Guest) -> WorkloadResult:
        started = time.monotonic()
        deadline = started + self.duration_s
        console = guest.artifacts.console_log
        kernel_seen = _kernel_corruption_reports(console)
        batches: list[StressBatch] = []
        corruptions: list[stress.Corruption] = []
        totals = dict.fromkeys(STRESS_TOTALS, 0)
        first_detection: float | None = None
        error: str | None = None
        while time.monotonic() < deadline and (
            not self.iterations or totals["iterations"] < self.iterations
        ):
            options = self._next_batch(totals["iterations"], deadline - time.monotonic())
            try:
                result = stress.run(guest.runner, options)
            except HarnessError as e:
                error = str(e)
                break
            kernel_now = _kernel_corruption_reports(console)
            batch = StressBatch(
                status=result.status, iterations=result.iterations,
                checker_corruptions=len(result.corruptions),
                kernel_reports=kernel_now - kernel_seen,
                detected=result.corrupted or kernel_now > kernel_seen,
                seconds=round(result.elapsed, 3))
            if batch.detected and first_detection is None:
                first_detection = time.monotonic() - started
            batches.append(batch)
            kernel_seen = kernel_now
            corruptions += result.corruptions
            for key in totals:
                totals[key] += int(result.counters.get(key, 0))
            error = self._stop_reason(result, batch, len(batches))
            if error is not None or (batch.detected and self.stop_on_first_detection) or (
                    self.max_trials and len(batches) >= self.max_trials):
                break
        summary = StressSummary(
            batches=tuple(batches), totals=totals, corruptions=tuple(corruptions),
            first_detection_seconds=first_detection,
            seconds=round(time.monotonic() - started, 3), error=error)
        return WorkloadResult(self.name, summary.status, stress=summary)

    @staticmethod
    def _stop_reason(result: stress.StressResult, batch: StressBatch, done: int) -> str | None:
        """Why the batches cannot go on after this one (an error), or None."""
        if result.status == "error":
            return result.error_text()
        if batch.iterations == 0:
            return "a stress batch made no progress (0 iterations)"
        return None


def get_workload(name: str, iterations: int = 0, duration_s: float = 30.0,
                 seed: int | None = None, writers: int | None = None,
                 stop_on_first_detection: bool = False, max_trials: int = 0) -> Workload:
    """The workload called `name`: smoke, or a stress scenario with its budget."""
    if name in WORKLOADS:
        return WORKLOADS[name]
    try:
        scenario = stress.Scenario.parse(name)
    except HarnessError:
        valid = ", ".join([*sorted(WORKLOADS), *(s.value for s in stress.Scenario)])
        raise UsageError(f"unknown scenario {name!r}; valid scenarios: {valid}") from None
    if iterations < 0 or not (math.isfinite(duration_s) and duration_s > 0):  # nan: never ends
        raise UsageError("--iterations must be >= 0 and --duration > 0")
    options = stress.StressOptions(scenario=scenario, seed=seed, writers=writers)
    return StressWorkload(options, iterations=iterations, duration_s=duration_s,
                          stop_on_first_detection=stop_on_first_detection,
                          max_trials=max_trials)


def check_supported(name: str, release: str | None) -> None:
    """UsageError when a kernel of `release` cannot run the scenario called `name`."""
    if name in WORKLOADS:
        return
    reason = stress.Scenario.parse(name).unsupported_by(release)
    if reason is not None:
        raise UsageError(reason)
