"""Bad input to every public function of nnlearn.studies.blame_the_bias: a ValueError or
TypeError that names the argument, quickly, never a result (hypothesis property tests)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlearn import attribution as att
from nnlearn.ensemble import Ensemble
from nnlearn.models import MLP
from nnlearn.studies import blame_the_bias as bb

F64 = torch.float64
CHAIN = att.random_chain([6, 5, 4, 3], n_members=2, seed=0, bias=True)
X = torch.rand(2, 4, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
DIGITS = torch.rand(8, 784, generator=torch.Generator().manual_seed(1))
LABELS = torch.arange(8) % 10
BIG = att.Chain.from_params(
    {
        k: v.detach()
        for k, v in Ensemble([MLP([784, 5, 10], seed=s) for s in (0, 1)]).params.items()
    },
    ["relu"],
)
Z = torch.tensor([0.01, 0.02, 0.1, 0.2, 2.0, 3.0], dtype=F64).view(1, 1, -1)
MAXOUT = bb.train_maxout(2, DIGITS[:, :6], LABELS % 3, hidden=2, epochs=1, batch_size=4)
SHARE = torch.tensor([[0.01, 0.02, 0.5, 0.9]])
PRE = torch.tensor([[[0.001, 1.0]], [[0.5, -0.01]]])


def _params():
    return Ensemble([MLP([784, 4, 10], seed=s) for s in (0, 1)]).params


VALID = {  # name: (function, valid keyword arguments)
    "max_gradient": (bb.max_gradient, dict(a=torch.randn(3, 4), relevance_out=torch.randn(3))),
    "radial_shares": (bb.radial_shares, dict(a=torch.randn(3, 4))),
    "max_radial": (bb.max_radial, dict(a=torch.randn(3, 4), relevance_out=torch.randn(3))),
    "rewrite_checks": (bb.rewrite_checks, dict(n_points=20, seed=0)),
    "scaling_equivalence": (bb.scaling_equivalence, dict(alphas=(2.0, -0.5), n_points=10, seed=0)),
    "max_constant_agreement": (bb.max_constant_agreement, dict(n_points=20, seed=0)),
    "max_constant_cases": (bb.max_constant_cases, dict(n_points=20, seed=0)),
    "max_two_ways": (bb.max_two_ways, dict(x=[3.0, 1.0], baseline=[0.0, 2.0], softness=(0.1,))),
    "reference_relevance": (
        bb.reference_relevance,
        dict(chain=CHAIN, x=X, target=1, method="lrp", eps=0.1),
    ),
    "baseline_relevance_rform": (
        bb.baseline_relevance_rform,
        dict(chain=CHAIN, x=X, baseline=torch.zeros(6, dtype=F64), target=1),
    ),
    "start_sensitivity": (bb.start_sensitivity, dict(chain=CHAIN, x=X, eps=0.0)),
    "bias_sweep": (bb.bias_sweep, dict(chain=CHAIN, layer=0, unit=1, shifts=[0.0, 1.0])),
    "peak_near_zero": (bb.peak_near_zero, dict(pre=PRE, values=PRE * 3, width=0.1)),
    "start_blowup": (bb.start_blowup, dict(logit=Z, ratio=1 / Z)),
    "smallest_weighted_share": (bb.smallest_weighted_share, dict(chain=CHAIN, x=X, target=1)),
    "blowup_by_share": (bb.blowup_by_share, dict(share=SHARE, ratio=SHARE + 1)),
    "cue_patterns": (bb.cue_patterns, dict(n_classes=10, side=28, size=2)),
    "cue_mask": (bb.cue_mask, dict(side=28, rows=4)),
    "spread_cue_mask": (bb.spread_cue_mask, dict(side=28, step=2)),
    "spread_cue_patterns": (
        bb.spread_cue_patterns,
        dict(n_classes=10, side=28, step=2, intensity=0.3, seed=0),
    ),
    "add_cue": (bb.add_cue, dict(X=torch.zeros(3, 784), cue_class=torch.tensor([0, 9, -1]))),
    "outside_share": (
        bb.outside_share,
        dict(input_relevance=torch.randn(2, 784), outside=bb.cue_mask(), floor=1e-6),
    ),
    "geometric_ci": (bb.geometric_ci, dict(ratios=[1.0, 2.0, 3.0])),
    "relevance_size": (
        bb.relevance_size,
        dict(input_relevance=X, output=torch.ones(2, 4, dtype=F64)),
    ),
    "layers_off": (bb.layers_off, dict(chain=CHAIN, x=X)),
    "deletion_auc": (
        bb.deletion_auc,
        dict(chain=CHAIN, x=X, target=1, scores=X.clone(), ks=[0, 2]),
    ),
    "bias_deletion_auc": (
        bb.bias_deletion_auc,
        dict(chain=CHAIN, x=X, target=1, bias_scores=torch.rand(2, 4, 12, dtype=F64), ks=[0, 3]),
    ),
    "shapley_max2": (
        bb.shapley_max2,
        dict(x=torch.tensor([[1.0, 2.0]]), baseline=torch.zeros(1, 2)),
    ),
    "max_constructions": (bb.max_constructions, dict(n_pairs=3, seed=0)),
    "duplicate_argument": (bb.duplicate_argument, dict(n_points=5, seed=0)),
    "paired_alignment": (
        bb.paired_alignment,
        dict(
            acc_matching=np.ones((3, 2)),
            reliance=np.ones((3, 2)),
            share=np.ones((3, 2)),
            base=0,
            cond=1,
        ),
    ),
    "bias_gradient_times_bias": (bb.bias_gradient_times_bias, dict(chain=CHAIN, x=X, target=1)),
    "cue_evaluation": (
        bb.cue_evaluation,
        dict(chain=BIG, X=DIGITS, y=LABELS, X_cued=DIGITS, y_cued=LABELS, shape=(1, 2)),
    ),
    "train_with_relevance_penalty": (
        bb.train_with_relevance_penalty,
        dict(
            params=None,
            activations=["relu"],
            X=DIGITS,
            y=LABELS,
            cue_on=torch.tensor([True, False]),
            penalty=torch.tensor([0.0, 1.0]),
            outside=bb.cue_mask(),
            epochs=1,
            batch_size=4,
        ),
    ),
    "train_maxout": (
        bb.train_maxout,
        dict(n_members=2, X=DIGITS[:, :6], y=LABELS % 3, hidden=2, epochs=1, batch_size=4),
    ),
    "maxout_forward": (bb.maxout_forward, dict(params=MAXOUT, x=DIGITS[:, :6])),
    "maxout_relevance": (bb.maxout_relevance, dict(params=MAXOUT, x=DIGITS[:, :6], target=1)),
    "maxout_logit": (bb.maxout_logit, dict(params=MAXOUT, x=DIGITS[:, :6], target=1)),
    "maxout_deletion_auc": (
        bb.maxout_deletion_auc,
        dict(params=MAXOUT, x=DIGITS[:, :6], target=1, scores=torch.rand(2, 8, 6), ks=[0, 2]),
    ),
    "train_cue_conditions": (
        bb.train_cue_conditions,
        dict(
            conditions={"a": (True, 1.0, False)},
            seeds=[0],
            X=DIGITS,
            y=LABELS,
            widths=(784, 3, 10),
            epochs=1,
            batch_size=4,
        ),
    ),
}

TENSOR_ARGS = {
    "max_gradient": ["a", "relevance_out"],
    "radial_shares": ["a"],
    "max_radial": ["a", "relevance_out"],
    "reference_relevance": ["x"],
    "baseline_relevance_rform": ["x", "baseline"],
    "start_sensitivity": ["x"],
    "peak_near_zero": ["pre", "values"],
    "start_blowup": ["logit", "ratio"],
    "smallest_weighted_share": ["x"],
    "blowup_by_share": ["ratio"],
    "add_cue": ["X"],
    "outside_share": ["input_relevance"],
    "relevance_size": ["input_relevance", "output"],
    "layers_off": ["x"],
    "deletion_auc": ["x", "scores"],
    "bias_deletion_auc": ["x", "bias_scores"],
    "shapley_max2": ["x", "baseline"],
    "bias_gradient_times_bias": ["x"],
    "cue_evaluation": ["X", "X_cued"],
    "train_with_relevance_penalty": ["X", "penalty"],
    "train_maxout": ["X"],
    "maxout_forward": ["x"],
    "maxout_relevance": ["x"],
    "maxout_logit": ["x"],
    "maxout_deletion_auc": ["x", "scores"],
    "train_cue_conditions": ["X"],
}
SIZE_ARGS = {
    "rewrite_checks": ["n_points"],
    "scaling_equivalence": ["n_points"],
    "max_constant_agreement": ["n_points"],
    "max_constant_cases": ["n_points"],
    "cue_patterns": ["side", "size"],
    "cue_mask": ["side", "rows"],
    "spread_cue_mask": ["side", "step"],
    "spread_cue_patterns": ["side", "step"],
    "max_constructions": ["n_pairs"],
    "duplicate_argument": ["n_points"],
    "train_with_relevance_penalty": ["epochs", "batch_size"],
    "train_maxout": ["n_members", "hidden", "epochs", "batch_size"],
}
POSITIVE_ARGS = {
    "peak_near_zero": ["width"],
    "start_blowup": ["near", "far"],
    "outside_share": ["floor"],
    "max_constructions": ["softness", "tol"],
    "train_with_relevance_penalty": ["lr"],
    "reference_relevance": ["eps"],
    "start_sensitivity": ["eps"],
    "train_maxout": ["lr"],
    "spread_cue_patterns": ["intensity"],
}
SEED_ARGS = [
    "train_maxout",
    "spread_cue_patterns",
    "rewrite_checks",
    "scaling_equivalence",
    "max_constant_agreement",
    "max_constant_cases",
    "max_constructions",
    "duplicate_argument",
]
CHAIN_ARGS = [
    "reference_relevance",
    "baseline_relevance_rform",
    "start_sensitivity",
    "bias_sweep",
    "smallest_weighted_share",
    "layers_off",
    "deletion_auc",
    "bias_deletion_auc",
    "bias_gradient_times_bias",
    "cue_evaluation",
]
INDEX_ARGS = {  # name: [(argument, first invalid value above the range)]
    "reference_relevance": [("target", 3)],
    "bias_sweep": [("layer", 2), ("unit", 5)],
    "smallest_weighted_share": [("target", 3)],
    "deletion_auc": [("target", 3)],
    "bias_gradient_times_bias": [("target", 3)],
    "paired_alignment": [("base", 3), ("cond", 3)],
    "cue_patterns": [("n_classes", 11)],
    "spread_cue_patterns": [("n_classes", 11)],
    "maxout_relevance": [("target", 3)],
}
SEQ_ARGS = {
    "scaling_equivalence": ["alphas"],
    "max_two_ways": ["x", "baseline", "softness"],
    "bias_sweep": ["shifts"],
    "geometric_ci": ["ratios"],
    "deletion_auc": ["ks"],
    "bias_deletion_auc": ["ks"],
    "maxout_deletion_auc": ["ks"],
    "train_cue_conditions": ["seeds"],
}
FAST = settings(max_examples=25, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _call_bad(fn_name, arg, bad):
    fn, kwargs = VALID[fn_name]
    kwargs = dict(kwargs)
    if fn_name == "train_with_relevance_penalty":
        kwargs["params"] = _params()
    kwargs[arg] = bad
    with pytest.raises((ValueError, TypeError)) as err:
        fn(**kwargs)
    assert arg in str(err.value), f"{fn_name}({arg}=...) error does not name {arg!r}: {err.value}"


@pytest.mark.parametrize("fn_name", sorted(VALID))
def test_valid_calls_work(fn_name):
    fn, kwargs = VALID[fn_name]
    kwargs = dict(kwargs)
    if fn_name == "train_with_relevance_penalty":
        kwargs["params"] = _params()
    fn(**kwargs)


def _bad_tensor(valid: torch.Tensor, kind: str, index: int):
    if kind in ("nan", "inf"):
        t = valid.clone().to(torch.float64 if valid.dtype == F64 else torch.float32)
        t.view(-1)[index % t.numel()] = math.nan if kind == "nan" else math.inf
        return t
    return {
        "empty": torch.empty(0, dtype=valid.dtype),
        "list": valid.tolist(),
        "str": "x",
        "none": None,
        "int": valid.to(torch.long),
    }[kind]


@pytest.mark.parametrize("fn_name,arg", [(f, a) for f, args in TENSOR_ARGS.items() for a in args])
@FAST
@given(
    kind=st.sampled_from(["nan", "inf", "empty", "list", "str", "none", "int"]),
    index=st.integers(0, 10_000),
)
def test_bad_tensors(fn_name, arg, kind, index):
    _call_bad(fn_name, arg, _bad_tensor(VALID[fn_name][1][arg], kind, index))


@pytest.mark.parametrize("fn_name,arg", [(f, a) for f, args in SIZE_ARGS.items() for a in args])
@FAST
@given(
    bad=st.one_of(
        st.integers(max_value=0),
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.none(),
        st.booleans(),
    )
)
def test_bad_sizes(fn_name, arg, bad):
    _call_bad(fn_name, arg, bad)


@pytest.mark.parametrize("fn_name,arg", [(f, a) for f, args in POSITIVE_ARGS.items() for a in args])
@FAST
@given(
    bad=st.one_of(
        st.floats(max_value=-1e-9),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.text(max_size=3),
        st.none(),
    )
)
def test_bad_positive_numbers(fn_name, arg, bad):
    _call_bad(fn_name, arg, bad)


@pytest.mark.parametrize("fn_name", SEED_ARGS)
@FAST
@given(
    bad=st.one_of(
        st.integers(max_value=-1), st.integers(min_value=2**64), st.floats(), st.text(max_size=3)
    )
)
def test_bad_seeds(fn_name, bad):
    _call_bad(fn_name, "seed", bad)


@pytest.mark.parametrize("fn_name", CHAIN_ARGS)
@FAST
@given(bad=st.sampled_from([None, "chain", 3, torch.zeros(2), [CHAIN]]))
def test_bad_chains(fn_name, bad):
    _call_bad(fn_name, "chain", bad)


@pytest.mark.parametrize(
    "fn_name,arg,first_bad", [(f, a, v) for f, items in INDEX_ARGS.items() for a, v in items]
)
@FAST
@given(offset=st.integers(0, 1000), negative=st.booleans(), as_float=st.booleans())
def test_bad_indices(fn_name, arg, first_bad, offset, negative, as_float):
    bad = -1 - offset if negative else first_bad + offset
    _call_bad(fn_name, arg, float(bad) + 0.5 if as_float else bad)


@pytest.mark.parametrize("fn_name,arg", [(f, a) for f, args in SEQ_ARGS.items() for a in args])
@FAST
@given(bad=st.sampled_from([[], [math.nan, 1.0], ["a", "b"], None, "ab", [math.inf, 1.0]]))
def test_bad_sequences(fn_name, arg, bad):
    if not (fn_name == "max_two_ways" and arg == "baseline" and bad is None):  # None: the origin
        _call_bad(fn_name, arg, bad)


@FAST
@given(bad=st.sampled_from([None, "C", 3, {}]))
def test_declare_claims_needs_claims(bad):
    with pytest.raises(TypeError, match="C must be"):
        bb.declare_claims(bad)


@FAST
@given(
    bad=st.sampled_from(
        [
            None,
            {},
            {"a": (True,)},
            {"a": ("yes", 1.0, False)},
            {"a": (True, -1.0, False)},
            {"a": (True, math.nan, False)},
        ]
    )
)
def test_train_cue_conditions_bad_conditions(bad):
    _call_bad("train_cue_conditions", "conditions", bad)
