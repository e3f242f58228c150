"""Exact small-sample statistics, without scipy: Clopper-Pearson bounds on a binomial rate
(the bisect's calibration) and Fisher's exact test of two rates (the lab's night-to-night
comparison).

Precision. The Clopper-Pearson bounds solve a binomial tail equation by bisection on p;
the tail is a sum of probabilities computed in log space (lgamma), so it has no overflow
at any n and a relative error of about 1e-13 for the n we use (up to thousands). The
bisection stops when the bracket is narrower than 1e-12, and returns the bracket's
conservative end (the lower bound rounded down, the upper bound rounded up), so a bound
is never tighter than the exact one by more than float rounding. Fisher's test is exact:
it sums hypergeometric weights as Python integers (math.comb) and divides once.
"""

from __future__ import annotations

import math

from .errors import UsageError

_BISECTION_WIDTH = 1e-12
# R's fisher.test treats probabilities within a relative 1e-7 of the observed table's as
# equal to it, so that tables tied in exact arithmetic are not lost to rounding; our
# weights are exact integers, and we keep the same tolerance so our p-values are R's.
FISHER_RELATIVE_TOLERANCE = 10**7  # weights within 1/10^7 of the observed one count


def _check(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise UsageError(f"{successes} successes of {trials} trials is not a binomial count")


def _log_pmf(i: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * math.log(p) + (n - i) * math.log1p(-p))


def _log_sum_exp(logs: list[float]) -> float:
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs))


def binomial_at_least(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0 or p >= 1.0:
        return 0.0 if p <= 0.0 else 1.0
    return min(1.0, math.exp(_log_sum_exp([_log_pmf(i, n, p) for i in range(k, n + 1)])))


def binomial_at_most(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return 1.0 - binomial_at_least(k + 1, n, p) if k < n else 1.0


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise UsageError(f"confidence must be between 0 and 1 (exclusive), not {confidence}")


def clopper_pearson_lower(successes: int, trials: int, confidence: float) -> float:
    """One-sided lower confidence bound on p: the p at which seeing `successes` or more
    of `trials` has probability 1 - confidence. P(bound > true p) <= 1 - confidence for
    every p (exact, not asymptotic: the reason to prefer it to Wilson at small n)."""
    _check(successes, trials)
    _check_confidence(confidence)
    if successes == 0:
        return 0.0
    alpha = 1.0 - confidence
    lo, hi = 0.0, 1.0
    while hi - lo > _BISECTION_WIDTH:
        mid = (lo + hi) / 2
        if binomial_at_least(successes, trials, mid) > alpha:
            hi = mid
        else:
            lo = mid
    return lo


def clopper_pearson_upper(successes: int, trials: int, confidence: float) -> float:
    """One-sided upper confidence bound on p (the mirror of the lower bound)."""
    _check(successes, trials)
    return 1.0 - clopper_pearson_lower(trials - successes, trials, confidence)


def clopper_pearson_interval(successes: int, trials: int,
                             confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided interval: each end a one-sided bound at (1 + confidence) / 2; (0, 1) for
    no trials."""
    if trials <= 0:
        return 0.0, 1.0
    side = (1.0 + confidence) / 2
    return (clopper_pearson_lower(successes, trials, side),
            clopper_pearson_upper(successes, trials, side))


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test for the table [[a, b], [c, d]] (rows: two
    samples; columns: detections, clean trials).

    Given the margins, the top-left count is hypergeometric; the p-value sums the
    probabilities of every table no more likely than the observed one (R's rule, with
    its relative tolerance), which is what "at least as extreme" means for a two-sided
    test whose null distribution is not symmetric.
    """
    if min(a, b, c, d) < 0:
        raise UsageError(f"a contingency table has no negative counts: {[[a, b], [c, d]]}")
    row1, row2, col1 = a + b, c + d, a + c
    low, high = max(0, col1 - row2), min(row1, col1)
    weights = {x: math.comb(row1, x) * math.comb(row2, col1 - x) for x in range(low, high + 1)}
    observed = weights[a] * (FISHER_RELATIVE_TOLERANCE + 1)
    extreme = sum(w for w in weights.values() if w * FISHER_RELATIVE_TOLERANCE <= observed)
    return min(1.0, extreme / sum(weights.values()))
