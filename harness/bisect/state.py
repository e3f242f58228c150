"""The bisect's configuration and its state file in the git dir (for --resume)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .. import atomicio, schema
from ..errors import UsageError
from ..kernel.build.recipes import DEFAULT_CONFIG_RECIPE
from ..repro import Reproducer
from ..stress import STRESS_CPUS
from .git import Git
from .stats import RateBounds
from .steps import Signature, StepOutcome

STATE_NAME = "oomrace-bisect.json"
STATE_VERSION = 1


@dataclass
class BisectConfig:
    repo: Path
    good: str
    bad: str  # the end where the bug shows (for --find-fix the older end)
    arch: str
    scenario: str = "mrelease"
    recipe_config: str = DEFAULT_CONFIG_RECIPE
    confidence: float = 0.95
    max_iterations_per_step: int | None = None
    calibration_batches: int | None = None  # trials on the bad end; None: by workload
    trial_iterations: int | None = None  # a scenario's iterations per trial; None: 5
    find_fix: bool = False
    artifacts: Path = Path("oomrace-artifacts")
    cpus: int = STRESS_CPUS
    memory_mb: int = 1024
    seed: int | None = 1
    # The user's own reproducer instead of the scenario (repro.Reproducer): a C file or a
    # command line for the guest's shell; one run of it is one trial.
    repro: str | None = None
    exec_command: str | None = None
    repro_timeout: float | None = None  # seconds one run may take; None: the default
    append: list[str] = field(default_factory=list)  # extra kernel command line
    cpu: str | None = None  # QEMU CPU model; None: by arch and kernel version
    # Host CPUs QEMU may use; 0: all. Not `run`'s 1 for stress: on the 6.1 re-enactment
    # all host CPUs detect in 26/30 trials of 5 iterations, one in 16/30 (README).
    host_cpus: int = 0
    kconfig: str | None = None  # a full .config as the base instead of the recipe's
    kconfig_add: list[str] = field(default_factory=list)  # CONFIG_X=y options

    def reproducer(self) -> Reproducer | None:
        return Reproducer.from_options(self.exec_command, self.repro, self.repro_timeout)

    @property
    def iterations_per_trial(self) -> int:
        """A trial is a stress batch, or one run of the user's reproducer."""
        from .stats import TRIAL_ITERATIONS

        if self.reproducer():
            return 1
        return self.trial_iterations or TRIAL_ITERATIONS

    @property
    def calibration_trials(self) -> int:
        from .stats import CALIBRATION_TRIALS, REPRO_CALIBRATION_TRIALS

        if self.calibration_batches is not None:
            return self.calibration_batches
        return REPRO_CALIBRATION_TRIALS if self.reproducer() else CALIBRATION_TRIALS

    @property
    def workload(self) -> str:
        """What a trial runs, for messages."""
        found = self.reproducer()
        return found.describe() if found else self.scenario

    @property
    def terms(self) -> tuple[str, str]:
        """(old, new) git bisect terms."""
        return ("broken", "fixed") if self.find_fix else ("good", "bad")

    @property
    def bug_term(self) -> str:
        """The term for a commit where the bug shows."""
        return self.terms[0] if self.find_fix else self.terms[1]

    @property
    def clean_term(self) -> str:
        return self.terms[1] if self.find_fix else self.terms[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["repo"], d["artifacts"] = str(self.repo), str(self.artifacts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BisectConfig:
        d = dict(d)
        d["repo"], d["artifacts"] = Path(d["repo"]), Path(d["artifacts"])
        if "trial_iterations" not in d:
            # A state from before TRIAL_ITERATIONS was calibrated on batches of 25: its
            # plan is in those trials.
            from .stats import BATCH_ITERATIONS

            d["trial_iterations"] = BATCH_ITERATIONS
        return cls(**d)


class Phase(StrEnum):
    """Where a bisect is: each phase is done once, in this order; --resume goes on at it."""

    CALIBRATING = "calibrating"  # measuring p on the bad end
    CONFIRMING = "confirming"  # the good end must be clean
    BISECTING = "bisecting"  # git proposes, the steps decide
    DONE = "done"


@dataclass(frozen=True)
class Calibration:
    """The bad end's run: the rate it measured and what its step cost (the plan's
    estimate of a step)."""

    commit: str
    bounds: RateBounds
    iterations: int = 0
    first_detection_seconds: float | None = None
    build_seconds: float | None = None
    boot_seconds: float | None = None
    trial_seconds: float | None = None
    console_log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, **self.bounds.to_dict(), "iterations": self.iterations,
                "first_detection_seconds": self.first_detection_seconds,
                "build_seconds": self.build_seconds, "boot_seconds": self.boot_seconds,
                "trial_seconds": self.trial_seconds, "console_log": self.console_log}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(commit=str(d.get("commit", "")), bounds=RateBounds.from_dict(d),
                   iterations=int(d.get("iterations") or 0),
                   first_detection_seconds=d.get("first_detection_seconds"),
                   build_seconds=d.get("build_seconds"), boot_seconds=d.get("boot_seconds"),
                   trial_seconds=d.get("trial_seconds"), console_log=d.get("console_log"))


@dataclass(frozen=True)
class Plan:
    """What the calibration asks of the bisect: clean trials per good verdict, and the
    expected cost."""

    trials_per_good: int
    good_verdicts_bound: int = 0
    per_verdict_confidence: float = 0.0
    capped_by_max_iterations: bool = False
    expected_steps: int = 0
    expected_seconds: float = 0.0
    seconds_per_step: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"good_verdicts_bound": self.good_verdicts_bound,
                "per_verdict_confidence": self.per_verdict_confidence,
                "trials_per_good": self.trials_per_good,
                "capped_by_max_iterations": self.capped_by_max_iterations,
                "expected_steps": self.expected_steps,
                "expected_seconds": self.expected_seconds,
                "seconds_per_step": self.seconds_per_step}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(trials_per_good=int(d["trials_per_good"]),
                   good_verdicts_bound=int(d.get("good_verdicts_bound") or 0),
                   per_verdict_confidence=float(d.get("per_verdict_confidence") or 0.0),
                   capped_by_max_iterations=bool(d.get("capped_by_max_iterations")),
                   expected_steps=int(d.get("expected_steps") or 0),
                   expected_seconds=float(d.get("expected_seconds") or 0.0),
                   seconds_per_step=float(d.get("seconds_per_step") or 0.0))


@dataclass(frozen=True)
class BisectResult:
    """The answer: the first bad (or, with --find-fix, fixed) commit, or the candidates
    git left when only skipped commits remained, and the confidence in it."""

    commit: str | None
    subject: str | None
    candidates: tuple[str, ...]
    confidence: float
    confidence_point_estimate: float  # with p's point estimate instead of its bound
    requested_confidence: float
    kind: str  # regression | fix

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = list(self.candidates)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BisectResult:
        confidence = float(d["confidence"])
        return cls(commit=d.get("commit"), subject=d.get("subject"),
                   candidates=tuple(d.get("candidates") or ()), confidence=confidence,
                   confidence_point_estimate=float(d.get("confidence_point_estimate",
                                                         confidence)),
                   requested_confidence=float(d.get("requested_confidence", 0.0)),
                   kind=str(d.get("kind", "regression")))


@dataclass
class StepRecord:
    commit: str
    subject: str
    role: str  # bad-end | good-end | step
    verdict: str  # bad | good | skip
    reason: str
    outcome: StepOutcome
    planned_trials: int
    confidence: float | None = None  # for good verdicts: 1 - (1 - p_low)^n
    marked: bool = False
    workdir: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepRecord:
        d = dict(d)
        d["outcome"] = StepOutcome.from_dict(d["outcome"])
        return cls(**d)


@dataclass
class BisectState:
    config: BisectConfig
    good_sha: str
    bad_sha: str
    commits_in_range: int
    started_at: str
    phase: Phase = Phase.CALIBRATING
    calibration: Calibration | None = None
    signature: Signature | None = None
    noise: list[str] = field(default_factory=list)
    plan: Plan | None = None
    records: list[StepRecord] = field(default_factory=list)
    result: BisectResult | None = None
    seconds: float = 0.0  # wall time spent over all sessions

    def to_dict(self) -> dict[str, Any]:
        return schema.versioned({
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "good": self.good_sha, "bad": self.bad_sha,
            "commits_in_range": self.commits_in_range,
            "started_at": self.started_at, "phase": self.phase.value,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "signature": asdict(self.signature) if self.signature else None,
            "noise": self.noise, "plan": self.plan.to_dict() if self.plan else None,
            "steps": [r.to_dict() for r in self.records],
            "result": self.result.to_dict() if self.result else None,
            "seconds": round(self.seconds, 1),
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BisectState:
        schema.check_version(d, "the bisect state")
        if d.get("version") != STATE_VERSION:
            raise UsageError(f"bisect state version {d.get('version')} is not "
                             f"{STATE_VERSION}; start again after `git bisect reset`")
        sig, cal, plan, result = (d.get(k) for k in ("signature", "calibration", "plan",
                                                      "result"))
        return cls(
            config=BisectConfig.from_dict(d["config"]), good_sha=d["good"], bad_sha=d["bad"],
            commits_in_range=d["commits_in_range"], started_at=d["started_at"],
            phase=Phase(d["phase"]), calibration=Calibration.from_dict(cal) if cal else None,
            signature=Signature.from_dict(sig) if sig else None,
            noise=list(d.get("noise", [])), plan=Plan.from_dict(plan) if plan else None,
            records=[StepRecord.from_dict(r) for r in d.get("steps", [])],
            result=BisectResult.from_dict(checked) if (checked := _checked_result(result))
            else None,
            seconds=float(d.get("seconds", 0.0)),
        )


def _checked_result(result: Any) -> dict[str, Any] | None:
    """A finished bisect's result as the report reads it; TypeError (a corrupt state,
    which load_state names) when a figure is missing or not a number."""
    if result is None:
        return None
    if not isinstance(result, dict):
        raise TypeError("its result is not an object")
    for key in ("confidence", "confidence_point_estimate"):
        value = result.get(key)
        if key == "confidence_point_estimate" and value is None:
            continue  # older states: the report falls back to the confidence
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"its result has no number {key}")
    if not isinstance(result.get("commit"), str | None) or \
            not isinstance(result.get("candidates", []), list):
        raise TypeError("its result's commit or candidates are not as written")
    return result


def state_path(repo: Path) -> Path:
    return Git(repo).git_dir() / STATE_NAME


def load_state(repo: Path) -> BisectState:
    path = state_path(repo)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return BisectState.from_dict(data)
    except FileNotFoundError:
        raise UsageError(f"no oomrace bisect to resume in {repo} ({path} is missing)") from None
    # Valid JSON of another shape fails in from_dict with any of these.
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise UsageError(f"{path} is not a readable bisect state ({e}); "
                         "run `git bisect reset` and start again") from None


def save_state(state: BisectState) -> None:
    atomicio.write_json(state_path(state.config.repo), state.to_dict())
