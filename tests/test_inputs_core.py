"""Property-based bad-input tests over the core's public API: each wrong argument gets a
ValueError or TypeError naming it, within a time limit, never a result."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inputs import bad_count, bad_probability, bad_seed, check_rejects, non_finite, not_a_number

from nnlearn import config, seeding, stats
from nnlearn.claims import Claims, R
from nnlearn.data import circle_data, grid, random_labels, spirals, xor_data
from nnlearn.plotting import image_grid

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(bad=bad_seed)
def test_seeds(bad):
    for fn in (seeding.seed_everything, seeding.make_generator, seeding.make_rng):
        check_rejects(fn, {"seed": 0}, "seed", bad)


@FAST
@given(bad=bad_count)
def test_toy_sizes(bad):
    check_rejects(circle_data, {"n": 10, "seed": 0}, "n", bad)
    check_rejects(spirals, {"n": 10, "seed": 0}, "n", bad)
    check_rejects(grid, {"n": 5}, "n", bad)
    check_rejects(random_labels, {"n_samples": 5}, "n_samples", bad)
    check_rejects(random_labels, {"n_features": 5}, "n_features", bad)
    check_rejects(xor_data, {"n_bits": 2}, "n_bits", bad)


@FAST
@given(bad=st.one_of(non_finite, not_a_number))
def test_toy_reals(bad):
    check_rejects(circle_data, {"n": 10, "seed": 0}, "threshold", bad)
    check_rejects(circle_data, {"n": 10, "seed": 0}, "low", bad)
    check_rejects(spirals, {"n": 10, "seed": 0}, "noise", bad)
    check_rejects(spirals, {"n": 10, "seed": 0}, "radius", bad)
    check_rejects(grid, {"n": 5}, "high", bad)


@FAST
@given(bad=st.one_of(st.floats(max_value=-1e-3, min_value=-1e3), non_finite))
def test_spiral_noise_negative(bad):
    check_rejects(spirals, {"n": 10, "seed": 0}, "noise", bad)


@FAST
@given(bad=st.one_of(bad_probability, st.sampled_from([0.0, 1.0])))
def test_confidence_levels(bad):
    vals = [0.1, 0.4, 0.3]
    check_rejects(stats.mean_ci, {"values": vals}, "confidence", bad)
    check_rejects(stats.prediction_interval, {"values": vals}, "confidence", bad)
    check_rejects(stats.share_ci, {"k": 1, "n": 3}, "confidence", bad)
    check_rejects(stats.bootstrap_ci, {"values": vals}, "confidence", bad)


@pytest.mark.parametrize("bad", [[], [np.nan, 1.0], [np.inf, 2.0], "abc"])
def test_stat_values(bad):
    for fn in (stats.mean_ci, stats.prediction_interval, stats.bootstrap_ci):
        check_rejects(fn, {"values": [1.0, 2.0]}, "values", bad)
    check_rejects(stats.pearson_ci, {"x": [1.0, 2, 3, 4], "y": [2.0, 1, 4, 3]}, "x", bad)


@FAST
@given(k=st.integers(-5, 20), n=st.integers(-5, 20))
def test_share_counts(k, n):
    if n >= 1 and 0 <= k <= n:
        est = stats.share_ci(k, n)
        assert 0 <= est.lo <= est.value <= est.hi <= 1
    else:
        with pytest.raises(ValueError, match="k|n"):
            stats.share_ci(k, n)


@FAST
@given(
    bad=st.one_of(
        st.sampled_from(["", "huge", "-1", "0", "nan", "inf"]), st.floats(max_value=0.0).map(str)
    )
)
def test_scale_knob(bad):
    with pytest.raises(ValueError, match="NNLEARN_SCALE"):
        config.scale_factor(bad)


@FAST
@given(bad=bad_count)
def test_scaled(bad):
    check_rejects(config.scaled, {"n": 3}, "n", bad)


def test_scale_knob_values(monkeypatch):
    monkeypatch.setenv("NNLEARN_SCALE", "book")
    assert config.scaled(8) == 8
    monkeypatch.setenv("NNLEARN_SCALE", "paper")
    assert config.scaled(8) == 80
    monkeypatch.setenv("NNLEARN_SCALE", "2.5")
    assert config.scaled(8) == 20
    monkeypatch.setenv("NNLEARN_SCALE", "0.01")
    assert config.scaled(8) == 1 and config.scaled(8, minimum=4) == 4


@FAST
@given(bad=st.one_of(bad_count, st.integers(max_value=0)))
def test_image_grid(bad):
    check_rejects(image_grid, {"images": np.zeros((2, 3, 3))}, "ncols", bad)


@pytest.mark.parametrize("bad", [np.zeros((0, 3, 3)), np.zeros((3, 3)), "abc"])
def test_image_grid_images(bad):
    check_rejects(image_grid, {"images": np.zeros((2, 3, 3))}, "images", bad)


@FAST
@given(bad=st.one_of(non_finite, not_a_number))
def test_claim_rules(bad):
    for make in (R.at_least, R.at_most, R.interval_above, R.interval_below, R.close_to_source):
        check_rejects(
            make,
            {"threshold": 0.5} if make is not R.close_to_source else {"tolerance": 0.5},
            "threshold" if make is not R.close_to_source else "tolerance",
            bad,
            names=("threshold",),
        )
    C = Claims("x", title="t", primary="p")
    C.declare("a", "a", kind="beyond", rule=R.at_least(0.0))
    if bad is None:  # None is the documented "not tested" evidence: the verdict is "open"
        assert C.judge("a", None) == "open"
        return
    with pytest.raises((ValueError, TypeError), match="evidence"):
        C.judge("a", bad)
