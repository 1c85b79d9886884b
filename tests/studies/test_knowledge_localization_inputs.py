"""Bad input to the knowledge-localization study module: every public function answers wrong
types, wrong shapes, NaN/inf, empty arrays, negative or float sizes and out-of-range shares or
indices with a ValueError or TypeError that names the argument, quickly, never with a result."""

import re
import signal
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlearn.claims import Claims
from nnlearn.studies import knowledge_localization as loc

SETTINGS = settings(max_examples=25, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
ERRORS = (ValueError, TypeError)
TIME_LIMIT_S = 5


@contextmanager
def refused(name: str):
    """The body must raise a ValueError/TypeError naming ``name`` within TIME_LIMIT_S."""

    def hang(signum, frame):
        raise AssertionError(f"no answer within {TIME_LIMIT_S} s (bad {name!r})")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(TIME_LIMIT_S)
    try:
        with pytest.raises(ERRORS, match=re.escape(name)):
            yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def toy():
    rng = np.random.default_rng(0)
    X = rng.uniform(1 / 256, 1, size=(120, 6)).astype(np.float32)
    X[:, 0] = 1 / 256
    digits = rng.choice([1, 7, 6, 8], size=120)
    return X, digits


X_TOY, Y_TOY = toy()
DATA = loc.split_phases(X_TOY, Y_TOY, 50)
RUN = loc.run_localization(DATA, [0, 1], hidden=3, lr=0.05)
INK = loc.ink_share(DATA.X1.numpy(), DATA.digits1)
CONST = loc.constant_inputs(DATA.X1.numpy(), DATA.X2.numpy())
PARAMS = loc.he_params([0, 1], n_in=6, hidden=3)
MAP = np.random.default_rng(1).uniform(-1, 1, size=(3, 6))


def spoil(kind: str, index: int, good: np.ndarray):
    """A bad version of the valid array ``good``."""
    a = np.array(good, dtype=np.float64)
    if kind == "nan":
        a.flat[index % a.size] = np.nan
    elif kind == "inf":
        a.flat[index % a.size] = np.inf
    elif kind == "empty":
        a = np.zeros((0,) * a.ndim)
    elif kind == "shape":
        a = (
            a.reshape(-1)[: max(1, a.size - 1 - index % 3)]
            if a.ndim > 1
            else a[:, None] * np.ones(2)
        )
    elif kind == "str":
        return "array"
    elif kind == "none":
        return None
    return a


ARRAY_KINDS = st.sampled_from(["nan", "inf", "empty", "shape", "str", "none"])
FINITE_ONLY = ARRAY_KINDS  # for arguments documented to skip NaN, "nan" is removed below
NAN_SKIPPING = st.sampled_from(["inf", "empty", "shape", "str", "none"])

# (name of the argument, function calling the module with that argument replaced, valid value,
#  whether NaN is documented as a skipped missing value)
ARRAY_CASES = [
    ("a", lambda v: loc.relative(v, [1.0, 2.0]), np.array([1.0, 2.0]), False),
    ("b", lambda v: loc.relative([1.0, 2.0], v), np.array([1.0, 2.0]), False),
    ("x", lambda v: loc.finite_pearson(v, np.arange(4.0)), np.array([1.0, 3, 2, 5]), True),
    ("X", lambda v: loc.ink_share(v, Y_TOY[:5]), X_TOY[:5], False),
    ("digits", lambda v: loc.ink_share(X_TOY[:4], v), np.array([1, 6, 7, 8]), False),
    ("X", lambda v: loc.split_phases(v, Y_TOY, 50), X_TOY, False),
    ("y", lambda v: loc.split_phases(X_TOY, v, 50), Y_TOY, False),
    ("r_w1", lambda v: loc.pixel_correlations(v, MAP), MAP, True),
    ("r_w1", lambda v: loc.within_pixel_correlation(v, MAP), MAP, True),
    ("values", lambda v: loc.between_neuron_share(v), MAP, True),
    ("maps", lambda v: loc.map_agreement(v), MAP, True),
    ("r_w1", lambda v: loc.knot_purity(v, MAP, np.zeros(6, bool)), MAP, True),
    ("pixel_map", lambda v: loc.pixel_statistics(v, np.zeros(6, bool), np.zeros(3)), MAP, True),
    ("Xs[0]", lambda v: loc.constant_inputs(v), X_TOY[:4], False),
    ("digits", lambda v: loc.fork_streams(v), np.array([1, 6, 7, 8, 1]), False),
    ("X", lambda v: loc.group_accuracy(PARAMS, v, Y_TOY[:8], activation="relu"), X_TOY[:8], False),
    ("ink", lambda v: loc.run_statistics(RUN, v), INK, True),
    ("ink", lambda v: loc.ink_following(RUN, v), INK, True),
    ("r", lambda v: loc.pearson_p(v, 10), np.array([0.1, -0.2]), False),
]


@pytest.mark.parametrize("name,call,good,nan_ok", ARRAY_CASES, ids=[c[0] for c in ARRAY_CASES])
@SETTINGS
@given(data=st.data())
def test_bad_arrays_are_refused_naming_the_argument(name, call, good, nan_ok, data):
    kind = data.draw(NAN_SKIPPING if nan_ok else FINITE_ONLY)
    index = data.draw(st.integers(0, 50))
    with refused(name.split("[")[0]):
        call(spoil(kind, index, good))


SIZE_CASES = [
    ("hidden", lambda v: loc.he_params([0], hidden=v)),
    ("n_in", lambda v: loc.he_params([0], n_in=v)),
    ("phase1_datapoints", lambda v: loc.split_phases(X_TOY, Y_TOY, v)),
    (
        "chunk",
        lambda v: loc.per_example_sgd(
            PARAMS, DATA.X1, np.zeros((2, 3), int), np.zeros((2, 3), int), lr=0.1, chunk=v
        ),
    ),
    ("bins", lambda v: loc.knot_purity(MAP, MAP, np.zeros(6, bool), bins=v)),
    ("min_count", lambda v: loc.knot_purity(MAP, MAP, np.zeros(6, bool), min_count=v)),
    ("n", lambda v: loc.pearson_p([0.1], v)),
    ("hidden", lambda v: loc.run_localization(DATA, [0], hidden=v)),
]
BAD_SIZES = st.one_of(st.integers(-5, 0), st.floats(0.5, 9.5), st.sampled_from([None, "3", True]))


@pytest.mark.parametrize("name,call", SIZE_CASES, ids=[c[0] for c in SIZE_CASES])
@SETTINGS
@given(value=BAD_SIZES)
def test_bad_sizes_are_refused_naming_the_argument(name, call, value):
    with refused(name):
        call(value)


SHARE_CASES = [
    ("fraction", lambda v: loc.ablation_drops(RUN, X_TOY, Y_TOY, fraction=v)),
    ("ablate", lambda v: loc.declare_claims(Claims("t", title="t", primary="p"), ablate=v)),
    (
        "tolerance",
        lambda v: loc.tune_learning_rates(
            DATA, X_TOY, Y_TOY, {"s": ("relu", None)}, [0.1], [0], tolerance=v
        ),
    ),
]
BAD_SHARES = st.one_of(
    st.floats(1.0, 1e6),
    st.floats(-1e6, -1e-9),
    st.just(float("nan")),
    st.sampled_from([None, "0.5", True]),
)


@pytest.mark.parametrize("name,call", SHARE_CASES, ids=[c[0] for c in SHARE_CASES])
@SETTINGS
@given(value=BAD_SHARES)
def test_bad_shares_are_refused_naming_the_argument(name, call, value):
    with refused(name):
        call(value)


@SETTINGS
@given(k=st.one_of(st.integers(-10, -1), st.integers(2, 100), st.floats(-2, 2), st.just("0")))
def test_member_params_refuses_bad_member_indices(k):
    with refused("k"):
        loc.member_params(PARAMS, k)


@SETTINGS
@given(
    lr=st.one_of(
        st.floats(max_value=0.0),
        st.just(float("inf")),
        st.just(float("nan")),
        st.sampled_from(["0.1", None, [0.1, 0.2, 0.3]]),
    )
)
def test_bad_learning_rates_are_refused(lr):
    with refused("lr"):
        loc.per_example_sgd(PARAMS, DATA.X1, np.zeros((2, 3), int), np.zeros((2, 3), int), lr=lr)
    with refused("lr"):
        loc.run_localization(DATA, [0, 1], hidden=3, lr=lr)


@SETTINGS
@given(
    seeds=st.one_of(
        st.just([]),
        st.lists(st.integers(-100, -1), min_size=1, max_size=3),
        st.just([2**64]),
        st.just([0.5]),
        st.just("01"),
        st.just(None),
    )
)
def test_bad_seeds_are_refused(seeds):
    with refused("seeds"):
        loc.he_params(seeds, n_in=4, hidden=2)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: loc.relative_updating("run"), "run"),
        (lambda: loc.relative_difference(None), "run"),
        (lambda: loc.seed_correlations(3), "run"),
        (lambda: loc.fork_heldout_accuracy(None, X_TOY, Y_TOY), "run"),
        (lambda: loc.cluster_statistics({}, CONST), "run"),
        (lambda: loc.cluster_statistics(RUN, CONST.astype(float)), "constant"),
        (lambda: loc.run_statistics(RUN, INK, changing=np.ones(6)), "changing"),
        (lambda: loc.run_localization("data", [0]), "data"),
        (lambda: loc.run_localization(DATA, [0], phase1=["trained", "shuffled"]), "phase1"),
        (lambda: loc.run_localization(DATA, [0], shuffle="yes"), "shuffle"),
        (lambda: loc.run_plan(DATA, {"a": 1}), "plan"),
        (lambda: loc.plan_members({"a": ("relu", None, "trained", 0.1)}), "groups"),
        (lambda: loc.plan_members({"a": ("relu", None, "trained", 0.1, -1)}), "n"),
        (lambda: loc.mixed_activation("relu"), "per_member"),
        (lambda: loc.mixed_activation(["relu", "swish"]), "per_member"),
        (lambda: loc.group_accuracy({"W1": 1}, X_TOY, Y_TOY, activation="relu"), "params"),
        (lambda: loc.group_accuracy(PARAMS, X_TOY, Y_TOY, activation="relu", first=(3,)), "first"),
        (lambda: loc.forward(PARAMS, torch.zeros(2, 5), "relu"), "X"),
        (lambda: loc.output_gradient(torch.zeros(2, 2), torch.tensor([0, 5]), "mse"), "target"),
        (lambda: loc.output_gradient(torch.zeros(2, 2), torch.tensor([0, 1]), "MSE"), "loss"),
        (lambda: loc.split_phases(X_TOY, Y_TOY, 50, balance="no"), "balance"),
        (lambda: loc.declare_claims("C"), "C"),
        (lambda: loc.tune_learning_rates(DATA, X_TOY, Y_TOY, {}, [0.1], [0]), "configs"),
        (lambda: loc.ablation_drops(RUN, X_TOY, Y_TOY, seed=-1), "seeds"),
        (lambda: loc.pixel_map_summary(MAP[0], np.zeros(6)), "constant"),
    ],
)
def test_other_bad_arguments_are_refused(call, name):
    with refused(name):
        call()
