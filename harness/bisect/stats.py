"""The bisect's statistics: how many clean trials a good verdict needs, and the confidence
good verdicts give (the package docstring explains the model)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..binomial import clopper_pearson_interval, clopper_pearson_lower
from ..errors import UsageError

BATCH_ITERATIONS = 25  # a bisect trial before TRIAL_ITERATIONS (state files of then)
BATCH_SECONDS = 10.0  # StressWorkload's cap on one batch

# Iterations of a scenario in one bisect trial (a stress batch; `run` and `lab` keep 25).
# Why small: the good rule needs (1 - p_low)^n <= 1 - c, and a calibration where every
# trial detects cannot bound p above alpha^(1/n): 6/6 batches of 25 iterations say only
# p >= 0.44 (14 clean trials, 350 iterations, per good verdict at C = 0.99), while the
# same 150 iterations as 30 trials of 5 (26/30 on the aarch64 re-enactment) say p >= 0.65
# (8 trials, 40 iterations). Why not 1: a batch costs about 0.3 s of shell round trip,
# as much as one iteration. The kernel's page-poison check prints at most 10 reports per
# 5 s, so a short batch right after a burst can look clean: that lowers the measured p,
# which asks more trials of a good verdict, never fewer (its guest boots with the limit
# unspent, so a buggy commit's first corruption is always printed).
TRIAL_ITERATIONS = 5
# Trials the bad end runs to measure p: 150 iterations of a scenario, as 6 batches of 25
# were; 6 runs of a user's reproducer, whose one run may take minutes.
CALIBRATION_TRIALS = 30
REPRO_CALIBRATION_TRIALS = 6

# The share of the error budget 1 - C that goes to the calibration's bound on p; the good
# verdicts share the rest. Why a fixed share: a level picked after seeing the calibration
# would not be a confidence level. Why 0.7: the bound is where a little confidence buys
# the most trials. Against the best fixed share in 0.30-0.90 (steps of 0.05), 0.7 costs
# at most one trial or 2.1% more per good verdict, over calibrations 2/6 to 6/6, 3/12,
# 6/12 and 12/12, ranges of 8 to 32 commits, and C = 0.95 or 0.99 (0.5 costs up to 13%
# more, 0.9 up to 5%); over 3/30 to 30/30 it still costs at most one trial (5 for 4 at
# 30/30).
CALIBRATION_SHARE = 0.7
CALIBRATION_METHOD = "clopper-pearson one-sided"


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


def calibration_confidence(confidence: float) -> float:
    """The level of the calibration's lower bound on p, for a bisect at confidence C."""
    return 1.0 - CALIBRATION_SHARE * (1.0 - confidence)


def verdicts_confidence(confidence: float) -> float:
    """What all good verdicts together must reach: C / (the calibration's level), so that
    P(the bound holds) x P(every good verdict right | it holds) >= C."""
    return confidence / calibration_confidence(confidence)


@dataclass(frozen=True)
class RateBounds:
    """The detection rate the calibration measured: p = detections / trials, the lower
    bound `p_low` the good rule uses, and the upper end `p_high` of an interval to show.

    Since the Clopper-Pearson rule `p_low` is one-sided at `p_low_confidence` and the
    interval shown is `interval95`. A state from the Wilson rule before has none of the
    three: its `p_low` and `p_high` are the ends of a 95% Wilson interval, and its bound
    was taken as certain."""

    trials: int
    detections: int
    p: float
    p_low: float
    p_high: float
    p_low_confidence: float | None = None
    p_low_method: str | None = None
    interval95: tuple[float, float] | None = None

    @property
    def level(self) -> float:
        """The confidence of `p_low` (1 for a Wilson bound, as it was planned with)."""
        return 1.0 if self.p_low_confidence is None else self.p_low_confidence

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"trials": self.trials, "detections": self.detections,
                             "p": self.p, "p_low": self.p_low}
        if self.p_low_confidence is not None:
            d.update(p_low_confidence=self.p_low_confidence, p_low_method=self.p_low_method)
        if self.interval95 is not None:
            d["interval95"] = list(self.interval95)
        d["p_high"] = self.p_high
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RateBounds:
        interval = d.get("interval95")
        level = d.get("p_low_confidence")
        return cls(trials=int(d["trials"]), detections=int(d["detections"]), p=float(d["p"]),
                   p_low=float(d["p_low"]), p_high=float(d["p_high"]),
                   p_low_confidence=None if level is None else float(level),
                   p_low_method=d.get("p_low_method"),
                   interval95=None if interval is None else (float(interval[0]),
                                                            float(interval[1])))


def calibration_bounds(detections: int, trials: int, confidence: float) -> RateBounds:
    """The calibration's figures: p, the one-sided Clopper-Pearson lower bound the good
    rule uses (at calibration_confidence) and a two-sided 95% interval to show.

    Why Clopper-Pearson: P(bound > p) <= 1 - level holds exactly for every p and n; the
    Wilson bound is an approximation that undercovers at a calibration's n of 6.
    """
    level = calibration_confidence(confidence)
    low95, high95 = clopper_pearson_interval(detections, trials, 0.95)
    return RateBounds(trials=trials, detections=detections, p=detections / trials,
                      p_low=clopper_pearson_lower(detections, trials, level), p_high=high95,
                      p_low_confidence=level, p_low_method=CALIBRATION_METHOD,
                      interval95=(low95, high95))


def bisect_confidence(bounds: RateBounds, good_trials: list[int]) -> float:
    """The probability that every good verdict is right: the calibration bound's level
    times the product over good verdicts. A state from before the bound had a level
    (a Wilson bound taken as certain) keeps the figure it was planned with."""
    return bounds.level * overall_confidence(bounds.p_low, good_trials)
