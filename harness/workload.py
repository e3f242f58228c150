"""What runs inside a booted guest. Each workload returns a status the verdict reads:
clean, corrupted or error, plus details for the result JSON."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from . import kernel_log, stress, verdict
from .errors import HarnessError, UsageError
from .guest import Guest


@dataclass
class WorkloadResult:
    name: str
    status: str  # clean | corrupted | error
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, **self.details}


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
        checks: list[dict[str, Any]] = []
        runners = [r for r in (guest.serial, guest.ssh) if r is not None]
        for runner in runners:
            hello = runner.run(["oomrace-hello"], self.timeout)
            false = runner.run(["sh", "-c", "exit 3"], self.timeout)
            machine = None
            if hello.ok:
                try:
                    machine = json.loads(hello.stdout.strip().splitlines()[-1])["machine"]
                except (ValueError, KeyError, IndexError):
                    machine = None
            checks.append({
                "runner": runner.name,
                "hello_exit_code": hello.exit_code,
                "guest_machine": machine,
                "exit_code_carried": false.exit_code == 3,
            })
        ok = bool(checks) and all(
            c["hello_exit_code"] == 0 and c["guest_machine"] == guest.arch.name
            and c["exit_code_carried"] for c in checks
        )
        if guest.options.ssh and guest.ssh is None:
            ok = False
        return WorkloadResult(self.name, "clean" if ok else "error", {"checks": checks})


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
    batch_iterations: int = 25
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
        batches: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        totals = {"iterations": 0, "reaps": 0, "reap_failures_gone": 0, "oom_kills": 0,
                  "oom_late": 0, "stuck_victims": 0}
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
            detected = result.corrupted or kernel_now > kernel_seen
            if detected and first_detection is None:
                first_detection = time.monotonic() - started
            batches.append({
                "status": result.status, "iterations": result.iterations,
                "checker_corruptions": len(result.corruptions),
                "kernel_reports": kernel_now - kernel_seen, "detected": detected,
                "seconds": round(result.elapsed, 3),
            })
            kernel_seen = kernel_now
            records += [c.to_dict() for c in result.corruptions]
            for key in totals:
                totals[key] += int(result.counters.get(key, 0))
            if result.status == "error":
                error = result.error_text()
                break
            if result.iterations == 0:
                error = "a stress batch made no progress (0 iterations)"
                break
            if detected and self.stop_on_first_detection:
                break
            if self.max_trials and len(batches) >= self.max_trials:
                break
        trials = len(batches)
        detections = sum(1 for b in batches if b["detected"])
        low, high = verdict.wilson_interval(detections, trials)
        status = "corrupted" if detections else ("error" if error or not trials else "clean")
        details = {
            "trials": trials, "detections": detections,
            "rate": detections / trials if trials else None, "ci95": [low, high],
            **totals, "checker_corruptions": len(records), "corruptions": records,
            "first_detection_seconds": first_detection,
            "seconds": round(time.monotonic() - started, 3), "batches": batches,
            "error": error,
        }
        return WorkloadResult(self.name, status, details)


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
