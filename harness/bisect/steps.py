"""One bisect step: what a step runner is asked, what it saw, and the verdict from that."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from ..errors import first_line
from ..verdict import title_family

StepKind = Literal["ran", "build_failed", "error"]
Verdict = Literal["bad", "good", "skip"]


# --- signatures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """What the bug looks like: checker corruption and/or kernel corruption titles; for a
    user's reproducer, its non-zero exit (`failure`) and/or any kernel report's title
    (`crashes`: an oops is the bug, not noise)."""

    checker: bool
    titles: tuple[str, ...]
    failure: bool = False
    crashes: bool = False

    def matches(self, checker_corruptions: int, titles: list[str], failures: int = 0) -> bool:
        if (self.checker and checker_corruptions > 0) or (self.failure and failures > 0):
            return True
        families = {title_family(t) for t in self.titles}
        return any(t in self.titles or title_family(t) in families for t in titles)

    def describe(self) -> str:
        parts = (["checker corruption"] if self.checker else []) + \
            (["reproducer exit code"] if self.failure else []) + list(self.titles)
        return " | ".join(parts) or "(none)"

    def relevant(self, outcome: StepOutcome) -> list[str]:
        """The titles of a step this signature is compared with."""
        return [*outcome.corruption_titles, *(outcome.crash_titles if self.crashes else [])]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        return cls(bool(d["checker"]), tuple(d["titles"]), bool(d.get("failure", False)),
                   bool(d.get("crashes", False)))


# --- steps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRequest:
    """What a step runner is asked: test the checked-out `commit` for up to `trials`
    trials (batches), stopping at the first detection when `stop_on_first`."""

    commit: str
    workdir: Path
    trials: int
    stop_on_first: bool = True
    seed: int | None = None


@dataclass
class StepOutcome:
    """What a step runner saw: raw evidence; the bisect decides the verdict."""

    kind: StepKind  # ran | build_failed | error (boot failure, harness error)
    trials: int = 0
    detections: int = 0  # trials in which corruption showed (any signature)
    iterations: int = 0
    checker_corruptions: int = 0
    failures: int = 0  # runs of a user's reproducer that exited non-zero
    corruption_titles: list[str] = field(default_factory=list)
    crash_titles: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    build_seconds: float = 0.0
    boot_seconds: float | None = None
    trial_seconds: float | None = None  # mean seconds per trial
    first_detection_seconds: float | None = None
    console_log: str | None = None
    kernel: str | None = None  # the image booted
    kernel_built: bool | None = None  # built by this step (False: found in the cache)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepOutcome:
        d = dict(d)
        kernel = d.get("kernel") or ""
        if "kernel_built" not in d and kernel.startswith(("built:", "cached:")):
            # A state file from before kernel_built: the kernel was "built:PATH".
            how, d["kernel"] = kernel.split(":", 1)
            d["kernel_built"] = how == "built"
        return cls(**d)


StepRunner = Callable[[StepRequest], StepOutcome]


class Printer(Protocol):
    def __call__(self, text: str) -> None: ...


def classify(outcome: StepOutcome, signature: Signature, noise: set[str],
             needed: int) -> tuple[Verdict, str]:
    """A step's verdict from its evidence: bad on a signature match, good after `needed`
    clean trials, skip otherwise."""
    if outcome.kind == "build_failed":
        m = re.search(r"^.*\berror\b:.*$", outcome.error or "", re.M | re.I)
        return "skip", f"build failed: {(m.group(0) if m else first_line(outcome.error))[:200]}"
    titles = signature.relevant(outcome)
    if signature.matches(outcome.checker_corruptions, titles, outcome.failures):
        what = next((t for t in titles if signature.matches(0, [t])),
                    "checker corruption" if outcome.checker_corruptions
                    else "the reproducer exited non-zero")
        return "bad", f"signature seen: {what}"
    unrelated = [t for t in [*outcome.corruption_titles, *outcome.crash_titles]
                 if t not in noise]
    if unrelated:
        return "skip", f"unrelated report: {unrelated[0]}"
    if outcome.checker_corruptions or outcome.detections:
        return "skip", "corruption that does not match the signature"
    if outcome.kind == "error":
        return "skip", f"harness/boot error: {first_line(outcome.error)}"
    if outcome.trials <= 0:
        return "skip", "no trial ran"
    if outcome.trials < needed:
        return "good", f"clean in {outcome.trials} trials (fewer than the {needed} planned)"
    return "good", f"clean in {outcome.trials} trials"

