"""Relevance methods (one rule per layer type, a start and an end), blame the bias, the
baseline variant, and small vectorised checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from nnlearn.attribution.chain import Chain
from nnlearn.attribution.rules import (
    MATMUL_RULE_FNS,
    MATMUL_RULES,
    NONLIN_RULE_FNS,
    NONLIN_RULES,
    STARTS,
    _check_eps,
    _check_tensor,
    blip,
    secant_slope,
)
from nnlearn.checks import check_choice


def _check_chain_and_baseline(chain, x, baseline):
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    x = _check_tensor("x", x)
    baseline = _check_tensor("baseline", baseline)
    if baseline.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"baseline must have last dimension {x.shape[-1]}, got shape {tuple(baseline.shape)}"
        )
    return x, baseline.expand_as(x)


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
    matmul_rule: str
    nonlin_rule: str
    start: str
    times_input: bool

    def __post_init__(self):
        check_choice("matmul_rule", self.matmul_rule, MATMUL_RULES)
        check_choice("nonlin_rule", self.nonlin_rule, NONLIN_RULES)
        check_choice("start", self.start, STARTS)


METHODS = {
    "gradient": Method("gradient", "gradient", "gradient", "one", False),
    "gradient_x_input": Method("gradient x input", "gradient", "gradient", "one", True),
    "deconvolution": Method("deconvolution (Zeiler & Fergus)", "gradient", "repeat", "one", False),
    "lrp": Method("LRP (epsilon rule)", "normalised", "ignore", "output", False),
    "lrp_q": Method("LRP rewritten in Q = R/a", "gradient", "slope", "one", True),
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
    dropped : Tensor (…, N), relevance that reached a normalised matmul unit whose
        denominator is exactly 0 and so went nowhere (0 for the gradient rule)
    """

    input: torch.Tensor
    layers: list
    dropped: torch.Tensor | None = None


def relevance(
    chain: Chain,
    x: torch.Tensor,
    target,
    method: str | Method = "lrp",
    *,
    eps: float = 0.0,
    start: str | None = None,
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
        blows up where ``s_j`` is near 0 while the bias keeps ``z_j`` away from 0). The
        conservation is exact only where no relevant unit has ``s_j = 0`` exactly (e.g. a
        whole ReLU layer off for that input); what is lost there is ``Relevance.dropped``

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
        raise TypeError(
            f"bias_in_denominator must be a bool, got {type(bias_in_denominator).__name__}"
        )
    start = method.start if start is None else start
    check_choice("start", start, STARTS)
    tr = chain.trace(x)
    r = _start_relevance(tr.pre[-1], target, start)
    layers = [(f"z{len(tr.pre) - 1}", r)]
    matmul_rule, nonlin_rule = (
        MATMUL_RULE_FNS[method.matmul_rule],
        NONLIN_RULE_FNS[method.nonlin_rule],
    )
    dropped = torch.zeros(r.shape[:-1], dtype=r.dtype)
    for l in range(len(chain.weights) - 1, -1, -1):
        pre = tr.pre[l] if bias_in_denominator else None
        if method.matmul_rule == "normalised":
            z = (
                torch.matmul(tr.inputs[l], chain.weights[l].transpose(-1, -2))
                if pre is None
                else pre
            )
            dropped = dropped + torch.where(blip(z, eps) == 0, r, torch.zeros_like(r)).sum(-1)
        r = matmul_rule(tr.inputs[l], chain.weights[l], r, pre=pre, eps=eps)
        layers.append((f"a{l}", r))
        if l > 0:
            r = nonlin_rule(tr.pre[l - 1], tr.inputs[l], r, chain.activation(l - 1))
            layers.append((f"z{l - 1}", r))
    if method.times_input:
        r = r * tr.inputs[0]
        layers[-1] = (layers[-1][0], r)
    return Relevance(r, layers, dropped)


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
    extra = [
        float(chain.activate(l, torch.zeros(chain.weights[l].shape[-2], dtype=dtype))[0])
        if chain.weights[l].shape[-2] > chain.passthrough[l]
        else 0.0
        for l in range(len(chain.fns))
    ]
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
    network carries, unchanged, to the layer that uses it. ``mode="each"`` gives every bias unit its
    own 1 (relevance per
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
    biases = [
        b if b is not None else torch.zeros(*lead, o, dtype=dtype)
        for b, o in zip(chain.biases, outs)
    ]
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
                rows.append(
                    torch.cat(
                        [
                            torch.zeros(*lead, 1, n_in, dtype=dtype),
                            torch.ones(*lead, 1, 1, dtype=dtype),
                        ],
                        -1,
                    )
                )
        else:
            top = torch.cat(
                [
                    w,
                    torch.diag_embed(b),
                    torch.zeros(*lead, n_out, carry_out, dtype=dtype),
                ],
                -1,
            )
            rows.append(top)
            if carry_out:
                eye = torch.eye(carry_out, dtype=dtype).expand(*lead, carry_out, carry_out)
                rows.append(
                    torch.cat(
                        [torch.zeros(*lead, carry_out, n_in + n_out, dtype=dtype), eye],
                        -1,
                    )
                )
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


def bias_blamed_relevance(
    chain: Chain,
    x: torch.Tensor,
    target,
    *,
    mode: str = "single",
    method: str = "lrp",
    eps: float = 0.0,
):
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


def baseline_relevance(
    chain: Chain, x: torch.Tensor, baseline: torch.Tensor, target
) -> torch.Tensor:
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
            q = q * secant_slope(
                tr.pre[l - 1], tr.inputs[l], fn, tr_ref.pre[l - 1], tr_ref.inputs[l]
            )
    return (x - baseline) * q


def target_output(chain: Chain, x: torch.Tensor, target) -> torch.Tensor:
    """The target unit's logit, shape (…, N)."""
    out = chain(x)
    return (_start_relevance(out, target, "output")).sum(-1)


# ----------------------------------------------------------------------------------------
# Checks (small, vectorised)
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
