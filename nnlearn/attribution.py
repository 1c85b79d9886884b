"""Attribution by backward rules, and "blame the bias" (Hobson 2022, after Bach et al. 2015).

A relevance method runs a network forwards, then walks it backwards, turning the relevance
``R`` of each layer's output into the relevance of that layer's input with one *rule* per
layer type:

===============  ============  ==============================================================
layer            rule          relevance of the input ``a`` from that of the output ``b``
===============  ============  ==============================================================
max              gradient      ``R(a_i) = R(b)`` if ``a_i`` is the maximum, else 0
max              radial        ``R(a_i) = s_i R(b)``, shares ``s`` split relative to 0
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
one on an input augmented with ones, so relevance also reaches the biases;
:func:`baseline_relevance` measures relevance of ``x`` relative to a baseline input.

Networks are :class:`Chain` objects: alternating linear layers and elementwise activations,
optionally with a leading member axis ``K`` on every parameter (an ensemble of networks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from nnlearn.checks import check_choice
from nnlearn.models import MLP, activation_fn
from nnlearn.seeding import make_generator

MAX_RULES = ("gradient", "radial")
MATMUL_RULES = ("gradient", "normalised")
NONLIN_RULES = ("ignore", "gradient", "slope", "repeat")
STARTS = ("one", "output", "probability")


def _check_tensor(name: str, value, min_ndim: int = 1) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def _check_chain_and_baseline(chain, x, baseline):
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    x = _check_tensor("x", x)
    baseline = _check_tensor("baseline", baseline)
    if baseline.shape[-1] != x.shape[-1]:
        raise ValueError(f"baseline must have last dimension {x.shape[-1]}, got shape {tuple(baseline.shape)}")
    return x, baseline.expand_as(x)


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")
    return float(eps)


# ----------------------------------------------------------------------------------------
# Rules for one layer. Every rule acts on the last axis and batches over leading axes.
# ----------------------------------------------------------------------------------------


def _check_max_inputs(a, relevance_out):
    a = _check_tensor("a", a)
    relevance_out = _check_tensor("relevance_out", relevance_out, 0)
    if relevance_out.shape != a.shape[:-1]:
        raise ValueError(f"relevance_out must have shape {tuple(a.shape[:-1])}, got {tuple(relevance_out.shape)}")
    return a, relevance_out


def max_gradient(a: torch.Tensor, relevance_out: torch.Tensor) -> torch.Tensor:
    """Max rule "gradient": all of ``R(b)`` goes to the (first) largest input.

    Parameters
    ----------
    a : Tensor (..., n), the inputs of ``b = max_i a_i``
    relevance_out : Tensor (...,), ``R(b)``

    Returns
    -------
    Tensor (..., n)
    """
    a, relevance_out = _check_max_inputs(a, relevance_out)
    winner = F.one_hot(a.argmax(-1), a.shape[-1]).to(a.dtype)
    return winner * relevance_out.unsqueeze(-1)


def radial_shares(a: torch.Tensor) -> torch.Tensor:
    """Shares ``s`` (non-negative, summing to 1 on the last axis) of the radial max rule.

    If any input is positive, ``s_i = relu(a_i) / sum_j relu(a_j)`` (a negative input adds
    nothing to a positive maximum). If none is positive and some are exactly 0, the zeros
    share equally. If all are negative, ``s_i = (1/a_i) / sum_j (1/a_j)`` (closest to 0 weighs
    most).

    Parameters
    ----------
    a : Tensor (..., n)

    Returns
    -------
    Tensor (..., n)
    """
    a = _check_tensor("a", a)
    pos = torch.relu(a)
    any_pos = (a > 0).any(-1, keepdim=True)
    zeros = (a == 0).to(a.dtype)
    any_zero = zeros.sum(-1, keepdim=True) > 0
    inv = 1.0 / torch.where(a < 0, a, -torch.ones_like(a))  # finite everywhere; used only when all < 0
    weights = torch.where(any_pos, pos, torch.where(any_zero, zeros, inv))
    return weights / weights.sum(-1, keepdim=True)


def max_radial(a: torch.Tensor, relevance_out: torch.Tensor) -> torch.Tensor:
    """Max rule "radial": ``R(a_i) = s_i R(b)`` with :func:`radial_shares`.

    Parameters
    ----------
    a : Tensor (..., n); relevance_out : Tensor (...,)

    Returns
    -------
    Tensor (..., n)
    """
    a, relevance_out = _check_max_inputs(a, relevance_out)
    return radial_shares(a) * relevance_out.unsqueeze(-1)


def blip(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z + eps * sign(z)`` with sign(0) = +1: the identity with a jump of 2*eps across 0.

    Parameters
    ----------
    z : Tensor (any shape); eps : float >= 0

    Returns
    -------
    Tensor shaped like ``z``
    """
    z = _check_tensor("z", z, 0)
    eps = _check_eps(eps)
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def _check_matmul(a, weight, relevance_out):
    a = _check_tensor("a", a)
    weight = _check_tensor("weight", weight, 2)
    relevance_out = _check_tensor("relevance_out", relevance_out)
    if a.shape[-1] != weight.shape[-1]:
        raise ValueError(f"a's last dimension ({a.shape[-1]}) must equal weight's in-dimension ({weight.shape[-1]})")
    if relevance_out.shape[-1] != weight.shape[-2]:
        raise ValueError(f"relevance_out's last dimension ({relevance_out.shape[-1]}) must equal weight's out-dimension ({weight.shape[-2]})")
    return a, weight, relevance_out


def matmul_gradient(a: torch.Tensor, weight: torch.Tensor, relevance_out: torch.Tensor, **_) -> torch.Tensor:
    """Matmul rule "gradient" for ``b = a @ W^T (+ c)``: ``R(a) = R(b) @ W``.

    Parameters
    ----------
    a : Tensor (..., N, n_in) (used for shape checks only)
    weight : Tensor (..., n_out, n_in)
    relevance_out : Tensor (..., N, n_out)

    Returns
    -------
    Tensor (..., N, n_in)
    """
    a, weight, relevance_out = _check_matmul(a, weight, relevance_out)
    return torch.matmul(relevance_out, weight)


def matmul_normalised(
    a: torch.Tensor, weight: torch.Tensor, relevance_out: torch.Tensor, *, pre: torch.Tensor | None = None, eps: float = 0.0
) -> torch.Tensor:
    """Matmul rule "normalised" (LRP-epsilon): ``R(a_i) = a_i sum_j W_ji R(b_j) / blip(z_j)``.

    Parameters
    ----------
    a : Tensor (..., N, n_in)
    weight : Tensor (..., n_out, n_in)
    relevance_out : Tensor (..., N, n_out)
    pre : Tensor (..., N, n_out), optional
        The layer's pre-activation ``z = a @ W^T + c`` including any bias (default: ``a @ W^T``).
    eps : float >= 0, the stabiliser in :func:`blip`

    Returns
    -------
    Tensor (..., N, n_in)
    """
    a, weight, relevance_out = _check_matmul(a, weight, relevance_out)
    z = torch.matmul(a, weight.transpose(-1, -2)) if pre is None else pre
    denom = blip(z, eps)
    safe = torch.where(denom == 0, torch.ones_like(denom), denom)
    return a * torch.matmul(relevance_out / safe, weight)


def activation_derivative(pre: torch.Tensor, fn) -> torch.Tensor:
    """``f'(pre)`` elementwise for an elementwise function ``fn``, by autograd.

    The result is detached (treated as a constant by any outer differentiation), which is
    exact for ReLU, whose derivative is piecewise constant.

    Parameters
    ----------
    pre : Tensor (any shape); fn : callable, elementwise

    Returns
    -------
    Tensor shaped like ``pre``
    """
    pre = _check_tensor("pre", pre, 0)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    z = pre.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(z).sum(), z)
    return grad


def _check_nonlin(pre, post, relevance_out):
    pre = _check_tensor("pre", pre, 0)
    post = _check_tensor("post", post, 0)
    relevance_out = _check_tensor("relevance_out", relevance_out, 0)
    if not (pre.shape == post.shape == relevance_out.shape):
        raise ValueError(
            f"pre, post and relevance_out must have one shape, got {tuple(pre.shape)}, {tuple(post.shape)}, {tuple(relevance_out.shape)}"
        )


def nonlin_ignore(pre, post, relevance_out, fn=None):
    """Nonlinearity rule "ignore": ``R(a) = R(b)``. All arguments shape (...,); returns (...,)."""
    _check_nonlin(pre, post, relevance_out)
    return relevance_out


def nonlin_gradient(pre, post, relevance_out, fn):
    """Nonlinearity rule "gradient": ``R(a) = f'(a) R(b)``. Shapes (...,); returns (...,)."""
    _check_nonlin(pre, post, relevance_out)
    return activation_derivative(pre, fn) * relevance_out


def secant_slope(pre, post, fn, pre_ref=None, post_ref=None, tol: float = 1e-6):
    """``(f(a) - f(a_ref)) / (a - a_ref)``, or ``f'(a)`` where ``|a - a_ref| <= tol``.

    With no reference the reference is 0 and f(0) = 0: the slope ``f(a) / a`` from the origin.

    Parameters
    ----------
    pre, post : Tensor (...,), ``a`` and ``f(a)``; pre_ref, post_ref : Tensor (...,), optional

    Returns
    -------
    Tensor (...,)
    """
    if (pre_ref is None) != (post_ref is None):
        raise ValueError("pre_ref and post_ref must be given together")
    if pre_ref is None:
        pre_ref, post_ref = torch.zeros_like(pre), torch.zeros_like(post)
    gap = pre - pre_ref
    close = gap.abs() <= tol
    safe = torch.where(close, torch.ones_like(gap), gap)
    return torch.where(close, activation_derivative(pre, fn), (post - post_ref) / safe)


def nonlin_slope(pre, post, relevance_out, fn):
    """Nonlinearity rule "slope": ``R(a) = f(a) / a * R(b)`` (``f'(a)`` at a = 0). Shapes (...,)."""
    _check_nonlin(pre, post, relevance_out)
    return secant_slope(pre, post, fn) * relevance_out


def nonlin_repeat(pre, post, relevance_out, fn):
    """Nonlinearity rule "repeat": ``R(a) = f(R(b))`` (non-linear in R). Shapes (...,)."""
    _check_nonlin(pre, post, relevance_out)
    return fn(relevance_out)


MATMUL_RULE_FNS = {"gradient": matmul_gradient, "normalised": matmul_normalised}
NONLIN_RULE_FNS = {"ignore": nonlin_ignore, "gradient": nonlin_gradient, "slope": nonlin_slope, "repeat": nonlin_repeat}
MAX_RULE_FNS = {"gradient": max_gradient, "radial": max_radial}


# ----------------------------------------------------------------------------------------
# Networks as chains of linear layers and elementwise activations
# ----------------------------------------------------------------------------------------


@dataclass
class Chain:
    """``x -> z_0 = x W_0^T + c_0 -> a_1 = f_0(z_0) -> ... -> z_L`` (the output, no activation).

    Attributes
    ----------
    weights : list of Tensor (..., n_out, n_in), one per linear layer (optional leading member axes)
    biases : list of Tensor (..., n_out) or None, one per linear layer
    activations : list of str, one per hidden layer (names in ``nnlearn.models.ACTIVATIONS``)
    passthrough : list of int, one per hidden layer: that many *last* units skip the activation
        (used by :func:`blame_the_bias` to carry the constant ones through the network)
    offsets : list of float, one per hidden layer: subtracted after the activation, so
        ``a = f(z) - offset`` (:func:`centre_activations` uses ``offset = f(0)``)
    """

    weights: list
    biases: list
    activations: list
    passthrough: list = field(default_factory=list)
    offsets: list = field(default_factory=list)

    def __post_init__(self):
        self.weights, self.biases, self.activations = list(self.weights), list(self.biases), list(self.activations)
        if not self.weights:
            raise ValueError("weights must hold at least one matrix")
        if len(self.biases) != len(self.weights):
            raise ValueError(f"biases: expected {len(self.weights)} entries (None for none), got {len(self.biases)}")
        if len(self.activations) != len(self.weights) - 1:
            raise ValueError(f"activations: expected {len(self.weights) - 1} names, got {len(self.activations)}")
        self.fns = [activation_fn(a) for a in self.activations]
        self.passthrough = list(self.passthrough) or [0] * len(self.activations)
        if len(self.passthrough) != len(self.activations):
            raise ValueError(f"passthrough: expected {len(self.activations)} ints, got {len(self.passthrough)}")
        self.offsets = [float(o) for o in self.offsets] or [0.0] * len(self.activations)
        if len(self.offsets) != len(self.activations):
            raise ValueError(f"offsets: expected {len(self.activations)} numbers, got {len(self.offsets)}")
        for i, w in enumerate(self.weights):
            _check_tensor(f"weights[{i}]", w, 2)
            if i and w.shape[-1] != self.weights[i - 1].shape[-2]:
                raise ValueError(f"weights[{i}] takes {w.shape[-1]} inputs but weights[{i - 1}] gives {self.weights[i - 1].shape[-2]}")
            b = self.biases[i]
            if b is not None and (not isinstance(b, torch.Tensor) or b.shape[-1] != w.shape[-2]):
                raise ValueError(f"biases[{i}] must be None or a Tensor with last dimension {w.shape[-2]}")

    @classmethod
    def from_mlp(cls, model: MLP) -> "Chain":
        """The chain of an :class:`nnlearn.models.MLP` (parameters shared, not copied)."""
        if not isinstance(model, MLP):
            raise TypeError(f"model must be an nnlearn.models.MLP, got {type(model).__name__}")
        if model.out_act is not None:
            raise ValueError("model must output logits (output_activation=None)")
        return cls([l.weight for l in model.layers], [l.bias for l in model.layers], model.activation_names)

    @classmethod
    def from_params(cls, params: Mapping[str, torch.Tensor], activations: Sequence[str]) -> "Chain":
        """From ``layers.{i}.weight`` / ``layers.{i}.bias`` tensors, e.g. ``Ensemble.params`` (K, ...)."""
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping name -> Tensor, got {type(params).__name__}")
        n = len(activations) + 1
        missing = [f"layers.{i}.weight" for i in range(n) if f"layers.{i}.weight" not in params]
        if missing:
            raise ValueError(f"params lacks {missing} (expected {n} layers for {len(activations)} activations)")
        return cls([params[f"layers.{i}.weight"] for i in range(n)], [params.get(f"layers.{i}.bias") for i in range(n)], activations)

    @property
    def n_in(self) -> int:
        return self.weights[0].shape[-1]

    @property
    def has_bias(self) -> bool:
        return any(b is not None for b in self.biases)

    def activate(self, layer: int, pre: torch.Tensor) -> torch.Tensor:
        """Hidden layer ``layer``'s activation of ``pre`` (carried units pass unchanged)."""
        p, off = self.passthrough[layer], self.offsets[layer]
        fn = self.fns[layer] if off == 0 else (lambda z: self.fns[layer](z) - off)
        if p == 0:
            return fn(pre)
        return torch.cat([fn(pre[..., :-p]), pre[..., -p:]], -1)

    def activation(self, layer: int):
        """Elementwise function of hidden layer ``layer`` (offset applied; identity on carried units)."""
        if self.passthrough[layer] == 0 and self.offsets[layer] == 0:
            return self.fns[layer]
        return lambda z: self.activate(layer, z)

    def trace(self, x: torch.Tensor) -> "Trace":
        """Forward pass keeping every layer's input and pre-activation.

        Parameters
        ----------
        x : Tensor (N, n_in), or (K, N, n_in) for K members

        Returns
        -------
        Trace with ``inputs[l]`` (…, N, n_in_l) and ``pre[l]`` (…, N, n_out_l)
        """
        x = _check_tensor("x", x)
        if x.shape[-1] != self.n_in:
            raise ValueError(f"x must have last dimension {self.n_in}, got shape {tuple(x.shape)}")
        inputs, pre, h = [], [], x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.matmul(h, w.transpose(-1, -2))
            if b is not None:
                z = z + b.unsqueeze(-2)
            inputs.append(h)
            pre.append(z)
            if i < len(self.fns):
                h = self.activate(i, z)
        return Trace(inputs, pre)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Output (logits), shape (…, N, n_out)."""
        return self.trace(x).pre[-1]


class Trace(NamedTuple):
    """``inputs[l]``: input of linear layer l; ``pre[l]``: its output before the activation."""

    inputs: list
    pre: list


def random_chain(widths: Sequence[int], *, n_members: int = 1, seed: int = 0, bias: bool = False, bias_scale: float = 0.1, activation: str = "relu") -> Chain:
    """K random networks (He-normal weights) stacked on a leading member axis.

    Parameters
    ----------
    widths : ``[n_in, hidden..., n_out]``; n_members : K; seed : int
    bias : whether layers have biases, drawn N(0, bias_scale^2)

    Returns
    -------
    Chain with weights (K, n_out, n_in) and biases (K, n_out) or None
    """
    widths = list(widths)
    if len(widths) < 2 or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ValueError(f"widths must be at least two positive ints, got {widths}")
    if not isinstance(n_members, int) or n_members < 1:
        raise ValueError(f"n_members must be a positive int, got {n_members!r}")
    g = make_generator(seed)
    weights, biases = [], []
    for a, b in zip(widths[:-1], widths[1:]):
        weights.append(torch.randn(n_members, b, a, generator=g, dtype=torch.float64) * np.sqrt(2.0 / a))
        biases.append(torch.randn(n_members, b, generator=g, dtype=torch.float64) * bias_scale if bias else None)
    return Chain(weights, biases, [activation] * (len(widths) - 2))


# ----------------------------------------------------------------------------------------
# Methods: one rule per layer type, a start and an end
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A relevance method: one rule per layer type, how it starts and how it ends.

    start : "one" (R(output) = 1 for the target), "output" (R = the target's logit) or
        "probability" (R = the target's softmax probability, as a likelihood-valued start)
    times_input : multiply the input's relevance by the input at the end
    """

    name: str
    max_rule: str
    matmul_rule: str
    nonlin_rule: str
    start: str
    times_input: bool

    def __post_init__(self):
        check_choice("max_rule", self.max_rule, MAX_RULES)
        check_choice("matmul_rule", self.matmul_rule, MATMUL_RULES)
        check_choice("nonlin_rule", self.nonlin_rule, NONLIN_RULES)
        check_choice("start", self.start, STARTS)


METHODS = {
    "gradient": Method("gradient", "gradient", "gradient", "gradient", "one", False),
    "gradient_x_input": Method("gradient x input", "gradient", "gradient", "gradient", "one", True),
    "deconvolution": Method("deconvolution (Zeiler & Fergus)", "gradient", "gradient", "repeat", "one", False),
    "lrp": Method("LRP (epsilon rule)", "gradient", "normalised", "ignore", "output", False),
    "lrp_q": Method("LRP rewritten in Q = R/a", "gradient", "gradient", "slope", "one", True),
}


def _start_relevance(output: torch.Tensor, target, start: str) -> torch.Tensor:
    n_out = output.shape[-1]
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 <= target < n_out:
            raise ValueError(f"target must be in 0..{n_out - 1}, got {target}")
        target = torch.full(output.shape[:-1], target, dtype=torch.long)
    if not isinstance(target, torch.Tensor) or target.is_floating_point():
        raise TypeError("target must be an int or an integer Tensor of class indices")
    target = target.expand(output.shape[:-1])
    if (target < 0).any() or (target >= n_out).any():
        raise ValueError(f"target: class indices must be in 0..{n_out - 1}")
    hot = F.one_hot(target, n_out).to(output.dtype)
    if start == "one":
        return hot
    if start == "output":
        return hot * output
    probs = torch.sigmoid(output) if n_out == 1 else torch.softmax(output, -1)
    return hot * probs


class Relevance(NamedTuple):
    """Result of :func:`relevance`.

    input : Tensor (…, N, n_in), the input's relevance
    layers : list of (name, Tensor (…, N, width)), every intermediate relevance from the
        output back to the input (for conservation checks)
    """

    input: torch.Tensor
    layers: list


def relevance(
    chain: Chain, x: torch.Tensor, target, method: str | Method = "lrp", *, eps: float = 0.0, start: str | None = None,
    bias_in_denominator: bool = True,
) -> Relevance:
    """Walk ``chain`` backwards from ``target``'s output with ``method``'s rules.

    Parameters
    ----------
    chain : Chain
    x : Tensor (N, n_in) or (K, N, n_in)
    target : int or integer Tensor broadcastable to (…, N): the output unit explained
    method : a key of :data:`METHODS` or a :class:`Method`
    eps : the normalised rule's stabiliser
    start : override the method's start ("one", "output", "probability")
    bias_in_denominator : for the normalised matmul rule, divide by the pre-activation
        including the bias, ``z_j = sum_i a_i W_ji + c_j`` (Bach et al.; relevance is lost to
        the biases), or, if False, by the weighted input sum alone, ``s_j = sum_i a_i W_ji``
        (the bias addition passes its whole relevance on: relevance is conserved, but it
        blows up where ``s_j`` is near 0 while the bias keeps ``z_j`` away from 0)

    Returns
    -------
    Relevance
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    if isinstance(method, str):
        check_choice("method", method, tuple(METHODS))
        method = METHODS[method]
    if not isinstance(method, Method):
        raise TypeError(f"method must be a str or Method, got {type(method).__name__}")
    eps = _check_eps(eps)
    if not isinstance(bias_in_denominator, bool):
        raise TypeError(f"bias_in_denominator must be a bool, got {type(bias_in_denominator).__name__}")
    start = method.start if start is None else start
    check_choice("start", start, STARTS)
    tr = chain.trace(x)
    r = _start_relevance(tr.pre[-1], target, start)
    layers = [(f"z{len(tr.pre) - 1}", r)]
    matmul_rule, nonlin_rule = MATMUL_RULE_FNS[method.matmul_rule], NONLIN_RULE_FNS[method.nonlin_rule]
    for l in range(len(chain.weights) - 1, -1, -1):
        r = matmul_rule(tr.inputs[l], chain.weights[l], r, pre=tr.pre[l] if bias_in_denominator else None, eps=eps)
        layers.append((f"a{l}", r))
        if l > 0:
            r = nonlin_rule(tr.pre[l - 1], tr.inputs[l], r, chain.activation(l - 1))
            layers.append((f"z{l - 1}", r))
    if method.times_input:
        r = r * tr.inputs[0]
        layers[-1] = (layers[-1][0], r)
    return Relevance(r, layers)


def layer_sums(result: Relevance) -> dict[str, torch.Tensor]:
    """``{layer name: summed relevance}``, each of shape (…, N): the conserved quantity of LRP."""
    if not isinstance(result, Relevance):
        raise TypeError(f"result must be a Relevance, got {type(result).__name__}")
    return {name: r.sum(-1) for name, r in result.layers}


# ----------------------------------------------------------------------------------------
# Blame the bias, and the baseline variant
# ----------------------------------------------------------------------------------------


class BiasFree(NamedTuple):
    """A bias-free chain on ``[x, ones(n_ones)]`` computing the same outputs.

    chain : the bias-free Chain
    n_ones : number of constant-one inputs appended to x
    bias_layer : LongTensor (n_ones,), which linear layer each one feeds (mode "each"); for
        mode "single" a single -1
    """

    chain: Chain
    n_ones: int
    bias_layer: torch.Tensor


def centre_activations(chain: Chain) -> Chain:
    """The same function with every activation shifted to pass through 0.

    ``f(z) = (f(z) - f(0)) + f(0)``: the constant ``f(0)`` is a hidden bias, moved into the
    next layer's bias (``c' = c + f(0) W 1``). Chains whose activations already have
    ``f(0) = 0`` (ReLU, tanh, ...) come back unchanged.

    Returns
    -------
    Chain
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    dtype = chain.weights[0].dtype
    extra = [float(chain.activate(l, torch.zeros(chain.weights[l].shape[-2], dtype=dtype))[0]) if chain.weights[l].shape[-2] > chain.passthrough[l] else 0.0
             for l in range(len(chain.fns))]
    if all(e == 0 for e in extra):
        return chain
    biases = list(chain.biases)
    for l, e in enumerate(extra):
        if e == 0:
            continue
        w_next = chain.weights[l + 1]
        n_act = w_next.shape[-1] - chain.passthrough[l]
        shift = e * w_next[..., :n_act].sum(-1)
        biases[l + 1] = shift if biases[l + 1] is None else biases[l + 1] + shift
    offsets = [o + e for o, e in zip(chain.offsets, extra)]
    return Chain(chain.weights, biases, chain.activations, chain.passthrough, offsets)


def blame_the_bias(chain: Chain, mode: str = "single") -> BiasFree:
    """Rewrite ``chain`` without biases on an input augmented with ones.

    Activations with ``f(0) != 0`` are first centred (:func:`centre_activations`): their
    constant part counts as a bias. Every bias becomes the weight of a constant 1 that the
    network carries, unchanged, to the layer that uses it. ``mode="each"`` gives every bias unit its own 1 (relevance per
    bias); ``mode="single"`` shares one 1 among all of them (one summed bias relevance).

    Parameters
    ----------
    chain : Chain with biases; weights (…, n_out, n_in)
    mode : {"single", "each"}

    Returns
    -------
    BiasFree
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    check_choice("mode", mode, ("single", "each"))
    if any(p for p in chain.passthrough):
        raise ValueError("chain already carries pass-through units; apply blame_the_bias once")
    chain = centre_activations(chain)
    w0 = chain.weights[0]
    lead, dtype = w0.shape[:-2], w0.dtype
    outs = [w.shape[-2] for w in chain.weights]
    biases = [b if b is not None else torch.zeros(*lead, o, dtype=dtype) for b, o in zip(chain.biases, outs)]
    n_layers = len(outs)
    if mode == "single":
        carried = [1] * n_layers  # ones entering each layer
    else:
        carried = [sum(outs[l:]) for l in range(n_layers)]
    new_w = []
    for l, (w, b) in enumerate(zip(chain.weights, biases)):
        n_out, n_in = w.shape[-2:]
        carry_out = carried[l + 1] if l + 1 < n_layers else 0
        rows = []
        if mode == "single":
            top = torch.cat([w, b.unsqueeze(-1)], -1)
            rows.append(top)
            if carry_out:
                rows.append(torch.cat([torch.zeros(*lead, 1, n_in, dtype=dtype), torch.ones(*lead, 1, 1, dtype=dtype)], -1))
        else:
            top = torch.cat([w, torch.diag_embed(b), torch.zeros(*lead, n_out, carry_out, dtype=dtype)], -1)
            rows.append(top)
            if carry_out:
                eye = torch.eye(carry_out, dtype=dtype).expand(*lead, carry_out, carry_out)
                rows.append(torch.cat([torch.zeros(*lead, carry_out, n_in + n_out, dtype=dtype), eye], -1))
        new_w.append(torch.cat(rows, -2))
    passthrough = [carried[l + 1] for l in range(n_layers - 1)]
    free = Chain(new_w, [None] * n_layers, chain.activations, passthrough, chain.offsets)
    if mode == "single":
        bias_layer = torch.tensor([-1])
    else:
        bias_layer = torch.cat([torch.full((o,), l) for l, o in enumerate(outs)])
    return BiasFree(free, carried[0], bias_layer)


def augment_with_ones(x: torch.Tensor, n_ones: int) -> torch.Tensor:
    """``[x, 1, ..., 1]``: x (…, N, n_in) -> (…, N, n_in + n_ones)."""
    x = _check_tensor("x", x)
    if not isinstance(n_ones, int) or n_ones < 0:
        raise ValueError(f"n_ones must be an int >= 0, got {n_ones!r}")
    return torch.cat([x, torch.ones(*x.shape[:-1], n_ones, dtype=x.dtype)], -1)


def bias_blamed_relevance(chain: Chain, x: torch.Tensor, target, *, mode: str = "single", method: str = "lrp", eps: float = 0.0):
    """Relevance of the input and of the biases, via :func:`blame_the_bias`.

    Parameters
    ----------
    chain : Chain; x : Tensor (…, N, n_in); target : as in :func:`relevance`
    mode : "single" (one summed bias relevance) or "each" (one per bias unit)
    method : any of :data:`METHODS`

    Returns
    -------
    (input_relevance (…, N, n_in), bias_relevance (…, N, n_ones))
    """
    free = blame_the_bias(chain, mode)
    x = _check_tensor("x", x)
    res = relevance(free.chain, augment_with_ones(x, free.n_ones), target, method, eps=eps)
    return res.input[..., : x.shape[-1]], res.input[..., x.shape[-1] :]


def baseline_relevance(chain: Chain, x: torch.Tensor, baseline: torch.Tensor, target) -> torch.Tensor:
    """Relevance of ``x`` relative to ``baseline`` (DeepLIFT's rescale rule in Q form).

    ``Q(output) = 1`` for the target; matmuls pass ``Q`` back by the gradient rule; each
    activation multiplies by its secant slope ``(f(a) - f(a_ref)) / (a - a_ref)``; finally
    ``R(x) = (x - baseline) * Q(x)``. The relevances sum to ``f(x) - f(baseline)`` exactly and
    swapping ``x`` and ``baseline`` flips their sign.

    Parameters
    ----------
    chain : Chain; x : Tensor (…, N, n_in)
    baseline : Tensor broadcastable to x, e.g. (n_in,) a blank image or the data mean
    target : as in :func:`relevance`

    Returns
    -------
    Tensor (…, N, n_in)
    """
    x, baseline = _check_chain_and_baseline(chain, x, baseline)
    tr, tr_ref = chain.trace(x), chain.trace(baseline)
    q = _start_relevance(tr.pre[-1], target, "one")
    for l in range(len(chain.weights) - 1, -1, -1):
        q = torch.matmul(q, chain.weights[l])
        if l > 0:
            fn = chain.activation(l - 1)
            q = q * secant_slope(tr.pre[l - 1], tr.inputs[l], fn, tr_ref.pre[l - 1], tr_ref.inputs[l])
    return (x - baseline) * q


def target_output(chain: Chain, x: torch.Tensor, target) -> torch.Tensor:
    """The target unit's logit, shape (…, N)."""
    out = chain(x)
    return (_start_relevance(out, target, "output")).sum(-1)


# ----------------------------------------------------------------------------------------
# Alignment experiment: push relevance into a marked region during training
# ----------------------------------------------------------------------------------------

IMAGE_SIDE = 28
CUE_ROWS = 4  # MNIST's top margin: digits are centred in the middle 20 x 20 box


def cue_patterns(n_classes: int = 10, side: int = IMAGE_SIDE, size: int = 2) -> torch.Tensor:
    """One bright ``size`` x ``size`` square per class in the top margin of the image.

    Classes 0-4 sit in rows 0-1, classes 5-9 in rows 2-3, five columns apart.

    Returns
    -------
    Tensor (n_classes, side * side) of 0s and 1s
    """
    if not isinstance(n_classes, int) or not 1 <= n_classes <= 10:
        raise ValueError(f"n_classes must be an int in 1..10, got {n_classes!r}")
    pats = torch.zeros(n_classes, side, side)
    for c in range(n_classes):
        row, col = 2 * (c // 5), 2 + 5 * (c % 5)
        pats[c, row : row + size, col : col + size] = 1.0
    return pats.reshape(n_classes, -1)


def cue_mask(side: int = IMAGE_SIDE, rows: int = CUE_ROWS) -> torch.Tensor:
    """Bool (side * side,): True in the top ``rows`` rows, where the cue lives (outside the marked region)."""
    m = torch.zeros(side, side, dtype=torch.bool)
    m[:rows] = True
    return m.reshape(-1)


def add_cue(X: torch.Tensor, cue_class: torch.Tensor, patterns: torch.Tensor | None = None) -> torch.Tensor:
    """Images with class ``cue_class``'s square drawn in (``-1``: no cue).

    Parameters
    ----------
    X : Tensor (..., N, 784) in [0, 1]; cue_class : LongTensor (..., N)

    Returns
    -------
    Tensor shaped like X
    """
    X = _check_tensor("X", X)
    patterns = cue_patterns() if patterns is None else patterns
    if not isinstance(cue_class, torch.Tensor) or cue_class.is_floating_point():
        raise TypeError("cue_class must be an integer Tensor (class index, or -1 for no cue)")
    if cue_class.shape != X.shape[:-1]:
        raise ValueError(f"cue_class must have shape {tuple(X.shape[:-1])}, got {tuple(cue_class.shape)}")
    on = (cue_class >= 0).to(X.dtype).unsqueeze(-1)
    return torch.maximum(X, on * patterns[cue_class.clamp(min=0)])


def outside_share(input_relevance: torch.Tensor, outside: torch.Tensor, floor: float = 1e-6, signed: bool = False) -> torch.Tensor:
    """Share of the absolute input relevance that falls outside the marked region.

    With ``signed=True`` the numerator is the signed relevance outside (so negative
    relevance there lowers the share): ``sum_out R / sum |R|``.

    Parameters
    ----------
    input_relevance : Tensor (..., N, n_in); outside : bool Tensor (n_in,)

    Returns
    -------
    Tensor (..., N), in [0, 1] (in [-1, 1] if signed)
    """
    input_relevance = _check_tensor("input_relevance", input_relevance)
    if not isinstance(outside, torch.Tensor) or outside.dtype != torch.bool or outside.shape != input_relevance.shape[-1:]:
        raise ValueError(f"outside must be a bool Tensor of shape {tuple(input_relevance.shape[-1:])}")
    mag = input_relevance.abs()
    top = input_relevance if signed else mag
    return (top * outside).sum(-1) / (mag.sum(-1) + floor)


@dataclass
class PenaltyRun:
    """Result of :func:`train_with_relevance_penalty`: ``loss`` (epochs, K) cross-entropy and
    ``share`` (epochs, K) mean outside share on the last mini-batch of each epoch."""

    loss: np.ndarray
    share: np.ndarray


def train_with_relevance_penalty(
    params: Mapping[str, torch.Tensor],
    activations: Sequence[str],
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    cue_on: torch.Tensor,
    penalty: torch.Tensor,
    outside: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float = 2e-3,
    seed: int = 0,
    method: str = "lrp_q",
    signed: torch.Tensor | None = None,
) -> PenaltyRun:
    """Train K stacked networks at once, member k minimising CE + penalty[k] * outside share.

    Member k sees the images with its label's cue drawn in when ``cue_on[k]`` (perfectly
    predictive cue) and the plain images otherwise; its mini-batch order is its own (drawn
    from ``seed + k``). The relevance is ``method``'s input relevance of the true class,
    computed by the explicit rules, so the penalty is differentiable.

    Parameters
    ----------
    params : name -> leaf Tensor (K, ...) requiring grad (e.g. ``Ensemble.params``), updated in place
    X : Tensor (N, 784); y : LongTensor (N,)
    cue_on : bool Tensor (K,); penalty : Tensor (K,) >= 0; outside : bool Tensor (784,)
    signed : bool Tensor (K,), optional: members whose penalty uses the signed share

    Returns
    -------
    PenaltyRun
    """
    X = _check_tensor("X", X)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != X.shape[:1]:
        raise ValueError(f"y must be an integer Tensor of shape ({X.shape[0]},)")
    K = next(iter(params.values())).shape[0]
    for name, v in (("cue_on", cue_on), ("penalty", penalty)):
        if not isinstance(v, torch.Tensor) or v.shape != (K,):
            raise ValueError(f"{name} must be a Tensor of shape ({K},) (one per member)")
    signed = torch.zeros(K, dtype=torch.bool) if signed is None else signed
    if not isinstance(signed, torch.Tensor) or signed.shape != (K,):
        raise ValueError(f"signed must be a bool Tensor of shape ({K},)")
    if (penalty < 0).any():
        raise ValueError("penalty must be >= 0")
    if not isinstance(epochs, int) or epochs < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive ints, got {epochs!r}, {batch_size!r}")
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    gens = [make_generator(seed + k) for k in range(K)]
    n = len(X)
    no_cue = torch.full((K, 1), -1)
    losses, shares = [], []
    for _ in range(epochs):
        orders = torch.stack([torch.randperm(n, generator=g) for g in gens])  # (K, N)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = orders[:, start : start + batch_size]
            yb = y[idx]
            xb = add_cue(X[idx], torch.where(cue_on.unsqueeze(1), yb, no_cue))
            chain = Chain.from_params(params, activations)
            rel = relevance(chain, xb, yb, method)
            logits = chain(xb)
            ce = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").mean(1)  # (K,)
            share = torch.where(signed, outside_share(rel.input, outside, signed=True).mean(1), outside_share(rel.input, outside).mean(1))
            opt.zero_grad()
            (ce + penalty * share).sum().backward()
            opt.step()
        losses.append(ce.detach().numpy().copy())
        shares.append(share.detach().numpy().copy())
    return PenaltyRun(np.array(losses), np.array(shares))


# ----------------------------------------------------------------------------------------
# Checks used by the chapter (small, vectorised)
# ----------------------------------------------------------------------------------------


def max_relative_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max(max |b|, tiny)``: one number for "equal to float precision"."""
    a, b = _check_tensor("a", a, 0), _check_tensor("b", b, 0)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    scale = b.abs().max().clamp_min(torch.finfo(b.dtype).tiny)
    return float(((a - b).abs().max() / scale).detach())


def _expand_to_members(chain: Chain, x: torch.Tensor) -> torch.Tensor:
    """x (N, n_in) -> (…, N, n_in) matching the chain's leading member axes."""
    lead = chain.weights[0].shape[:-2]
    return x.expand(*lead, *x.shape) if lead and x.ndim == 2 else x


def input_gradient(chain: Chain, x: torch.Tensor, target) -> torch.Tensor:
    """d(target logit)/dx by autograd (independent of the rules).

    x : Tensor (N, n_in) or (K, N, n_in); a shared x is expanded to the chain's member axes,
    so the result has shape (…, N, n_in), one gradient per member.
    """
    x = _expand_to_members(chain, _check_tensor("x", x)).detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(target_output(chain, x, target).sum(), x)
    return grad


def rewrite_checks(n_points: int = 1000, seed: int = 0, dtype=torch.float32) -> dict[str, float]:
    """Each R-form rule, divided by its input, against the Q-form rule it should become.

    Returns ``{check: max relative gap}`` for: max gradient -> max gradient; normalised matmul
    (eps = 0) -> gradient matmul; ignore -> slope (for tanh, leaky ReLU and ELU).
    """
    g = make_generator(seed)
    a = torch.randn(n_points, 6, generator=g, dtype=dtype)
    r_b = torch.randn(n_points, generator=g, dtype=dtype)
    out = {}
    b = a.max(-1).values
    out["max: gradient -> gradient"] = max_relative_gap(max_gradient(a, r_b) / a, max_gradient(a, r_b / b))
    w = torch.randn(4, 6, generator=g, dtype=dtype)
    r_b4 = torch.randn(n_points, 4, generator=g, dtype=dtype)
    z = a @ w.T
    out["matmul: normalised (eps=0) -> gradient"] = max_relative_gap(matmul_normalised(a, w, r_b4) / a, matmul_gradient(a, w, r_b4 / z))
    for name in ("tanh", "leaky_relu", "elu"):
        fn = activation_fn(name)
        post = fn(a)
        r_post = torch.randn(a.shape, generator=g, dtype=dtype)
        q_via_r = nonlin_ignore(a, post, r_post) / a
        q_via_q = nonlin_slope(a, post, r_post / post, fn)
        out[f"nonlinearity ({name}): ignore -> slope"] = max_relative_gap(q_via_r, q_via_q)
    return out


def scaling_equivalence(alphas: Sequence[float] = (-2.0, -0.5, 0.3, 3.0), n_points: int = 200, seed: int = 0) -> dict:
    """Multiplying by a constant alpha, seen as a matmul (alpha * I) or as f(a) = alpha * a.

    Returns
    -------
    dict ``{(matmul rule, nonlinearity rule): bool}``: True where the two rules give the same
    R(a) for every alpha and random a, R(b) (all relative gaps < 1e-5); plus
    ``"exponent"``: ``{rule: k}`` with R(a) = alpha^k R(b) for the matmul rules.
    """
    g = make_generator(seed)
    a = torch.randn(n_points, 3, generator=g, dtype=torch.float64)
    r_b = torch.randn(n_points, 3, generator=g, dtype=torch.float64)
    agree = {(m, n): True for m in MATMUL_RULES for n in NONLIN_RULES}
    exps = {}
    for alpha in alphas:
        w = alpha * torch.eye(3, dtype=torch.float64)
        fn = lambda t, al=alpha: al * t  # noqa: E731
        b = fn(a)
        for m in MATMUL_RULES:
            r_m = MATMUL_RULE_FNS[m](a, w, r_b)
            k = 1 if max_relative_gap(r_m, alpha * r_b) < 1e-9 else 0 if max_relative_gap(r_m, r_b) < 1e-9 else None
            exps.setdefault(m, set()).add(k)
            for n in NONLIN_RULES:
                r_n = NONLIN_RULE_FNS[n](a, b, r_b, fn)
                agree[(m, n)] &= max_relative_gap(r_n, r_m) < 1e-5
    agree["exponent"] = {m: (ks.pop() if len(ks) == 1 else None) for m, ks in exps.items()}
    return agree


def max_constant_agreement(n_points: int = 2000, seed: int = 0) -> dict[str, float]:
    """``f(a) = max(a, c)`` with a constant ``c <= 0``, treated as a max of (a, c) or as a
    nonlinearity. Returns the fraction of random (a, c) where the relevance given to ``a``
    agrees (gap < 1e-9) for: gradient max vs gradient nonlinearity, radial max vs slope
    nonlinearity, split by the sign of ``a``.
    """
    g = make_generator(seed)
    a = torch.randn(n_points, generator=g, dtype=torch.float64)
    c = -torch.rand(n_points, generator=g, dtype=torch.float64) * 2 - 1e-3
    both = torch.stack([a, c], -1)
    b = torch.maximum(a, c)
    r_b = torch.ones(n_points, dtype=torch.float64)
    fn_slope = secant_slope(a, b, lambda t: torch.maximum(t, c))
    fn_grad = (a > c).to(a.dtype)
    grad_max = max_gradient(both, r_b)[:, 0]
    radial = max_radial(both, r_b)[:, 0]
    res = {}
    for label, sel in (("a > 0", a > 0), ("a < 0", a < 0)):
        res[f"gradient max = gradient nonlinearity ({label})"] = float(((grad_max - fn_grad).abs() < 1e-9)[sel].double().mean())
        res[f"radial max = slope nonlinearity ({label})"] = float(((radial - fn_slope).abs() < 1e-9)[sel].double().mean())
    return res


def max_two_ways(x, baseline=None, softness: Sequence[float] = (1.0, 0.3, 0.1, 0.03, 0.01)) -> dict:
    """Relevance of ``(a, b)`` for ``max(a, b)`` written two ways, with the baseline rules.

    (1) the soft maximum ``m_s = s log(exp(a/s) + exp(b/s))`` built from a scaling, an
    exponential, a sum and a logarithm, for each softness ``s`` (its limit s -> 0 is the max);
    (2) ``a + relu(b - a)``. Each elementary step uses the secant-slope (baseline) rule, so
    the relevances sum to ``max(x) - max(baseline)``. ``baseline=None`` means the origin.

    Parameters
    ----------
    x, baseline : sequences of two floats

    Returns
    -------
    dict with ``"soft"``: array (len(softness), 2), ``"relu_form"``: array (2,), ``"total"``
    """
    x = torch.as_tensor(np.asarray(x, dtype=float))
    ref = torch.zeros(2, dtype=torch.float64) if baseline is None else torch.as_tensor(np.asarray(baseline, dtype=float))
    if x.shape != (2,) or ref.shape != (2,):
        raise ValueError("x and baseline must each hold two numbers")
    soft = []
    for s in softness:
        if not s > 0:
            raise ValueError(f"softness values must be > 0, got {s}")
        # q(log) * q(sum) * q(exp) * q(scale), each a secant slope between x and the baseline
        e, e_ref = torch.exp(x / s), torch.exp(ref / s)
        tot, tot_ref = e.sum(), e_ref.sum()
        log_slope = (s * tot.log() - s * tot_ref.log()) / (tot - tot_ref) if (tot - tot_ref).abs() > 1e-300 else s / tot
        exp_slope = secant_slope(x / s, e, torch.exp, ref / s, e_ref)
        q = log_slope * exp_slope / s
        soft.append(((x - ref) * q).numpy())
    # a + relu(b - a): Q(a) = 1 - q_relu, Q(b) = q_relu
    d, d_ref = x[1] - x[0], ref[1] - ref[0]
    q_relu = secant_slope(d.view(1), torch.relu(d).view(1), torch.relu, d_ref.view(1), torch.relu(d_ref).view(1))[0]
    relu_form = ((x - ref) * torch.stack([1 - q_relu, q_relu])).numpy()
    return {"soft": np.array(soft), "relu_form": relu_form, "total": float(x.max() - ref.max())}


class _ReluRepeat(torch.autograd.Function):
    """ReLU whose backward pass applies ReLU to the incoming signal (Zeiler & Fergus)."""

    @staticmethod
    def forward(ctx, z):
        return torch.relu(z)

    @staticmethod
    def backward(ctx, grad):
        return torch.relu(grad)


def reference_relevance(chain: Chain, x: torch.Tensor, target, method: str, *, eps: float = 0.0) -> torch.Tensor:
    """The named methods computed another way, through autograd, for cross-checks.

    "gradient" / "gradient_x_input": ``torch.autograd.grad`` of the target logit.
    "lrp": the "gradient trick" of Montavon et al. (2019): per layer, ``z = layer(a)``,
    ``s = R / blip(z)`` held constant, ``R(a) = a * d(z . s)/da``.
    "deconvolution": autograd through a ReLU whose backward pass is ReLU of the signal.
    Supports ReLU chains only (no pass-through units).

    Returns
    -------
    Tensor shaped like x
    """
    check_choice("method", method, ("gradient", "gradient_x_input", "lrp", "deconvolution"))
    if any(a != "relu" for a in chain.activations) or any(chain.passthrough):
        raise ValueError("reference_relevance supports plain ReLU chains only")
    x = _expand_to_members(chain, _check_tensor("x", x))
    if method in ("gradient", "gradient_x_input"):
        g = input_gradient(chain, x, target)
        return g * x if method == "gradient_x_input" else g
    if method == "deconvolution":
        xg = x.detach().clone().requires_grad_(True)
        h = xg
        for l, (w, b) in enumerate(zip(chain.weights, chain.biases)):
            h = torch.matmul(h, w.detach().transpose(-1, -2)) + (0 if b is None else b.detach().unsqueeze(-2))
            if l < len(chain.activations):
                h = _ReluRepeat.apply(h)
        (grad,) = torch.autograd.grad((h * _start_relevance(h, target, "one")).sum(), xg)
        return grad
    tr = chain.trace(x.detach())
    r = _start_relevance(tr.pre[-1], target, "output").detach()
    for l in range(len(chain.weights) - 1, -1, -1):
        a = tr.inputs[l].detach().clone().requires_grad_(True)
        b = chain.biases[l]
        z = torch.matmul(a, chain.weights[l].detach().transpose(-1, -2)) + (0 if b is None else b.detach().unsqueeze(-2))
        s = (r / blip(z, eps)).detach()
        (c,) = torch.autograd.grad((z * s).sum(), a)
        r = (a * c).detach()
    return r


def start_sensitivity(chain: Chain, x: torch.Tensor, *, eps: float = 0.0, start: str = "probability") -> dict[str, torch.Tensor]:
    """For every output class: its logit, the start relevance and the LRP input total.

    Parameters
    ----------
    chain : Chain (with biases); x : Tensor (…, N, n_in)

    Returns
    -------
    dict of Tensors (C, …, N): ``logit``, ``start`` (R of the output), ``input_total``
    (summed LRP input relevance), ``bias_total`` and ``input_total_btb`` (blame-the-bias
    split of the same start).
    """
    eps = _check_eps(eps)
    out = chain(x)
    free = blame_the_bias(chain, "single")
    xa = augment_with_ones(_check_tensor("x", x), free.n_ones)
    rows = {"logit": [], "start": [], "input_total": [], "bias_total": [], "input_total_btb": []}
    for c in range(out.shape[-1]):
        res = relevance(chain, x, c, "lrp", eps=eps, start=start)
        res_btb = relevance(free.chain, xa, c, "lrp", eps=eps, start=start)
        rows["logit"].append(out[..., c])
        rows["start"].append(res.layers[0][1][..., c])
        rows["input_total"].append(res.input.sum(-1))
        rows["input_total_btb"].append(res_btb.input[..., : x.shape[-1]].sum(-1))
        rows["bias_total"].append(res_btb.input[..., x.shape[-1] :].sum(-1))
    return {k: torch.stack(v).detach() for k, v in rows.items()}


def baseline_relevance_rform(chain: Chain, x: torch.Tensor, baseline: torch.Tensor, target) -> torch.Tensor:
    """:func:`baseline_relevance` written with ``R`` instead of ``Q`` (for cross-checks).

    Start ``R(out) = f(x) - f(baseline)`` for the target; matmuls share by differences,
    ``R(a_i) = (a_i - a_ref_i) sum_j W_ji R(z_j) / (z_j - z_ref_j)``; nonlinearities "ignore".

    Parameters
    ----------
    chain : Chain; x : Tensor (…, N, n_in); baseline : Tensor broadcastable to x; target : as in :func:`relevance`

    Returns
    -------
    Tensor (…, N, n_in)
    """
    x, baseline = _check_chain_and_baseline(chain, x, baseline)
    tr, tr_ref = chain.trace(x), chain.trace(baseline)
    r = _start_relevance(tr.pre[-1] - tr_ref.pre[-1], target, "output")
    for l in range(len(chain.weights) - 1, -1, -1):
        dz = tr.pre[l] - tr_ref.pre[l]
        safe = torch.where(dz.abs() < 1e-12, torch.ones_like(dz), dz)
        share = torch.where(dz.abs() < 1e-12, torch.zeros_like(dz), r / safe)
        r = (tr.inputs[l] - tr_ref.inputs[l]) * torch.matmul(share, chain.weights[l])
    return r


def bias_sweep(chain: Chain, layer: int, unit: int, shifts: Sequence[float]) -> Chain:
    """Copies of ``chain`` on a new leading axis, hidden ``unit`` of linear ``layer`` having its
    bias moved by each of ``shifts`` (to drive that unit's pre-activation through 0).

    Parameters
    ----------
    chain : Chain with biases, weights (…, n_out, n_in); layer : index of a hidden linear layer
    unit : index of the unit in that layer; shifts : S numbers

    Returns
    -------
    Chain with weights (S, …, n_out, n_in)
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    if not (isinstance(layer, int) and 0 <= layer < len(chain.fns)):
        raise ValueError(f"layer must be a hidden layer index in 0..{len(chain.fns) - 1}, got {layer!r}")
    width = chain.weights[layer].shape[-2]
    if not (isinstance(unit, int) and 0 <= unit < width):
        raise ValueError(f"unit must be in 0..{width - 1}, got {unit!r}")
    if chain.biases[layer] is None:
        raise ValueError(f"chain has no bias in layer {layer} to shift")
    shifts = torch.as_tensor(np.asarray(shifts, dtype=float), dtype=chain.weights[0].dtype)
    if shifts.ndim != 1 or len(shifts) == 0:
        raise ValueError("shifts must be a non-empty 1-d sequence of numbers")
    S = len(shifts)
    weights = [w.expand(S, *w.shape) for w in chain.weights]
    biases = [None if b is None else b.expand(S, *b.shape) for b in chain.biases]
    bump = torch.zeros(S, *chain.biases[layer].shape, dtype=shifts.dtype)
    bump[..., unit] = shifts.view(S, *([1] * (chain.biases[layer].ndim - 1)))
    biases[layer] = biases[layer] + bump
    return Chain(weights, biases, chain.activations, chain.passthrough, chain.offsets)


def peak_near_zero(pre: torch.Tensor, values: torch.Tensor, width: float) -> torch.Tensor:
    """Per member, the largest ``|values|`` among points whose ``|pre| < width``.

    Parameters
    ----------
    pre, values : Tensor (S, K, N): e.g. a unit's pre-activation and a relevance ratio for
        S sweep steps, K members and N inputs
    width : float > 0

    Returns
    -------
    Tensor (K,) (NaN for a member with no point that close to 0)
    """
    pre, values = _check_tensor("pre", pre, 3), _check_tensor("values", values, 3)
    if pre.shape != values.shape:
        raise ValueError(f"pre and values must have one shape, got {tuple(pre.shape)} and {tuple(values.shape)}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    close = pre.abs() < width
    masked = torch.where(close, values.abs(), torch.full_like(values, -1.0))
    peak = masked.transpose(0, 1).reshape(values.shape[1], -1).max(-1).values
    return torch.where(peak < 0, torch.full_like(peak, float("nan")), peak)


def start_blowup(logit: torch.Tensor, ratio: torch.Tensor, *, near: float = 0.05, far: float = 1.0, fit_below: float = 0.3):
    """Per member: how much larger ``|ratio|`` is near ``logit = 0`` than far from it, and
    the log-log slope of ``|ratio|`` against ``|logit|`` for ``1e-4 < |logit| < fit_below``.

    Parameters
    ----------
    logit, ratio : Tensor (C, K, N): classes, members, inputs

    Returns
    -------
    (blowup (K,), slope (K,)) as NumPy arrays
    """
    logit, ratio = _check_tensor("logit", logit, 3), _check_tensor("ratio", ratio, 3)
    if logit.shape != ratio.shape:
        raise ValueError(f"logit and ratio must have one shape, got {tuple(logit.shape)} and {tuple(ratio.shape)}")
    blow, slopes = [], []
    for k in range(logit.shape[1]):
        z, r = logit[:, k].flatten().abs(), ratio[:, k].flatten().abs()
        if not ((z < near).any() and (z > far).any()):
            raise ValueError(f"member {k} has no logits below {near} or none above {far}")
        blow.append(float(r[z < near].median() / r[z > far].median()))
        fit = (z < fit_below) & (z > 1e-4)
        slopes.append(float(np.polyfit(np.log(z[fit].numpy()), np.log(r[fit].numpy()), 1)[0]))
    return np.array(blow), np.array(slopes)


def smallest_weighted_share(chain: Chain, x: torch.Tensor, target) -> torch.Tensor:
    """Per input, the smallest ``|s_j| / |z_j|`` over the units that pass relevance back.

    ``s_j = sum_i a_i W_ji`` is a unit's weighted input sum and ``z_j = s_j + c_j`` its
    pre-activation; the units counted are the active hidden units (``z_j > 0``, ReLU-style:
    an inactive ReLU passes nothing back) and the target output unit. A small value means
    some unit's value is almost all bias: where LRP normalised by ``s_j`` divides by almost 0.

    Parameters
    ----------
    chain : Chain with biases; x : Tensor (…, N, n_in); target : as in :func:`relevance`

    Returns
    -------
    Tensor (…, N) (``inf`` if no unit qualifies)
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    if not chain.has_bias:
        raise ValueError("chain has no biases: every share is 1")
    tr = chain.trace(x)
    out = []
    for l, (a, z) in enumerate(zip(tr.inputs, tr.pre)):
        ratio = torch.matmul(a, chain.weights[l].transpose(-1, -2)).abs() / z.abs().clamp_min(torch.finfo(z.dtype).tiny)
        if l < len(chain.fns):
            out.append(torch.where(z > 0, ratio, torch.full_like(ratio, float("inf"))).min(-1).values)
        else:
            hot = _start_relevance(z, target, "one") > 0
            out.append(torch.where(hot, ratio, torch.full_like(ratio, float("inf"))).min(-1).values)
    return torch.stack(out).min(0).values


def blowup_by_share(share: torch.Tensor, ratio: torch.Tensor, *, near: float = 0.03, far: float = 0.3) -> np.ndarray:
    """Per member: median ``ratio`` where ``share < near`` over its median where ``share > far``.

    Parameters
    ----------
    share, ratio : Tensor (K, N): e.g. :func:`smallest_weighted_share` and a relevance size
        relative to a stable reference, for K members and N inputs
    near, far : floats, 0 < near < far

    Returns
    -------
    ndarray (K,)
    """
    share, ratio = _check_tensor("share", share, 2), _check_tensor("ratio", ratio, 2)
    if share.shape != ratio.shape or share.ndim != 2:
        raise ValueError(f"share and ratio must both have shape (K, N), got {tuple(share.shape)} and {tuple(ratio.shape)}")
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near!r}, far={far!r}")
    out = []
    for k in range(share.shape[0]):
        lo, hi = share[k] < near, share[k] > far
        if not (lo.any() and hi.any()):
            raise ValueError(f"member {k} has no share below {near} or none above {far}")
        out.append(float(ratio[k][lo].median() / ratio[k][hi].median()))
    return np.array(out)
