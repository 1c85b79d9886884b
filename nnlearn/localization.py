"""Knowledge localization (Bostock 2022): do the parameters that data moves most hold what tells it apart?

The study, for a 784-H-2 network trained by plain SGD on one example at a time:

1. *Phase 1*: one network learns 1s/7s (class 0) against 6s/8s (class 1). Per parameter, the
   summed absolute update caused by 1s/7s (``a``) and by 6s/8s (``b``) is tallied, and the
   *relative updating* is ``a / (a + b)``.
2. *Phase 2*: four copies (forks) keep training on the remaining data, each on one task:
   1 vs 6/8, 7 vs 6/8, 1/7 vs 6 and 1/7 vs 8. ``d1 = |theta(1v68) - theta(7v68)|`` and
   ``d2 = |theta(17v6) - theta(17v8)|``; the *relative difference* is ``d1 / (d1 + d2)``.
3. The question is whether the two quantities correlate across parameters.

Everything is batched: K networks (seeds, or forks times seeds) step through their own
example streams together. :func:`per_example_sgd` is exact per-example SGD computed in chunks:
inside a chunk of B steps the first-layer pre-activations are corrected with the Gram matrix of
the chunk's inputs instead of rewriting the (K, H, 784) weight tensor after every example, and
the absolute updates are tallied with one matrix product per chunk (``|lr d x| = lr |d| |x|``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nnlearn.checks import positive_int
from nnlearn.models import MLP

PARAM_NAMES = ("W1", "b1", "W2", "b2")
FORKS = {
    "1v68": ((1,), (6, 8)),
    "7v68": ((7,), (6, 8)),
    "17v6": ((1, 7), (6,)),
    "17v8": ((1, 7), (8,)),
}
GROUP_17, GROUP_68 = (1, 7), (6, 8)
LOSSES = ("mse", "ce")


def _sigmoid_prime(z):
    s = torch.sigmoid(z)
    return s * (1 - s)


# Each activation with its derivative, both elementwise on tensors.
ACTIVATIONS = {
    "softplus": (F.softplus, torch.sigmoid),
    "relu": (torch.relu, lambda z: (z > 0).to(z.dtype)),
    "sigmoid": (torch.sigmoid, _sigmoid_prime),
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
    "elu": (F.elu, lambda z: torch.where(z > 0, torch.ones_like(z), torch.exp(z))),
}


def _check_activation(activation, name: str = "activation") -> None:
    if not isinstance(activation, str):
        raise TypeError(f"{name} must be a str, got {type(activation).__name__}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name} must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


def _output_functions(output_activation):
    """(function, derivative) applied to the output layer; the identity for ``None``."""
    if output_activation is None:
        return (lambda u: u), (lambda u: torch.ones_like(u))
    _check_activation(output_activation, "output_activation")
    return ACTIVATIONS[output_activation]



# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def he_params(seeds: Sequence[int], *, n_in: int = 784, hidden: int = 100, n_out: int = 2) -> dict[str, torch.Tensor]:
    """He-initialised weights *and* biases of K one-hidden-layer nets, one per seed.

    Uses :class:`nnlearn.models.MLP` with ``init="he"``, so member k equals
    ``MLP([n_in, hidden, n_out], init="he", seed=seeds[k])``.

    Returns
    -------
    dict with ``W1`` (K, hidden, n_in), ``b1`` (K, hidden), ``W2`` (K, n_out, hidden), ``b2`` (K, n_out)
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    hidden = positive_int("hidden", hidden)
    nets = [MLP([n_in, hidden, n_out], init="he", seed=s) for s in seeds]
    pick = lambda name: torch.stack([dict(n.named_parameters())[name].detach() for n in nets])  # noqa: E731
    return {"W1": pick("layers.0.weight"), "b1": pick("layers.0.bias"), "W2": pick("layers.1.weight"), "b2": pick("layers.1.bias")}


def _check_params(params, dtype=torch.float64) -> dict[str, torch.Tensor]:
    if not isinstance(params, Mapping) or set(params) != set(PARAM_NAMES):
        raise ValueError(f"params must be a mapping with exactly the keys {PARAM_NAMES}")
    W1, b1, W2, b2 = (params[n] for n in PARAM_NAMES)
    K, H = W1.shape[:2]
    if W1.ndim != 3 or b1.shape != (K, H) or W2.ndim != 3 or W2.shape[:1] + W2.shape[2:] != (K, H) or b2.shape != W2.shape[:2]:
        raise ValueError(
            "params: expected W1 (K,H,D), b1 (K,H), W2 (K,C,H), b2 (K,C); got "
            + ", ".join(f"{n} {tuple(params[n].shape)}" for n in PARAM_NAMES)
        )
    return {n: params[n].detach().to(dtype).clone() for n in PARAM_NAMES}


def member_params(params: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Member ``k`` as an ``MLP`` state dict (``layers.0.weight`` ...)."""
    names = ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias")
    return {m: params[n][k].clone() for m, n in zip(names, PARAM_NAMES)}


def forward(params: Mapping[str, torch.Tensor], X: torch.Tensor, activation: str, output_activation: str | None = None) -> torch.Tensor:
    """Outputs of K nets on shared inputs: X (N, D) -> (K, N, C).

    ``output_activation`` (a key of ``ACTIVATIONS``, or None for linear outputs) is applied to
    the output layer, as ``MLP(..., output_activation=...)`` does.
    """
    _check_activation(activation)
    act, out_act = ACTIVATIONS[activation][0], _output_functions(output_activation)[0]
    h = act(torch.matmul(X, params["W1"].transpose(1, 2)) + params["b1"][:, None])
    return out_act(torch.matmul(h, params["W2"].transpose(1, 2)) + params["b2"][:, None])


# --------------------------------------------------------------------------------------------
# Exact per-example SGD, K streams at once
# --------------------------------------------------------------------------------------------


def output_gradient(out: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """d loss / d output for one example per member: out (K, C), target (K,) class -> (K, C).

    ``"mse"`` is the mean squared error against the one-hot target (``F.mse_loss``);
    ``"ce"`` is softmax cross-entropy (``F.cross_entropy``).
    """
    onehot = F.one_hot(target, out.shape[-1]).to(out.dtype)
    if loss == "mse":
        return 2.0 * (out - onehot) / out.shape[-1]
    if loss == "ce":
        return torch.softmax(out, -1) - onehot
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


@dataclass
class SGDResult:
    """What :func:`per_example_sgd` returns.

    params : dict name -> (K, ...) final parameters
    tallies : dict name -> (G, K, ...) summed absolute updates per tally group (None if G = 0)
    correct : (K, T) bool, whether each example was classified right *before* its step
    """

    params: dict
    tallies: dict | None
    correct: np.ndarray


def _check_streams(X, order, targets, groups, n_groups):
    if not isinstance(X, torch.Tensor) or X.ndim != 2:
        raise TypeError("X must be a 2-d torch.Tensor (N, D)")
    order, targets = torch.as_tensor(order), torch.as_tensor(targets)
    if order.ndim != 2 or order.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"order must be an integer array of shape (K, T), got {tuple(order.shape)} {order.dtype}")
    if targets.shape != order.shape:
        raise ValueError(f"targets must have the shape of order {tuple(order.shape)}, got {tuple(targets.shape)}")
    if order.numel() and (order.max() >= len(X) or order.min() < -1):
        raise ValueError(f"order entries must be -1 (no step) or indices into X (0..{len(X) - 1})")
    if groups is not None:
        groups = torch.as_tensor(groups)
        if groups.shape != order.shape:
            raise ValueError(f"groups must have the shape of order {tuple(order.shape)}, got {tuple(groups.shape)}")
        if n_groups < 1 or groups.max() >= n_groups or groups.min() < -1:
            raise ValueError(f"groups entries must be -1 (not tallied) or in 0..n_groups-1 with n_groups >= 1, got n_groups={n_groups}")
    return order.long(), targets.long(), None if groups is None else groups.long()


def per_example_sgd(
    params: Mapping[str, torch.Tensor],
    X: torch.Tensor,
    order,
    targets,
    *,
    lr,
    activation: str = "softplus",
    output_activation: str | None = None,
    loss: str = "mse",
    groups=None,
    n_groups: int = 0,
    chunk: int = 32,
    dtype: torch.dtype = torch.float64,
) -> SGDResult:
    """Plain SGD, one example per step, for K one-hidden-layer nets on their own streams.

    Member k at step t takes one SGD step on example ``X[order[k, t]]`` with class
    ``targets[k, t]`` (``order[k, t] = -1``: no step, used to pad shorter streams). The result
    equals K separate runs of :func:`nnlearn.train.per_sample_sgd` (tested), computed in
    chunks of ``chunk`` steps (see the module docstring).

    Parameters
    ----------
    params : dict W1 (K, H, D), b1 (K, H), W2 (K, C, H), b2 (K, C); not modified
    X : Tensor (N, D), the pool of inputs
    order, targets : integer arrays (K, T)
    lr : float or array (K,), a learning rate per member
    activation : a key of ``ACTIVATIONS``, the hidden layer's activation
    output_activation : a key of ``ACTIVATIONS`` applied to the outputs, or None (linear outputs)
    loss : {"mse", "ce"}, computed on the (activated) outputs
    groups : integer array (K, T), optional
        Tally group of each step (-1: not tallied); with ``n_groups`` groups.
    chunk : int, steps per chunk (any value gives the same result)
    dtype : torch.float64 (default) or torch.float32; float64 keeps tiny differences between
        forks exact (e.g. for inputs that never change)

    Returns
    -------
    SGDResult
    """
    _check_activation(activation)
    out_act, out_act_prime = _output_functions(output_activation)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    chunk = positive_int("chunk", chunk)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    p = _check_params(params, dtype)
    X = X.to(dtype) if isinstance(X, torch.Tensor) else X
    order, targets, groups = _check_streams(X, order, targets, groups, n_groups)
    K, T = order.shape
    if p["W1"].shape[0] != K or p["W1"].shape[2] != X.shape[1]:
        raise ValueError(f"params hold {p['W1'].shape[0]} members of input size {p['W1'].shape[2]}; order has K={K}, X has D={X.shape[1]}")
    lr = torch.as_tensor(lr, dtype=dtype).reshape(-1).expand(K).clone()
    if not (lr > 0).all():
        raise ValueError("lr must be > 0 (a float or one value per member)")
    act, act_prime = ACTIVATIONS[activation]
    W1, b1, W2, b2 = (p[n] for n in PARAM_NAMES)
    tallies = {n: torch.zeros((n_groups, *p[n].shape), dtype=dtype) for n in PARAM_NAMES} if groups is not None else None
    correct = torch.zeros((K, T), dtype=torch.bool)
    with torch.inference_mode():
        for t0 in range(0, T, chunk):
            idx = order[:, t0 : t0 + chunk]
            B = idx.shape[1]
            Xc = X[idx.clamp(min=0)]  # (K, B, D)
            Z = torch.bmm(Xc, W1.transpose(1, 2))  # W1 x at the chunk's start, (K, B, H)
            gram = torch.bmm(Xc, Xc.transpose(1, 2))  # (K, B, B)
            rate = lr[:, None] * (idx >= 0)  # (K, B), zero where there is no step
            step1 = torch.empty(K, B, W1.shape[1], dtype=dtype)
            step2 = torch.empty(K, B, W2.shape[1], dtype=dtype)
            hidden = torch.empty(K, B, W1.shape[1], dtype=dtype)
            for j in range(B):
                z = Z[:, j] + b1
                h = act(z)
                u = torch.bmm(W2, h[:, :, None])[:, :, 0] + b2
                out = out_act(u)
                correct[:, t0 + j] = out.argmax(-1) == targets[:, t0 + j]
                g_out = output_gradient(out, targets[:, t0 + j], loss) * out_act_prime(u)
                g_z = torch.bmm(g_out[:, None, :], W2)[:, 0] * act_prime(z)
                s1 = rate[:, j, None] * g_z
                s2 = rate[:, j, None] * g_out
                b1 -= s1
                b2 -= s2
                W2 -= s2[:, :, None] * h[:, None, :]
                if j + 1 < B:  # the W1 update's effect on this chunk's later pre-activations
                    Z[:, j + 1 :] -= s1[:, None, :] * gram[:, j, j + 1 :, None]
                step1[:, j], step2[:, j], hidden[:, j] = s1, s2, h
            W1.baddbmm_(step1.transpose(1, 2), Xc, alpha=-1.0)  # in place: no (K, H, D) temporary
            if groups is not None:
                _add_tallies(tallies, groups[:, t0 : t0 + B], n_groups, step1, step2, hidden, Xc)
    return SGDResult(params={"W1": W1, "b1": b1, "W2": W2, "b2": b2}, tallies=tallies, correct=correct.numpy())


def _add_tallies(tallies, groups, n_groups, step1, step2, hidden, Xc) -> None:
    """Add one chunk's absolute updates, per group: |lr d x| = |lr d| |x| for the weights."""
    a1, a2, ah, ax = step1.abs(), step2.abs(), hidden.abs(), Xc.abs()
    for g in range(n_groups):
        m = (groups == g).to(a1.dtype)[:, :, None]  # (K, B, 1)
        if not m.any():
            continue
        tallies["b1"][g] += (a1 * m).sum(1)
        tallies["b2"][g] += (a2 * m).sum(1)
        tallies["W1"][g].baddbmm_((a1 * m).transpose(1, 2), ax)
        tallies["W2"][g].baddbmm_((a2 * m).transpose(1, 2), ah)


# --------------------------------------------------------------------------------------------
# The study's data and runs
# --------------------------------------------------------------------------------------------


@dataclass
class PhaseData:
    """Phase-1 stream (balanced 1/7 vs 6/8) and the phase-2 pool (the remaining data).

    X1 : (N1, D), digits1 : (N1,) phase-1 examples in their original order
    X2 : (N2, D), digits2 : (N2,) every 1, 7, 6 and 8 after the phase-1 cut-off
    """

    X1: torch.Tensor
    digits1: np.ndarray
    X2: torch.Tensor
    digits2: np.ndarray


def split_phases(X, y, phase1_datapoints: int, *, balance: bool = True) -> PhaseData:
    """The 1s, 7s, 6s and 8s among the first ``phase1_datapoints`` for phase 1, the rest for phase 2.

    With ``balance``, the larger of the groups 1/7 and 6/8 in phase 1 loses its last examples
    until both are equally large (the original order is kept).

    Parameters
    ----------
    X : array (N, D); y : array (N,) digit labels
    """
    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (N, D) and y (N,), got {tuple(X.shape)} and {y.shape}")
    phase1_datapoints = positive_int("phase1_datapoints", phase1_datapoints)
    if phase1_datapoints >= len(X):
        raise ValueError(f"phase1_datapoints must be < the {len(X)} datapoints, so that phase 2 has data")
    used = np.isin(y, GROUP_17 + GROUP_68)
    first = np.arange(len(y)) < phase1_datapoints
    keep1 = np.flatnonzero(used & first)
    if balance:
        in17 = np.isin(y[keep1], GROUP_17)
        n = min(in17.sum(), (~in17).sum())
        keep1 = np.sort(np.concatenate([keep1[in17][:n], keep1[~in17][:n]]))
    keep2 = np.flatnonzero(used & ~first)
    if len(keep1) < 2 or len(keep2) < 2:
        raise ValueError("split_phases: too few 1/7/6/8 examples in one of the phases")
    return PhaseData(X[keep1], y[keep1], X[keep2], y[keep2])


def fork_streams(digits: np.ndarray, forks: Mapping = FORKS) -> tuple[np.ndarray, np.ndarray]:
    """Each fork's stream through the phase-2 pool: its digits only, in the pool's order.

    Returns
    -------
    order : (F, T) indices into the pool, -1 padding at the end of shorter streams
    targets : (F, T) class 0 for the fork's first group, 1 for its second
    """
    digits = np.asarray(digits)
    streams = []
    for name, (first, second) in forks.items():
        idx = np.flatnonzero(np.isin(digits, first + second))
        if len(idx) == 0:
            raise ValueError(f"fork {name!r} has no examples among the given digits")
        streams.append((idx, np.isin(digits[idx], second).astype(np.int64)))
    T = max(len(i) for i, _ in streams)
    order = np.full((len(streams), T), -1, dtype=np.int64)
    targets = np.zeros((len(streams), T), dtype=np.int64)
    for f, (idx, tgt) in enumerate(streams):
        order[f, : len(idx)], targets[f, : len(idx)] = idx, tgt
    return order, targets


@dataclass
class LocalizationRun:
    """One study for K seeds.

    tallies : dict name -> (4, K, ...): updates by 1/7 and 6/8 in phase 1's first half (groups
        0, 1) and second half (groups 2, 3)
    forks : dict name -> (4, K, ...) final parameters of the forks, in ``FORKS`` order
    phase1_acc : (K,) online accuracy over phase 1's second half
    fork_acc : (4, K) online accuracy over the last quarter of each fork's stream
    """

    seeds: list
    activation: str
    output_activation: str | None
    hidden: int
    lr: np.ndarray
    loss: str
    tallies: dict
    forks: dict
    phase1_acc: np.ndarray
    fork_acc: np.ndarray


def run_localization(
    data: PhaseData,
    seeds: Sequence[int],
    *,
    activation: str = "softplus",
    output_activation: str | None = None,
    hidden: int = 100,
    lr=1e-3,
    loss: str = "mse",
    chunk: int = 32,
    dtype: torch.dtype = torch.float64,
) -> LocalizationRun:
    """Phase 1 for K seeds at once, then all 4 x K forks at once.

    ``lr`` is one float or one value per seed (several learning rates train in one batch).
    ``output_activation``: None for linear outputs, or a key of ``ACTIVATIONS``.
    """
    seeds = list(seeds)
    K = len(seeds)
    init = he_params(seeds, n_in=data.X1.shape[1], hidden=hidden)
    lr = np.broadcast_to(np.asarray(lr, dtype=np.float64), (K,)).copy()
    n1 = len(data.digits1)
    half = np.arange(n1) >= n1 // 2
    group = np.where(np.isin(data.digits1, GROUP_17), 0, 1) + 2 * half
    targets1 = np.tile(np.isin(data.digits1, GROUP_68).astype(np.int64), (K, 1))
    order1 = np.tile(np.arange(n1), (K, 1))
    p1 = per_example_sgd(init, data.X1, order1, targets1, lr=lr, activation=activation, output_activation=output_activation, loss=loss, groups=np.tile(group, (K, 1)), n_groups=4, chunk=chunk, dtype=dtype)
    order2, targets2 = fork_streams(data.digits2)
    n_forks = len(order2)
    fork_init = {n: v.repeat(n_forks, *[1] * (v.ndim - 1)) for n, v in p1.params.items()}  # fork-major
    p2 = per_example_sgd(
        fork_init, data.X2, np.repeat(order2, K, 0), np.repeat(targets2, K, 0), lr=np.tile(lr, n_forks), activation=activation, output_activation=output_activation, loss=loss, chunk=chunk, dtype=dtype
    )
    forks = {n: v.reshape(n_forks, K, *v.shape[1:]) for n, v in p2.params.items()}
    return LocalizationRun(
        seeds=seeds,
        activation=activation,
        output_activation=output_activation,
        hidden=hidden,
        lr=lr,
        loss=loss,
        tallies={n: v for n, v in p1.tallies.items()},
        forks=forks,
        phase1_acc=p1.correct[:, n1 // 2 :].mean(1),
        fork_acc=_late_accuracy(p2.correct, np.repeat(order2, K, 0)).reshape(n_forks, K),
    )


def _late_accuracy(correct: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Online accuracy over the last quarter of each member's real steps: (K, T) -> (K,)."""
    lengths = (order >= 0).sum(1)
    out = np.empty(len(order))
    for k, n in enumerate(lengths):
        out[k] = correct[k, n - max(1, n // 4) : n].mean()
    return out


# --------------------------------------------------------------------------------------------
# The two quantities and their correlations
# --------------------------------------------------------------------------------------------


def relative(a, b) -> np.ndarray:
    """``a / (a + b)`` elementwise, NaN where ``a + b == 0``; a and b non-negative, same shape."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if (a < 0).any() or (b < 0).any():
        raise ValueError("a and b must be non-negative (sums of absolute values)")
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, a / np.where(total > 0, total, 1.0), np.nan)


def relative_updating(run: LocalizationRun, window: str = "second_half") -> dict[str, np.ndarray]:
    """``a / (a + b)`` per parameter over phase 1's ``"second_half"`` or ``"whole"`` run: name -> (K, ...)."""
    if window not in ("second_half", "whole"):
        raise ValueError(f"window must be 'second_half' or 'whole', got {window!r}")
    out = {}
    for n, t in run.tallies.items():
        t = t.numpy().astype(np.float64)
        a, b = (t[2], t[3]) if window == "second_half" else (t[0] + t[2], t[1] + t[3])
        out[n] = relative(a, b)
    return out


def relative_difference(run: LocalizationRun) -> dict[str, np.ndarray]:
    """``d1 / (d1 + d2)`` per parameter from the four forks: name -> (K, ...)."""
    out = {}
    for n, v in run.forks.items():
        v = v.numpy().astype(np.float64)
        out[n] = relative(np.abs(v[0] - v[1]), np.abs(v[2] - v[3]))
    return out


def finite_pearson(x, y) -> float:
    """Pearson r over the pairs where both values are finite (NaN if fewer than 3 or no spread)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same number of values, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def seed_correlations(run: LocalizationRun, window: str = "second_half") -> dict[str, np.ndarray]:
    """Per seed, r(relative updating, relative difference) for the first-layer ``"weights"`` and ``"biases"``: (K,) each."""
    r, q = relative_updating(run, window), relative_difference(run)
    K = len(run.seeds)
    return {
        "weights": np.array([finite_pearson(r["W1"][k], q["W1"][k]) for k in range(K)]),
        "biases": np.array([finite_pearson(r["b1"][k], q["b1"][k]) for k in range(K)]),
    }


def pixel_correlations(r_w1, q_w1) -> np.ndarray:
    """Per input pixel, Pearson r over the H weights leaving it.

    Parameters
    ----------
    r_w1, q_w1 : arrays (..., H, D), e.g. one member's relative updating and difference of W1

    Returns
    -------
    (..., D); NaN where a pixel has fewer than 3 finite pairs or no spread
    """
    r, q = np.asarray(r_w1, dtype=np.float64), np.asarray(q_w1, dtype=np.float64)
    if r.shape != q.shape or r.ndim < 2:
        raise ValueError(f"r_w1 and q_w1 must share a shape (..., H, D), got {r.shape} and {q.shape}")
    ok = np.isfinite(r) & np.isfinite(q)
    n = ok.sum(-2)
    r0, q0 = np.where(ok, r, 0.0), np.where(ok, q, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rm, qm = r0.sum(-2) / n, q0.sum(-2) / n
        rc = np.where(ok, r0 - rm[..., None, :], 0.0)
        qc = np.where(ok, q0 - qm[..., None, :], 0.0)
        denom = np.sqrt((rc**2).sum(-2) * (qc**2).sum(-2))
        out = (rc * qc).sum(-2) / denom
    return np.where((n >= 3) & (denom > 1e-300), out, np.nan)


def constant_inputs(*Xs) -> np.ndarray:
    """Input features that take one single value in every given data set: (D,) bool."""
    if not Xs:
        raise ValueError("constant_inputs needs at least one (N, D) array")
    X = np.concatenate([np.asarray(x) for x in Xs], 0)
    if X.ndim != 2:
        raise ValueError(f"inputs must be (N, D) arrays, got {X.ndim}-d")
    return (X == X[:1]).all(0)


def between_neuron_share(values) -> float:
    """Share of the variance of a (H, D) array explained by its row (the hidden neuron), eta^2.

    NaN entries are left out.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be (H, D), got shape {v.shape}")
    ok = np.isfinite(v)
    grand = v[ok].mean()
    total = ((v[ok] - grand) ** 2).sum()
    n = ok.sum(1)
    means = np.where(n > 0, np.where(ok, v, 0).sum(1) / np.maximum(n, 1), grand)
    between = (n * (means - grand) ** 2).sum()
    return float(between / total) if total > 0 else float("nan")


def partial_correlation(x, y, z) -> float:
    """Pearson r of x and y with the linear effect of z removed from both (finite triples only)."""
    x, y, z = (np.asarray(v, dtype=np.float64).ravel() for v in (x, y, z))
    if not x.shape == y.shape == z.shape:
        raise ValueError(f"x, y and z must have the same number of values, got {x.size}, {y.size}, {z.size}")
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[ok], y[ok], z[ok]
    rxy, rxz, ryz = finite_pearson(x, y), finite_pearson(x, z), finite_pearson(y, z)
    return float((rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2)))


def ink_share(X, digits) -> np.ndarray:
    """Per input, mean value over 1s/7s divided by (that + mean value over 6s/8s): (N, D) -> (D,).

    A statistic of the data alone: near 1 where only 1s and 7s put ink, near 0 where only 6s and 8s do.
    """
    X, digits = np.asarray(X, dtype=np.float64), np.asarray(digits)
    if X.ndim != 2 or digits.shape != (len(X),):
        raise ValueError(f"X must be (N, D) and digits (N,), got {X.shape} and {digits.shape}")
    in17, in68 = np.isin(digits, GROUP_17), np.isin(digits, GROUP_68)
    if not in17.any() or not in68.any():
        raise ValueError("digits must contain both a 1 or 7 and a 6 or 8")
    return relative(X[in17].mean(0), X[in68].mean(0))


def cluster_check(r: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray], constant: np.ndarray) -> dict[str, float]:
    """For one member: do the weights of inputs that never change sit on their neuron's bias point?

    Parameters
    ----------
    r, q : relative updating and difference of one member, with ``W1`` (H, D) and ``b1`` (H,)
    constant : (D,) bool, the inputs that never change (:func:`constant_inputs`)

    Returns
    -------
    dict: ``share_constant`` (share of W1 from constant inputs), ``max_offset`` (largest distance
    of such a weight's point from its neuron's bias point), ``neuron_share_r`` and
    ``neuron_share_q`` (variance share explained by the hidden neuron, :func:`between_neuron_share`)
    """
    rw, qw, rb, qb = (np.asarray(v, dtype=np.float64) for v in (r["W1"], q["W1"], r["b1"], q["b1"]))
    constant = np.asarray(constant, dtype=bool)
    if rw.ndim != 2 or constant.shape != (rw.shape[1],) or rb.shape != (rw.shape[0],):
        raise ValueError(f"expected W1 (H, D), b1 (H,) and constant (D,), got {rw.shape}, {rb.shape}, {constant.shape}")
    offsets = np.hypot(rw[:, constant] - rb[:, None], qw[:, constant] - qb[:, None])
    return {
        "share_constant": float(constant.mean()),
        "max_offset": float(np.nanmax(offsets)) if offsets.size else float("nan"),
        "neuron_share_r": between_neuron_share(rw),
        "neuron_share_q": between_neuron_share(qw),
    }


def pixel_map_summary(pixel_r: np.ndarray, constant: np.ndarray) -> dict[str, float]:
    """Summary of a per-pixel correlation map (D,): signs among changing pixels, means by kind."""
    pixel_r, constant = np.asarray(pixel_r, dtype=np.float64), np.asarray(constant, dtype=bool)
    if pixel_r.shape != constant.shape or pixel_r.ndim != 1:
        raise ValueError(f"pixel_r and constant must both be (D,), got {pixel_r.shape} and {constant.shape}")
    varying = pixel_r[~constant & np.isfinite(pixel_r)]
    fixed = pixel_r[constant & np.isfinite(pixel_r)]
    return {
        "share_positive": float((varying > 0).mean()),
        "share_negative": float((varying < 0).mean()),
        "mean_varying": float(varying.mean()),
        "mean_constant": float(fixed.mean()) if fixed.size else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# Sweeps and summaries across seeds
# --------------------------------------------------------------------------------------------


def finite_mean_ci(values):
    """:func:`nnlearn.stats.mean_ci` of per-seed values, or None if any is NaN/inf (a diverged run)."""
    from nnlearn.stats import mean_ci

    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"values must be a 1-d array of at least 2 per-seed values, got shape {v.shape}")
    return mean_ci(v) if np.isfinite(v).all() else None


def activation_lr_sweep(
    data: PhaseData,
    seeds: Sequence[int],
    activations: Sequence[str],
    lrs: Sequence[float],
    *,
    hidden: int = 100,
    loss: str = "mse",
    dtype: torch.dtype = torch.float32,
) -> dict[tuple[str, float], dict]:
    """The whole study for every (activation, learning rate), all learning rates of one activation in one batch.

    Returns
    -------
    dict (activation, lr) -> {"weights", "biases": mean over seeds of the per-seed correlation
    (an ``Estimate``, or None where a seed diverged), "acc": mean phase-1 online accuracy (float),
    "fork_acc": mean late online accuracy of the forks (float)}
    """
    seeds, lrs = list(seeds), [float(lr) for lr in lrs]
    if not seeds or not lrs or not activations:
        raise ValueError("seeds, activations and lrs must each hold at least one value")
    if any(not lr > 0 for lr in lrs):
        raise ValueError(f"lrs must all be > 0, got {lrs}")
    for act in activations:
        _check_activation(act)
    K = len(seeds)
    out = {}
    for act in activations:
        with np.errstate(invalid="ignore", over="ignore"):
            run = run_localization(data, seeds * len(lrs), activation=act, hidden=hidden, lr=np.repeat(lrs, K), loss=loss, dtype=dtype)
            corr = seed_correlations(run)
        for i, lr in enumerate(lrs):
            part = slice(i * K, (i + 1) * K)
            out[act, lr] = {
                "weights": finite_mean_ci(corr["weights"][part]),
                "biases": finite_mean_ci(corr["biases"][part]),
                "acc": float(run.phase1_acc[part].mean()),
                "fork_acc": float(run.fork_acc[:, part].mean()),
            }
    return out


def map_agreement(maps, keep=None) -> np.ndarray:
    """Pearson r between every pair of per-seed maps: (K, D) -> (K*(K-1)/2,), over the ``keep`` (D,) entries."""
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 2 or len(m) < 2:
        raise ValueError(f"maps must be (K, D) with K >= 2, got shape {m.shape}")
    if keep is not None:
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (m.shape[1],):
            raise ValueError(f"keep must be a (D,) bool mask with D={m.shape[1]}, got shape {keep.shape}")
        m = m[:, keep]
    i, j = np.triu_indices(len(m), 1)
    return np.array([finite_pearson(m[a], m[b]) for a, b in zip(i, j)])


def knot_purity(r_w1, q_w1, constant, *, bins: int = 200, min_count: int = 20) -> dict[str, float]:
    """How far the dense knots of a weight scatter are single hidden neurons' incoming weights.

    The unit square of (relative updating, relative difference) is cut into ``bins`` x ``bins``
    cells; a *knot* is a cell holding at least ``min_count`` weights.

    Parameters
    ----------
    r_w1, q_w1 : (H, D) relative updating and difference of one member's first-layer weights
    constant : (D,) bool, the inputs that never change

    Returns
    -------
    dict: ``n_knots``; ``purity``, the share of the knots' weights that enter their knot's most
    common hidden neuron; ``constant_share``, the share of the knots' weights that leave a
    never-changing input
    """
    r, q = np.asarray(r_w1, dtype=np.float64), np.asarray(q_w1, dtype=np.float64)
    constant = np.asarray(constant, dtype=bool)
    if r.shape != q.shape or r.ndim != 2 or constant.shape != (r.shape[1],):
        raise ValueError(f"expected r_w1 and q_w1 (H, D) and constant (D,), got {r.shape}, {q.shape}, {constant.shape}")
    bins, min_count = positive_int("bins", bins), positive_int("min_count", min_count)
    H, D = r.shape
    ok = np.isfinite(r) & np.isfinite(q)
    cell_of = lambda v: np.clip((v[ok] * bins).astype(np.int64), 0, bins - 1)  # noqa: E731
    cell = cell_of(r) * bins + cell_of(q)
    neuron = np.broadcast_to(np.arange(H)[:, None], (H, D))[ok]
    from_constant = np.broadcast_to(constant, (H, D))[ok]
    counts = np.bincount(cell, minlength=bins * bins)
    knots = np.flatnonzero(counts >= min_count)
    if knots.size == 0:
        return {"n_knots": 0, "purity": float("nan"), "constant_share": float("nan")}
    in_knot = np.isin(cell, knots)
    # count (knot, neuron) pairs; the largest count per knot is its majority neuron
    pair_counts = np.bincount(cell[in_knot] * H + neuron[in_knot], minlength=bins * bins * H).reshape(bins * bins, H)
    majority = pair_counts[knots].max(1).sum()
    return {
        "n_knots": int(knots.size),
        "purity": float(majority / in_knot.sum()),
        "constant_share": float(from_constant[in_knot].mean()),
    }
