"""Tests for nnlearn.studies.blame_the_bias: the source's max rules and consistency checks,
the autograd cross-checks, the blow-up analyses and the alignment experiment."""

import numpy as np
import pytest
import torch

from nnlearn import attribution as att
from nnlearn.models import MLP
from nnlearn.studies import blame_the_bias as bb


@pytest.fixture
def biased():
    return att.random_chain([12, 9, 7, 4], n_members=3, seed=1, bias=True, bias_scale=0.5)


@pytest.fixture
def x():
    return torch.randn(3, 25, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_max_gradient_gives_all_to_winner():
    a = torch.tensor([[1.0, 3.0, -2.0]])
    assert torch.equal(bb.max_gradient(a, torch.tensor([2.0])), torch.tensor([[0.0, 2.0, 0.0]]))


def test_radial_shares_cases():
    s = bb.radial_shares(torch.tensor([[2.0, -1.0, 6.0], [-1.0, -3.0, -3.0], [0.0, -1.0, 0.0]]))
    assert torch.allclose(s[0], torch.tensor([0.25, 0.0, 0.75]))
    # all negative: weights 1/a -> -1, -1/3, -1/3 -> shares 3/5, 1/5, 1/5
    assert torch.allclose(s[1], torch.tensor([0.6, 0.2, 0.2]))
    assert torch.allclose(s[2], torch.tensor([0.5, 0.0, 0.5]))
    assert torch.allclose(s.sum(-1), torch.ones(3))


@pytest.mark.parametrize("method", ["gradient", "gradient_x_input", "deconvolution"])
def test_methods_match_autograd(biased, x, method):
    assert (
        att.max_relative_gap(
            att.relevance(biased, x, 1, method).input, bb.reference_relevance(biased, x, 1, method)
        )
        < 1e-10
    )


@pytest.mark.parametrize("eps", [0.0, 0.01, 1.0])
def test_lrp_matches_montavon_gradient_trick(biased, x, eps):
    assert (
        att.max_relative_gap(
            att.relevance(biased, x, 2, "lrp", eps=eps).input,
            bb.reference_relevance(biased, x, 2, "lrp", eps=eps),
        )
        < 1e-10
    )


def test_rewrite_checks_small():
    assert max(bb.rewrite_checks(n_points=200).values()) < 1e-5


def test_baseline_completeness_and_symmetry(biased, x):
    base = torch.zeros(12, dtype=torch.float64) + 0.3
    r = att.baseline_relevance(biased, x, base, 1)
    diff = att.target_output(biased, x, 1) - att.target_output(biased, base.expand_as(x), 1)
    assert att.max_relative_gap(r.sum(-1), diff) < 1e-10
    assert (
        att.max_relative_gap(-att.baseline_relevance(biased, base.expand_as(x).clone(), x, 1), r)
        < 1e-10
    )
    assert att.max_relative_gap(bb.baseline_relevance_rform(biased, x, base, 1), r) < 1e-8


def test_scaling_equivalence_pairing():
    res = bb.scaling_equivalence()
    assert res[("normalised", "ignore")] and not res[("normalised", "gradient")]
    assert (
        res[("gradient", "gradient")]
        and res[("gradient", "slope")]
        and not res[("gradient", "ignore")]
    )
    assert res["exponent"] == {"gradient": 1, "normalised": 0}


def test_max_two_ways_sum_and_difference():
    res = bb.max_two_ways([3.0, 1.0], [0.0, 2.0])
    assert np.allclose(res["soft"].sum(-1)[-1], 1.0) and np.isclose(res["relu_form"].sum(), 1.0)
    assert np.allclose(res["relu_form"], [1.5, -0.5]) and np.allclose(
        res["soft"][-1], [1.0, 0.0], atol=1e-6
    )


def test_max_constant_agreement():
    res = bb.max_constant_agreement(n_points=300)
    assert res["gradient max = gradient nonlinearity (a < 0)"] == 1.0
    assert res["radial max = slope nonlinearity (a > 0)"] == 1.0


def test_cue_helpers():
    X = torch.zeros(3, 784)
    cued = bb.add_cue(X, torch.tensor([0, 7, -1]))
    assert cued[0].reshape(28, 28)[0:2, 2:4].eq(1).all() and cued[2].eq(0).all()
    assert cued[1].reshape(28, 28)[2:4, 12:14].eq(1).all()
    assert bb.cue_mask()[cued[:2].sum(0) > 0].all()
    r = torch.zeros(1, 784)
    r[0, 0], r[0, 500] = -1.0, 3.0
    assert torch.isclose(
        bb.outside_share(r, bb.cue_mask()), torch.tensor([0.25], dtype=torch.float32), atol=1e-5
    )
    assert torch.isclose(
        bb.outside_share(r, bb.cue_mask(), signed=True), torch.tensor([-0.25]), atol=1e-5
    )


def test_spread_cue_lies_on_a_grid_over_the_digit_and_hides_under_ink():
    grid = bb.spread_cue_mask()
    assert grid.shape == (784,) and int(grid.sum()) == 196
    g2 = grid.reshape(28, 28)
    assert g2[::2, ::2].all() and not g2[1::2].any() and not g2[:, 1::2].any()
    assert g2[4:24, 4:24].sum() == 100  # a quarter of the digit's 20 x 20 box
    pats = bb.spread_cue_patterns(seed=3)
    assert pats.shape == (10, 784)
    assert pats.unique().numel() == 2 and torch.isclose(pats.max(), torch.tensor(0.3))
    assert not pats[:, ~grid].any()  # only on the grid
    lit = (pats > 0).sum(1)
    assert ((lit > 60) & (lit < 136)).all()  # about half of the 196 grid pixels each
    assert all(not torch.equal(pats[i], pats[j]) for i in range(10) for j in range(i))
    assert torch.equal(pats, bb.spread_cue_patterns(seed=3))
    assert not torch.equal(pats, bb.spread_cue_patterns(seed=4))
    X = torch.zeros(2, 784)
    on = torch.nonzero(pats[5] > 0)[0, 0]
    X[0, on] = 1.0  # ink on a cue pixel
    cued = bb.add_cue(X, torch.tensor([5, 5]), pats)
    assert cued[0, on] == 1.0 and cued[1, on] == pytest.approx(0.3)
    assert torch.equal(cued[1], pats[5])
    with pytest.raises(ValueError, match="step"):
        bb.spread_cue_mask(side=28, step=28)
    with pytest.raises(ValueError, match="intensity"):
        bb.spread_cue_patterns(intensity=1.5)


def test_spread_cue_penalty_moves_relevance_off_the_grid():
    from nnlearn.ensemble import Ensemble

    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(200, 784, generator=g) * 0.1, torch.randint(0, 10, (200,), generator=g)
    pats, grid = bb.spread_cue_patterns(seed=3), bb.spread_cue_mask()
    ens = Ensemble([MLP([784, 16, 10], seed=s) for s in (0, 0)])
    run = bb.train_with_relevance_penalty(
        ens.params,
        ["relu"],
        X,
        y,
        cue_on=torch.tensor([True, True]),
        penalty=torch.tensor([0.0, 50.0]),
        outside=grid,
        patterns=pats,
        epochs=3,
        batch_size=50,
    )
    assert run.share[-1, 1] < 0.5 * run.share[-1, 0]
    # the unpenalised net learnt the (random-label) training set through the spread cue
    chain = att.Chain.from_params({k: v.detach() for k, v in ens.params.items()}, ["relu"])
    ev = bb.cue_evaluation(
        chain, X, y, bb.add_cue(X, y, pats), y, (1, 2), patterns=pats, outside=grid
    )
    assert ev["reliance"][0, 0] > 0.3
    default = bb.cue_evaluation(chain, X, y, bb.add_cue(X, y, pats), y, (1, 2))
    assert not np.allclose(default["share"], ev["share"])
    with pytest.raises(ValueError, match="patterns"):
        bb.train_with_relevance_penalty(
            ens.params,
            ["relu"],
            X,
            y,
            cue_on=torch.tensor([True, True]),
            penalty=torch.tensor([0.0, 1.0]),
            outside=grid,
            patterns=pats[:5],
            epochs=1,
            batch_size=50,
        )
    with pytest.raises(ValueError, match="patterns"):
        bb.cue_evaluation(chain, X, y, X, y, (1, 2), patterns=pats[:, :100])


def test_train_with_relevance_penalty_reduces_share():
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(200, 784, generator=g) * 0.1, torch.randint(0, 10, (200,), generator=g)
    X[:, bb.cue_mask()] = 0
    models = [MLP([784, 16, 10], seed=s) for s in (0, 0)]
    from nnlearn.ensemble import Ensemble

    ens = Ensemble(models)
    run = bb.train_with_relevance_penalty(
        ens.params,
        ["relu"],
        X,
        y,
        cue_on=torch.tensor([True, True]),
        penalty=torch.tensor([0.0, 50.0]),
        outside=bb.cue_mask(),
        epochs=3,
        batch_size=50,
    )
    assert run.share.shape == (3, 2) and run.share[-1, 1] < run.share[-1, 0]


def test_bad_inputs_study(biased, x):
    with pytest.raises(TypeError, match="a must be a torch.Tensor"):
        bb.max_gradient([1.0, 2.0], torch.tensor(1.0))
    with pytest.raises(ValueError, match="relevance_out must have shape"):
        bb.max_radial(torch.ones(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="cue_class must have shape"):
        bb.add_cue(torch.zeros(2, 784), torch.tensor([1]))
    with pytest.raises(ValueError, match="outside must be a bool Tensor"):
        bb.outside_share(torch.ones(2, 784), torch.ones(784))
    with pytest.raises(ValueError, match="penalty must be a Tensor of shape"):
        bb.train_with_relevance_penalty(
            {"layers.0.weight": torch.ones(2, 10, 784), "layers.1.weight": torch.ones(2, 10, 10)},
            ["relu"],
            torch.ones(4, 784),
            torch.zeros(4, dtype=torch.long),
            cue_on=torch.tensor([True, False]),
            penalty=torch.ones(3),
            outside=bb.cue_mask(),
            epochs=1,
            batch_size=2,
        )
    with pytest.raises(ValueError, match="x and baseline must each hold two numbers"):
        bb.max_two_ways([1.0, 2.0, 3.0])


def test_bias_sweep_moves_one_unit(biased, x):
    sweep = bb.bias_sweep(biased, 0, 2, [-1.0, 0.0, 0.5])
    pre = sweep.trace(x).pre[0]
    base = biased.trace(x).pre[0]
    assert pre.shape == (3, *base.shape)
    assert torch.allclose(pre[2, ..., 2] - base[..., 2], torch.full_like(base[..., 2], 0.5))
    assert torch.allclose(pre[0, ..., 1], base[..., 1])
    with pytest.raises(ValueError, match="unit must be in"):
        bb.bias_sweep(biased, 0, 99, [0.0])
    with pytest.raises(ValueError, match="layer must be a hidden layer"):
        bb.bias_sweep(biased, 2, 0, [0.0])


def test_peak_near_zero_and_start_blowup():
    pre = torch.tensor([[[0.001, 1.0]], [[0.5, -0.01]]])  # (S=2, K=1, N=2)
    vals = torch.tensor([[[5.0, 1.0]], [[2.0, -7.0]]])
    assert bb.peak_near_zero(pre, vals, 0.02).tolist() == [7.0]
    assert torch.isnan(bb.peak_near_zero(pre, vals, 1e-4)).all()
    with pytest.raises(ValueError, match="width must be > 0"):
        bb.peak_near_zero(pre, vals, 0.0)
    z = torch.tensor([0.01, 0.02, 0.1, 0.2, 2.0, 3.0], dtype=torch.float64).view(1, 1, -1)
    blow, slope = bb.start_blowup(z, 1.0 / z)
    assert blow[0] > 10 and slope[0] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="one shape"):
        bb.start_blowup(z, z[..., :2])


def test_smallest_weighted_share_and_blowup_by_share():
    W1, c1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1.0, -5.0])
    W2, c2 = torch.tensor([[1.0, 1.0]]), torch.tensor([0.0])
    chain = att.Chain([W1, W2], [c1, c2], ["relu"])
    xv = torch.tensor([[0.1, 1.0], [1.0, 1.0]])
    # unit 0: s = 0.1, z = 1.1 -> 0.0909; unit 1 inactive; output has no bias -> 1
    share = bb.smallest_weighted_share(chain, xv, 0)
    assert torch.allclose(share, torch.tensor([0.1 / 1.1, 0.5]))
    with pytest.raises(ValueError, match="no biases"):
        bb.smallest_weighted_share(
            att.random_chain([3, 2, 2]), torch.ones(1, 3, dtype=torch.float64), 0
        )
    s = torch.tensor([[0.01, 0.02, 0.025, 0.5, 0.9, 0.7]])
    r = torch.tensor([[10.0, 30.0, 20.0, 1.0, 2.0, 4.0]])
    assert bb.blowup_by_share(s, r) == pytest.approx([20.0 / 2.0])
    with pytest.raises(ValueError, match="0 < near < far"):
        bb.blowup_by_share(s, r, near=0.5, far=0.1)
    with pytest.raises(ValueError, match="no share below"):
        bb.blowup_by_share(s, r, near=0.001)
    with pytest.raises(ValueError, match="share must have at least 2 dimension"):
        bb.blowup_by_share(s[0], r[0])
    with pytest.raises(ValueError, match=r"shape \(K, N\)"):
        bb.blowup_by_share(s, r[:, :3])


# ---------------------------------------------------------------- helpers of the re-judged claims


def test_geometric_ci_and_relevance_size():
    v, lo, hi = bb.geometric_ci([1.0, 4.0])
    assert v == pytest.approx(2.0) and 0 < lo < v < hi
    r = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    assert torch.allclose(bb.relevance_size(r, torch.tensor([2.0, -1.0])), torch.tensor([2.0, 1.0]))


def test_shapley_max2_is_efficient_and_symmetric():
    g = torch.Generator().manual_seed(0)
    x, base = (
        torch.randn(50, 2, generator=g, dtype=torch.float64),
        torch.randn(50, 2, generator=g, dtype=torch.float64),
    )
    phi = bb.shapley_max2(x, base)
    assert torch.allclose(phi.sum(-1), x.max(-1).values - base.max(-1).values)
    swapped = bb.shapley_max2(x.flip(-1), base.flip(-1)).flip(-1)
    assert torch.allclose(swapped, phi)


def test_max_constructions_and_duplicate_argument():
    res = bb.max_constructions(n_pairs=40, seed=1)
    assert set(res) == {"differ", "soft_is_shapley", "relu_is_shapley"} and res["differ"].shape == (
        40,
    )
    dup = bb.duplicate_argument(n_points=50)
    assert not dup["radial_same_neg"].any() and dup["gradient_same"].all()
    cases = bb.max_constant_cases(n_points=300)
    agree = bb.max_constant_agreement(n_points=300)
    assert (
        cases["radial"][cases["a_positive"]].mean()
        == agree["radial max = slope nonlinearity (a > 0)"]
    )


def test_paired_alignment_tells_gamed_fixed_broken():
    acc = np.array(
        [[0.99, 0.99, 0.99], [0.99, 0.85, 0.10]]
    )  # rows: base, penalised; columns: seeds
    absent = np.array([[0.83, 0.83, 0.83], [0.5, 0.85, 0.10]])
    rel = np.array([[0.5, 0.5, 0.5], [0.45, 0.0, 0.0]])
    share = np.array([[0.3, 0.3, 0.3], [0.01, 0.01, 0.01]])
    o = bb.paired_alignment(acc, rel, share, 0, 1, reference=absent)
    assert o["gamed"].tolist() == [True, False, False]
    assert o["fixed"].tolist() == [False, True, False]
    assert o["broken"].tolist() == [False, False, True]
    assert bb.paired_alignment(acc, rel, share, 0, 1)["broken"].tolist() == [False, True, True]


def test_deletion_auc_rewards_informative_order(biased):
    # positive weights and inputs: the logit is positive and grows with every input
    net = att.Chain(
        [w.abs() for w in biased.weights], [b.abs() for b in biased.biases], biased.activations
    )
    xs = torch.rand(3, 30, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    gxi = att.input_gradient(net, xs, 1) * xs
    ks = [0, 2, 4, 6]
    best = bb.deletion_auc(net, xs, 1, gxi, ks)
    worst = bb.deletion_auc(net, xs, 1, -gxi, ks)
    assert best.shape == (3,) and (best < worst).all()
    assert np.allclose(bb.deletion_auc(net, xs, 1, gxi, [0]), 1.0)


def test_bias_gradient_and_bias_deletion(biased, x):
    _, each = att.bias_blamed_relevance(biased, x, 2, mode="each")
    assert torch.allclose(bb.bias_gradient_times_bias(biased, x, 2), each.sum(1))
    assert np.allclose(bb.bias_deletion_auc(biased, x, 2, each, [0]), 1.0)
    full = bb.bias_deletion_auc(biased, x, 2, each, [each.shape[-1]])
    no_bias = att.Chain(
        biased.weights, [torch.zeros_like(b) for b in biased.biases], biased.activations
    )
    expected = (
        att.target_output(no_bias, x, 2).mean(-1) / att.target_output(biased, x, 2).mean(-1)
    ).numpy()
    assert np.allclose(full, expected)


def test_layers_off_flags_a_dead_layer():
    W1, c1 = torch.eye(2, dtype=torch.float64), torch.tensor([-5.0, -5.0], dtype=torch.float64)
    chain = att.Chain([W1, torch.ones(1, 2, dtype=torch.float64)], [c1, None], ["relu"])
    assert bb.layers_off(
        chain, torch.tensor([[1.0, 1.0], [9.0, 0.0]], dtype=torch.float64)
    ).tolist() == [True, False]


def test_cue_evaluation_shapes():
    chain = att.random_chain([784, 5, 10], n_members=4, seed=0, bias=True)
    X = torch.rand(6, 784, dtype=torch.float64)
    y = torch.arange(6) % 10
    ev = bb.cue_evaluation(chain, X, y, bb.add_cue(X, y), y, (2, 2))
    assert all(v.shape == (2, 2) for v in ev.values())
    assert np.allclose(ev["reliance"], ev["acc_matching"] - ev["acc_swapped"])
    with pytest.raises(ValueError, match="shape"):
        bb.cue_evaluation(chain, X, y, X, y, (3, 2))


def test_maxout_network_and_its_max_rules():
    g = torch.Generator().manual_seed(3)
    X = torch.rand(40, 6, generator=g)
    y = torch.arange(40) % 3
    p = bb.train_maxout(2, X, y, hidden=4, epochs=2, batch_size=10, seed=0)
    z, h, out = bb.maxout_forward(p, X)
    assert z.shape == (2, 40, 4, 2) and torch.equal(h, z.max(-1).values) and out.shape == (2, 40, 3)
    # with the gradient max rule, LRP-0 through the maxout layer is gradient x input
    xg = X.expand(2, *X.shape).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(bb.maxout_logit(p, xg, 1).sum(), xg)
    assert torch.allclose(bb.maxout_relevance(p, X, 1, "gradient"), grad * xg.detach(), atol=1e-5)
    assert not torch.allclose(bb.maxout_relevance(p, X, 1, "radial"), grad * xg.detach(), atol=1e-5)
    assert np.allclose(bb.maxout_deletion_auc(p, X, 1, torch.rand(2, 40, 6, generator=g), [0]), 1.0)
    with pytest.raises(ValueError, match="max_rule must be one of"):
        bb.maxout_relevance(p, X, 1, "softmax")
    with pytest.raises(TypeError, match="params must be a mapping"):
        bb.maxout_forward({"W1": p["W1"]}, X)
