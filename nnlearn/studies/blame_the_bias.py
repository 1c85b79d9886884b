"""The blame-the-bias chapter's own pieces (book/blame-the-bias.md).

The general attribution library (rules, :class:`~nnlearn.attribution.Chain`, LRP, gradient x
input, blame-the-bias, the baseline variant) is :mod:`nnlearn.attribution`. This module holds
what only the chapter uses: the source's maximum rules and its consistency checks, the
independent autograd implementations the chapter cross-checks against, the blow-up analyses,
and the alignment (cue and relevance penalty) experiment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nnlearn.attribution import (
    MATMUL_RULE_FNS,
    MATMUL_RULES,
    NONLIN_RULE_FNS,
    NONLIN_RULES,
    Chain,
    _check_chain_and_baseline,
    _check_eps,
    _check_tensor,
    _expand_to_members,
    _start_relevance,
    augment_with_ones,
    blame_the_bias,
    blip,
    input_gradient,
    matmul_gradient,
    matmul_normalised,
    max_relative_gap,
    nonlin_ignore,
    nonlin_slope,
    relevance,
    secant_slope,
)
from nnlearn.checks import check_choice
from nnlearn.models import activation_fn
from nnlearn.seeding import make_generator

MAX_RULES = ("gradient", "radial")


def _tensor(name: str, value, min_ndim: int = 1, *, allow_inf: bool = False) -> torch.Tensor:
    """A non-empty floating tensor without NaN (and without inf unless ``allow_inf``)."""
    value = _check_tensor(name, value, min_ndim)
    if value.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    bad = torch.isnan(value) if allow_inf else ~torch.isfinite(value)
    if bad.any():
        raise ValueError(f"{name} must be finite (no NaN{'' if allow_inf else ' or inf'})")
    return value


def _number(name: str, value, *, low=None, high=None, strict: bool = False) -> float:
    """A finite real number, optionally >= low (> low if ``strict``) and <= high."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def _count(name: str, value, low: int = 1) -> int:
    """An int >= ``low`` (bools and floats rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


# ----------------------------------------------------------------------------------------
# The source's maximum rules (b = max_i a_i)
# ----------------------------------------------------------------------------------------


def _check_max_inputs(a, relevance_out):
    a = _tensor("a", a)
    relevance_out = _tensor("relevance_out", relevance_out, 0)
    if relevance_out.shape != a.shape[:-1]:
        raise ValueError(
            f"relevance_out must have shape {tuple(a.shape[:-1])}, got {tuple(relevance_out.shape)}"
        )
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
    a = _tensor("a", a)
    pos = torch.relu(a)
    any_pos = (a > 0).any(-1, keepdim=True)
    zeros = (a == 0).to(a.dtype)
    any_zero = zeros.sum(-1, keepdim=True) > 0
    inv = 1.0 / torch.where(
        a < 0, a, -torch.ones_like(a)
    )  # finite everywhere; used only when all < 0
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


MAX_RULE_FNS = {"gradient": max_gradient, "radial": max_radial}


# ----------------------------------------------------------------------------------------
# The source's consistency checks, and independent implementations to check against
# ----------------------------------------------------------------------------------------


def rewrite_checks(n_points: int = 1000, seed: int = 0, dtype=torch.float32) -> dict[str, float]:
    """Each R-form rule, divided by its input, against the Q-form rule it should become.

    Returns ``{check: max relative gap}`` for: max gradient -> max gradient; normalised matmul
    (eps = 0) -> gradient matmul; ignore -> slope (for tanh, leaky ReLU and ELU).
    """
    n_points = _count("n_points", n_points)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    g = make_generator(seed)
    a = torch.randn(n_points, 6, generator=g, dtype=dtype)
    r_b = torch.randn(n_points, generator=g, dtype=dtype)
    out = {}
    b = a.max(-1).values
    out["max: gradient -> gradient"] = max_relative_gap(
        max_gradient(a, r_b) / a, max_gradient(a, r_b / b)
    )
    w = torch.randn(4, 6, generator=g, dtype=dtype)
    r_b4 = torch.randn(n_points, 4, generator=g, dtype=dtype)
    z = a @ w.T
    out["matmul: normalised (eps=0) -> gradient"] = max_relative_gap(
        matmul_normalised(a, w, r_b4) / a, matmul_gradient(a, w, r_b4 / z)
    )
    for name in ("tanh", "leaky_relu", "elu"):
        fn = activation_fn(name)
        post = fn(a)
        r_post = torch.randn(a.shape, generator=g, dtype=dtype)
        q_via_r = nonlin_ignore(a, post, r_post) / a
        q_via_q = nonlin_slope(a, post, r_post / post, fn)
        out[f"nonlinearity ({name}): ignore -> slope"] = max_relative_gap(q_via_r, q_via_q)
    return out


def scaling_equivalence(
    alphas: Sequence[float] = (-2.0, -0.5, 0.3, 3.0), n_points: int = 200, seed: int = 0
) -> dict:
    """Multiplying by a constant alpha, seen as a matmul (alpha * I) or as f(a) = alpha * a.

    Returns
    -------
    dict ``{(matmul rule, nonlinearity rule): bool}``: True where the two rules give the same
    R(a) for every alpha and random a, R(b) (all relative gaps < 1e-5); plus
    ``"exponent"``: ``{rule: k}`` with R(a) = alpha^k R(b) for the matmul rules.
    """
    n_points = _count("n_points", n_points)
    if isinstance(alphas, (str, bytes)) or not isinstance(alphas, Sequence) or not alphas:
        raise TypeError("alphas must be a non-empty sequence of numbers")
    alphas = [_number("alphas", al) for al in alphas]
    if any(al == 0 for al in alphas):
        raise ValueError("alphas must be non-zero")
    g = make_generator(seed)
    a = torch.randn(n_points, 3, generator=g, dtype=torch.float64)
    r_b = torch.randn(n_points, 3, generator=g, dtype=torch.float64)
    agree = {(m, n): True for m in MATMUL_RULES for n in NONLIN_RULES}
    exps = {}
    for alpha in alphas:
        w = alpha * torch.eye(3, dtype=torch.float64)
        fn = lambda t, al=alpha: al * t
        b = fn(a)
        for m in MATMUL_RULES:
            r_m = MATMUL_RULE_FNS[m](a, w, r_b)
            k = (
                1
                if max_relative_gap(r_m, alpha * r_b) < 1e-9
                else 0
                if max_relative_gap(r_m, r_b) < 1e-9
                else None
            )
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
    n_points = _count("n_points", n_points)
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
        res[f"gradient max = gradient nonlinearity ({label})"] = float(
            ((grad_max - fn_grad).abs() < 1e-9)[sel].double().mean()
        )
        res[f"radial max = slope nonlinearity ({label})"] = float(
            ((radial - fn_slope).abs() < 1e-9)[sel].double().mean()
        )
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

    def pair(name, v):
        if isinstance(v, (str, bytes)) or not isinstance(v, (Sequence, np.ndarray, torch.Tensor)):
            raise TypeError(f"{name} must be a sequence of two numbers, got {type(v).__name__}")
        v = [_number(name, float(t) if isinstance(t, torch.Tensor) else t) for t in v]
        if len(v) != 2:
            raise ValueError("x and baseline must each hold two numbers")
        return torch.tensor(v, dtype=torch.float64)

    x = pair("x", x)
    ref = torch.zeros(2, dtype=torch.float64) if baseline is None else pair("baseline", baseline)
    if isinstance(softness, (str, bytes)) or not isinstance(softness, Sequence) or not softness:
        raise TypeError("softness must be a non-empty sequence of numbers")
    soft = []
    for s in softness:
        s = _number("softness", s, low=0, strict=True)
        # q(log) * q(sum) * q(exp) * q(scale), each a secant slope between x and the baseline
        e, e_ref = torch.exp(x / s), torch.exp(ref / s)
        if not (torch.isfinite(e).all() and torch.isfinite(e_ref).all()):
            raise ValueError(f"softness {s} is too small for x and baseline: exp overflows")
        tot, tot_ref = e.sum(), e_ref.sum()
        log_slope = (
            (s * tot.log() - s * tot_ref.log()) / (tot - tot_ref)
            if (tot - tot_ref).abs() > 1e-300
            else s / tot
        )
        exp_slope = secant_slope(x / s, e, torch.exp, ref / s, e_ref)
        q = log_slope * exp_slope / s
        soft.append(((x - ref) * q).numpy())
    # a + relu(b - a): Q(a) = 1 - q_relu, Q(b) = q_relu
    d, d_ref = x[1] - x[0], ref[1] - ref[0]
    q_relu = secant_slope(
        d.view(1), torch.relu(d).view(1), torch.relu, d_ref.view(1), torch.relu(d_ref).view(1)
    )[0]
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


def reference_relevance(
    chain: Chain, x: torch.Tensor, target, method: str, *, eps: float = 0.0
) -> torch.Tensor:
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
    _check_chain(chain)
    check_choice("method", method, ("gradient", "gradient_x_input", "lrp", "deconvolution"))
    eps = _check_eps(eps)
    if any(a != "relu" for a in chain.activations) or any(chain.passthrough):
        raise ValueError("reference_relevance supports plain ReLU chains only")
    x = _expand_to_members(chain, _tensor("x", x))
    if method in ("gradient", "gradient_x_input"):
        g = input_gradient(chain, x, target)
        return g * x if method == "gradient_x_input" else g
    if method == "deconvolution":
        xg = x.detach().clone().requires_grad_(True)
        h = xg
        for l, (w, b) in enumerate(zip(chain.weights, chain.biases)):
            h = torch.matmul(h, w.detach().transpose(-1, -2)) + (
                0 if b is None else b.detach().unsqueeze(-2)
            )
            if l < len(chain.activations):
                h = _ReluRepeat.apply(h)
        (grad,) = torch.autograd.grad((h * _start_relevance(h, target, "one")).sum(), xg)
        return grad
    tr = chain.trace(x.detach())
    r = _start_relevance(tr.pre[-1], target, "output").detach()
    for l in range(len(chain.weights) - 1, -1, -1):
        a = tr.inputs[l].detach().clone().requires_grad_(True)
        b = chain.biases[l]
        z = torch.matmul(a, chain.weights[l].detach().transpose(-1, -2)) + (
            0 if b is None else b.detach().unsqueeze(-2)
        )
        s = (r / blip(z, eps)).detach()
        (c,) = torch.autograd.grad((z * s).sum(), a)
        r = (a * c).detach()
    return r


def baseline_relevance_rform(
    chain: Chain, x: torch.Tensor, baseline: torch.Tensor, target
) -> torch.Tensor:
    """:func:`baseline_relevance` written with ``R`` instead of ``Q`` (for cross-checks).

    Start ``R(out) = f(x) - f(baseline)`` for the target; matmuls share by differences,
    ``R(a_i) = (a_i - a_ref_i) sum_j W_ji R(z_j) / (z_j - z_ref_j)``; nonlinearities "ignore".

    Parameters
    ----------
    chain : Chain; x : Tensor (…, N, n_in); baseline : Tensor broadcastable to x; target : as in
    :func:`relevance`

    Returns
    -------
    Tensor (…, N, n_in)
    """
    _check_chain(chain)
    x, baseline = _check_chain_and_baseline(chain, _tensor("x", x), _tensor("baseline", baseline))
    tr, tr_ref = chain.trace(x), chain.trace(baseline)
    r = _start_relevance(tr.pre[-1] - tr_ref.pre[-1], target, "output")
    for l in range(len(chain.weights) - 1, -1, -1):
        dz = tr.pre[l] - tr_ref.pre[l]
        safe = torch.where(dz.abs() < 1e-12, torch.ones_like(dz), dz)
        share = torch.where(dz.abs() < 1e-12, torch.zeros_like(dz), r / safe)
        r = (tr.inputs[l] - tr_ref.inputs[l]) * torch.matmul(share, chain.weights[l])
    return r


# ----------------------------------------------------------------------------------------
# Where LRP blows up
# ----------------------------------------------------------------------------------------


def start_sensitivity(
    chain: Chain, x: torch.Tensor, *, eps: float = 0.0, start: str = "probability"
) -> dict[str, torch.Tensor]:
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
    _check_chain(chain)
    eps = _check_eps(eps)
    check_choice("start", start, ("one", "output", "probability"))
    x = _tensor("x", x)
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
    if isinstance(layer, bool) or not (isinstance(layer, int) and 0 <= layer < len(chain.fns)):
        raise ValueError(
            f"layer must be a hidden layer index in 0..{len(chain.fns) - 1}, got {layer!r}"
        )
    width = chain.weights[layer].shape[-2]
    if isinstance(unit, bool) or not (isinstance(unit, int) and 0 <= unit < width):
        raise ValueError(f"unit must be in 0..{width - 1}, got {unit!r}")
    if chain.biases[layer] is None:
        raise ValueError(f"chain has no bias in layer {layer} to shift")
    if isinstance(shifts, (str, bytes)) or not isinstance(shifts, (Sequence, np.ndarray)):
        raise TypeError(f"shifts must be a sequence of numbers, got {type(shifts).__name__}")
    try:
        shifts = np.asarray(shifts, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("shifts must be a sequence of numbers") from None
    if shifts.ndim != 1 or len(shifts) == 0:
        raise ValueError("shifts must be a non-empty 1-d sequence of numbers")
    if not np.isfinite(shifts).all():
        raise ValueError("shifts must be finite")
    shifts = torch.as_tensor(shifts, dtype=chain.weights[0].dtype)
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
    pre, values = _tensor("pre", pre, 3), _tensor("values", values, 3)
    if pre.shape != values.shape:
        raise ValueError(
            f"pre and values must have one shape, got {tuple(pre.shape)} and {tuple(values.shape)}"
        )
    width = _number("width", width, low=0, strict=True)
    close = pre.abs() < width
    masked = torch.where(close, values.abs(), torch.full_like(values, -1.0))
    peak = masked.transpose(0, 1).reshape(values.shape[1], -1).max(-1).values
    return torch.where(peak < 0, torch.full_like(peak, float("nan")), peak)


def start_blowup(
    logit: torch.Tensor,
    ratio: torch.Tensor,
    *,
    near: float = 0.05,
    far: float = 1.0,
    fit_below: float = 0.3,
):
    """Per member: how much larger ``|ratio|`` is near ``logit = 0`` than far from it, and
    the log-log slope of ``|ratio|`` against ``|logit|`` for ``1e-4 < |logit| < fit_below``.

    Parameters
    ----------
    logit, ratio : Tensor (C, K, N): classes, members, inputs

    Returns
    -------
    (blowup (K,), slope (K,)) as NumPy arrays
    """
    logit, ratio = _tensor("logit", logit, 3), _tensor("ratio", ratio, 3)
    near = _number("near", near, low=0, strict=True)
    far = _number("far", far, low=0, strict=True)
    fit_below = _number("fit_below", fit_below, low=1e-4, strict=True)
    if logit.shape != ratio.shape:
        raise ValueError(
            f"logit and ratio must have one shape, got {tuple(logit.shape)} and "
            f"{tuple(ratio.shape)}"
        )
    blow, slopes = [], []
    for k in range(logit.shape[1]):
        z, r = logit[:, k].flatten().abs(), ratio[:, k].flatten().abs()
        if not ((z < near).any() and (z > far).any()):
            raise ValueError(f"member {k} has no logits below {near} or none above {far}")
        blow.append(float(r[z < near].median() / r[z > far].median()))
        fit = (z < fit_below) & (z > 1e-4) & (r > 0)
        if int(fit.sum()) < 2:
            raise ValueError(
                f"member {k} has fewer than 2 positive points with "
                f"1e-4 < |logit| < {fit_below} to fit a slope"
            )
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
    tr = chain.trace(_tensor("x", x))
    out = []
    for l, (a, z) in enumerate(zip(tr.inputs, tr.pre)):
        ratio = torch.matmul(a, chain.weights[l].transpose(-1, -2)).abs() / z.abs().clamp_min(
            torch.finfo(z.dtype).tiny
        )
        if l < len(chain.fns):
            out.append(
                torch.where(z > 0, ratio, torch.full_like(ratio, float("inf"))).min(-1).values
            )
        else:
            hot = _start_relevance(z, target, "one") > 0
            out.append(torch.where(hot, ratio, torch.full_like(ratio, float("inf"))).min(-1).values)
    return torch.stack(out).min(0).values


def blowup_by_share(
    share: torch.Tensor, ratio: torch.Tensor, *, near: float = 0.03, far: float = 0.3
) -> np.ndarray:
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
    share = _tensor("share", share, 2, allow_inf=True)
    ratio = _tensor("ratio", ratio, 2)
    near, far = _number("near", near), _number("far", far)
    if share.shape != ratio.shape or share.ndim != 2:
        raise ValueError(
            f"share and ratio must both have shape (K, N), got {tuple(share.shape)} and "
            f"{tuple(ratio.shape)}"
        )
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near!r}, far={far!r}")
    out = []
    for k in range(share.shape[0]):
        lo, hi = share[k] < near, share[k] > far
        if not (lo.any() and hi.any()):
            raise ValueError(f"member {k} has no share below {near} or none above {far}")
        out.append(float(ratio[k][lo].median() / ratio[k][hi].median()))
    return np.array(out)


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
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or not 1 <= n_classes <= 10:
        raise ValueError(f"n_classes must be an int in 1..10, got {n_classes!r}")
    side, size = _count("side", side, 12), _count("size", size)
    if 2 * 4 + size > side or 2 + 5 * 4 + size > side:
        raise ValueError(f"size {size} squares do not fit a {side} x {side} image")
    pats = torch.zeros(n_classes, side, side)
    for c in range(n_classes):
        row, col = 2 * (c // 5), 2 + 5 * (c % 5)
        pats[c, row : row + size, col : col + size] = 1.0
    return pats.reshape(n_classes, -1)


def cue_mask(side: int = IMAGE_SIDE, rows: int = CUE_ROWS) -> torch.Tensor:
    """Bool (side * side,): True in the top ``rows`` rows, where the cue lives (outside the marked
    region).
    """
    side, rows = _count("side", side), _count("rows", rows)
    if rows > side:
        raise ValueError(f"rows must be at most side ({side}), got {rows}")
    m = torch.zeros(side, side, dtype=torch.bool)
    m[:rows] = True
    return m.reshape(-1)


def spread_cue_mask(side: int = IMAGE_SIDE, step: int = 2) -> torch.Tensor:
    """Bool (side * side,): True on the grid of pixels whose row and column are multiples of
    ``step``, spread over the whole image (digit included), where the spread cue lives."""
    side, step = _count("side", side), _count("step", step, 2)
    if step >= side:
        raise ValueError(f"step must be below side ({side}), got {step}")
    m = torch.zeros(side, side, dtype=torch.bool)
    m[::step, ::step] = True
    return m.reshape(-1)


def spread_cue_patterns(
    n_classes: int = 10,
    side: int = IMAGE_SIDE,
    step: int = 2,
    intensity: float = 0.3,
    seed: int = 0,
) -> torch.Tensor:
    """One faint label-coding pattern per class, spread over the whole image: class c lights
    a random half (drawn from ``seed``) of the :func:`spread_cue_mask` grid at ``intensity``.

    Drawn in by :func:`add_cue` (a pixel-wise maximum), so on the digit's ink the cue is
    hidden and a region penalty on the grid also covers part of the digit.

    Returns
    -------
    Tensor (n_classes, side * side) of 0s and ``intensity``
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or not 1 <= n_classes <= 10:
        raise ValueError(f"n_classes must be an int in 1..10, got {n_classes!r}")
    grid = spread_cue_mask(side, step)
    intensity = _number("intensity", intensity, low=0, high=1, strict=True)
    on = torch.rand(n_classes, int(grid.sum()), generator=make_generator(seed)) < 0.5
    pats = torch.zeros(n_classes, grid.numel())
    pats[:, grid] = on.float() * intensity
    return pats


def add_cue(
    X: torch.Tensor, cue_class: torch.Tensor, patterns: torch.Tensor | None = None
) -> torch.Tensor:
    """Images with class ``cue_class``'s square drawn in (``-1``: no cue).

    Parameters
    ----------
    X : Tensor (..., N, 784) in [0, 1]; cue_class : LongTensor (..., N)

    Returns
    -------
    Tensor shaped like X
    """
    X = _tensor("X", X)
    patterns = cue_patterns() if patterns is None else _tensor("patterns", patterns, 2)
    if patterns.ndim != 2 or patterns.shape[-1] != X.shape[-1]:
        raise ValueError(
            f"patterns must have shape (n_classes, {X.shape[-1]}), got {tuple(patterns.shape)}"
        )
    if (
        not isinstance(cue_class, torch.Tensor)
        or cue_class.is_floating_point()
        or cue_class.dtype == torch.bool
    ):
        raise TypeError("cue_class must be an integer Tensor (class index, or -1 for no cue)")
    if cue_class.shape != X.shape[:-1]:
        raise ValueError(
            f"cue_class must have shape {tuple(X.shape[:-1])}, got {tuple(cue_class.shape)}"
        )
    if (cue_class < -1).any() or (cue_class >= len(patterns)).any():
        raise ValueError(
            f"cue_class must hold -1 (no cue) or class indices in 0..{len(patterns) - 1}"
        )
    on = (cue_class >= 0).to(X.dtype).unsqueeze(-1)
    return torch.maximum(X, on * patterns[cue_class.clamp(min=0)])


def outside_share(
    input_relevance: torch.Tensor, outside: torch.Tensor, floor: float = 1e-6, signed: bool = False
) -> torch.Tensor:
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
    input_relevance = _tensor("input_relevance", input_relevance)
    if (
        not isinstance(outside, torch.Tensor)
        or outside.dtype != torch.bool
        or outside.shape != input_relevance.shape[-1:]
    ):
        raise ValueError(
            f"outside must be a bool Tensor of shape {tuple(input_relevance.shape[-1:])}"
        )
    floor = _number("floor", floor, low=0, strict=True)
    signed = _flag("signed", signed)
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
    patterns: torch.Tensor | None = None,
) -> PenaltyRun:
    """Train K stacked networks at once, member k minimising CE + penalty[k] * outside share.

    Member k sees the images with its label's cue drawn in when ``cue_on[k]`` (perfectly
    predictive cue) and the plain images otherwise; its mini-batch order is its own (drawn
    from ``seed + k``). The relevance is ``method``'s input relevance of the true class,
    computed by the explicit rules, so the penalty is differentiable.

    Parameters
    ----------
    params : name -> leaf Tensor (K, ...) requiring grad (e.g. ``Ensemble.params``), updated in
    place
    X : Tensor (N, 784); y : LongTensor (N,)
    cue_on : bool Tensor (K,); penalty : Tensor (K,) >= 0; outside : bool Tensor (784,)
    signed : bool Tensor (K,), optional: members whose penalty uses the signed share
    patterns : Tensor (10, 784), optional: the cue per class (default :func:`cue_patterns`)

    Returns
    -------
    PenaltyRun
    """
    X = _tensor("X", X, 2)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != X.shape[:1]:
        raise ValueError(f"y must be an integer Tensor of shape ({X.shape[0]},)")
    if (y < 0).any() or (y > 9).any():
        raise ValueError("y must hold class indices in 0..9")
    if (
        not isinstance(params, Mapping)
        or not params
        or not all(isinstance(v, torch.Tensor) and v.ndim >= 2 for v in params.values())
    ):
        raise TypeError("params must be a non-empty mapping name -> Tensor (K, ...)")
    K = next(iter(params.values())).shape[0]
    for name, v in (("cue_on", cue_on), ("penalty", penalty)):
        if not isinstance(v, torch.Tensor) or v.shape != (K,):
            raise ValueError(f"{name} must be a Tensor of shape ({K},) (one per member)")
    if cue_on.dtype != torch.bool:
        raise TypeError(f"cue_on must be a bool Tensor, got {cue_on.dtype}")
    _tensor("penalty", penalty)
    signed = torch.zeros(K, dtype=torch.bool) if signed is None else signed
    if not isinstance(signed, torch.Tensor) or signed.shape != (K,) or signed.dtype != torch.bool:
        raise ValueError(f"signed must be a bool Tensor of shape ({K},)")
    if (penalty < 0).any():
        raise ValueError("penalty must be >= 0")
    epochs, batch_size = _count("epochs", epochs), _count("batch_size", batch_size)
    if batch_size > len(X):
        raise ValueError(
            f"batch_size must be at most the number of digits ({len(X)}), got {batch_size}"
        )
    if patterns is not None:
        patterns = _tensor("patterns", patterns, 2)
        if patterns.shape != (10, X.shape[1]):
            raise ValueError(
                f"patterns must have shape (10, {X.shape[1]}), got {tuple(patterns.shape)}"
            )
    lr = _number("lr", lr, low=0, strict=True)
    check_choice(
        "method", method, ("gradient", "gradient_x_input", "deconvolution", "lrp", "lrp_q")
    )
    make_generator(seed)  # checks seed
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
            xb = add_cue(X[idx], torch.where(cue_on.unsqueeze(1), yb, no_cue), patterns)
            chain = Chain.from_params(params, activations)
            rel = relevance(chain, xb, yb, method)
            logits = chain(xb)
            ce = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").mean(1)  # (K,)
            share = torch.where(
                signed,
                outside_share(rel.input, outside, signed=True).mean(1),
                outside_share(rel.input, outside).mean(1),
            )
            opt.zero_grad()
            (ce + penalty * share).sum().backward()
            opt.step()
        losses.append(ce.detach().numpy().copy())
        shares.append(share.detach().numpy().copy())
    return PenaltyRun(np.array(losses), np.array(shares))


# ----------------------------------------------------------------------------------------
# Helpers for the chapter's claims (re-judged under nnlearn.claims)
# ----------------------------------------------------------------------------------------


def _finite(name: str, t: torch.Tensor) -> torch.Tensor:
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return t


def _check_chain(chain) -> Chain:
    if not isinstance(chain, Chain):
        raise TypeError(f"chain must be a Chain, got {type(chain).__name__}")
    return chain


def _int_list(name: str, values, low: int = 0) -> list[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{name} must be a non-empty sequence of ints")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {type(v).__name__}")
        if v < low:
            raise ValueError(f"{name} must hold ints >= {low}, got {v}")
        out.append(int(v))
    return out


def geometric_ci(ratios, confidence: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean of positive ``ratios`` with a t-interval computed on their logarithms:
    ``(value, lo, hi)``, the evidence form of the interval rules (never below 0).

    ratios : 1-d array-like of positive finite numbers, at least 2
    """
    from nnlearn.stats import mean_ci

    if isinstance(ratios, (str, bytes)) or ratios is None:
        raise TypeError(f"ratios must be a sequence of numbers, got {type(ratios).__name__}")
    try:
        v = np.asarray(ratios, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("ratios must be a sequence of numbers") from None
    if v.ndim != 1 or v.size < 2:
        raise ValueError(
            f"ratios must be a 1-d sequence of at least 2 numbers, got shape {v.shape}"
        )
    if not np.isfinite(v).all() or (v <= 0).any():
        raise ValueError("ratios must be positive and finite")
    e = mean_ci(np.log(v), confidence)
    return float(np.exp(e.value)), float(np.exp(e.lo)), float(np.exp(e.hi))


def relevance_size(input_relevance: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``sum_i |R(x_i)| / |z|``: how large an explanation is per unit of what it explains.

    input_relevance : Tensor (..., N, n_in); output : Tensor (..., N), e.g. the explained logit
    """
    input_relevance = _tensor("input_relevance", input_relevance)
    output = _tensor("output", output, 0)
    if output.shape != input_relevance.shape[:-1]:
        raise ValueError(
            f"output must have shape {tuple(input_relevance.shape[:-1])}, got {tuple(output.shape)}"
        )
    return input_relevance.abs().sum(-1) / output.abs().clamp_min(torch.finfo(output.dtype).tiny)


def layers_off(chain: Chain, x: torch.Tensor) -> torch.Tensor:
    """Bool (..., N): True where some hidden layer's activations are all exactly 0 for that
    input (then LRP normalised without the bias drops the relevance above it)."""
    _check_chain(chain)
    x = _finite("x", _check_tensor("x", x))
    tr = chain.trace(x)
    off = [(h == 0).all(-1) for h in tr.inputs[1:]]
    return torch.stack(off).any(0) if off else torch.zeros(x.shape[:-1], dtype=torch.bool)


def deletion_auc(chain: Chain, x: torch.Tensor, target, scores: torch.Tensor, ks) -> np.ndarray:
    """Pixel flipping: set the ``k`` highest-scored inputs to 0 for each ``k`` in ``ks`` and
    average the target logit over the curve, relative to the intact logit.

    Parameters
    ----------
    chain : Chain with K members; x : Tensor (K, N, n_in) or (N, n_in)
    target : int or integer Tensor (N,) / (K, N)
    scores : Tensor (K, N, n_in), e.g. a relevance map per member
    ks : non-empty sequence of ints in 0..n_in

    Returns
    -------
    ndarray (K,): ``mean_{k, n} z_k(n) / mean_n z_0(n)`` (lower: the ordering removes evidence
    faster)
    """
    from nnlearn.attribution import target_output

    _check_chain(chain)
    x = _finite("x", _expand_to_members(chain, _check_tensor("x", x)))
    scores = _finite("scores", _check_tensor("scores", scores))
    if scores.shape != x.shape or x.ndim != 3:
        raise ValueError(
            f"scores must have shape {tuple(x.shape)} (K, N, n_in), got {tuple(scores.shape)}"
        )
    ks = _int_list("ks", ks)
    if max(ks) > x.shape[-1]:
        raise ValueError(f"ks must hold ints in 0..{x.shape[-1]}, got {max(ks)}")
    order = scores.argsort(-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(x.shape[-1]).expand_as(order).contiguous())
    z0 = target_output(chain, x, target).mean(-1)
    curve = [
        target_output(chain, torch.where(rank < k, torch.zeros_like(x), x), target).mean(-1)
        for k in ks
    ]
    return (torch.stack(curve).mean(0) / z0).detach().numpy()


def bias_deletion_auc(
    chain: Chain, x: torch.Tensor, target, bias_scores: torch.Tensor, ks
) -> np.ndarray:
    """Like :func:`deletion_auc`, but zeroing each input's ``k`` highest-scored *biases*
    (every hidden and output bias unit, in :func:`~nnlearn.attribution.blame_the_bias`'s
    "each" order) instead of pixels.

    chain : ReLU-free of pass-through units, K members; x : Tensor (K, N, n_in) or (N, n_in)
    bias_scores : Tensor (K, N, n_biases); ks : ints in 0..n_biases
    """
    from nnlearn.attribution import _start_relevance

    _check_chain(chain)
    if any(b is None for b in chain.biases) or any(chain.passthrough):
        raise ValueError("chain must have a bias in every layer and no pass-through units")
    x = _finite("x", _expand_to_members(chain, _check_tensor("x", x)))
    sizes = [b.shape[-1] for b in chain.biases]
    bias_scores = _finite("bias_scores", _check_tensor("bias_scores", bias_scores))
    if x.ndim != 3 or bias_scores.shape != (*x.shape[:-1], sum(sizes)):
        raise ValueError(
            f"bias_scores must have shape {(*x.shape[:-1], sum(sizes))}, "
            f"got {tuple(bias_scores.shape)}"
        )
    ks = _int_list("ks", ks)
    if max(ks) > sum(sizes):
        raise ValueError(f"ks must hold ints in 0..{sum(sizes)}, got {max(ks)}")
    order = bias_scores.argsort(-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(sum(sizes)).expand_as(order).contiguous())

    def logit(keep):
        h, start = x, 0
        for l, (w, b) in enumerate(zip(chain.weights, chain.biases)):
            kb = keep[..., start : start + sizes[l]]
            h = torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2) * kb
            start += sizes[l]
            if l < len(chain.fns):
                h = chain.activate(l, h)
        return (_start_relevance(h, target, "output")).sum(-1).mean(-1)

    curve = [logit((rank >= k).to(x.dtype)) for k in ks]
    return (torch.stack(curve).mean(0) / logit(torch.ones_like(bias_scores))).detach().numpy()


def shapley_max2(x: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """Exact Shapley values of ``max(a, b)`` for the players a and b, absent players at the
    baseline: ``phi_a = (f(a, b') - f(a', b') + f(a, b) - f(a', b)) / 2``.

    x, baseline : Tensor (..., 2); returns Tensor (..., 2) summing to max(x) - max(baseline)
    """
    x, baseline = (
        _finite("x", _check_tensor("x", x)),
        _finite("baseline", _check_tensor("baseline", baseline)),
    )
    if x.shape[-1] != 2 or baseline.shape != x.shape:
        raise ValueError(
            f"x and baseline must have one shape (..., 2), got {tuple(x.shape)} "
            f"and {tuple(baseline.shape)}"
        )
    a, b, a0, b0 = x[..., 0], x[..., 1], baseline[..., 0], baseline[..., 1]
    m = torch.maximum
    phi_a = (m(a, b0) - m(a0, b0) + m(a, b) - m(a0, b)) / 2
    phi_b = (m(a0, b) - m(a0, b0) + m(a, b) - m(a, b0)) / 2
    return torch.stack([phi_a, phi_b], -1)


def max_constructions(
    n_pairs: int = 400, seed: int = 0, softness: float = 0.01, tol: float = 0.01
) -> dict[str, np.ndarray]:
    """The two constructions of a maximum (:func:`max_two_ways`) and the exact Shapley values
    on ``n_pairs`` random (x, baseline) pairs in [-3, 3]^2.

    Returns bool arrays (n_pairs,): ``differ`` (the constructions disagree by more than
    ``tol`` times |max(x) - max(baseline)|, plus 1e-9), ``soft_is_shapley``, ``relu_is_shapley``
    (the same tolerance against :func:`shapley_max2`).
    """
    n_pairs = _count("n_pairs", n_pairs)
    softness = _number("softness", softness, low=0, strict=True)
    tol = _number("tol", tol, low=0, strict=True)
    g = make_generator(seed)
    pts = (torch.rand(n_pairs, 2, 2, generator=g, dtype=torch.float64) * 6 - 3).numpy()
    out = {"differ": [], "soft_is_shapley": [], "relu_is_shapley": []}
    for xv, base in pts:
        res = max_two_ways(xv.tolist(), base.tolist(), (float(softness),))
        phi = shapley_max2(torch.tensor(xv), torch.tensor(base)).numpy()
        scale = tol * abs(res["total"]) + 1e-9
        out["differ"].append(np.abs(res["soft"][-1] - res["relu_form"]).max() > scale)
        out["soft_is_shapley"].append(np.abs(res["soft"][-1] - phi).max() <= scale)
        out["relu_is_shapley"].append(np.abs(res["relu_form"] - phi).max() <= scale)
    return {k: np.array(v) for k, v in out.items()}


def duplicate_argument(n_points: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """``max(a, c) = max(a, c, c)``: does a rule give ``a`` the same relevance both ways?

    Random all-negative (a, c) (the radial rule's only non-trivial case) and random
    mixed-sign ones. Returns bool arrays (n_points,): ``radial_same_neg``,
    ``radial_same_mixed``, ``gradient_same`` (relevance of a agrees within 1e-12).
    """
    n_points = _count("n_points", n_points)
    g = make_generator(seed)
    neg = -torch.rand(n_points, 2, generator=g, dtype=torch.float64) * 3 - 1e-3
    mixed = torch.randn(n_points, 2, generator=g, dtype=torch.float64)
    one = torch.ones(n_points, dtype=torch.float64)

    def same(rule, ac):
        aac = torch.cat([ac, ac[:, 1:]], -1)
        return ((rule(ac, one)[:, 0] - rule(aac, one)[:, 0]).abs() < 1e-12).numpy()

    return {
        "radial_same_neg": same(max_radial, neg),
        "radial_same_mixed": same(max_radial, mixed),
        "gradient_same": same(max_gradient, mixed),
    }


def paired_alignment(
    acc_matching, reliance, share, base: int, cond: int, *, drop: float = 0.05, reference=None
) -> dict[str, np.ndarray]:
    """Per seed, how condition ``cond`` compares with the unpenalised condition ``base``
    (the same seed's initialisation):

    ``metric_fixed``: its penalised share is below half the unpenalised one;
    ``cheats``: its cue reliance is above half the unpenalised one;
    ``works``: its accuracy on digits with their own cue is at least the unpenalised
    network's ``reference`` accuracy minus ``drop`` (``reference`` defaults to
    ``acc_matching``; pass the cue-free accuracies to ask "does it still classify as well as
    the unpenalised net does without the cue"); ``gamed`` = metric_fixed & cheats & works
    (the metric is met by a network that still uses the cue); ``broken`` = metric_fixed &
    not works; ``fixed`` = metric_fixed & not cheats & works.

    acc_matching, reliance, share, reference : arrays (conditions, seeds)
    """
    reference = acc_matching if reference is None else reference
    arrs = []
    for name, v in (
        ("acc_matching", acc_matching),
        ("reliance", reliance),
        ("share", share),
        ("reference", reference),
    ):
        a = np.asarray(v, dtype=float)
        if a.ndim != 2 or a.size == 0 or not np.isfinite(a).all():
            raise ValueError(f"{name} must be a finite 2-d array (conditions, seeds)")
        arrs.append(a)
    if not arrs[0].shape == arrs[1].shape == arrs[2].shape == arrs[3].shape:
        raise ValueError("acc_matching, reliance, share and reference must have one shape")
    n = arrs[0].shape[0]
    for name, i in (("base", base), ("cond", cond)):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
            raise ValueError(f"{name} must be a condition index in 0..{n - 1}, got {i!r}")
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop <= 1:
        raise ValueError(f"drop must be a number in [0, 1], got {drop!r}")
    acc, rel, sh, ref = arrs
    met = sh[cond] < 0.5 * sh[base]
    cheats = rel[cond] > 0.5 * rel[base]
    works = acc[cond] >= ref[base] - drop
    return {
        "metric_fixed": met,
        "cheats": cheats,
        "works": works,
        "gamed": met & cheats & works,
        "broken": met & ~works,
        "fixed": met & ~cheats & works,
    }


def bias_gradient_times_bias(chain: Chain, x: torch.Tensor, target) -> torch.Tensor:
    """``c_k * sum_n d z_n / d c_k`` for every bias unit k (hidden and output layers, in
    :func:`~nnlearn.attribution.blame_the_bias`'s "each" order), by autograd: an independent
    route to the summed bias relevance of blame-the-bias on a ReLU network.

    chain : Chain with a bias in every layer (…, n_out, n_in); x : Tensor (…, N, n_in)

    Returns
    -------
    Tensor (…, n_biases)
    """
    from nnlearn.attribution import target_output

    _check_chain(chain)
    if any(b is None for b in chain.biases):
        raise ValueError("chain must have a bias in every layer")
    x = _finite("x", _check_tensor("x", x))
    biases = [b.detach().clone().requires_grad_(True) for b in chain.biases]
    copy = Chain(
        [w.detach() for w in chain.weights],
        biases,
        chain.activations,
        chain.passthrough,
        chain.offsets,
    )
    grads = torch.autograd.grad(target_output(copy, x, target).sum(), biases)
    return torch.cat([b.detach() * g for b, g in zip(biases, grads)], -1)


def max_constant_cases(n_points: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Per random case, the comparisons of :func:`max_constant_agreement` as booleans:
    ``gradient`` (gradient max = gradient nonlinearity), ``radial`` (radial max = slope
    nonlinearity) and ``a_positive``, each a bool array (n_points,); a ~ N(0, 1) and
    c ~ U(-2, 0) (strictly negative)."""
    n_points = _count("n_points", n_points)
    g = make_generator(seed)
    a = torch.randn(n_points, generator=g, dtype=torch.float64)
    c = -torch.rand(n_points, generator=g, dtype=torch.float64) * 2 - 1e-3
    b = torch.maximum(a, c)
    r_b = torch.ones(n_points, dtype=torch.float64)
    slope = secant_slope(a, b, lambda t: torch.maximum(t, c))
    both = torch.stack([a, c], -1)
    grad_ok = (max_gradient(both, r_b)[:, 0] - (a > c).to(a.dtype)).abs() < 1e-9
    radial_ok = (max_radial(both, r_b)[:, 0] - slope).abs() < 1e-9
    return {"gradient": grad_ok.numpy(), "radial": radial_ok.numpy(), "a_positive": (a > 0).numpy()}


def cue_evaluation(
    chain: Chain,
    X: torch.Tensor,
    y: torch.Tensor,
    X_cued: torch.Tensor,
    y_cued: torch.Tensor,
    shape: tuple[int, int],
    *,
    seed: int = 7,
    patterns: torch.Tensor | None = None,
    outside: torch.Tensor | None = None,
) -> dict:
    """Accuracies and relevance shares of the alignment experiment's K = C * S networks.

    chain : Chain with K members (conditions x seeds, condition-major)
    X, y : held-out digits without a cue and their labels (N, 784), (N,)
    X_cued, y_cued : training digits for the relevance shares (the cue drawn in)
    shape : (C, S)
    patterns : Tensor (10, 784), optional: the cue per class (default :func:`cue_patterns`)
    outside : bool Tensor (784,), optional: the cue's region for the shares (default
        :func:`cue_mask`)

    Returns dict of ndarrays (C, S): ``acc_absent`` (no cue), ``acc_swapped`` (a wrong class's
    cue), ``acc_matching`` (the digit's own cue), ``reliance`` (matching minus swapped),
    ``share`` and ``signed_share`` (mean outside shares of the bias-blamed pixel relevance of
    the true class on ``X_cued``).
    """
    from nnlearn.attribution import bias_blamed_relevance

    _check_chain(chain)
    X, X_cued = (
        _finite("X", _check_tensor("X", X)),
        _finite("X_cued", _check_tensor("X_cued", X_cued)),
    )
    for name, labels, data in (("y", y, X), ("y_cued", y_cued, X_cued)):
        if (
            not isinstance(labels, torch.Tensor)
            or labels.is_floating_point()
            or labels.shape != data.shape[:1]
        ):
            raise ValueError(f"{name} must be an integer Tensor of shape ({data.shape[0]},)")
        if labels.numel() and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{name} must hold class indices in 0..9")
    if not (
        isinstance(shape, tuple)
        and len(shape) == 2
        and all(isinstance(v, int) and v >= 1 for v in shape)
    ):
        raise ValueError(
            f"shape must be a pair of positive ints (conditions, seeds), got {shape!r}"
        )
    K = chain.weights[0].shape[0] if chain.weights[0].ndim == 3 else 1
    if shape[0] * shape[1] != K:
        raise ValueError(f"shape {shape} does not match the chain's {K} members")
    if patterns is not None:
        patterns = _tensor("patterns", patterns, 2)
        if patterns.shape != (10, X.shape[-1]):
            raise ValueError(
                f"patterns must have shape (10, {X.shape[-1]}), got {tuple(patterns.shape)}"
            )
    wrong = (y + torch.randint(1, 10, y.shape, generator=make_generator(seed))) % 10

    def acc(xx):
        return (chain(xx).argmax(-1) == y).double().mean(-1).view(shape).numpy()

    out = {
        "acc_absent": acc(X),
        "acc_swapped": acc(add_cue(X, wrong, patterns)),
        "acc_matching": acc(add_cue(X, y, patterns)),
    }
    out["reliance"] = out["acc_matching"] - out["acc_swapped"]
    rel = bias_blamed_relevance(chain, X_cued, y_cued)[0].detach()
    outside = cue_mask() if outside is None else outside
    for key, signed in (("share", False), ("signed_share", True)):
        out[key] = outside_share(rel, outside, signed=signed).mean(-1).view(shape).numpy()
    return out


def declare_claims(C) -> None:
    """Declare every claim of the chapter on the :class:`nnlearn.claims.Claims` ``C`` (called
    near the top of the chapter, before any experiment runs; the chapter shows the table)."""
    from nnlearn.claims import Claims, R

    if not isinstance(C, Claims):
        raise TypeError(f"C must be a nnlearn.claims.Claims, got {type(C).__name__}")
    tiny = dict(band=(1e-6, 1e-4))
    C.declare(
        "methods-autograd",
        "Our backward rules equal independent autograd versions",
        kind="identity",
        rule=R.at_most(1e-9, band=(1e-12, 1e-6)),
        statistic="largest relative gap, 4 methods, 20 random biased ReLU nets (float64)",
    )
    C.declare(
        "rewrites",
        "Under Q = R/a: normalised matmul -> gradient, ignore -> slope, gradient max -> gradient",
        kind="identity",
        rule=R.at_most(1e-5, **tiny),
        source="derived in the post",
        where="Simplifying the LRP",
        statistic="largest relative gap of 5 rule rewrites on random numbers (float32)",
    )
    C.declare(
        "lrp0-gxi",
        "Bias-free ReLU nets: LRP-0 = gradient x input, conserved at every layer",
        kind="identity",
        rule=R.at_most(1e-5, **tiny),
        where="Simplifying the LRP",
        source="Slope and Gradient coincide for ReLU; the sum of a Q(a) is conserved",
        statistic="largest relative gap, 20 random bias-free nets x 200 inputs (float32)",
    )
    C.declare(
        "btb-conserves",
        "Blame the bias: pixel + bias relevance = logit exactly (one shared "
        "1 or one per bias; the shared 1 gets the sum)",
        kind="identity",
        rule=R.at_most(1e-4, band=(1e-5, 1e-3)),
        where="Solution 1: Blame the Bias",
        source="a network without biases; relevance also goes to the 1's",
        statistic="largest relative gap on the trained nets (float32)",
    )
    C.declare(
        "lost-is-bias",
        "The relevance Bach et al.'s rule loses is the biases' relevance",
        kind="identity",
        rule=R.at_most(1e-4, band=(1e-5, 1e-3)),
        statistic="largest relative gap on the trained nets",
    )
    C.declare(
        "fullgrad",
        "On ReLU nets bias k gets c_k dz/dc_k and the pixels x . dz/dx (FullGrad's decomposition)",
        kind="identity",
        rule=R.at_most(1e-4, band=(1e-5, 1e-3)),
        statistic="largest relative gap (autograd)",
    )
    C.declare(
        "dropped",
        "LRP normalised by the bias-free sum conserves once the relevance dropped "
        "at zero denominators is counted",
        kind="identity",
        rule=R.at_most(1e-4, band=(1e-5, 1e-3)),
        statistic="largest relative gap",
    )
    C.declare(
        "baseline-complete",
        "Baseline variant: relevances sum to f(x) - f(baseline) and flip "
        "sign when image and baseline swap",
        kind="identity",
        rule=R.at_most(1e-4, band=(1e-5, 1e-3)),
        source="symmetric in the 2 images",
        where="Solution 2: Compare to baseline",
        statistic="largest relative gap, 2 baselines",
    )
    C.declare(
        "scaling-pairing",
        "Scaling by alpha: gradient matmul pairs with gradient, slope and "
        "repeat; normalised matmul with ignore",
        kind="identity",
        rule=R.holds(),
        source="the scaling-equivalence table",
        where="Consistency rules",
        statistic="pairing over 4 values of alpha and random inputs",
    )
    C.declare(
        "max-const-gradient",
        "max(a, c) with constant c <= 0: the gradient max rule equals the gradient nonlinearity "
        "rule",
        kind="identity",
        rule=R.holds(),
        source="Gradient matches gradient (Unsurprising)",
        where="Consistency rules",
        statistic="agreement on all random (a, c)",
    )
    blow = dict(band=(2.0, 5.0, 10.0))  # alternative thresholds for a blow-up factor
    C.declare(
        "ctl-blowup-nodiv",
        "Gradient x input, which divides by nothing, shows no blow-up on the same split of digits",
        kind="control",
        rule=R.interval_below(3.0, **blow),
        statistic="blow-up factor (as for 'blowup') of gradient x input",
    )
    C.declare(
        "blowup",
        "LRP blows up where a unit's value is almost all bias",
        kind="source",
        source="Bach et al.'s method rescales tiny inputs or weights: numerical instability",
        where="What the actual problem was",
        rule=R.interval_above(3.0, **blow),
        controls=("ctl-blowup-nodiv",),
        statistic="blow-up factor: median sum|R(x)|/|z| on digits whose most bias-dominated "
        "relevant unit has |s|/|z| < 0.03, over that for > 0.3 (geometric mean over nets)",
    )
    C.declare(
        "eps-tames",
        "The blip (eps > 0) tames the blow-up",
        kind="source",
        source="which is exactly why Bach et al. added the blip function",
        where="What the actual problem was",
        rule=R.interval_above(2.0, band=(1.5, 3.0)),
        statistic="blow-up factor at eps = 0 over that at eps = 0.1 (geometric mean)",
    )
    C.declare(
        "btb-stable",
        "Blaming the bias removes the instability",
        kind="source",
        source="the techniques work fine without numerical instability",
        where="Solution 1: Blame the Bias",
        rule=R.interval_above(2.0, band=(1.5, 3.0)),
        statistic="blow-up factor of plain LRP over that of the bias-blamed pixel relevance",
    )
    C.declare(
        "scale-column",
        "The table's 'Scale' column: 0 for gradient, 1 for normalised",
        kind="source",
        source="Scale 0 (gradient), 1 (normalised)",
        where="Consistency rules",
        rule=R.at_least(2),
        partly=R.at_least(1),
        statistic="readings (degree s in R = a^s x gradient; power k in R(a) = alpha^k R(b)) "
        "under which the measured values give the column",
    )
    C.declare(
        "radial-slope",
        "The radial max matches the slope nonlinearity for max(a, c)",
        kind="source",
        source="I suspect radial maximum matches slope nonlinearity for 2",
        where="Consistency rules",
        rule=R.share_at_least(0.99, band=(0.95, 0.999)),
        partly=R.share_at_least(0.25),
        statistic="share of random (a, c <= 0) that agree",
    )
    C.declare(
        "max-two-ways",
        "Softmax limit and a + relu(b - a) give different relevances",
        kind="source",
        source="these 2 computations suggest different relevancies",
        where="Solution 2: Compare to baseline",
        rule=R.share_at_least(0.05, band=(0.01, 0.25)),
        statistic="share of random (x, baseline) pairs where they differ by > 1% of the total",
    )
    reliance = "cue reliance: accuracy with own cue minus with a wrong cue (bootstrap over seeds)"
    C.declare(
        "ctl-oracle",
        "Networks that never saw the cue do not rely on it",
        kind="control",
        rule=R.interval_within(-0.02, 0.02, band=((-0.01, 0.01), (-0.05, 0.05))),
        statistic=reliance,
    )
    C.declare(
        "ctl-cue-used",
        "Networks trained with the cue and no penalty rely on it",
        kind="control",
        rule=R.interval_above(0.3, band=(0.1, 0.5)),
        statistic=reliance,
    )
    C.declare(
        "alignment-gamed",
        "A relevance penalty is gamed: its metric is met by a network that "
        "still works and still uses the cue",
        kind="source",
        source="the network rampantly goodharting the relevancy metric",
        where="What I was hoping for regarding alignment",
        controls=("ctl-oracle", "ctl-cue-used"),
        rule=R.share_at_least(0.5, band=(0.4, 0.6)),
        statistic="share of seeds (|R| share penalty, lambda = 10) gamed, paired with the "
        "unpenalised net of the same seed",
    )
    C.declare(
        "eps-cost",
        "eps = 1 gives away relevance on ordinary digits",
        kind="beyond",
        rule=R.interval_below(0.95, band=(0.9, 0.99)),
        statistic="per-net median of sum R(x) at eps = 1 over that at eps = 0, |z| > 1",
    )
    C.declare(
        "deletion",
        "Deleting pixels by gradient x input (= LRP-0 = bias-blamed pixels here) "
        "lowers the logit faster than random order",
        kind="beyond",
        rule=R.interval_below(0.0, band=(-0.05, 0.05)),
        statistic="per-net deletion AUC minus that of a random order",
    )
    C.declare(
        "bias-entries",
        "Zeroing the most relevant biases lowers the logit more than zeroing random ones",
        kind="beyond",
        rule=R.interval_below(0.0, band=(-0.05, 0.05)),
        statistic="per-net bias-deletion AUC minus that of a random order",
    )
    C.declare(
        "bias-share",
        "On trained MNIST nets the biases carry a non-negligible part of the logit",
        kind="beyond",
        rule=R.interval_above(0.05, band=(0.02, 0.1)),
        statistic="per-net median of |R(biases)| / |z| over test digits (bootstrap)",
    )
    C.declare(
        "dup-argument",
        "max(a, c) = max(a, c, c) changes the radial rule's credit for a on "
        "every all-negative input and never the gradient rule's",
        kind="beyond",
        rule=R.holds(),
        statistic="1,000 random (a, c) of each kind",
    )
    C.declare(
        "shapley-max",
        "a + relu(b - a), the form a ReLU net computes, gives the exact Shapley values of max",
        kind="beyond",
        rule=R.share_at_least(0.95, band=(0.9, 0.99)),
        statistic="share of random (x, baseline) pairs within 1% of the Shapley values",
    )
    C.declare(
        "penalty-helps",
        "The |R| penalty (lambda = 10) raises accuracy on cue-free digits",
        kind="beyond",
        rule=R.interval_above(0.0, band=(0.005, 0.01)),
        statistic="paired accuracy gain over the unpenalised net (t over seeds)",
    )
    C.declare(
        "entangled-cue",
        "A cue entangled with the digit or spread over the image lets the penalty be gamed",
        kind="beyond",
        rule=R.share_at_least(0.5, band=(0.4, 0.6), on="lower"),
        statistic="share of seeds gamed (as for 'alignment-gamed', |R| share penalty, "
        "lambda = 10) when the cue is a faint label-coding pattern on a grid of every second "
        "pixel over the whole image, digit included, and the penalty covers that grid; "
        "Wilson interval over seeds",
    )
    C.declare(
        "max-network",
        "In maxout networks (real max layers) the radial max rule is less faithful than the "
        "gradient max rule",
        kind="beyond",
        rule=R.interval_above(0.0, band=(-0.02, 0.02)),
        statistic="per-net deletion AUC of LRP-0 with the radial rule minus with the gradient rule",
    )


def train_cue_conditions(
    conditions: Mapping,
    seeds: Sequence[int],
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    widths=(784, 64, 32, 10),
    epochs: int = 4,
    batch_size: int = 100,
    seed: int = 100,
    patterns: torch.Tensor | None = None,
    outside: torch.Tensor | None = None,
) -> Chain:
    """One ReLU network per (condition, seed), all trained at once by
    :func:`train_with_relevance_penalty`; member ``c * len(seeds) + s`` is condition c's
    network with initialisation ``seeds[s]`` (the same initialisations in every condition).

    conditions : name -> (cue in training: bool, penalty weight: float >= 0, signed share: bool)
    patterns : Tensor (10, 784), optional: the cue per class (default :func:`cue_patterns`)
    outside : bool Tensor (784,), optional: the penalised region (default :func:`cue_mask`)

    Returns
    -------
    Chain with members (conditions x seeds), condition-major
    """
    from nnlearn.ensemble import Ensemble
    from nnlearn.models import MLP

    if not isinstance(conditions, Mapping) or not conditions:
        raise TypeError("conditions must be a non-empty mapping name -> (cue, penalty, signed)")
    for name, c in conditions.items():
        if not (isinstance(c, tuple) and len(c) == 3):
            raise ValueError(f"conditions[{name!r}] must be a (cue, penalty, signed) tuple")
        _flag("conditions (cue)", c[0]), _number("conditions (penalty)", c[1], low=0)
        _flag("conditions (signed)", c[2])
    seeds = _int_list("seeds", seeds)
    S = len(seeds)

    def per_member(i, dtype):
        return torch.tensor([c[i] for c in conditions.values() for _ in seeds], dtype=dtype)

    widths = list(widths)
    ens = Ensemble.from_seeds(lambda k: MLP(widths, seed=seeds[k % S]), range(len(conditions) * S))
    acts = ["relu"] * (len(widths) - 2)
    train_with_relevance_penalty(
        ens.params,
        acts,
        X,
        y,
        cue_on=per_member(0, torch.bool),
        penalty=per_member(1, torch.float32),
        signed=per_member(2, torch.bool),
        outside=cue_mask() if outside is None else outside,
        patterns=patterns,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
    return Chain.from_params({k: v.detach() for k, v in ens.params.items()}, acts)


# ----------------------------------------------------------------------------------------
# A network with real maximum layers (maxout), so that the max rules act
# ----------------------------------------------------------------------------------------


def maxout_forward(params: Mapping[str, torch.Tensor], x: torch.Tensor):
    """K maxout networks ``x -> z = x W1^T + c1 -> h_j = max(z_2j, z_2j+1) -> h W2^T + c2``.

    params : ``W1`` (K, 2H, n_in), ``c1`` (K, 2H), ``W2`` (K, C, H), ``c2`` (K, C)
    x : Tensor (N, n_in) or (K, N, n_in)

    Returns (z (K, N, H, 2), h (K, N, H), logits (K, N, C))
    """
    if not isinstance(params, Mapping) or set(params) != {"W1", "c1", "W2", "c2"}:
        raise TypeError("params must be a mapping with exactly W1, c1, W2, c2")
    x = _tensor("x", x)
    W1, c1, W2, c2 = (params[k] for k in ("W1", "c1", "W2", "c2"))
    if W1.ndim != 3 or W1.shape[-2] % 2 or x.shape[-1] != W1.shape[-1]:
        raise ValueError("params['W1'] must be (K, 2H, n_in) matching x's last dimension")
    z = torch.matmul(x, W1.transpose(-1, -2)) + c1.unsqueeze(-2)
    z = z.unflatten(-1, (W1.shape[-2] // 2, 2))
    h = z.max(-1).values
    return z, h, torch.matmul(h, W2.transpose(-1, -2)) + c2.unsqueeze(-2)


def train_maxout(
    n_members: int,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    hidden: int = 32,
    epochs: int = 1,
    batch_size: int = 250,
    lr: float = 2e-3,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Train ``n_members`` maxout networks (:func:`maxout_forward`) at once with Adam on
    cross-entropy; member k is initialised and shuffled from ``seed + k``."""
    K, hidden = _count("n_members", n_members), _count("hidden", hidden)
    X = _tensor("X", X, 2)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != X.shape[:1]:
        raise ValueError(f"y must be an integer Tensor of shape ({X.shape[0]},)")
    epochs, batch_size = _count("epochs", epochs), _count("batch_size", batch_size)
    lr = _number("lr", lr, low=0, strict=True)
    make_generator(seed)  # checks seed
    gens = [make_generator(seed + k) for k in range(K)]
    n_in, C = X.shape[1], int(y.max()) + 1

    def init(shape, fan_in):
        return torch.stack([torch.randn(*shape, generator=g) for g in gens]) * np.sqrt(2.0 / fan_in)

    params = {
        "W1": init((2 * hidden, n_in), n_in),
        "c1": torch.zeros(K, 2 * hidden),
        "W2": init((C, hidden), hidden),
        "c2": torch.zeros(K, C),
    }
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    for _ in range(epochs):
        orders = torch.stack([torch.randperm(len(X), generator=g) for g in gens])
        for start in range(0, len(X) - batch_size + 1, batch_size):
            idx = orders[:, start : start + batch_size]
            logits = maxout_forward(params, X[idx])[2]
            loss = F.cross_entropy(logits.transpose(1, 2), y[idx], reduction="none").mean(1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {k: v.detach() for k, v in params.items()}


def maxout_relevance(
    params: Mapping[str, torch.Tensor], x: torch.Tensor, target, max_rule: str = "gradient"
) -> torch.Tensor:
    """LRP-0 (Bach et al.'s rule, bias in the denominator, start from the logit) through a
    maxout network, with the "gradient" or "radial" max rule at the maximum layer.

    Returns Tensor (K, N, n_in): the input relevance of ``target``'s logit
    """
    check_choice("max_rule", max_rule, MAX_RULES)
    z, h, out = maxout_forward(params, x)
    x = _expand_to_members(Chain([params["W1"]], [None], []), x)
    r = _start_relevance(out, target, "output")  # (K, N, C)
    r_h = matmul_normalised(h, params["W2"], r, pre=out)  # (K, N, H)
    r_z = MAX_RULE_FNS[max_rule](z, r_h)  # (K, N, H, 2)
    return matmul_normalised(
        x,
        params["W1"],
        r_z.flatten(-2),
        pre=torch.matmul(x, params["W1"].transpose(-1, -2)) + params["c1"].unsqueeze(-2),
    )


def maxout_logit(params: Mapping[str, torch.Tensor], x: torch.Tensor, target) -> torch.Tensor:
    """The target logit of each maxout member, (K, N)."""
    out = maxout_forward(params, x)[2]
    return _start_relevance(out, target, "output").sum(-1)


def maxout_deletion_auc(params, x: torch.Tensor, target, scores: torch.Tensor, ks) -> np.ndarray:
    """:func:`deletion_auc` for maxout networks."""
    lead = params["W1"].shape[:1] if isinstance(params, Mapping) and "W1" in params else ()
    x = _tensor("x", x)
    x = x.expand(*lead, *x.shape) if x.ndim == 2 else x
    scores = _tensor("scores", scores)
    if scores.shape != x.shape:
        raise ValueError(f"scores must have shape {tuple(x.shape)}, got {tuple(scores.shape)}")
    ks = _int_list("ks", ks)
    if max(ks) > x.shape[-1]:
        raise ValueError(f"ks must hold ints in 0..{x.shape[-1]}, got {max(ks)}")
    order = scores.argsort(-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(x.shape[-1]).expand_as(order).contiguous())
    z0 = maxout_logit(params, x, target).mean(-1)
    curve = [
        maxout_logit(params, torch.where(rank < k, torch.zeros_like(x), x), target).mean(-1)
        for k in ks
    ]
    return (torch.stack(curve).mean(0) / z0).detach().numpy()
