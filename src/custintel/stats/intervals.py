"""Intervals and tests for the questions measurement and monitoring ask: a rate and its
interval, the difference of two rates or two means, and bootstrap intervals for anything
else (a skewed revenue, an AUC difference on the same customers).

scipy does the distributions; what is written here is only the bookkeeping around them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as st


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval at ``level`` (and a p-value when the
    estimate is a difference tested against zero)."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    p_value: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def _z(level: float) -> float:
    return float(st.norm.ppf(0.5 + level / 2))


def proportion(successes: int, n: int, *, level: float = 0.95) -> Interval:
    """A rate with its Wilson interval (sound near 0 and 1, unlike the plain normal one)."""
    if n <= 0:
        raise ValueError("a proportion needs at least one trial")
    p, z = successes / n, _z(level)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, float(centre - half), float(centre + half), level)


def difference_of_proportions(
    s1: int, n1: int, s2: int, n2: int, *, level: float = 0.95
) -> Interval:
    """Rate 1 minus rate 2: normal-approximation interval (unpooled) and the two-sided
    p-value of the pooled z-test of no difference."""
    if min(n1, n2) <= 0:
        raise ValueError("both groups need at least one member")
    p1, p2 = s1 / n1, s2 / n2
    diff = p1 - p2
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (s1 + s2) / (n1 + n2)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = float(2 * st.norm.sf(abs(diff) / se0)) if se0 > 0 else 1.0
    z = _z(level)
    return Interval(diff, float(diff - z * se), float(diff + z * se), level, p_value)


def difference_of_means(a: np.ndarray, b: np.ndarray, *, level: float = 0.95) -> Interval:
    """Mean of ``a`` minus mean of ``b`` with Welch's interval and p-value (unequal
    variances)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    test = st.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(confidence_level=level)
    return Interval(
        float(a.mean() - b.mean()), float(ci.low), float(ci.high), level, float(test.pvalue)
    )


def bootstrap(
    statistic: Callable[..., float],
    *samples: np.ndarray,
    rounds: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    usable: Callable[..., bool] | None = None,
) -> tuple[Interval, np.ndarray]:
    """Percentile bootstrap of ``statistic(*samples)``, resampling rows of all samples
    together (so paired samples stay paired). ``usable`` skips resamples the statistic
    cannot be computed on (one class only, for an AUC). Returns the interval and the
    resampled values."""
    n = len(samples[0])
    if any(len(s) != n for s in samples):
        raise ValueError("paired samples must have the same length")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        rows = rng.integers(0, n, n)
        drawn = [s[rows] for s in samples]
        if usable is not None and not usable(*drawn):
            continue
        values.append(statistic(*drawn))
    d = np.array(values)
    tail = (1 - level) / 2
    low, high = np.quantile(d, [tail, 1 - tail]) if len(d) else (np.nan, np.nan)
    return Interval(float(statistic(*samples)), float(low), float(high), level), d
