"""Bad input to nnlearn.studies.how_networks_learn: a clear ValueError/TypeError naming the
argument, quickly, never a result (property-based, hypothesis)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlearn.ensemble import Ensemble
from nnlearn.models import MLP
from nnlearn.studies import how_networks_learn as sp

FAST = settings(max_examples=25, deadline=2000)
ERRORS = (ValueError, TypeError)

# values that are not a valid numeric array
not_arrays = st.one_of(
    st.none(), st.text(max_size=3), st.integers(), st.lists(st.integers(), max_size=3)
)
bad_levels = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 < v < 1),
    st.text(max_size=2),
    st.none(),
    st.booleans(),
)
bad_sizes = st.one_of(
    st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=2), st.none()
)
poison = st.sampled_from([np.nan, np.inf, -np.inf])


def _raises(fn, name):
    with pytest.raises(ERRORS) as err:
        fn()
    assert name in str(err.value), f"error does not name {name!r}: {err.value}"


def _acts(n=12, u=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, u)), np.arange(n) % 2


@FAST
@given(bad=not_arrays)
def test_array_arguments_reject_non_arrays(bad):
    acts, y = _acts()
    _raises(lambda: sp.separation_scores(bad, y), "acts")
    _raises(lambda: sp.class_gap(bad, y), "acts")
    _raises(lambda: sp.within_class_variance_ratio(bad, y), "acts")
    _raises(lambda: sp.template_scores(bad, acts[:, 0]), "weights")
    _raises(lambda: sp.first_crossing(bad, 0.5), "curves")
    _raises(lambda: sp.span_fraction(bad, acts.T), "vectors")
    _raises(lambda: sp.edge_scores(bad), "filters")
    _raises(lambda: sp.two_endedness(bad, np.arange(12) % 3), "acts")


@FAST
@given(value=poison, i=st.integers(0, 11), j=st.integers(0, 2))
def test_nan_and_inf_are_refused(value, i, j):
    acts, y = _acts()
    acts[i, j] = value
    _raises(lambda: sp.separation_scores(acts, y), "acts")
    _raises(lambda: sp.class_gap(acts, y), "acts")
    _raises(lambda: sp.two_endedness(acts, np.arange(12) % 3), "acts")
    _raises(lambda: sp.first_crossing(acts, 0.5), "curves")
    _raises(lambda: sp.template_scores(acts, np.ones(3) + np.arange(3)), "weights")
    _raises(lambda: sp.image_combinations(acts, 2, 3, seed=0), "X")
    _raises(lambda: sp.shift_images(np.full((1, 784), value), 1, 1), "X")


@FAST
@given(n=st.integers(0, 3), u=st.integers(0, 3))
def test_empty_arrays_are_refused(n, u):
    empty = np.zeros((0, u)) if n % 2 else np.zeros((n, 0))
    if empty.size:
        return
    _raises(lambda: sp.separation_scores(empty, np.zeros(empty.shape[0], int)), "acts")
    _raises(lambda: sp.first_crossing(empty, 0.5), "curves")
    _raises(lambda: sp.smoothed_noise(0), "n")


@FAST
@given(level=bad_levels)
def test_out_of_range_levels(level):
    curves = np.linspace(1, 0, 11)[None]
    _raises(lambda: sp.first_crossing(curves, level), "level")
    probs = np.stack([curves[0], 1 - curves[0]], -1)[None]
    _raises(lambda: sp.oriented_crossing(probs, level), "level")
    h, W, b = np.ones((1, 4)), np.ones((1, 2, 4)), np.zeros((1, 2))
    _raises(lambda: sp.predicted_flip_fraction(h, W, b, level), "level")


@FAST
@given(size=bad_sizes)
def test_sizes_must_be_positive_ints(size):
    _raises(lambda: sp.random_orders(size, 3, seed=0), "n_units")
    _raises(lambda: sp.random_orders(4, size, seed=0), "n_orders")
    _raises(lambda: sp.uniform_random_task(size, 4, seed=0), "n_samples")
    _raises(lambda: sp.smoothed_noise(size), "n")
    _raises(lambda: sp.image_combinations(np.ones((5, 3)), size, 2, seed=0), "n_combos")
    _raises(lambda: sp.image_combinations(np.ones((5, 3)), 2, size, seed=0), "n_images")


@FAST
@given(
    shift=st.one_of(st.integers(28, 100), st.integers(-100, -28), st.floats(), st.text(max_size=2))
)
def test_shifts_out_of_range(shift):
    X = np.zeros((2, 784), np.float32)
    _raises(lambda: sp.shift_images(X, shift, 0), "dx")
    _raises(lambda: sp.shift_images(X, 0, shift), "dy")


@FAST
@given(
    labels=st.one_of(
        st.just(np.zeros(12)),
        st.just(np.arange(5)),
        st.just(np.array(["a"] * 12)),
        st.just(np.zeros(12, int)),
    )
)
def test_bad_labels(labels):
    acts, _ = _acts()
    _raises(lambda: sp.separation_scores(acts, labels), "labels")


@FAST
@given(
    classes=st.one_of(
        st.text(max_size=3),
        st.none(),
        st.lists(st.floats(), min_size=2, max_size=3),
        st.lists(st.integers(0, 3), min_size=0, max_size=1),
    )
)
def test_bipartitions_bad_classes(classes):
    _raises(lambda: sp.bipartitions(classes), "classes")


def _ens(k=2):
    return Ensemble.from_seeds(lambda s: MLP([4, 3, 2], "tanh", seed=s), list(range(k)))


@FAST
@given(value=poison)
def test_training_inputs_are_checked(value):
    ens = _ens()
    X = np.ones((6, 4), np.float32)
    X[0, 0] = value
    y = np.arange(6) % 2
    _raises(lambda: sp.hidden_activations(ens.base, ens.params, X), "X")
    _raises(lambda: sp.member_accuracy(ens, X, y), "X")
    _raises(lambda: sp.per_example_sgd(ens, X, y, steps=2, lr=0.1, seeds=[0, 1]), "X")
    _raises(
        lambda: sp.per_example_sgd(ens, np.ones((6, 4)), y, steps=2, lr=value, seeds=[0, 1]), "lr"
    )


@FAST
@given(bad=st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=2)))
def test_trainer_sizes(bad):
    ens = _ens()
    X, y = np.ones((6, 4), np.float32), np.arange(6) % 2
    _raises(lambda: sp.per_example_sgd(ens, X, y, steps=bad, lr=0.1, seeds=[0, 1]), "steps")
    _raises(
        lambda: sp.template_run([4, 3, 2], "tanh", X, y, None, [0], epochs=bad, lr=0.1), "epochs"
    )


def test_wrong_objects_are_named():
    X, y = np.ones((6, 4), np.float32), np.arange(6) % 2
    _raises(lambda: sp.member_accuracy("ens", X, y), "ens")
    _raises(lambda: sp.unflatten("ens", np.zeros((2, 3))), "ens")
    _raises(lambda: sp.hidden_activations(_ens().base, "params", X), "params")
    _raises(lambda: sp.cnn_accuracy("net", X, y), "net")
    _raises(lambda: sp.layer_table("scores"), "scores")
    _raises(lambda: sp.dead_unit_stats(_ens(), {}, X, y, 2, weights="both"), "weights")
    _raises(lambda: sp.StackedCNN(3), "seeds")
    _raises(
        lambda: sp.flip_curves(
            np.ones((1, 4)), np.ones((1, 2, 4)), np.zeros((1, 2)), [[0, 1, 2, 3]]
        ),
        "orders",
    )
    _raises(lambda: sp.edge_bank(5, 8, sigma="x"), "sigma")
    _raises(lambda: sp.error_spread(np.ones((1, 6, 2)), np.zeros((1, 6), int), low="a"), "low")


def test_hidden_activations_shape_mismatch():
    ens = _ens()
    _raises(lambda: sp.hidden_activations(ens.base, ens.params, torch.ones(3, 5)), "X")
