"""Bad input to the node-removal study module: every public function answers wrong types,
wrong shapes, NaN / inf, empty arrays, bad sizes and out-of-range probabilities with a
ValueError or TypeError that names the argument, quickly, and never with a result."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlearn.studies import node_removal as M

H = 4
P = M.stacked_params(M.untrained_circle_nets([0, 1], hidden=H))
_rng = np.random.default_rng(0)
X = _rng.uniform(-1, 1, (12, 2)).astype(np.float32)
Y = ((X**2).sum(1) > 0.6).astype(np.int64)
MASKS = M.bernoulli_masks(5, H, 0.5, 0)
VALUES = _rng.lognormal(size=40)
SERIES = _rng.normal(size=(10, 5))
FAST = settings(max_examples=25, deadline=2000)


def raises_naming(fn, name):
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    assert name in str(info.value), f"error does not name {name!r}: {info.value}"


# Functions taking one array argument: (argument name, valid value, call with it replaced).
ARRAY_CASES = {
    "X": (X, lambda a: M.mask_losses(P, a, Y, MASKS)),
    "y": (Y.astype(float), lambda a: M.mask_losses(P, X, a, MASKS)),
    "masks": (MASKS, lambda a: M.mask_losses(P, X, Y, a)),
    "mask": (np.ones(H), lambda a: M.predict_inside(P, X, a)),
    "values": (VALUES, lambda a: M.normality_check(a)),
    "series": (SERIES, lambda a: M.lag_correlations(a)),
    "target": (VALUES[:10], lambda a: M.residualise(a, np.arange(10.0))),
    "contrib": (np.ones((6, H)), lambda a: M.half_network_deviation(a, MASKS)),
    "paths": (M.hypercube_paths(3, H), lambda a: M.class_flip_share(P, X, a)),
    "runs": (SERIES, lambda a: M.joint_prediction_test(np.zeros(5), a)),
    "source": (np.zeros(5), lambda a: M.joint_prediction_test(a, SERIES)),
    "percentiles": (np.array([10.0, 50.0]), lambda a: M.percentile_text(a)),
    "w1": (np.ones(2), lambda a: M.spectrum_path_curve(a, np.ones(2), H)),
    "a": (VALUES, lambda a: M.wiggle_correlation(a, VALUES)),
}
SHAPE_CASES = {
    "X": lambda: M.node_contributions(P, np.ones((3, 5))),
    "y": lambda: M.mask_losses(P, X, Y[:5], MASKS),
    "masks": lambda: M.mask_losses(P, X, Y, np.ones((2, H + 1))),
    "mask": lambda: M.pointwise_mask_grads(P, X, Y, np.ones(H + 2)),
    "series": lambda: M.fade_distance(np.ones(7)),
    "covariates": lambda: M.residualise(np.arange(5.0), np.ones((4, 1))),
    "paths": lambda: M.class_flip_share(P, X, np.ones((2, 3, H + 1))),
    "runs": lambda: M.joint_prediction_test(np.zeros(3), np.ones((10, 2))),
    "train_masks": lambda: M.fit_spectrum(MASKS, np.ones((2, 4)), MASKS, np.ones((2, 5))),
}


@FAST
@given(
    name=st.sampled_from(sorted(ARRAY_CASES)),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    where=st.integers(0, 10**6),
)
def test_nan_and_inf_are_refused(name, bad, where):
    valid, call = ARRAY_CASES[name]
    a = np.array(valid, dtype=float)
    a.flat[where % a.size] = bad
    raises_naming(lambda: call(a), name)


@FAST
@given(
    name=st.sampled_from(sorted(ARRAY_CASES)),
    junk=st.sampled_from(["abc", {"a": 1}, object(), [["x", "y"]]]),
)
def test_wrong_types_are_refused(name, junk):
    raises_naming(lambda: ARRAY_CASES[name][1](junk), name)


@pytest.mark.parametrize("name", sorted(ARRAY_CASES))
def test_empty_arrays_are_refused(name):
    valid, call = ARRAY_CASES[name]
    empty = np.zeros((0,) + np.shape(valid)[1:])
    with pytest.raises((ValueError, TypeError)):
        call(empty)


@pytest.mark.parametrize("name", sorted(SHAPE_CASES))
def test_wrong_shapes_are_refused(name):
    raises_naming(SHAPE_CASES[name], name)


bad_size = st.one_of(
    st.integers(max_value=0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just("3"),
    st.none(),
    st.booleans(),
)
SIZE_CASES = {
    "n_masks": lambda n: M.bernoulli_masks(n, H, 0.5, 0),
    "n_nodes": lambda n: M.bernoulli_masks(3, n, 0.5, 0),
    "n_paths": lambda n: M.hypercube_paths(n, H),
    "n": lambda n: M.smooth_surrogate(VALUES, 0.1, n, 0),
    "keep": lambda n: M.prune_to(P, X, Y, n, "greedy"),
    "n_train": lambda n: M.train_circle_nets([0], n_train=n),
    "epochs": lambda n: M.train_circle_nets([0], epochs=n),
    "hidden": lambda n: M.untrained_circle_nets([0], hidden=n),
    "chunk": lambda n: M.mask_losses(P, X, Y, MASKS, chunk=n),
    "n_points": lambda n: M.trough_ratio(VALUES, n_points=n),
}


@FAST
@given(name=st.sampled_from(sorted(SIZE_CASES)), n=bad_size)
def test_bad_sizes_are_refused(name, n):
    raises_naming(lambda: SIZE_CASES[name](n), name)


bad_prob = st.one_of(
    st.floats(max_value=-1e-9),
    st.floats(min_value=1 + 1e-9),
    st.just(float("nan")),
    st.just("0.5"),
    st.none(),
)
PROB_CASES = {
    "p": lambda p: M.bernoulli_masks(3, H, p, 0),
    "probs": lambda p: M.source_masks(probs=(0.5, p)),
    "alpha": lambda p: M.bonferroni_inside(np.zeros(5), SERIES, alpha=p),
    "confidence": lambda p: M.boxcox_lambda(VALUES, confidence=p),
}


@FAST
@given(name=st.sampled_from(sorted(PROB_CASES)), p=bad_prob)
def test_out_of_range_probabilities_are_refused(name, p):
    raises_naming(lambda: PROB_CASES[name](p), name)


@FAST
@given(
    seed=st.one_of(
        st.integers(max_value=-1), st.integers(min_value=2**63), st.floats(), st.just("1")
    )
)
def test_bad_seeds_are_refused(seed):
    raises_naming(lambda: M.bernoulli_masks(3, H, 0.5, seed), "seed")
    raises_naming(lambda: M.untrained_circle_nets([0, seed]), "seed")


@FAST
@given(
    value=st.one_of(
        st.floats(max_value=0), st.just(float("nan")), st.just(float("inf")), st.just("1")
    )
)
def test_bad_positive_numbers_are_refused(value):
    raises_naming(lambda: M.train_circle_nets([0], lr=value), "lr")
    raises_naming(lambda: M.fixed_width_kde(VALUES, value, [0.0]), "width")
    raises_naming(lambda: M.bias_like_nodes(P, max_cv=value), "max_cv")


def test_bad_params_and_other_arguments_are_refused():
    bad = dict(P)
    bad["layers.0.bias"] = torch.full_like(P["layers.0.bias"], float("nan"))
    raises_naming(lambda: M.node_contributions(bad, X), "params")
    raises_naming(lambda: M.node_contributions({k: v.numpy() for k, v in P.items()}, X), "params")
    raises_naming(lambda: M.node_contributions("net", X), "params")
    raises_naming(lambda: M.train_circle_nets(3), "seeds")
    raises_naming(lambda: M.train_circle_nets([]), "seeds")
    raises_naming(lambda: M.source_masks(probs=()), "probs")
    raises_naming(lambda: M.text_table("ab", [[1, 2]]), "header")
    raises_naming(lambda: M.text_table(["a"], ["x"]), "rows")
    raises_naming(lambda: M.mask_losses(P, X, Y, MASKS * 2), "masks")
    raises_naming(lambda: M.mask_summary(np.full((2, 3), 0.5)), "masks")
    raises_naming(lambda: M.walsh_features(MASKS, order=3), "order")
    raises_naming(lambda: M.prune_to(P, X, Y, 2, "best"), "method")
    raises_naming(lambda: M.exact_size_masks(3, 4, 5, 0), "keep")
    raises_naming(lambda: M.bias_like_nodes(P, low=1.0, high=-1.0), "low")
    raises_naming(lambda: M.lag_correlations(np.ones((5, 3))), "series")
    raises_naming(lambda: M.pointwise_mask_grads(P, X, Y + 1), "y")
    raises_naming(lambda: M.lean_sign_agreement(P, X, Y.astype(float) / 2, MASKS), "y")
