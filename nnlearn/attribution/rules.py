"""Rules for one layer: relevance of a layer's input from that of its output (see the
package docstring for the table). Every rule acts on the last axis and batches over leading axes."""

from __future__ import annotations

import numpy as np
import torch

MATMUL_RULES = ("gradient", "normalised")
NONLIN_RULES = ("ignore", "gradient", "slope", "repeat")
STARTS = ("one", "output", "probability")


def _check_tensor(name: str, value, min_ndim: int = 1) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(value.shape)}"
        )
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps must be a number >= 0, got {type(eps).__name__}")
    if not (eps >= 0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


# ----------------------------------------------------------------------------------------
# Rules for one layer. Every rule acts on the last axis and batches over leading axes.
# ----------------------------------------------------------------------------------------


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
        raise ValueError(
            f"a's last dimension ({a.shape[-1]}) must equal weight's in-dimension "
            f"({weight.shape[-1]})"
        )
    if relevance_out.shape[-1] != weight.shape[-2]:
        raise ValueError(
            f"relevance_out's last dimension ({relevance_out.shape[-1]}) must equal weight's "
            f"out-dimension ({weight.shape[-2]})"
        )
    return a, weight, relevance_out


def matmul_gradient(
    a: torch.Tensor, weight: torch.Tensor, relevance_out: torch.Tensor, **_
) -> torch.Tensor:
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
    a: torch.Tensor,
    weight: torch.Tensor,
    relevance_out: torch.Tensor,
    *,
    pre: torch.Tensor | None = None,
    eps: float = 0.0,
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

    Where a denominator is exactly 0 (with ``eps = 0``: for ``pre=None`` that happens when
    ``a @ W^T`` vanishes, e.g. every input of the layer is 0 because a whole ReLU layer is
    off), the relevance of that output unit has no input to go to and is dropped; the rule
    then does not conserve relevance. With ``pre`` including a bias the dropped part is the
    bias's share. :func:`relevance` reports the count in ``Relevance.dropped``.

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
            f"pre, post and relevance_out must have one shape, got {tuple(pre.shape)}, "
            f"{tuple(post.shape)}, {tuple(relevance_out.shape)}"
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
NONLIN_RULE_FNS = {
    "ignore": nonlin_ignore,
    "gradient": nonlin_gradient,
    "slope": nonlin_slope,
    "repeat": nonlin_repeat,
}
