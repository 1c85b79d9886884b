import json
import math

import numpy as np
import pytest
from scipy import stats

from nnlearn.results import Row, load_results, record_results, results_dir, verdict_table
from nnlearn.stats import mean_ci, pearson_ci, prediction_interval, standardised_gap


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
    assert np.isclose(est.value, np.corrcoef(x, y)[0, 1]) and est.lo < est.value < est.hi and p < 1e-10


@pytest.mark.parametrize("call", [lambda: mean_ci([]), lambda: mean_ci([1.0]), lambda: mean_ci([1, np.nan]),
                                  lambda: mean_ci([1, 2], confidence=1.5), lambda: pearson_ci([1, 2, 3], [1, 2]),
                                  lambda: pearson_ci([1, 2, 3], [3, 2, 1])])
def test_stats_bad_input(call):
    with pytest.raises(ValueError):
        call()


def test_record_and_load_results(tmp_path):
    rows = [Row("claim a", "0.5", "0.48 [0.4, 0.6]", "replicated"), {"claim": "b", "source": "x", "ours": "y", "verdict": "partly"}]
    path = record_results("demo", rows, title="Demo", folder=tmp_path)
    assert json.loads(path.read_text())["title"] == "Demo"
    loaded = load_results(tmp_path)
    assert list(loaded) == ["demo"] and loaded["demo"]["rows"][1].verdict == "partly"
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    table = verdict_table(loaded["demo"]["rows"])
    assert "<table" in table._repr_html_() and "[replicated] claim a" in repr(table)


def test_results_dir_env_and_toc(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLEARN_RESULTS", str(tmp_path / "r"))
    assert results_dir() == tmp_path / "r"
    monkeypatch.delenv("NNLEARN_RESULTS")
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")
    assert results_dir() == tmp_path / "_build" / "results"


@pytest.mark.parametrize("call, exc", [
    (lambda: Row("a", "b", "c", "maybe"), ValueError),
    (lambda: Row("a", "b", 0.5, "partly"), TypeError),
    (lambda: record_results("", [Row("a", "b", "c", "partly")]), ValueError),
    (lambda: record_results("x", []), ValueError),
])
def test_results_bad_input(call, exc):
    with pytest.raises(exc):
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
