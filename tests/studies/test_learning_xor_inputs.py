"""Property tests: bad input to the learning-xor study module is a ValueError/TypeError naming the
argument, quickly, never a result (issue 19)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnlearn.studies import learning_xor as G

X = G.binary_inputs(2)
Y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
GOOD = G.init_params((2, 2, 1), [0, 1])
FAST = settings(max_examples=25, deadline=2000)

bad_numbers = st.one_of(
    st.floats(max_value=0, allow_nan=False),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
)
bad_sizes = st.one_of(
    st.integers(max_value=0), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2)
)
bad_arrays = st.sampled_from(["nan", "inf", "empty", "shape"])


def broken(kind, good):
    a = np.array(good, dtype=float)
    if kind == "nan":
        a.flat[0] = np.nan
    elif kind == "inf":
        a.flat[-1] = np.inf
    elif kind == "empty":
        a = a[:0]
    else:
        a = a.reshape(-1)[:-1]
    return a


def raises_naming(names, fn):
    with pytest.raises((ValueError, TypeError)) as err:
        fn()
    assert any(n in str(err.value) for n in names), str(err.value)


@FAST
@given(kind=bad_arrays)
def test_params_checked_everywhere(kind):
    bad = torch.as_tensor(broken(kind, GOOD.numpy())).float()
    for fn in (
        lambda: G.forward(bad, (2, 2, 1), X),
        lambda: G.accuracy(bad, (2, 2, 1), X, [0, 1, 1, 0]),
        lambda: G.hidden_gates(bad, (2, 2, 1)),
        lambda: G.train_sigmoid_nets(bad, (2, 2, 1), X, Y, epochs=2),
        lambda: G.swap_units(bad, (2, 2, 1)),
        lambda: G.greedy_core(bad, (2, 2, 1), X, [0, 1, 1, 0]),
        lambda: G.bce_loss(bad, (2, 2, 1), X, Y),
    ):
        raises_naming(["params"], fn)


@FAST
@given(kind=bad_arrays)
def test_inputs_and_labels_checked(kind):
    bad_x = torch.as_tensor(broken(kind, X.numpy())).float()
    raises_naming(["X"], lambda: G.forward(GOOD, (2, 2, 1), bad_x))
    bad_y = broken(kind, [0, 1, 1, 0])
    raises_naming(["y"], lambda: G.accuracy(GOOD, (2, 2, 1), X, bad_y))
    raises_naming(["y"], lambda: G.hidden_collision(GOOD, (2, 2, 1), bad_y))


@FAST
@given(lr=bad_numbers)
def test_learning_rates_checked(lr):
    raises_naming(["lr"], lambda: G.train_sigmoid_nets(GOOD, (2, 2, 1), X, Y, lr=lr, epochs=2))
    raises_naming(["lr"], lambda: G.Setting("x", lr=lr))


@FAST
@given(n=bad_sizes)
def test_sizes_checked(n):
    raises_naming(["epochs"], lambda: G.train_sigmoid_nets(GOOD, (2, 2, 1), X, Y, epochs=n))
    raises_naming(["h"], lambda: G.single_removal_masks(n))
    raises_naming(["n"], lambda: G.binary_inputs(n))
    raises_naming(["n_pairs"], lambda: G.sample_pairs([0, 1, 0], n, same=True, seed=0))
    raises_naming(["n_points"], lambda: G.path_losses(GOOD, GOOD, (2, 2, 1), X, Y, n_points=n))
    raises_naming(["widths"], lambda: G.init_params((2, n, 1), [0]))


@FAST
@given(seed=st.one_of(st.integers(max_value=-1), st.floats(), st.text(min_size=1, max_size=2)))
def test_seeds_checked(seed):
    raises_naming(["seed"], lambda: G.init_params((2, 2, 1), [seed]))
    raises_naming(["seed"], lambda: G.perturb_params(GOOD, 0.1, seed=seed))


@FAST
@given(radius=bad_numbers.filter(lambda r: not r == 0))
def test_radius_checked(radius):
    raises_naming(["radius"], lambda: G.perturb_params(GOOD, radius, seed=0))


@FAST
@given(kind=bad_arrays)
def test_array_functions_checked(kind):
    raises_naming(["acts"], lambda: G.within_module_fit(broken(kind, np.zeros((16, 9)))))
    raises_naming(["acts"], lambda: G.block_null_vectors(broken(kind, np.zeros((16, 9)))))
    raises_naming(["losses"], lambda: G.path_barrier(broken(kind, np.zeros((2, 5)))))
    raises_naming(["points"], lambda: G.tsne_embed(broken(kind, np.zeros((10, 3))), seed=0))
    raises_naming(["points"], lambda: G.kmeans_labels(broken(kind, np.zeros((10, 3))), 2, seed=0))
    raises_naming(["values"], lambda: G.count_before_largest_gap(broken(kind, [1.0, 0.5])))


@FAST
@given(i=st.one_of(st.integers(max_value=-1), st.integers(min_value=2), st.floats(), st.booleans()))
def test_indices_checked(i):
    raises_naming(["i"], lambda: G.swap_units(GOOD, (2, 2, 1), i, 1))
    raises_naming(["m"], lambda: G.extract_xor_net(torch.zeros(1, 51), i + 1 if i == 2 else i))
    raises_naming(["k", "drop", "keep"], lambda: G.merge_units(GOOD, (2, 2, 1), i, drop=0, keep=1))
    raises_naming(["units"], lambda: G.remove_hidden_unit(GOOD, (2, 2, 1), np.array([i, i])))


@FAST
@given(
    code=st.one_of(st.integers(max_value=-1), st.integers(min_value=16), st.floats(), st.booleans())
)
def test_gate_codes_checked(code):
    raises_naming(["code"], lambda: G.gate_name(code))


@FAST
@given(
    name=st.text(max_size=8).filter(
        lambda s: s not in ("chain", "star", "zero", "mean", "line", "norm")
    )
)
def test_choices_checked(name):
    raises_naming(["layout"], lambda: G.three_xor_data(name))
    raises_naming(["ablation"], lambda: G.greedy_core(GOOD, (2, 2, 1), X, [0, 1, 1, 0], name))
    raises_naming(["path"], lambda: G.path_losses(GOOD, GOOD, (2, 2, 1), X, Y, path=name))
