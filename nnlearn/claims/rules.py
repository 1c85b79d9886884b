"""Standard, parameterised rules: each takes its evidence in one documented form, describes
itself in plain words and re-judges itself over a band of alternative thresholds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from nnlearn.stats import Estimate, mean_ci, prediction_interval, share_ci


# --------------------------------------------------------------------------- evidence forms
def _as_estimate(evidence) -> Estimate:
    """An Estimate from an Estimate, a (value, lo, hi) triple or per-run values (t-interval)."""
    if isinstance(evidence, Estimate):
        return evidence
    if (
        isinstance(evidence, tuple)
        and len(evidence) == 3
        and all(isinstance(v, (int, float, np.floating, np.integer)) for v in evidence)
    ):
        value, lo, hi = (float(v) for v in evidence)
        if not all(math.isfinite(v) for v in (value, lo, hi)) or not lo <= hi:
            raise ValueError(
                f"evidence: expected finite (value, lo, hi) with lo <= hi, got {evidence}"
            )
        return Estimate(value, lo, hi, 0)
    if isinstance(evidence, (list, np.ndarray)) or hasattr(evidence, "numpy"):
        try:
            values = np.asarray(evidence, dtype=float)
        except (TypeError, ValueError):
            raise TypeError("evidence: per-run values must be numbers") from None
        try:
            return mean_ci(values)
        except ValueError as err:
            raise ValueError(f"evidence: {err}") from None
    raise TypeError(
        "evidence: expected an Estimate, a (value, lo, hi) tuple or per-run values, "
        f"got {type(evidence).__name__}"
    )


def _as_share(evidence) -> Estimate:
    """A share with its Wilson interval from an Estimate, (k, n) or an array of booleans."""
    if isinstance(evidence, Estimate):
        return evidence
    if isinstance(evidence, tuple) and len(evidence) == 2:
        return share_ci(*evidence)
    a = np.asarray(evidence)
    if a.dtype != bool:
        raise TypeError(
            f"evidence: expected an Estimate, a (k, n) pair or an array of booleans, got {a.dtype}"
        )
    return share_ci(int(a.sum()), int(a.size))


def _as_scalar(evidence) -> float:
    if isinstance(evidence, Estimate):
        return float(evidence.value)
    if isinstance(evidence, (bool, np.bool_, str, bytes)) or evidence is None:
        raise TypeError(f"evidence: expected one number, got {type(evidence).__name__}")
    if not isinstance(evidence, (int, float, np.integer, np.floating)):
        try:
            a = np.asarray(evidence, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"evidence: expected one number, got {type(evidence).__name__}"
            ) from None
        if a.ndim != 0:
            raise TypeError(f"evidence: expected one number, got an array of shape {a.shape}")
        evidence = a.item()
    value = float(evidence)
    if not math.isfinite(value):
        raise ValueError(f"evidence: got {value}; a rule cannot judge a missing or infinite value")
    return value


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _fmt(x: float) -> str:
    return f"{x:.4g}"


# --------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """A parameterised test of evidence. Subclasses set ``evidence`` (the accepted form) and
    implement :meth:`_passes` and :meth:`_describe` for one threshold."""

    threshold: object
    band: tuple = ()

    kind_name = "rule"
    evidence = ""

    def __post_init__(self):
        self._check_threshold(self.threshold)
        if not isinstance(self.band, (tuple, list)):
            raise TypeError(
                f"band must be a tuple of alternative thresholds, got {type(self.band).__name__}"
            )
        for t in self.band:
            self._check_threshold(t)
        object.__setattr__(self, "band", tuple(self.band))

    def _check_threshold(self, t):
        _number("threshold", t)

    def passes(self, evidence, source_value=None) -> bool:
        """Whether ``evidence`` passes at the declared threshold."""
        return bool(self._passes(evidence, self.threshold, source_value))

    def passes_band(self, evidence, source_value=None) -> list[bool]:
        """Pass/fail at each alternative threshold of the band."""
        return [bool(self._passes(evidence, t, source_value)) for t in self.band]

    def describe(self) -> str:
        text = self._describe(self.threshold)
        if self.band:
            text += f" (band: {', '.join(self._band_text(t) for t in self.band)})"
        return text

    def _band_text(self, t) -> str:
        return _fmt(t)

    def statistic_text(self, evidence, source_value=None) -> str:
        """Our value as short text (used when a chapter gives no ``ours`` text)."""
        return str(evidence)


@dataclass(frozen=True)
class IntervalAbove(Rule):
    """Evidence: an Estimate, (value, lo, hi) or per-run values. Passes if lo > threshold."""

    def _passes(self, evidence, t, source_value):
        return _as_estimate(evidence).lo > t

    def _describe(self, t):
        return f"95% interval lies above {_fmt(t)}"

    def statistic_text(self, evidence, source_value=None):
        return _as_estimate(evidence).format(3)


@dataclass(frozen=True)
class IntervalBelow(Rule):
    """Evidence: an Estimate, (value, lo, hi) or per-run values. Passes if hi < threshold."""

    def _passes(self, evidence, t, source_value):
        return _as_estimate(evidence).hi < t

    def _describe(self, t):
        return f"95% interval lies below {_fmt(t)}"

    def statistic_text(self, evidence, source_value=None):
        return _as_estimate(evidence).format(3)


@dataclass(frozen=True)
class IntervalExcludes(Rule):
    """Evidence: an Estimate, (value, lo, hi) or per-run values. Passes if the interval
    excludes ``threshold`` on either side (a two-sided test: an effect of either sign)."""

    def _passes(self, evidence, t, source_value):
        e = _as_estimate(evidence)
        return e.lo > t or e.hi < t

    def _describe(self, t):
        return f"95% interval excludes {_fmt(t)} (either side)"

    def statistic_text(self, evidence, source_value=None):
        return _as_estimate(evidence).format(3)


@dataclass(frozen=True)
class IntervalWithin(Rule):
    """Evidence: an Estimate, (value, lo, hi) or per-run values. Passes if the whole interval
    lies within ``threshold = (low, high)`` (equivalence, e.g. "no effect" within a margin)."""

    def _check_threshold(self, t):
        _check_range(t)

    def _passes(self, evidence, t, source_value):
        e = _as_estimate(evidence)
        return t[0] <= e.lo and e.hi <= t[1]

    def _describe(self, t):
        return f"95% interval lies within [{_fmt(t[0])}, {_fmt(t[1])}]"

    def _band_text(self, t):
        return f"[{_fmt(t[0])}, {_fmt(t[1])}]"

    def statistic_text(self, evidence, source_value=None):
        return _as_estimate(evidence).format(3)


@dataclass(frozen=True)
class SourceInPrediction(Rule):
    """Evidence: per-run values (n >= 2). Passes if the source's value lies in our Student-t
    prediction interval for one more run at confidence ``threshold`` (the source as one more
    run of ours)."""

    def _check_threshold(self, t):
        t = _number("threshold", t)
        if not 0 < t < 1:
            raise ValueError(f"threshold: a confidence level in (0, 1) is expected, got {t}")

    def _passes(self, evidence, t, source_value):
        if source_value is None:
            raise ValueError("source_in_prediction needs the claim's numeric source_value")
        lo, hi = prediction_interval(np.asarray(evidence, dtype=float), t)
        return lo <= float(source_value) <= hi

    def _describe(self, t):
        return f"source value inside our {100 * t:.0f}% prediction interval for one more run"

    def statistic_text(self, evidence, source_value=None):
        v = np.asarray(evidence, dtype=float)
        lo, hi = prediction_interval(v, self.threshold)
        pct = 100 * float(np.mean(v < float(source_value))) if source_value is not None else None
        text = f"mean {v.mean():.3g}, PI [{lo:.3g}, {hi:.3g}] over {v.size} runs"
        return text + (f"; source at percentile {pct:.0f}" if pct is not None else "")


@dataclass(frozen=True)
class ShareAtLeast(Rule):
    """Evidence: booleans per run, (k, n) or a share Estimate. Passes if the share (``on``:
    the point estimate, or the Wilson interval's lower bound) is at least ``threshold``."""

    on: str = "point"

    def __post_init__(self):
        super().__post_init__()
        if self.on not in ("point", "lower"):
            raise ValueError(f"on must be 'point' or 'lower', got {self.on!r}")

    def _check_threshold(self, t):
        _check_probability(t)

    def _passes(self, evidence, t, source_value):
        s = _as_share(evidence)
        return (s.value if self.on == "point" else s.lo) >= t

    def _describe(self, t):
        what = "share" if self.on == "point" else "lower 95% bound of the share"
        return f"{what} at least {_fmt(t)}"

    def statistic_text(self, evidence, source_value=None):
        return _share_text(_as_share(evidence))


@dataclass(frozen=True)
class ShareAtMost(Rule):
    """Evidence: booleans per run, (k, n) or a share Estimate. Passes if the share (point, or
    the Wilson interval's upper bound with ``on="upper"``) is at most ``threshold``."""

    on: str = "point"

    def __post_init__(self):
        super().__post_init__()
        if self.on not in ("point", "upper"):
            raise ValueError(f"on must be 'point' or 'upper', got {self.on!r}")

    def _check_threshold(self, t):
        _check_probability(t)

    def _passes(self, evidence, t, source_value):
        s = _as_share(evidence)
        return (s.value if self.on == "point" else s.hi) <= t

    def _describe(self, t):
        what = "share" if self.on == "point" else "upper 95% bound of the share"
        return f"{what} at most {_fmt(t)}"

    def statistic_text(self, evidence, source_value=None):
        return _share_text(_as_share(evidence))


@dataclass(frozen=True)
class ShareInRange(Rule):
    """Evidence: booleans per run, (k, n) or a share Estimate. Passes if the share's point
    estimate lies in ``threshold = (low, high)``."""

    def _check_threshold(self, t):
        _check_range(t)
        _check_probability(t[0])
        _check_probability(t[1])

    def _passes(self, evidence, t, source_value):
        s = _as_share(evidence)
        return t[0] <= s.value <= t[1]

    def _describe(self, t):
        return f"share in [{_fmt(t[0])}, {_fmt(t[1])}]"

    def _band_text(self, t):
        return f"[{_fmt(t[0])}, {_fmt(t[1])}]"

    def statistic_text(self, evidence, source_value=None):
        return _share_text(_as_share(evidence))


@dataclass(frozen=True)
class AtLeast(Rule):
    """Evidence: one number. Passes if it is at least ``threshold``."""

    def _passes(self, evidence, t, source_value):
        return _as_scalar(evidence) >= t

    def _describe(self, t):
        return f"at least {_fmt(t)}"

    def statistic_text(self, evidence, source_value=None):
        return _fmt(_as_scalar(evidence))


@dataclass(frozen=True)
class AtMost(Rule):
    """Evidence: one number. Passes if it is at most ``threshold`` (for example the largest
    absolute error of an identity)."""

    def _passes(self, evidence, t, source_value):
        return _as_scalar(evidence) <= t

    def _describe(self, t):
        return f"at most {_fmt(t)}"

    def statistic_text(self, evidence, source_value=None):
        return _fmt(_as_scalar(evidence))


@dataclass(frozen=True)
class Between(Rule):
    """Evidence: one number. Passes if it lies in ``threshold = (low, high)``."""

    def _check_threshold(self, t):
        _check_range(t)

    def _passes(self, evidence, t, source_value):
        return t[0] <= _as_scalar(evidence) <= t[1]

    def _describe(self, t):
        return f"between {_fmt(t[0])} and {_fmt(t[1])}"

    def _band_text(self, t):
        return f"[{_fmt(t[0])}, {_fmt(t[1])}]"

    def statistic_text(self, evidence, source_value=None):
        return _fmt(_as_scalar(evidence))


@dataclass(frozen=True)
class CloseToSource(Rule):
    """Evidence: one number. Passes if it is within ``threshold`` (absolute) of the claim's
    numeric source value."""

    def _check_threshold(self, t):
        if _number("threshold", t) < 0:
            raise ValueError(f"threshold: a non-negative tolerance is expected, got {t}")

    def _passes(self, evidence, t, source_value):
        if source_value is None:
            raise ValueError("close_to_source needs the claim's numeric source_value")
        return abs(_as_scalar(evidence) - float(source_value)) <= t

    def _describe(self, t):
        return f"within {_fmt(t)} of the source's value"

    def statistic_text(self, evidence, source_value=None):
        return _fmt(_as_scalar(evidence))


@dataclass(frozen=True)
class Holds(Rule):
    """Evidence: a bool (a computed condition, e.g. an exact count). No threshold: use only
    where the condition is exact; its band is empty, so it is robust by construction."""

    threshold: object = None

    def _check_threshold(self, t):
        if t is not None:
            raise ValueError("holds takes no threshold")

    def _passes(self, evidence, t, source_value):
        if not isinstance(evidence, (bool, np.bool_)):
            raise TypeError(f"evidence: holds expects a bool, got {type(evidence).__name__}")
        return bool(evidence)

    def _describe(self, t):
        return "the stated condition holds (exact)"

    def statistic_text(self, evidence, source_value=None):
        return "holds" if evidence else "does not hold"


def _check_probability(t):
    t = _number("threshold", t)
    if not 0 <= t <= 1:
        raise ValueError(f"threshold: a share in [0, 1] is expected, got {t}")


def _check_range(t):
    if not isinstance(t, (tuple, list)) or len(t) != 2:
        raise TypeError(f"threshold: a (low, high) pair is expected, got {t!r}")
    lo, hi = _number("threshold[0]", t[0]), _number("threshold[1]", t[1])
    if lo > hi:
        raise ValueError(f"threshold: low must not exceed high, got {t!r}")


def _share_text(s: Estimate) -> str:
    return f"{s.value:.3f} [{s.lo:.3f}, {s.hi:.3f}] (Wilson, n = {s.n})"


def _band(band):
    return tuple(band) if band is not None else ()


rules = SimpleNamespace(
    interval_above=lambda threshold, band=(): IntervalAbove(threshold, _band(band)),
    interval_below=lambda threshold, band=(): IntervalBelow(threshold, _band(band)),
    interval_within=lambda low, high, band=(): IntervalWithin((low, high), _band(band)),
    interval_excludes=lambda value=0.0, band=(): IntervalExcludes(value, _band(band)),
    source_in_prediction=lambda confidence=0.95, band=(0.9, 0.99): SourceInPrediction(
        confidence, _band(band)
    ),
    share_at_least=lambda threshold, band=(), on="point": ShareAtLeast(threshold, _band(band), on),
    share_at_most=lambda threshold, band=(), on="point": ShareAtMost(threshold, _band(band), on),
    share_in_range=lambda low, high, band=(): ShareInRange((low, high), _band(band)),
    at_least=lambda threshold, band=(): AtLeast(threshold, _band(band)),
    at_most=lambda threshold, band=(): AtMost(threshold, _band(band)),
    between=lambda low, high, band=(): Between((low, high), _band(band)),
    close_to_source=lambda tolerance, band=(): CloseToSource(tolerance, _band(band)),
    holds=lambda: Holds(),
)
R = rules
