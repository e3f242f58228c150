"""What runs inside a booted guest. Each workload returns a status the verdict reads:
clean, corrupted or error, plus details for the result JSON."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol

from . import stress, verdict
from .errors import GuestCommandTimeout, HarnessError, UsageError
from .guest import Guest
from .repro import NO_EXIT_CODE, Reproducer, ReproRun, ReproSummary
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
    """A workload's own word (clean, corrupted, failed or error) and its details: the
    smoke checks, the stress summary or the user reproducer's runs."""

    name: str
    status: str  # clean | corrupted | failed (a reproducer exited non-zero) | error
    checks: tuple[SmokeCheck, ...] | None = None
    stress: StressSummary | None = None
    repro: ReproSummary | None = None

    @property
    def kind(self) -> str:
        """smoke, stress or repro (the user's own reproducer)."""
        if self.repro is not None:
            return "repro"
        return "stress" if self.stress is not None else "smoke"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "status": self.status}
        if self.checks is not None:
            data["checks"] = [c.to_json() for c in self.checks]
        if self.stress is not None:
            data.update(self.stress.to_json())
        if self.repro is not None:
            data["repro"] = self.repro.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkloadResult:
        checks = data.get("checks")
        repro = data.get("repro")
        return cls(
            name=str(data.get("name", "")), status=str(data.get("status", "error")),
            checks=None if checks is None else tuple(SmokeCheck.from_json(c) for c in checks),
            stress=StressSummary.from_json(data) if "trials" in data else None,
            repro=None if repro is None else ReproSummary.from_json(repro),
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
        console = guest.console_reader
        seen = console.cursor()  # reports before the first batch are not its own
        tally = BatchTally()
        while time.monotonic() < deadline and (
            not self.iterations or tally.totals["iterations"] < self.iterations
        ):
            options = self._next_batch(tally.totals["iterations"],
                                       deadline - time.monotonic())
            try:
                result = stress.run(guest.runner, options)
            except HarnessError as e:
                tally.error = str(e)
                break
            new, seen = console.since(seen)
            batch = tally.add(result, verdict.corruption_count(new), time.monotonic() - started)
            if tally.error is not None or (batch.detected and self.stop_on_first_detection) or (
                    self.max_trials and len(tally.batches) >= self.max_trials):
                break
        return tally.result(self.name, time.monotonic() - started)


@dataclass
class BatchTally:
    """The batches of a stress run as they end, into its summary: what the local engine
    sees live and what a LAVA job's log is read back into (harness.lab.lava_log), so both
    count batches, detections and stop reasons the same way."""

    batches: list[StressBatch] = field(default_factory=list)
    corruptions: list[stress.Corruption] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STRESS_TOTALS, 0))
    first_detection: float | None = None
    error: str | None = None

    def add(self, result: stress.StressResult, kernel_reports: int,
            elapsed: float) -> StressBatch:
        """One finished batch, with the memory-corruption reports the kernel printed
        during it; sets `error` when the batches cannot go on after it."""
        batch = StressBatch(
            status=result.status, iterations=result.iterations,
            checker_corruptions=len(result.corruptions), kernel_reports=kernel_reports,
            detected=result.corrupted or kernel_reports > 0, seconds=round(result.elapsed, 3))
        if batch.detected and self.first_detection is None:
            self.first_detection = elapsed
        self.batches.append(batch)
        self.corruptions += result.corruptions
        for key in self.totals:
            self.totals[key] += int(result.counters.get(key, 0))
        self.error = _stop_reason(result, batch)
        return batch

    def result(self, name: str, seconds: float) -> WorkloadResult:
        summary = StressSummary(
            batches=tuple(self.batches), totals=self.totals, corruptions=tuple(self.corruptions),
            first_detection_seconds=self.first_detection, seconds=round(seconds, 3),
            error=self.error)
        return WorkloadResult(name, summary.status, stress=summary)


def _stop_reason(result: stress.StressResult, batch: StressBatch) -> str | None:
    """Why the batches cannot go on after this one (an error), or None."""
    if result.status == "error":
        return result.error_text()
    if batch.iterations == 0:
        return "a stress batch made no progress (0 iterations)"
    return None


REPRO_NAME = "repro"  # the scenario name of a run of the user's own reproducer
REPRO_GRACE = 30.0  # seconds past the reproducer's timeout before the guest counts as hung


@dataclass(frozen=True)
class ReproWorkload:
    """The user's reproducer run again and again: each run is one trial, which reproduced
    when the run exited non-zero or the kernel printed a new report meanwhile."""

    reproducer: Reproducer
    iterations: int = 0  # runs; 0 = until the duration is spent
    duration_s: float = 30.0
    stop_on_first_detection: bool = False

    @property
    def name(self) -> str:
        return REPRO_NAME

    def run(self, guest: Guest) -> WorkloadResult:
        started = time.monotonic()
        deadline = started + self.duration_s
        console = guest.console_reader
        seen = console.cursor()
        runs: list[ReproRun] = []
        first_output, error = "", None
        while time.monotonic() < deadline and (not self.iterations
                                               or len(runs) < self.iterations):
            begun = time.monotonic()
            try:
                done = guest.runner.run(self.reproducer.command(),
                                        self.reproducer.timeout + REPRO_GRACE)
            except GuestCommandTimeout:  # not even the kill came back: the guest hangs
                new, seen = console.since(seen)
                runs.append(ReproRun(NO_EXIT_CODE, len(new), round(time.monotonic() - begun, 3),
                                     timed_out=True))
                break
            except HarnessError as e:  # a lost guest: no verdict from this run
                error = f"run {len(runs) + 1} of the reproducer: {e}"
                break
            new, seen = console.since(seen)
            runs.append(ReproRun(done.exit_code, len(new), round(done.seconds, 3),
                                 self.reproducer.timed_out(done.exit_code, done.seconds)))
            if runs[-1].reproduced and not first_output:
                first_output = done.stdout[-2000:]
            if runs[-1].reproduced and self.stop_on_first_detection:
                break
        summary = ReproSummary(self.reproducer, tuple(runs), first_output,
                               round(time.monotonic() - started, 3), error)
        return WorkloadResult(self.name, summary.status, repro=summary)


def check_budget(iterations: int, duration_s: float) -> None:
    if iterations < 0 or not (math.isfinite(duration_s) and duration_s > 0):  # nan: never ends
        raise UsageError("--iterations must be >= 0 and --duration > 0")


def get_workload(name: str, iterations: int = 0, duration_s: float = 30.0,
                 seed: int | None = None, writers: int | None = None,
                 stop_on_first_detection: bool = False, max_trials: int = 0,
                 reproducer: Reproducer | None = None,
                 batch_iterations: int = BATCH_ITERATIONS) -> Workload:
    """The workload called `name`: smoke, a stress scenario with its budget, or (with
    `reproducer`) the user's reproducer with its budget."""
    if reproducer is not None:
        check_budget(iterations, duration_s)
        return ReproWorkload(reproducer, iterations=iterations, duration_s=duration_s,
                             stop_on_first_detection=stop_on_first_detection)
    if name in WORKLOADS:
        return WORKLOADS[name]
    try:
        scenario = stress.Scenario.parse(name)
    except HarnessError:
        valid = ", ".join([*sorted(WORKLOADS), *(s.value for s in stress.Scenario)])
        raise UsageError(f"unknown scenario {name!r}; valid scenarios: {valid}") from None
    check_budget(iterations, duration_s)
    options = stress.StressOptions(scenario=scenario, seed=seed, writers=writers)
    return StressWorkload(options, iterations=iterations, duration_s=duration_s,
                          batch_iterations=batch_iterations,
                          stop_on_first_detection=stop_on_first_detection,
                          max_trials=max_trials)


def check_supported(name: str, release: str | None) -> None:
    """UsageError when a kernel of `release` cannot run the scenario called `name`."""
    if name in WORKLOADS or name == REPRO_NAME:
        return
    reason = stress.Scenario.parse(name).unsupported_by(release)
    if reason is not None:
        raise UsageError(reason)
