"""Cross-checks of nnlearn.attribution against captum (an independent, well-kept implementation).

Each test builds small random MLPs as ``nn.Sequential`` of ``nn.Linear`` / ``nn.ReLU`` (with and
without biases), converts them to an :class:`nnlearn.attribution.Chain` sharing the same
weights, and compares our backward rules with the captum method that computes the same thing.

Conventions, read from captum 0.9.0's source (``captum/attr/_core`` and ``_utils/lrp_rules.py``):

* ``Saliency(abs=False)`` is the plain input gradient: our "gradient" method.
* ``InputXGradient`` is gradient times input: our "gradient_x_input".
* ``Deconvolution`` replaces each ReLU's backward pass by ``relu(grad_output)``: our
  "deconvolution" (the "repeat" rule at ReLUs, gradient elsewhere).
* ``LRP`` with ``EpsilonRule(epsilon)`` on every ``nn.Linear`` divides the incoming relevance
  by ``z + epsilon * sign(z)`` with sign(0) = +1, where ``z`` is the layer's output *including
  its bias*, and passes relevance through ``nn.ReLU`` unchanged ("ignore"). It starts the walk
  from 1 and multiplies the result by the target output at the end; because every rule is
  linear in the relevance, that equals our start ``R(out) = out`` (method "lrp"). Its
  default epsilon is 1e-9, not 0, so the tests set it explicitly. Its convergence delta is
  ``output - sum of input relevance``: the relevance that the biases absorb, which our
  blame-the-bias transform hands to the biases explicitly.
* ``DeepLift`` (rescale rule) multiplies the gradient at each ReLU by the secant slope
  ``(f(a) - f(a_ref)) / (a - a_ref)`` (the plain gradient where ``|a - a_ref| < 1e-10``) and
  ends with ``(x - baseline) * multiplier``: our :func:`nnlearn.attribution.baseline_relevance`
  (which switches to the gradient below ``1e-6``; the inputs here never come that close).
* ``IntegratedGradients`` is a different method (a path integral, not a backward rule); it is
  used only as a sanity reference: its completeness error shrinks with the number of steps,
  while our baseline variant is complete to float precision, and on a network with no hidden
  layer the two coincide.
"""

import pytest
import torch
from torch import nn

captum_attr = pytest.importorskip("captum.attr")

from nnlearn import attribution as att

# captum announces its hooks and its automatic requires_grad with UserWarnings; they are expected
# here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum.*")


def make_mlp(widths, *, bias: bool, seed: int) -> nn.Sequential:
    """Random ``nn.Sequential`` of Linear/ReLU in float64, biases drawn large enough to matter."""
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b, bias=bias).double()
        if bias:
            nn.init.normal_(lin.bias, std=0.5)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def chain_of(model: nn.Sequential) -> att.Chain:
    """The Chain with the same (detached) weights and biases as ``model``."""
    lins = [m for m in model if isinstance(m, nn.Linear)]
    return att.Chain(
        [l.weight.detach() for l in lins],
        [None if l.bias is None else l.bias.detach() for l in lins],
        ["relu"] * (len(lins) - 1),
    )


NETS = [
    ([7, 6, 3], True, 0),
    ([7, 6, 3], False, 1),
    ([10, 8, 6, 4], True, 2),
    ([10, 8, 6, 4], False, 3),
    ([5, 12, 9, 7, 2], True, 4),
]
NET_IDS = [f"{'-'.join(map(str, w))}{'-bias' if b else '-nobias'}" for w, b, _ in NETS]


@pytest.fixture(params=NETS, ids=NET_IDS)
def net(request):
    widths, bias, seed = request.param
    model = make_mlp(widths, bias=bias, seed=seed)
    x = torch.randn(
        16, widths[0], generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64
    )
    target = torch.arange(16) % widths[-1]
    return model, chain_of(model), x, target


def gap(ours, theirs) -> float:
    return att.max_relative_gap(ours.detach(), theirs.detach())


def test_saliency_equals_gradient(net):
    model, chain, x, t = net
    theirs = captum_attr.Saliency(model).attribute(x.clone(), target=t, abs=False)
    assert gap(att.relevance(chain, x, t, "gradient").input, theirs) < 1e-12


def test_input_x_gradient_equals_gradient_x_input(net):
    model, chain, x, t = net
    theirs = captum_attr.InputXGradient(model).attribute(x.clone(), target=t)
    assert gap(att.relevance(chain, x, t, "gradient_x_input").input, theirs) < 1e-12


def test_deconvolution_equals_deconvolution(net):
    model, chain, x, t = net
    theirs = captum_attr.Deconvolution(model).attribute(x.clone(), target=t)
    ours = att.relevance(chain, x, t, "deconvolution").input
    assert gap(ours, theirs) < 1e-12
    # and it is not the gradient (the comparison above is not vacuous)
    assert gap(att.relevance(chain, x, t, "gradient").input, theirs) > 1e-3


@pytest.mark.parametrize("eps", [1e-9, 0.01, 0.5])
def test_lrp_epsilon_equals_lrp(net, eps):
    model, chain, x, t = net
    for m in model:
        if isinstance(m, nn.Linear):
            m.rule = captum_attr._utils.lrp_rules.EpsilonRule(epsilon=eps)
    theirs = captum_attr.LRP(model).attribute(x.clone(), target=t)
    assert gap(att.relevance(chain, x, t, "lrp", eps=eps).input, theirs) < 1e-10


def test_lrp_delta_is_the_bias_relevance(net):
    """captum's LRP convergence delta (output - summed relevance) is what blame-the-bias gives the
    biases.
    """
    model, chain, x, t = net
    for m in model:
        if isinstance(m, nn.Linear):
            m.rule = captum_attr._utils.lrp_rules.EpsilonRule(epsilon=1e-12)
    _, delta = captum_attr.LRP(model).attribute(x.clone(), target=t, return_convergence_delta=True)
    delta = delta.detach()
    pix, bias = att.bias_blamed_relevance(chain, x, t, mode="single")
    out = att.target_output(chain, x, t)
    assert gap(pix.sum(-1) + bias[..., 0], out) < 1e-10  # ours: exact conservation
    assert torch.allclose(bias[..., 0], delta, atol=1e-8 * float(out.abs().max()))
    if not chain.has_bias:
        assert float(delta.abs().max()) < 1e-8


@pytest.mark.parametrize("baseline_kind", ["zeros", "random"])
def test_deeplift_rescale_equals_baseline_variant(net, baseline_kind):
    model, chain, x, t = net
    base = (
        torch.zeros_like(x)
        if baseline_kind == "zeros"
        else torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    )
    theirs, delta = captum_attr.DeepLift(model).attribute(
        x.clone(), baselines=base, target=t, return_convergence_delta=True
    )
    delta = delta.detach()
    ours = att.baseline_relevance(chain, x, base, t)
    assert gap(ours, theirs) < 1e-9
    # both are complete: the relevances add up to f(x) - f(baseline)
    diff = att.target_output(chain, x, t) - att.target_output(chain, base, t)
    assert gap(ours.sum(-1), diff) < 1e-10 and float(delta.abs().max()) < 1e-8


def test_deeplift_differs_from_gradient_x_input_when_baseline_matters():
    """Against a vacuous match: with biases and a zero baseline, DeepLIFT is not grad x input."""
    model = make_mlp([7, 6, 3], bias=True, seed=0)
    chain = chain_of(model)
    x = torch.randn(16, 7, generator=torch.Generator().manual_seed(100), dtype=torch.float64)
    assert (
        gap(
            att.baseline_relevance(chain, x, torch.zeros(7, dtype=torch.float64), 1),
            att.relevance(chain, x, 1, "gradient_x_input").input,
        )
        > 1e-3
    )


def test_integrated_gradients_as_sanity_reference(net):
    model, chain, x, t = net
    base = torch.zeros_like(x)
    diff = att.target_output(chain, x, t) - att.target_output(chain, base, t)
    ig, delta = captum_attr.IntegratedGradients(model).attribute(
        x.clone(), baselines=base, target=t, n_steps=400, return_convergence_delta=True
    )
    delta = delta.detach()
    ours = att.baseline_relevance(chain, x, base, t)
    # both are (nearly) complete; IG only up to its quadrature error
    assert gap(ours.sum(-1), diff) < 1e-10
    assert float(delta.abs().max()) < 1e-2 * float(diff.abs().max())


def test_integrated_gradients_coincide_without_hidden_layer():
    model = make_mlp([6, 3], bias=True, seed=9)  # a linear model: every path method agrees
    chain = chain_of(model)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    base = torch.randn(8, 6, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    ig = captum_attr.IntegratedGradients(model).attribute(
        x.clone(), baselines=base, target=2, n_steps=20
    )
    assert (
        gap(att.baseline_relevance(chain, x, base, 2), ig) < 1e-7
    )  # captum's quadrature weights are float32


def test_chain_of_matches_model(net):
    model, chain, x, _ = net
    assert torch.allclose(chain(x), model(x))
