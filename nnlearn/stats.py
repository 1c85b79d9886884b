"""Uncertainty helpers: t-intervals over seeds and correlations with confidence intervals."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats


class Estimate(NamedTuple):
    """A point estimate with a confidence interval ``[lo, hi]`` from ``n`` values."""

    value: float
    lo: float
    hi: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``"value [lo, hi]"`` rounded to ``digits`` decimals (stable for regression tests)."""
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.value)} [{f.format(self.lo)}, {f.format(self.hi)}]"

    def __str__(self) -> str:
        return self.format()


def _finite_1d(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def mean_ci(values, confidence: float = 0.95) -> Estimate:
    """Mean of ``values`` with a Student-t confidence interval (n >= 2)."""
    a = _finite_1d("values", values)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if a.size < 2:
        raise ValueError(f"values: need at least 2 values for an interval, got {a.size}")
    m, se = a.mean(), stats.sem(a)
    if se == 0:
        return Estimate(float(m), float(m), float(m), a.size)
    lo, hi = stats.t.interval(confidence, a.size - 1, loc=m, scale=se)
    return Estimate(float(m), float(lo), float(hi), a.size)


def pearson_ci(x, y, confidence: float = 0.95) -> tuple[Estimate, float]:
    """Pearson correlation of ``x`` and ``y`` with its Fisher-z interval, and the two-sided p-value."""
    x, y = _finite_1d("x", x), _finite_1d("y", y)
    if x.size != y.size:
        raise ValueError(f"x and y must have equal lengths, got {x.size} and {y.size}")
    if x.size < 4:
        raise ValueError(f"need at least 4 pairs for a correlation interval, got {x.size}")
    res = stats.pearsonr(x, y)
    ci = res.confidence_interval(confidence)
    return Estimate(float(res.statistic), float(ci.low), float(ci.high), x.size), float(res.pvalue)


def prediction_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t prediction interval for one more draw from the population that gave ``values``.

    ``mean +- t_{(1+confidence)/2, n-1} * sd * sqrt(1 + 1/n)`` (sd with ddof=1): the range a
    single new run (for instance a source's one training run) should fall in with probability
    ``confidence`` if it came from the same distribution as ours.

    values : (n,) finite, n >= 2 -> (lo, hi)
    """
    v = _finite_1d("values", values)
    if v.size < 2:
        raise ValueError(f"values: need at least 2 values, got {v.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    half = stats.t.ppf((1 + confidence) / 2, v.size - 1) * v.std(ddof=1) * math.sqrt(1 + 1 / v.size)
    return float(v.mean() - half), float(v.mean() + half)


def standardised_gap(value: float, values) -> float:
    """``(value - mean) / (sd * sqrt(1 + 1/n))``: how far one new draw lies from ``values``' mean,
    in units of the prediction standard error (compare with Student-t quantiles, n-1 dof)."""
    v = _finite_1d("values", values)
    if v.size < 2:
        raise ValueError(f"values: need at least 2 values, got {v.size}")
    sd = v.std(ddof=1) * math.sqrt(1 + 1 / v.size)
    if sd == 0:
        raise ValueError("values must not all be equal")
    return float((value - v.mean()) / sd)
