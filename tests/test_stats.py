import math

import numpy as np
import pytest
from scipy import stats

from nnlearn.claims import results_dir
from nnlearn.stats import (
    bootstrap_ci,
    mean_ci,
    pearson_ci,
    prediction_interval,
    share_ci,
    standardised_gap,
)


def test_mean_ci_against_textbook():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    est = mean_ci(a)
    half = stats.t.ppf(0.975, 3) * a.std(ddof=1) / 2
    assert est.value == 2.5 and np.isclose(est.hi - 2.5, half) and est.n == 4
    assert est.format(2) == f"2.50 [{2.5 - half:.2f}, {2.5 + half:.2f}]"
    assert mean_ci([2.0, 2.0]).lo == 2.0


def test_pearson_ci_contains_estimate_and_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    est, p = pearson_ci(x, y)
    assert (
        np.isclose(est.value, np.corrcoef(x, y)[0, 1]) and est.lo < est.value < est.hi and p < 1e-10
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: mean_ci([]),
        lambda: mean_ci([1.0]),
        lambda: mean_ci([1, np.nan]),
        lambda: mean_ci([1, 2], confidence=1.5),
        lambda: pearson_ci([1, 2, 3], [1, 2]),
        lambda: pearson_ci([1, 2, 3], [3, 2, 1]),
    ],
)
def test_stats_bad_input(call):
    with pytest.raises(ValueError):
        call()


def test_prediction_interval_formula_and_coverage():
    v = np.array([1.0, 2.0, 4.0, 7.0])
    half = stats.t.ppf(0.975, 3) * v.std(ddof=1) * math.sqrt(1 + 1 / 4)
    assert np.allclose(prediction_interval(v), (v.mean() - half, v.mean() + half))
    rng = np.random.default_rng(5)
    draws = rng.normal(size=(4000, 9))  # 8 runs + 1 new one
    hits = [lo <= d[-1] <= hi for d in draws for lo, hi in [prediction_interval(d[:-1])]]
    assert abs(np.mean(hits) - 0.95) < 0.015
    gap = standardised_gap(v.mean() + half, v)
    assert gap == pytest.approx(stats.t.ppf(0.975, 3))
    with pytest.raises(ValueError, match="at least 2"):
        prediction_interval([1.0])
    with pytest.raises(ValueError, match="confidence"):
        prediction_interval(v, 1.5)
    with pytest.raises(ValueError, match="not all be equal"):
        standardised_gap(1.0, [2.0, 2.0])


def test_results_dir_env_and_book_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLEARN_RESULTS", str(tmp_path / "r"))
    assert results_dir() == tmp_path / "r"
    monkeypatch.delenv("NNLEARN_RESULTS")
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")
    assert results_dir() == tmp_path / "_build" / "results"


@pytest.mark.parametrize("k, n", [(0, 10), (1, 10), (10, 10), (3, 4), (500, 1000)])
def test_share_ci_stays_in_unit_interval_and_matches_scipy(k, n):
    for method in ("wilson", "exact"):
        est = share_ci(k, n, method=method)
        ref = stats.binomtest(k, n).proportion_ci(0.95, method=method)
        assert 0.0 <= est.lo <= est.value <= est.hi <= 1.0
        assert np.isclose(est.lo, ref.low) and np.isclose(est.hi, ref.high) and est.n == n


def test_share_ci_coverage_wilson():
    rng = np.random.default_rng(0)
    hits = [
        share_ci(int(k), 40).lo <= 0.1 <= share_ci(int(k), 40).hi
        for k in rng.binomial(40, 0.1, size=2000)
    ]
    assert np.mean(hits) > 0.92


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: share_ci(3, 0), ValueError),
        (lambda: share_ci(5, 4), ValueError),
        (lambda: share_ci(-1, 4), ValueError),
        (lambda: share_ci(1.5, 4), TypeError),
        (lambda: share_ci(True, 4), TypeError),
        (lambda: share_ci(1, 4, 1.0), ValueError),
        (lambda: share_ci(1, 4, method="t"), ValueError),
    ],
)
def test_share_ci_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def test_bootstrap_ci_bounded_and_seeded():
    rng = np.random.default_rng(1)
    values = rng.beta(0.3, 5, size=30)  # skewed, near the lower bound 0
    est = bootstrap_ci(values, bounds=(0.0, 1.0), seed=3)
    assert 0.0 <= est.lo <= est.value <= est.hi <= 1.0 and est.n == 30
    assert est == bootstrap_ci(values, bounds=(0.0, 1.0), seed=3)
    spiky = [0.0] * 7 + [0.9]  # one large value among zeros: the t-interval runs below 0
    assert mean_ci(spiky).lo < 0.0 and bootstrap_ci(spiky, bounds=(0.0, 1.0), seed=0).lo >= 0.0
    one_sided = bootstrap_ci(values, bounds=(0.0, None), seed=3)
    assert one_sided.lo >= 0.0 and np.isfinite(one_sided.hi)
    med = bootstrap_ci(values, np.median, seed=0)
    assert med.lo <= np.median(values) <= med.hi
    assert bootstrap_ci([0.5, 0.5, 0.5]).lo == 0.5


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda: bootstrap_ci([1.0]), ValueError),
        (lambda: bootstrap_ci([1.0, np.nan]), ValueError),
        (lambda: bootstrap_ci([0.2, 2.0], bounds=(0, 1)), ValueError),
        (lambda: bootstrap_ci([0.2, 2.0], bounds=(1, 0)), ValueError),
        (lambda: bootstrap_ci([0.2, 2.0], bounds=0), TypeError),
        (lambda: bootstrap_ci([1.0, 2.0], statistic=3), TypeError),
        (lambda: bootstrap_ci([1.0, 2.0], n_resamples=10), ValueError),
        (lambda: bootstrap_ci([1.0, 2.0], confidence=0.0), ValueError),
    ],
)
def test_bootstrap_ci_bad_input(call, exc):
    with pytest.raises(exc):
        call()
