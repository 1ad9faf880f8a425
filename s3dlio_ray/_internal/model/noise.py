"""How far a measured rate can be trusted, and whether two differ by more than their noise.

Per-second rates of one run are autocorrelated (a slow second is followed by a slow second), so
their spread understates the uncertainty of the mean. The batch-means method groups consecutive
seconds into batches of BATCH_S and treats the batch means as the samples: batches that long
are close to independent for a store's throughput, and at least MIN_SAMPLES of them give an
interval. Repeated runs (`run --repeat N`) are independent samples as they are. Two sets of
samples are compared with Welch's t (unequal variances, unequal counts).

The Student t quantile is computed here (the regularized incomplete beta function by its
continued fraction, inverted by bisection): one function did not justify SciPy as a dependency.
The tests check it against published table values.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
BATCH_S = 5.0
"""Seconds of a run's time series averaged into one batch mean."""
MIN_SAMPLES = 3
"""Samples (batches or repeats) an interval needs: fewer say nothing about spread."""


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95 % confidence interval (`half_width` either side), from `samples`."""

    mean: float
    half_width: float
    samples: tuple[float, ...]
    method: str
    """How the samples were made: "3 repeats", "6 batches of 5 s"."""

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def estimate(samples: Sequence[float], method: str) -> Estimate | None:
    """The mean of independent samples with its interval; None for fewer than MIN_SAMPLES."""
    if len(samples) < MIN_SAMPLES:
        return None
    mean = statistics.fmean(samples)
    error = statistics.stdev(samples) / math.sqrt(len(samples))
    return Estimate(mean, t_quantile(len(samples) - 1) * error, tuple(samples), method)


def batch_means(intervals: Sequence[tuple[float, float]], batch_s: float = BATCH_S) -> list[float]:
    """(seconds, amount) intervals in time order, as the rates of consecutive batches of at
    least `batch_s` seconds; a last batch shorter than half of that is left out."""
    means: list[float] = []
    seconds = amount = 0.0
    for length, moved in intervals:
        seconds += length
        amount += moved
        if seconds >= batch_s:
            means.append(amount / seconds)
            seconds = amount = 0.0
    if seconds >= batch_s / 2:
        means.append(amount / seconds)
    return means


@dataclass(frozen=True)
class Verdict:
    """B against A: the difference of the means with its interval, and what it says."""

    difference: float
    half_width: float
    word: str
    """"faster", "slower" or "within noise"."""

    def describe(self, a_mean: float) -> str:
        """`+3.1% ± 2.0%`: the difference as a share of A's mean."""
        if not a_mean:
            return f"{self.difference:+.3g} ± {self.half_width:.3g}"
        return f"{self.difference / a_mean:+.1%} ± {self.half_width / abs(a_mean):.1%}"


def welch(a: Estimate, b: Estimate, higher_is_better: bool = True) -> Verdict:
    """Welch's t: B's mean less A's with its interval; "within noise" when the interval holds
    zero, else faster or slower."""
    var_a = statistics.variance(a.samples) / len(a.samples)
    var_b = statistics.variance(b.samples) / len(b.samples)
    difference = b.mean - a.mean
    error = math.sqrt(var_a + var_b)
    if error == 0:
        half = 0.0
    else:
        freedom = (var_a + var_b) ** 2 / (
            var_a**2 / (len(a.samples) - 1) + var_b**2 / (len(b.samples) - 1)
        )
        half = t_quantile(freedom) * error
    if abs(difference) <= half:
        word = "within noise"
    else:
        word = "faster" if (difference > 0) == higher_is_better else "slower"
    return Verdict(difference, half, word)


def t_quantile(freedom: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t critical value: P(|T| <= t) = confidence for `freedom` degrees."""
    tail = (1 - confidence) / 2
    low, high = 0.0, 1.0
    while _t_upper_tail(high, freedom) > tail:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _t_upper_tail(middle, freedom) > tail:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2


def _t_upper_tail(t: float, freedom: float) -> float:
    """P(T > t) for t >= 0: half the regularized incomplete beta I_x(v/2, 1/2), x = v/(v+t²)."""
    return 0.5 * _incomplete_beta(freedom / (freedom + t * t), freedom / 2, 0.5)


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _fraction(x, a, b) / a
    return 1 - front * _fraction(1 - x, b, a) / b


def _fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return result
