"""Tests for nnlearn.attribution: rules, methods, blame-the-bias, baseline variant, checks."""

import numpy as np
import pytest
import torch

from nnlearn import attribution as att
from nnlearn.models import MLP


@pytest.fixture
def biased():
    return att.random_chain([12, 9, 7, 4], n_members=3, seed=1, bias=True, bias_scale=0.5)


@pytest.fixture
def x():
    return torch.randn(3, 25, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_blip_jumps_across_zero():
    z = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.equal(att.blip(z, 0.5), torch.tensor([-2.5, 0.5, 3.5]))


def test_matmul_normalised_conserves_without_bias():
    g = torch.Generator().manual_seed(0)
    a, w, r = (
        torch.randn(5, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 4, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    assert torch.allclose(att.matmul_normalised(a, w, r).sum(-1), r.sum(-1))


def test_nonlin_rules_on_relu():
    a = torch.tensor([-1.0, 0.5, 2.0])
    b, r = torch.relu(a), torch.tensor([3.0, 3.0, -3.0])
    assert torch.equal(att.nonlin_ignore(a, b, r), r)
    assert torch.equal(att.nonlin_gradient(a, b, r, torch.relu), torch.tensor([0.0, 3.0, -3.0]))
    assert torch.equal(att.nonlin_slope(a, b, r, torch.relu), torch.tensor([0.0, 3.0, -3.0]))
    assert torch.equal(att.nonlin_repeat(a, b, r, torch.relu), torch.tensor([3.0, 3.0, 0.0]))


def test_slope_is_secant_from_origin_for_tanh():
    a = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)
    got = att.nonlin_slope(a, torch.tanh(a), torch.ones(3, dtype=torch.float64), torch.tanh)
    assert torch.allclose(
        got, torch.tensor([np.tanh(0.5) / 0.5, np.tanh(-2.0) / -2.0, 1.0], dtype=torch.float64)
    )


def test_gradient_matches_torch_func_jacrev():
    chain = att.random_chain([6, 5, 3], seed=4, bias=True)
    one = att.Chain([w[0] for w in chain.weights], [b[0] for b in chain.biases], chain.activations)
    xv = torch.randn(6, dtype=torch.float64)
    jac = torch.func.jacrev(lambda v: one(v.unsqueeze(0))[0])(xv)  # (3, 6)
    got = att.relevance(one, xv.unsqueeze(0), 2, "gradient").input[0]
    assert torch.allclose(got, jac[2])


def test_deconvolution_differs_from_gradient(biased, x):
    assert not torch.allclose(
        att.relevance(biased, x, 1, "deconvolution").input,
        att.relevance(biased, x, 1, "gradient").input,
    )


def test_lrp0_equals_gradient_x_input_and_conserves_without_bias(x):
    chain = att.random_chain([12, 9, 7, 4], n_members=3, seed=2, bias=False)
    res = att.relevance(chain, x, 3, "lrp")
    assert (
        att.max_relative_gap(res.input, att.relevance(chain, x, 3, "gradient_x_input").input)
        < 1e-10
    )
    assert att.max_relative_gap(res.input, att.relevance(chain, x, 3, "lrp_q").input) < 1e-10
    out = att.target_output(chain, x, 3)
    for s in att.layer_sums(res).values():
        assert att.max_relative_gap(s, out) < 1e-10


def test_lrp_with_bias_does_not_conserve(biased, x):
    res = att.relevance(biased, x, 0, "lrp")
    assert att.max_relative_gap(res.input.sum(-1), att.target_output(biased, x, 0)) > 1e-3


def test_chain_from_mlp_matches_model():
    model = MLP([8, 6, 3], seed=0)
    xv = torch.randn(10, 8)
    assert torch.allclose(att.Chain.from_mlp(model)(xv), model(xv))


@pytest.mark.parametrize("mode", ["single", "each"])
def test_blame_the_bias_same_function_and_exact_conservation(biased, x, mode):
    free = att.blame_the_bias(biased, mode)
    assert not free.chain.has_bias
    assert torch.allclose(free.chain(att.augment_with_ones(x, free.n_ones)), biased(x))
    pix, bias = att.bias_blamed_relevance(biased, x, 2, mode=mode)
    assert bias.shape[-1] == (1 if mode == "single" else 9 + 7 + 4)
    assert att.max_relative_gap(pix.sum(-1) + bias.sum(-1), att.target_output(biased, x, 2)) < 1e-10


def test_blame_the_bias_relevance_equals_param_gradient_times_bias(biased, x):
    # independent route: relevance of bias unit k is c_k * d(out)/d(c_k), by autograd
    biases = [b.detach().clone().requires_grad_(True) for b in biased.biases]
    chain = att.Chain(biased.weights, biases, biased.activations)
    att.target_output(chain, x, 1).sum().backward()
    _, bias_rel = att.bias_blamed_relevance(biased, x, 1, mode="each")
    expected = torch.cat([(b * b.grad) for b in biases], -1)  # (K, n_biases), summed over N
    assert torch.allclose(bias_rel.sum(1), expected)


def test_blame_the_bias_works_for_tanh():
    chain = att.random_chain([5, 4, 2], seed=3, bias=True, activation="tanh")
    xv = torch.randn(1, 7, 5, dtype=torch.float64)
    free = att.blame_the_bias(chain, "each")
    assert torch.allclose(free.chain(att.augment_with_ones(xv, free.n_ones)), chain(xv))


def test_baseline_matches_closed_form_one_hidden_layer():
    rng = np.random.default_rng(0)
    W1, c1, W2, c2 = (
        rng.normal(size=(5, 3)),
        rng.normal(size=5),
        rng.normal(size=(2, 5)),
        rng.normal(size=2),
    )
    xv, xb = rng.normal(size=3), rng.normal(size=3)
    z, zb = W1 @ xv + c1, W1 @ xb + c1
    slope = (np.maximum(z, 0) - np.maximum(zb, 0)) / (z - zb)
    expected = (xv - xb) * ((W2[1] * slope) @ W1)
    chain = att.Chain(
        [torch.tensor(W1), torch.tensor(W2)], [torch.tensor(c1), torch.tensor(c2)], ["relu"]
    )
    got = att.baseline_relevance(chain, torch.tensor(xv)[None], torch.tensor(xb), 1)[0].numpy()
    assert np.allclose(got, expected)


def test_bad_inputs(biased, x):
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        att.blip(torch.ones(2), -1.0)
    with pytest.raises(ValueError, match="weight's in-dimension"):
        att.matmul_gradient(torch.ones(2, 3), torch.ones(4, 5), torch.ones(2, 4))
    with pytest.raises(ValueError, match="one shape"):
        att.nonlin_ignore(torch.ones(2), torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="method must be one of"):
        att.relevance(biased, x, 0, "saliency")
    with pytest.raises(ValueError, match="target must be in"):
        att.relevance(biased, x, 9, "lrp")
    with pytest.raises(ValueError, match="x must have last dimension 12"):
        att.relevance(biased, torch.ones(3, 2, 5, dtype=torch.float64), 0, "lrp")
    with pytest.raises(ValueError, match="mode must be one of"):
        att.blame_the_bias(biased, "some")
    with pytest.raises(ValueError, match="apply blame_the_bias once"):
        att.blame_the_bias(att.blame_the_bias(biased).chain)
    with pytest.raises(ValueError, match="baseline must have last dimension"):
        att.baseline_relevance(biased, x, torch.zeros(3, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="activations: expected"):
        att.Chain([torch.ones(3, 2), torch.ones(1, 3)], [None, None], [])
    with pytest.raises(TypeError, match="model must be an nnlearn.models.MLP"):
        att.Chain.from_mlp(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="widths must be"):
        att.random_chain([3])


def test_input_gradient_per_member_with_shared_x(biased):
    xs = torch.randn(4, 12, dtype=torch.float64)
    g = att.input_gradient(biased, xs, 0)
    assert g.shape == (3, 4, 12)
    one = att.Chain(
        [w[1] for w in biased.weights], [b[1] for b in biased.biases], biased.activations
    )
    assert torch.allclose(g[1], att.input_gradient(one, xs, 0))


def test_centre_activations_keeps_function_and_zeroes_f0():
    chain = att.random_chain([6, 5, 4, 3], n_members=2, seed=5, bias=True, activation="softplus")
    xv = torch.randn(2, 9, 6, dtype=torch.float64)
    centred = att.centre_activations(chain)
    assert torch.allclose(centred(xv), chain(xv))
    assert centred.offsets == pytest.approx([np.log(2.0)] * 2)
    assert float(centred.activate(0, torch.zeros(5, dtype=torch.float64)).abs().max()) < 1e-12
    relu = att.random_chain([6, 5, 3], seed=0, bias=True)
    assert att.centre_activations(relu) is relu


def test_blame_the_bias_softplus_conserves(x):
    chain = att.random_chain([12, 9, 7, 4], n_members=3, seed=6, bias=True, activation="softplus")
    pix, bias = att.bias_blamed_relevance(chain, x, 1)
    assert att.max_relative_gap(pix.sum(-1) + bias[..., 0], att.target_output(chain, x, 1)) < 1e-10
    plain = att.relevance(chain, x, 1, "lrp").input
    assert att.max_relative_gap(plain.sum(-1), att.target_output(chain, x, 1)) > 1e-3


def test_lrp_without_bias_in_denominator_conserves_and_matches_by_hand(biased, x):
    res = att.relevance(biased, x, 2, "lrp", bias_in_denominator=False)
    assert att.max_relative_gap(res.input.sum(-1), att.target_output(biased, x, 2)) < 1e-10
    # one hidden layer, by hand: R(x_i) = x_i sum_j W1_ji R(z_j) / s_j, R(z_j) = relu(z_j) W2_tj z_t
    # / s_t
    rng = np.random.default_rng(1)
    W1, c1, W2, c2 = (
        rng.normal(size=(4, 3)),
        rng.normal(size=4),
        rng.normal(size=(2, 4)),
        rng.normal(size=2),
    )
    xv = rng.normal(size=3)
    z1 = W1 @ xv + c1
    a1 = np.maximum(z1, 0)
    zt, st = W2[1] @ a1 + c2[1], W2[1] @ a1
    r_hidden = a1 * W2[1] * zt / st
    expected = xv * (W1.T @ (r_hidden / (W1 @ xv)))
    chain = att.Chain(
        [torch.tensor(W1), torch.tensor(W2)], [torch.tensor(c1), torch.tensor(c2)], ["relu"]
    )
    got = (
        att.relevance(chain, torch.tensor(xv)[None], 1, "lrp", bias_in_denominator=False)
        .input[0]
        .numpy()
    )
    assert np.allclose(got, expected)
    # without biases the two denominators are the same thing
    free = att.random_chain([12, 9, 4], n_members=3, seed=2)
    assert torch.equal(
        att.relevance(free, x, 1, "lrp").input,
        att.relevance(free, x, 1, "lrp", bias_in_denominator=False).input,
    )
    with pytest.raises(TypeError, match="bias_in_denominator must be a bool"):
        att.relevance(biased, x, 1, "lrp", bias_in_denominator=0)


def test_bias_free_denominator_drops_relevance_when_a_whole_layer_is_off():
    # hidden layer all off for the first input (both ReLUs see negative pre-activations):
    # the output's s = a @ W^T is 0, so its relevance has nowhere to go and is reported dropped
    W1, c1 = (
        torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
        torch.tensor([-5.0, -5.0], dtype=torch.float64),
    )
    W2, c2 = (
        torch.tensor([[1.0, 2.0]], dtype=torch.float64),
        torch.tensor([0.7], dtype=torch.float64),
    )
    chain = att.Chain([W1, W2], [c1, c2], ["relu"])
    xv = torch.tensor([[1.0, 1.0], [6.0, 7.0]], dtype=torch.float64)
    res = att.relevance(chain, xv, 0, "lrp", bias_in_denominator=False)
    out = att.target_output(chain, xv, 0)
    assert res.input[0].abs().sum() == 0 and res.dropped[0] == pytest.approx(0.7)
    assert res.dropped[1] == 0
    assert torch.allclose(res.input.sum(-1) + res.dropped, out)
    # the gradient rule divides by nothing and drops nothing
    assert torch.equal(
        att.relevance(chain, xv, 0, "gradient").dropped, torch.zeros(2, dtype=torch.float64)
    )


def test_methods_have_no_max_rule_field():
    assert not hasattr(att.METHODS["lrp"], "max_rule")
    assert att.METHODS["lrp"].matmul_rule == "normalised"
