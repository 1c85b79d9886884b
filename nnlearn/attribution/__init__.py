"""Attribution by backward rules, and "blame the bias" (Hobson 2022, after Bach et al. 2015).

A relevance method runs a network forwards, then walks it backwards, turning the relevance
``R`` of each layer's output into the relevance of that layer's input with one *rule* per
layer type:

===============  ============  ==============================================================
layer            rule          relevance of the input ``a`` from that of the output ``b``
===============  ============  ==============================================================
matmul b = aW^T  gradient      ``R(a) = R(b) W``
matmul           normalised    ``R(a_i) = a_i sum_j W_ji R(b_j) / blip(z_j)`` (LRP-epsilon)
f elementwise    ignore        ``R(a) = R(b)``
f                gradient      ``R(a) = f'(a) R(b)``
f                slope         ``R(a) = f(a) / a * R(b)``
f                repeat        ``R(a) = f(R(b))``
===============  ============  ==============================================================

``blip(z) = z + eps * sign(z)`` (sign(0) = +1). Named methods (:data:`METHODS`) pick one rule
per layer type and a start (what the output's relevance is) and an end (whether the result is
multiplied by the input). :func:`blame_the_bias` rewrites a network with biases as a bias-free
one on an input augmented with ones, so relevance also reaches the biases (on a ReLU network
bias unit k receives ``c_k * d(out)/d(c_k)``, the bias term of FullGrad's decomposition);
:func:`baseline_relevance` measures relevance of ``x`` relative to a baseline input (DeepLIFT's
rescale rule). Rules for maximum layers, which these chains do not contain, live with the
chapter that tests them (``nnlearn.studies.blame_the_bias``).

Networks are :class:`Chain` objects: alternating linear layers and elementwise activations,
optionally with a leading member axis ``K`` on every parameter (an ensemble of networks).

Modules: :mod:`~nnlearn.attribution.rules` (one layer's rules), :mod:`~nnlearn.attribution.chain`
(networks as chains), :mod:`~nnlearn.attribution.methods` (methods, blame the bias, baselines,
checks). Everything is importable from ``nnlearn.attribution``.
"""

from nnlearn.attribution.chain import (
    Chain,
    Trace,
    random_chain,
)
from nnlearn.attribution.methods import (
    METHODS,
    BiasFree,
    Method,
    Relevance,
    augment_with_ones,
    baseline_relevance,
    bias_blamed_relevance,
    blame_the_bias,
    centre_activations,
    input_gradient,
    layer_sums,
    max_relative_gap,
    relevance,
    target_output,
)
from nnlearn.attribution.methods import (
    _check_chain_and_baseline as _check_chain_and_baseline,
)
from nnlearn.attribution.methods import (
    _expand_to_members as _expand_to_members,
)
from nnlearn.attribution.methods import (
    _start_relevance as _start_relevance,
)
from nnlearn.attribution.rules import (
    MATMUL_RULE_FNS,
    MATMUL_RULES,
    NONLIN_RULE_FNS,
    NONLIN_RULES,
    STARTS,
    activation_derivative,
    blip,
    matmul_gradient,
    matmul_normalised,
    nonlin_gradient,
    nonlin_ignore,
    nonlin_repeat,
    nonlin_slope,
    secant_slope,
)
from nnlearn.attribution.rules import (
    _check_eps as _check_eps,
)
from nnlearn.attribution.rules import (
    _check_tensor as _check_tensor,
)

__all__ = [
    "MATMUL_RULES",
    "MATMUL_RULE_FNS",
    "METHODS",
    "NONLIN_RULES",
    "NONLIN_RULE_FNS",
    "STARTS",
    "BiasFree",
    "Chain",
    "Method",
    "Relevance",
    "Trace",
    "activation_derivative",
    "augment_with_ones",
    "baseline_relevance",
    "bias_blamed_relevance",
    "blame_the_bias",
    "blip",
    "centre_activations",
    "input_gradient",
    "layer_sums",
    "matmul_gradient",
    "matmul_normalised",
    "max_relative_gap",
    "nonlin_gradient",
    "nonlin_ignore",
    "nonlin_repeat",
    "nonlin_slope",
    "random_chain",
    "relevance",
    "secant_slope",
    "target_output",
]
