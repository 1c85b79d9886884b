"""Bad input to the prune-or-train-first study module: a clear ValueError or TypeError naming
the argument, quickly, never a result (property-based, hypothesis)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlearn.studies import prune_or_train_first as P

FAST = settings(max_examples=25, deadline=2000)
BAD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf])


def _params(K=2, seed=0):
    from nnlearn.models import MLPStack

    return MLPStack([2, 4, 3, 2], "relu").init(list(range(seed, seed + K)), "glorot")


def _raises(name, fn, *args, **kw):
    with pytest.raises((ValueError, TypeError), match=name):
        fn(*args, **kw)


@FAST
@given(
    width=st.one_of(
        st.integers(max_value=0), st.floats(0.5, 10), st.booleans(), st.text(max_size=2)
    )
)
def test_keep_from_indices_bad_width(width):
    _raises("width", P.keep_from_indices, [0], width)


@FAST
@given(
    idx=st.lists(st.one_of(st.integers(-1000, -1), st.integers(5, 1000)), min_size=1, max_size=4)
)
def test_keep_from_indices_out_of_range(idx):
    _raises("indices", P.keep_from_indices, idx, 5)


@FAST
@given(
    n_keep=st.one_of(
        st.integers(max_value=0), st.integers(min_value=7), st.floats(1, 5), st.booleans()
    )
)
def test_random_keep_bad_n_keep(n_keep):
    _raises("n_keep", P.random_keep, 6, n_keep, [0, 1])


@FAST
@given(bad=BAD_NUMBERS, col=st.integers(0, 3))
def test_lowest_std_keep_rejects_non_finite(bad, col):
    stds = torch.rand(2, 4)
    stds[0, col] = bad
    _raises("stds", P.lowest_std_keep, stds, 2)


@FAST
@given(bad=BAD_NUMBERS, i=st.integers(0, 4), k=st.integers(0, 1))
def test_member_scores_reject_non_finite_logits(bad, i, k):
    logits = torch.randn(2, 5, 2)
    logits[k, i, 0] = bad
    y = torch.tensor([0, 1, 0, 1, 1])
    _raises("logits", P.member_accuracy, logits, y)
    _raises("logits", P.member_ce, logits, y)


@FAST
@given(cls=st.one_of(st.integers(-1000, -1), st.integers(min_value=2, max_value=50)))
def test_member_accuracy_rejects_out_of_range_classes(cls):
    _raises("y", P.member_accuracy, torch.randn(2, 3, 2), torch.tensor([0, cls, 1]))


@FAST
@given(
    idx=st.lists(st.one_of(st.integers(-1000, -1), st.integers(2, 1000)), min_size=1, max_size=3)
)
def test_select_members_rejects_bad_indices(idx):
    _raises("idx", P.select_members, _params(), idx)


@FAST
@given(
    steps=st.one_of(st.integers(max_value=0), st.floats(0.5, 9), st.booleans()),
    betas=st.sampled_from([(0.9, 0.999), (1.0, 0.9), (0.9,), "ab"]),
)
def test_adam_single_kick_travel_bad_input(steps, betas):
    _raises("steps", P.adam_single_kick_travel, steps)
    if betas != (0.9, 0.999):
        _raises("betas", P.adam_single_kick_travel, 10, betas)


@FAST
@given(bad=BAD_NUMBERS, i=st.integers(0, 5))
def test_forward_and_pruning_reject_non_finite_inputs(bad, i):
    X = torch.randn(6, 2)
    X[i, 1] = bad
    params = _params()
    _raises("X", P.stacked_forward, params, X)
    _raises("X", P.prune_stacked, params, X, [None, None])
    _raises("X", P.plane_disagreement, params, params, X)


@FAST
@given(n=st.one_of(st.integers(-5, 1), st.integers(2, 5)), w=st.integers(1, 4), bad=BAD_NUMBERS)
def test_similarity_rejects_bad_representations(n, w, bad):
    h = torch.randn(2, max(n, 1), w)
    if n < 2:
        _raises("ha", P.linear_cka, h, h)
        return
    g = h.clone()
    g[0, 0, 0] = bad
    _raises("hb", P.linear_cka, h, g)
    _raises("hb", P.matched_units, h, g)


@FAST
@given(
    n=st.one_of(st.integers(max_value=0), st.floats(0.5, 50), st.booleans()),
    sampling=st.sampled_from(["angle", "arc"]),
)
def test_spiral_points_bad_n(n, sampling):
    _raises("n", P.spiral_points, n, 0, sampling=sampling)


@FAST
@given(shape=st.sampled_from([(3,), (2, 3, 1), (0, 3)]))
def test_criterion_rank_correlation_bad_shapes(shape):
    _raises("scores", P.criterion_rank_correlation, np.zeros(shape), np.zeros((2, 3)))


def test_train_keras_bad_labels():
    X = torch.randn(8, 2)
    _raises("y", P.train_keras, _params(), X, torch.rand(8), seeds=[0, 1])
    _raises("y", P.train_keras, _params(), X, torch.zeros(7, dtype=torch.long), seeds=[0, 1])
