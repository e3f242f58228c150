"""Evidence into a verdict: clean, corrupted, crashed or error, with a detection rate.

Which kernel reports mean "memory was corrupted" (rather than "the kernel crashed") is
data: the titles below are what the kernel prints when freed memory was written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

VERDICTS = ("clean", "corrupted", "crashed", "error")

CORRUPTION_TITLES = tuple(
    re.compile(p)
    for p in (
        r"pagealloc: memory corruption",  # page poisoning found a write to a free page
        r"Bad page state",
        r"Bad page map",
        r"Bad rss-counter state",
        r"corrupted list|list_(add|del) corruption",
        r"(KASAN|KFENCE): use-after-free",
        r"KFENCE: memory corruption",
    )
)


class TitledReport(Protocol):
    @property
    def title(self) -> str: ...


def title_family(title: str) -> str:
    """A title without its guilty function: one bug's reports share it wherever they hit."""
    return title.split(" in ", 1)[0].strip()


def is_corruption_title(title: str) -> bool:
    """Whether a report with this title means memory was corrupted."""
    return any(p.search(title) for p in CORRUPTION_TITLES)


def is_corruption(report: TitledReport) -> bool:
    return is_corruption_title(report.title)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


def decide(workload_status: str, reports: Sequence[TitledReport], error: str | None) -> Verdict:
    """`workload_status` is the workload's own word: clean, corrupted or error."""
    corruption = [r.title for r in reports if is_corruption(r)]
    crashes = [r.title for r in reports if not is_corruption(r)]
    if workload_status == "corrupted" or corruption:
        why = corruption[0] if corruption else "the user-space checker found foreign writes"
        return Verdict("corrupted", why)
    if crashes:
        return Verdict("crashed", crashes[0])
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
