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
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(values).__name__}")
    try:
        a = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be an array of numbers, got {type(values).__name__}"
        ) from None
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
    """Pearson correlation of ``x`` and ``y``, its Fisher-z interval and the two-sided p-value."""
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


def share_ci(k, n, confidence: float = 0.95, method: str = "wilson") -> Estimate:
    """A share ``k / n`` with an interval that stays inside [0, 1].

    ``method`` is ``"wilson"`` (default) or ``"exact"`` (Clopper-Pearson), both from
    ``scipy.stats.binomtest(...).proportion_ci``. Returns an :class:`Estimate` with ``n``.
    """
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, n={n}], got {k}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if method not in ("wilson", "exact"):
        raise ValueError(f"method must be 'wilson' or 'exact', got {method!r}")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence, method=method)
    return Estimate(float(k / n), float(ci.low), float(ci.high), int(n))


def bootstrap_ci(
    values,
    statistic=np.mean,
    confidence: float = 0.95,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    bounds: tuple | None = None,
) -> Estimate:
    """``statistic(values)`` with a BCa bootstrap interval (``scipy.stats.bootstrap``), for
    bounded or skewed statistics. ``bounds=(lo, hi)`` (either may be None: unbounded) checks the
    data lie within them (the
    interval of a statistic of bounded data then stays within them too, as a percentile
    bootstrap of a mean does). Falls back to the percentile method where BCa is undefined
    (for example when every value is equal, the interval is the point)."""
    a = _finite_1d("values", values)
    if a.size < 2:
        raise ValueError(f"values: need at least 2 values, got {a.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not callable(statistic):
        raise TypeError(f"statistic must be callable, got {type(statistic).__name__}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 100:
        raise ValueError(f"n_resamples must be an int >= 100, got {n_resamples!r}")
    if bounds is not None:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise TypeError(f"bounds must be a pair (lo, hi), got {bounds!r}")
        lo_b = -np.inf if bounds[0] is None else float(bounds[0])
        hi_b = np.inf if bounds[1] is None else float(bounds[1])
        if not lo_b < hi_b:
            raise ValueError(f"bounds must have lo < hi, got {bounds!r}")
        if (a < lo_b).any() or (a > hi_b).any():
            raise ValueError(f"values must lie within bounds {bounds}")
    value = float(statistic(a))
    if np.all(a == a[0]):
        return Estimate(value, value, value, a.size)
    rng = np.random.default_rng(seed)
    method = "BCa"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (a,),
            statistic,
            confidence_level=confidence,
            n_resamples=n_resamples,
            random_state=rng,
            method=method,
        )
        lo, hi = res.confidence_interval
        if not (np.isfinite(lo) and np.isfinite(hi)):
            res = stats.bootstrap(
                (a,),
                statistic,
                confidence_level=confidence,
                n_resamples=n_resamples,
                random_state=np.random.default_rng(seed),
                method="percentile",
            )
            lo, hi = res.confidence_interval
    lo, hi = float(lo), float(hi)
    if bounds is not None:
        lo, hi = max(lo, lo_b), min(hi, hi_b)
    return Estimate(value, lo, hi, a.size)
