"""The exact statistics (harness/binomial.py) against known values, and the coverage that
makes the bisect use Clopper-Pearson rather than Wilson.

Where the known values come from: R's documented outputs (binom.test(5, 10) gives the
95% interval 0.1870860-0.8129140; fisher.test on the tea-tasting table [[3,1],[1,3]]
gives p = 0.4857), closed forms (k = 0: upper = 1 - (alpha/2)^(1/n); Fisher's
[[10,0],[0,10]]: 2 / C(20,10)), and, for the one-sided 3/6 bound, the exact binomial
tail in rational arithmetic on both sides of the value. All of them were also checked
against scipy.stats (beta.ppf, fisher_exact) on 2000 random cases, n up to 300: the
bounds agreed within 1e-12, the p-values within 1e-15 (scipy is not a dependency).
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from harness.binomial import (
    binomial_at_least,
    binomial_at_most,
    clopper_pearson_interval,
    clopper_pearson_lower,
    clopper_pearson_upper,
    fisher_exact,
)
from harness.errors import UsageError
from harness.verdict import wilson_interval

Z_ONE_SIDED_95 = 1.6448536  # Wilson's bound at the same one-sided level, for comparison


def exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    return sum((math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)),
               Fraction(0))


def test_clopper_pearson_known_values() -> None:
    low, high = clopper_pearson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-10)
    assert high == pytest.approx(0.3085, abs=5e-5)
    low, high = clopper_pearson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.1870860, abs=1e-7),
                           pytest.approx(0.8129140, abs=1e-7))
    assert clopper_pearson_interval(10, 10)[0] == pytest.approx(0.025 ** (1 / 10), abs=1e-10)
    # One-sided 95% lower bound for 3 of 6 is 0.15316 (0.1530 is sometimes quoted; the
    # exact tail says otherwise): P(X >= 3) is below 5% just under it, above just over it.
    bound = clopper_pearson_lower(3, 6, 0.95)
    assert bound == pytest.approx(0.153161, abs=1e-6)
    assert exact_tail(3, 6, Fraction(15315, 100000)) < Fraction(5, 100)
    assert exact_tail(3, 6, Fraction(15317, 100000)) > Fraction(5, 100)
    assert clopper_pearson_interval(3, 0) == (0.0, 1.0)


def test_clopper_pearson_bounds_are_conservative_and_consistent() -> None:
    for n in (1, 6, 12, 50, 400, 5000):  # large n: no overflow in log space
        for k in sorted({0, 1, n // 3, n - 1, n}):
            low = clopper_pearson_lower(k, n, 0.95)
            high = clopper_pearson_upper(k, n, 0.95)
            assert 0.0 <= low <= k / n <= high <= 1.0
            if k:  # rounded down: the tail at the bound is at most alpha
                assert binomial_at_least(k, n, low) <= 0.05 + 1e-9
            if k < n:
                assert binomial_at_most(k, n, high) <= 0.05 + 1e-9
    assert binomial_at_least(0, 5, 0.3) == 1.0 and binomial_at_least(6, 5, 0.3) == 0.0
    with pytest.raises(UsageError):
        clopper_pearson_lower(7, 6, 0.95)
    with pytest.raises(UsageError):
        clopper_pearson_lower(3, 6, 1.0)


def test_fisher_known_values() -> None:
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(34 / 70, rel=1e-12)  # 0.4857
    assert fisher_exact(10, 0, 0, 10) == pytest.approx(2 / math.comb(20, 10), rel=1e-12)
    assert fisher_exact(10, 0, 0, 10) == pytest.approx(1.083e-05, rel=1e-3)
    assert fisher_exact(0, 4, 3, 1) == pytest.approx(8 / 56, rel=1e-12)  # 0/4 vs 3/4
    assert fisher_exact(2, 3, 2, 3) == 1.0
    assert fisher_exact(0, 5, 0, 7) == 1.0  # nothing detected: nothing to compare
    # symmetric in rows, columns and transposition
    assert fisher_exact(1, 7, 6, 2) == fisher_exact(6, 2, 1, 7) == fisher_exact(1, 6, 7, 2)
    with pytest.raises(UsageError):
        fisher_exact(-1, 2, 3, 4)


def _non_coverage(bounds: list[float], p: float, rng: random.Random, draws: int) -> float:
    """Fraction of simulated calibrations (k ~ Binomial(n, p)) whose bound exceeds p."""
    n = len(bounds) - 1
    over = 0
    for _ in range(draws):
        k = sum(rng.random() < p for _ in range(n))
        over += bounds[k] > p
    return over / draws


def test_coverage_of_the_calibration_bound_by_simulation() -> None:
    """n = 6 calibrations: the one-sided 95% Clopper-Pearson bound exceeds the true p in
    at most 5% of them at every p; Wilson's bound at the same level does so in 7-11%."""
    n, draws = 6, 20000
    cp = [clopper_pearson_lower(k, n, 0.95) for k in range(n + 1)]
    wilson = [wilson_interval(k, n, Z_ONE_SIDED_95)[0] for k in range(n + 1)]
    noise = 3 * math.sqrt(0.05 * 0.95 / draws)
    rng = random.Random(12)
    for p in (0.1, 0.2, 0.3, 0.6):
        cp_over = _non_coverage(cp, p, rng, draws)
        wilson_over = _non_coverage(wilson, p, rng, draws)
        print(f"p={p}: bound > p in {cp_over:.3%} (Clopper-Pearson), "
              f"{wilson_over:.3%} (Wilson), of {draws} calibrations of {n}")
        assert cp_over <= 0.05 + noise
        if p <= 0.3:
            assert wilson_over > 0.05 + noise


def test_exact_coverage_of_the_old_and_new_rules() -> None:
    """The same, exactly (the binomial probabilities of every k): the old rule (the lower
    end of a two-sided 95% Wilson interval, nominally wrong in 2.5%) is wrong in 16.7% at
    n = 6 for p just under 0.03 (one detection gives a Wilson bound of 0.030, the exact
    bound is 0.004); Clopper-Pearson at 97.5% never above 2.5%."""
    n = 6
    worst_cp = worst_wilson = 0.0
    for step in range(1, 100):
        p = step / 100
        pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
        worst_cp = max(worst_cp, sum(
            pmf[k] for k in range(n + 1) if clopper_pearson_lower(k, n, 0.975) > p))
        worst_wilson = max(worst_wilson, sum(
            pmf[k] for k in range(n + 1) if wilson_interval(k, n)[0] > p))
    print(f"n=6, worst P(bound > p): Clopper-Pearson 97.5% {worst_cp:.4f}, "
          f"old Wilson rule {worst_wilson:.4f}")
    assert worst_cp <= 0.025 + 1e-12
    assert worst_wilson > 0.16
