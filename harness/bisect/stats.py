"""The bisect's statistics: how many clean trials a good verdict needs, and the confidence
good verdicts give (the package docstring explains the model)."""

from __future__ import annotations

import math

from ..errors import UsageError

BATCH_ITERATIONS = 25  # iterations per trial: StressWorkload's batch
BATCH_SECONDS = 10.0  # StressWorkload's cap on one batch


def needed_trials(p_low: float, confidence: float) -> int:
    """Fewest clean trials n with (1 - p_low)^n <= 1 - confidence."""
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1 (exclusive), not {confidence}")
    if p_low <= 0:
        raise UsageError("the detection rate's lower bound is 0: no number of clean trials "
                         "would make a good verdict trustworthy")
    if p_low >= 1:
        return 1
    n = math.log(1 - confidence) / math.log(1 - p_low)
    # guard against floating point just above an integer
    return max(1, math.ceil(n - 1e-9))


def step_confidence(p: float, trials: int) -> float:
    """Probability that a buggy commit would have shown the bug in `trials` trials."""
    return 1.0 - (1.0 - p) ** trials if trials > 0 else 0.0


def overall_confidence(p: float, good_trials: list[int]) -> float:
    """Product over good verdicts of 1 - (1 - p)^n_i."""
    product = 1.0
    for n in good_trials:
        product *= step_confidence(p, n)
    return product


def good_verdicts_bound(commits_in_range: int) -> int:
    """How many good verdicts a bisect of this range may need: the steps git takes,
    the good end's confirmation and one spare for a skip's neighbour."""
    steps = max(1, math.ceil(math.log2(max(2, commits_in_range))))
    return steps + 2


def per_verdict_confidence(confidence: float, verdicts: int) -> float:
    return float(confidence ** (1.0 / max(1, verdicts)))
