"""Evidence into a verdict: clean, corrupted, crashed or error, with a detection rate.

Which kernel reports mean "memory was corrupted" (rather than "the kernel crashed") is
data of the crash families (`kernel_log.families`, each title kind's `corruption`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Re-exported: the verdict's words for what a title means; their home is the family data.
from .kernel_log import is_corruption_title as is_corruption_title
from .kernel_log import title_family as title_family

VERDICTS = ("clean", "corrupted", "crashed", "failed", "error")
"""failed: the user's reproducer exited non-zero, with no kernel report to name."""


class TitledReport(Protocol):
    @property
    def title(self) -> str: ...


def is_corruption(report: TitledReport) -> bool:
    return is_corruption_title(report.title)


def corruption_count(reports: Iterable[TitledReport]) -> int:
    """How many of `reports` say memory was corrupted."""
    return sum(1 for r in reports if is_corruption(r))


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def decide(workload_status: str, reports: Sequence[TitledReport], error: str | None) -> Verdict:
    """`workload_status` is the workload's own word: clean, corrupted, failed (a user
    reproducer exited non-zero) or error. A kernel report outranks the reproducer's exit
    code: it says more about what went wrong."""
    corruption = [r.title for r in reports if is_corruption(r)]
    crashes = [r.title for r in reports if not is_corruption(r)]
    if workload_status == "corrupted" or corruption:
        why = corruption[0] if corruption else \
            "the user-space checker found foreign data (a stale write, or a stale read)"
        return Verdict("corrupted", why)
    if crashes:
        return Verdict("crashed", crashes[0])
    if workload_status == "failed":
        return Verdict("failed", "the reproducer exited non-zero")
    if error is not None:
        return Verdict("error", error.splitlines()[0] if error else "harness error")
    if workload_status != "clean":
        return Verdict("error", f"the workload ended with status {workload_status!r}")
    return Verdict("clean", "no corruption and no kernel report")


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial rate; (0, 1) when there were no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
