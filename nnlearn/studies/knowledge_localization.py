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

from nnlearn import engine
from nnlearn.checks import index_in_range, positive_int
from nnlearn.models import MLP, MLPStack

PARAM_NAMES = ("W1", "b1", "W2", "b2")
FORKS = {
    "1v68": ((1,), (6, 8)),
    "7v68": ((7,), (6, 8)),
    "17v6": ((1, 7), (6,)),
    "17v8": ((1, 7), (8,)),
}
GROUP_17, GROUP_68 = (1, 7), (6, 8)
LOSSES = ("mse", "ce")


def _array(name: str, value, *, ndim=None, nan_ok: bool = False, dtype=np.float64) -> np.ndarray:
    """``value`` as a non-empty numeric array, or TypeError (not numbers) / ValueError (empty,
    wrong number of dimensions, NaN or inf) naming ``name``. ``nan_ok`` lets NaN through for
    functions documented to skip missing values (inf is still refused)."""
    if value is None or isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        a = np.asarray(value)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array of numbers") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name} must be an array of numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if ndim is not None and a.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(a.dtype, np.integer):
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise ValueError(f"{name} must hold whole numbers")
    a = a.astype(dtype)
    bad = np.isinf(a) if nan_ok else ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} must be finite (no {'inf' if nan_ok else 'NaN or inf'})")
    return a


def _mask(name: str, value) -> np.ndarray:
    """A boolean mask; TypeError naming ``name`` for anything else (0/1 floats included)."""
    a = np.asarray(value) if not isinstance(value, torch.Tensor) else value.cpu().numpy()
    if a.dtype != bool:
        raise TypeError(f"{name} must be a boolean mask, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    return a


def _check_run(run) -> None:
    if not isinstance(run, LocalizationRun):
        raise TypeError(
            f"run must be a LocalizationRun (see run_localization), got {type(run).__name__}"
        )


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
    "linear": (lambda z: z, torch.ones_like),
}
LEAKY_SLOPES = (0.5, 0.1, 0.01)  # leaky ReLU between linear (slope 1) and ReLU (slope 0)
for _slope in LEAKY_SLOPES:
    ACTIVATIONS[f"leaky{_slope:g}"] = (
        lambda z, a=_slope: F.leaky_relu(z, a),
        lambda z, a=_slope: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, a)),
    )


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


def he_params(
    seeds: Sequence[int], *, n_in: int = 784, hidden: int = 100, n_out: int = 2
) -> dict[str, torch.Tensor]:
    """He-initialised weights *and* biases of K one-hidden-layer nets, one per seed.

    Uses :class:`nnlearn.models.MLP` with ``init="he"``, so member k equals
    ``MLP([n_in, hidden, n_out], init="he", seed=seeds[k])``.

    Returns
    -------
    dict with ``W1`` (K, hidden, n_in), ``b1`` (K, hidden), ``W2`` (K, n_out, hidden), ``b2`` (K, n_out)
    """
    seeds = _check_seeds(seeds)
    hidden = positive_int("hidden", hidden)
    n_in, n_out = positive_int("n_in", n_in), positive_int("n_out", n_out)
    nets = [MLP([n_in, hidden, n_out], init="he", seed=s) for s in seeds]
    pick = lambda name: torch.stack([dict(n.named_parameters())[name].detach() for n in nets])
    return {
        "W1": pick("layers.0.weight"),
        "b1": pick("layers.0.bias"),
        "W2": pick("layers.1.weight"),
        "b2": pick("layers.1.bias"),
    }


def _check_params(params, dtype=torch.float64) -> dict[str, torch.Tensor]:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping name -> tensor, got {type(params).__name__}")
    if set(params) != set(PARAM_NAMES):
        raise ValueError(f"params must be a mapping with exactly the keys {PARAM_NAMES}")
    for n in PARAM_NAMES:
        if not isinstance(params[n], torch.Tensor):
            raise TypeError(f"params[{n!r}] must be a torch.Tensor, got {type(params[n]).__name__}")
        if params[n].ndim not in (2, 3) or params[n].numel() == 0:
            raise ValueError(
                f"params[{n!r}] must be a non-empty 2-d or 3-d tensor, got {tuple(params[n].shape)}"
            )
        if not torch.isfinite(params[n]).all():
            raise ValueError(f"params[{n!r}] must be finite (no NaN or inf)")
    W1, b1, W2, b2 = (params[n] for n in PARAM_NAMES)
    K, H = W1.shape[:2]
    if (
        W1.ndim != 3
        or b1.shape != (K, H)
        or W2.ndim != 3
        or W2.shape[:1] + W2.shape[2:] != (K, H)
        or b2.shape != W2.shape[:2]
    ):
        raise ValueError(
            "params: expected W1 (K,H,D), b1 (K,H), W2 (K,C,H), b2 (K,C); got "
            + ", ".join(f"{n} {tuple(params[n].shape)}" for n in PARAM_NAMES)
        )
    return {n: params[n].detach().to(dtype).clone() for n in PARAM_NAMES}


def member_params(params: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Member ``k`` as an ``MLP`` state dict (``layers.0.weight`` ...)."""
    names = ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias")
    p = _check_params(
        params,
        params["W1"].dtype if isinstance(params, Mapping) and "W1" in params else torch.float64,
    )
    k = index_in_range("k", k, p["W1"].shape[0])
    return {m: p[n][k].clone() for m, n in zip(names, PARAM_NAMES)}


def forward(
    params: Mapping[str, torch.Tensor],
    X: torch.Tensor,
    activation: str,
    output_activation: str | None = None,
) -> torch.Tensor:
    """Outputs of K nets on shared inputs: X (N, D) -> (K, N, C).

    ``output_activation`` (a key of ``ACTIVATIONS``, or None for linear outputs) is applied to
    the output layer, as ``MLP(..., output_activation=...)`` does.
    """
    _check_activation(activation)
    act, out_act = ACTIVATIONS[activation][0], _output_functions(output_activation)[0]
    p = _check_params(params, X.dtype if isinstance(X, torch.Tensor) else torch.float64)
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[0] == 0:
        raise TypeError("X must be a non-empty 2-d torch.Tensor (N, D)")
    if X.shape[1] != p["W1"].shape[2] or not torch.isfinite(X).all():
        raise ValueError(
            f"X must be finite with D = {p['W1'].shape[2]} columns, got {tuple(X.shape)}"
        )
    params = p
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
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or not out.is_floating_point():
        raise TypeError("out must be a 2-d float torch.Tensor (K, C)")
    if (
        not isinstance(target, torch.Tensor)
        or target.shape != out.shape[:1]
        or target.is_floating_point()
    ):
        raise TypeError(f"target must be an integer torch.Tensor of shape ({out.shape[0]},)")
    if target.numel() and (target.min() < 0 or target.max() >= out.shape[-1]):
        raise ValueError(f"target entries must be classes in 0..{out.shape[-1] - 1}")
    if not torch.isfinite(out).all():
        raise ValueError("out must be finite (no NaN or inf)")
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
    if X.shape[0] == 0 or not torch.isfinite(X).all():
        raise ValueError(
            f"X must be non-empty and finite (no NaN or inf), got shape {tuple(X.shape)}"
        )
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)):
        raise TypeError(f"n_groups must be an int, got {type(n_groups).__name__}")
    order, targets = torch.as_tensor(order), torch.as_tensor(targets)
    if order.numel() == 0:
        raise ValueError("order must not be empty")
    if targets.dtype not in (torch.int32, torch.int64) or (targets.numel() and targets.min() < 0):
        raise ValueError(f"targets must be non-negative integer classes, got dtype {targets.dtype}")
    if order.ndim != 2 or order.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"order must be an integer array of shape (K, T), got {tuple(order.shape)} {order.dtype}"
        )
    if targets.shape != order.shape:
        raise ValueError(
            f"targets must have the shape of order {tuple(order.shape)}, got {tuple(targets.shape)}"
        )
    if order.numel() and (order.max() >= len(X) or order.min() < -1):
        raise ValueError(f"order entries must be -1 (no step) or indices into X (0..{len(X) - 1})")
    if groups is not None:
        groups = torch.as_tensor(groups)
        if groups.shape != order.shape:
            raise ValueError(
                f"groups must have the shape of order {tuple(order.shape)}, got {tuple(groups.shape)}"
            )
        if n_groups < 1 or groups.max() >= n_groups or groups.min() < -1:
            raise ValueError(
                f"groups entries must be -1 (not tallied) or in 0..n_groups-1 with n_groups >= 1, got n_groups={n_groups}"
            )
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
    use_engine: bool = False,
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
    use_engine : train with the general engine (:func:`nnlearn.engine.train_online` with a
        :class:`nnlearn.engine.Tallies` callback) instead of this chunked fast path: the same
        numbers to float rounding, many times slower (``make bench``)

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
        raise ValueError(
            f"params hold {p['W1'].shape[0]} members of input size {p['W1'].shape[2]}; order has K={K}, X has D={X.shape[1]}"
        )
    lr = torch.as_tensor(_check_lr(lr, K), dtype=dtype)
    if use_engine:  # the general engine: one autograd step per example, tallies as a callback
        names = dict(
            zip(
                PARAM_NAMES,
                ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"),
            )
        )
        stack = MLPStack(
            [X.shape[1], p["W1"].shape[1], p["W2"].shape[1]],
            activation,
            output_activation=output_activation,
        )
        tally = [engine.Tallies(groups, n_groups)] if groups is not None else []
        run = engine.train_online(
            stack,
            {names[n]: p[n] for n in PARAM_NAMES},
            X,
            order,
            targets,
            lr=lr,
            loss=loss,
            callbacks=tally,
            progress=False,
        )
        return SGDResult(
            params={n: run.params[m] for n, m in names.items()},
            tallies={n: tally[0].value[m] for n, m in names.items()} if tally else None,
            correct=run.acc.T > 0.5,
        )
    act, act_prime = ACTIVATIONS[activation]
    W1, b1, W2, b2 = (p[n] for n in PARAM_NAMES)
    tallies = (
        {n: torch.zeros((n_groups, *p[n].shape), dtype=dtype) for n in PARAM_NAMES}
        if groups is not None
        else None
    )
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
    return SGDResult(
        params={"W1": W1, "b1": b1, "W2": W2, "b2": b2}, tallies=tallies, correct=correct.numpy()
    )


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
    X = torch.as_tensor(_array("X", X, ndim=2, dtype=np.float32))
    y = _array("y", y, ndim=1)
    if (y != np.round(y)).any():
        raise ValueError("y must hold whole-number digit labels")
    y = y.astype(np.int64)
    if not isinstance(balance, (bool, np.bool_)):
        raise TypeError(f"balance must be a bool, got {type(balance).__name__}")
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (N, D) and y (N,), got {tuple(X.shape)} and {y.shape}")
    phase1_datapoints = positive_int("phase1_datapoints", phase1_datapoints)
    if phase1_datapoints >= len(X):
        raise ValueError(
            f"phase1_datapoints must be < the {len(X)} datapoints, so that phase 2 has data"
        )
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
    digits = _array("digits", digits, ndim=1, dtype=np.int64)
    if not isinstance(forks, Mapping) or not forks:
        raise TypeError("forks must be a non-empty mapping name -> (first digits, second digits)")
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
    phase1 : dict name -> (K, ...) parameters after phase 1 (the forks' starting point)
    init : dict name -> (K, ...) the initial parameters
    modes : (K,) the phase-1 mode of each member (``PHASE1_MODES``)
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
    phase1: dict | None = None
    init: dict | None = None
    modes: np.ndarray | None = None


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
    shuffle: bool = False,
    phase1="trained",
) -> LocalizationRun:
    """Phase 1 for K seeds at once, then all 4 x K forks at once.

    ``lr`` is one float or one value per seed (several learning rates train in one batch).
    ``output_activation``: None for linear outputs, or a key of ``ACTIVATIONS``.
    ``shuffle``: False keeps the data set's order (as the source); True gives each member its
    own order of the phase-1 stream and of every fork's stream, drawn from its seed (the split
    into phases stays positional).
    ``phase1``: one of ``PHASE1_MODES`` or one per member: ``"trained"`` (the source's phase 1),
    ``"shuffled"`` (phase 1 on randomly permuted labels; the tallies still sort the steps by the
    true digit) or ``"untrained"`` (no phase-1 learning: the tallies are the absolute updates the
    initial network would make on each example, and the forks start from the initial network).
    """
    if not isinstance(data, PhaseData):
        raise TypeError(f"data must be a PhaseData (see split_phases), got {type(data).__name__}")
    seeds = _check_seeds(seeds)
    K = len(seeds)
    hidden = positive_int("hidden", hidden)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
    modes = _check_modes(phase1, K)
    init = he_params(seeds, n_in=data.X1.shape[1], hidden=hidden)
    lr = _check_lr(lr, K)
    n1 = len(data.digits1)
    rngs = [np.random.default_rng([int(s), 7]) for s in seeds]
    order1 = np.stack([r.permutation(n1) if shuffle else np.arange(n1) for r in rngs])
    digits = data.digits1[order1]  # (K, n1), each member's stream
    half = np.arange(n1) >= n1 // 2
    group = np.where(np.isin(digits, GROUP_17), 0, 1) + 2 * half
    targets1 = np.isin(digits, GROUP_68).astype(np.int64)
    for k in np.flatnonzero(modes == "shuffled"):
        targets1[k] = rngs[k].permutation(targets1[k])
    frozen = modes == "untrained"
    lr1 = np.where(frozen, lr * UNTRAINED_LR_FACTOR, lr)
    p1 = per_example_sgd(
        init,
        data.X1,
        order1,
        targets1,
        lr=lr1,
        activation=activation,
        output_activation=output_activation,
        loss=loss,
        groups=group,
        n_groups=4,
        chunk=chunk,
        dtype=dtype,
    )
    start = {
        n: torch.where(_member_mask(frozen, v), init[n].to(v.dtype), v)
        for n, v in p1.params.items()
    }
    order2, targets2 = fork_streams(data.digits2)
    n_forks = len(order2)
    order2, targets2 = np.repeat(order2, K, 0), np.repeat(targets2, K, 0)  # fork-major
    if shuffle:
        for f in range(n_forks):
            for k, r in enumerate(rngs):
                row = f * K + k
                n = int((order2[row] >= 0).sum())
                perm = r.permutation(n)
                order2[row, :n], targets2[row, :n] = order2[row, perm], targets2[row, perm]
    fork_init = {n: v.repeat(n_forks, *[1] * (v.ndim - 1)) for n, v in start.items()}
    p2 = per_example_sgd(
        fork_init,
        data.X2,
        order2,
        targets2,
        lr=np.tile(lr, n_forks),
        activation=activation,
        output_activation=output_activation,
        loss=loss,
        chunk=chunk,
        dtype=dtype,
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
        fork_acc=_late_accuracy(p2.correct, order2).reshape(n_forks, K),
        phase1=start,
        init=init,
        modes=modes,
    )


PHASE1_MODES = ("trained", "shuffled", "untrained")
# "untrained" members step with lr times this factor in phase 1: their tallies are the initial
# network's absolute updates (the ratio a / (a + b) does not depend on the step's scale) while
# the parameters stay at their initial values to far below float precision of the forks' steps.
UNTRAINED_LR_FACTOR = 1e-12


def _member_mask(mask: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(mask).reshape(-1, *[1] * (like.ndim - 1))


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise TypeError(f"seeds must be a sequence of ints, got {type(seeds).__name__}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"seeds must hold ints, got {type(s).__name__}")
        if not 0 <= s < 2**32:
            raise ValueError(f"seeds must lie in [0, 2**32), got {s}")
    return [int(s) for s in seeds]


def _check_modes(phase1, K: int) -> np.ndarray:
    modes = np.array([phase1] * K if isinstance(phase1, str) else list(phase1), dtype=object)
    if modes.shape != (K,):
        raise ValueError(f"phase1 must be one mode or one per seed ({K}), got {len(modes)}")
    for m in modes:
        if m not in PHASE1_MODES:
            raise ValueError(f"phase1 must be one of {PHASE1_MODES}, got {m!r}")
    return modes.astype(str)


def _check_lr(lr, K: int) -> np.ndarray:
    a = np.asarray(lr)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"lr must be a number or one number per member, got {a.dtype}")
    if a.ndim > 1 or (a.ndim == 1 and a.shape != (K,)):
        raise ValueError(f"lr must be one number or {K} numbers, got shape {a.shape}")
    a = np.broadcast_to(a.astype(np.float64), (K,)).copy()
    if not np.isfinite(a).all() or not (a > 0).all():
        raise ValueError(f"lr must be finite and > 0, got {a}")
    return a


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
    a, b = _array("a", a), _array("b", b)
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
    _check_run(run)
    out = {}
    for n, t in run.tallies.items():
        t = t.numpy().astype(np.float64)
        a, b = (t[2], t[3]) if window == "second_half" else (t[0] + t[2], t[1] + t[3])
        out[n] = relative(a, b)
    return out


def relative_difference(run: LocalizationRun) -> dict[str, np.ndarray]:
    """``d1 / (d1 + d2)`` per parameter from the four forks: name -> (K, ...)."""
    _check_run(run)
    out = {}
    for n, v in run.forks.items():
        v = v.numpy().astype(np.float64)
        out[n] = relative(np.abs(v[0] - v[1]), np.abs(v[2] - v[3]))
    return out


def finite_pearson(x, y) -> float:
    """Pearson r over the pairs where both values are finite (NaN if fewer than 3 or no spread)."""
    x, y = _array("x", x, nan_ok=True).ravel(), _array("y", y, nan_ok=True).ravel()
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
    _check_run(run)
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
    r, q = _array("r_w1", r_w1, nan_ok=True), _array("q_w1", q_w1, nan_ok=True)
    if r.shape != q.shape or r.ndim < 2:
        raise ValueError(
            f"r_w1 and q_w1 must share a shape (..., H, D), got {r.shape} and {q.shape}"
        )
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
    arrays = [_array(f"Xs[{i}]", x, ndim=2) for i, x in enumerate(Xs)]
    if len({a.shape[1] for a in arrays}) != 1:
        raise ValueError(f"Xs must share their number of columns, got {[a.shape for a in arrays]}")
    X = np.concatenate(arrays, 0)
    if X.ndim != 2:
        raise ValueError(f"inputs must be (N, D) arrays, got {X.ndim}-d")
    return (X == X[:1]).all(0)


def between_neuron_share(values) -> float:
    """Share of the variance of a (H, D) array explained by its row (the hidden neuron), eta^2.

    NaN entries are left out.
    """
    v = _array("values", values, nan_ok=True)
    if v.ndim != 2:
        raise ValueError(f"values must be (H, D), got shape {v.shape}")
    ok = np.isfinite(v)
    if not ok.any():
        raise ValueError("values must hold at least one finite number")
    grand = v[ok].mean()
    total = ((v[ok] - grand) ** 2).sum()
    n = ok.sum(1)
    means = np.where(n > 0, np.where(ok, v, 0).sum(1) / np.maximum(n, 1), grand)
    between = (n * (means - grand) ** 2).sum()
    return float(between / total) if total > 0 else float("nan")


def partial_correlation(x, y, z) -> float:
    """Pearson r of x and y with the linear effect of z removed from both (finite triples only)."""
    x, y, z = (_array(n, v, nan_ok=True).ravel() for n, v in (("x", x), ("y", y), ("z", z)))
    if not x.shape == y.shape == z.shape:
        raise ValueError(
            f"x, y and z must have the same number of values, got {x.size}, {y.size}, {z.size}"
        )
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[ok], y[ok], z[ok]
    rxy, rxz, ryz = finite_pearson(x, y), finite_pearson(x, z), finite_pearson(y, z)
    return float((rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2)))


def ink_share(X, digits) -> np.ndarray:
    """Per input, mean value over 1s/7s divided by (that + mean value over 6s/8s): (N, D) -> (D,).

    A statistic of the data alone: near 1 where only 1s and 7s put ink, near 0 where only 6s and 8s do.
    """
    X, digits = _array("X", X, ndim=2), _array("digits", digits, ndim=1, dtype=np.int64)
    if X.ndim != 2 or digits.shape != (len(X),):
        raise ValueError(f"X must be (N, D) and digits (N,), got {X.shape} and {digits.shape}")
    if (X < 0).any():
        raise ValueError("X must be non-negative pixel values")
    in17, in68 = np.isin(digits, GROUP_17), np.isin(digits, GROUP_68)
    if not in17.any() or not in68.any():
        raise ValueError("digits must contain both a 1 or 7 and a 6 or 8")
    return relative(X[in17].mean(0), X[in68].mean(0))


def cluster_check(
    r: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray], constant: np.ndarray
) -> dict[str, float]:
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
    for name, d in (("r", r), ("q", q)):
        if not isinstance(d, Mapping) or not {"W1", "b1"} <= set(d):
            raise TypeError(f"{name} must be a mapping with 'W1' and 'b1'")
    rw, qw = _array("r['W1']", r["W1"], nan_ok=True), _array("q['W1']", q["W1"], nan_ok=True)
    rb, qb = _array("r['b1']", r["b1"], nan_ok=True), _array("q['b1']", q["b1"], nan_ok=True)
    constant = _mask("constant", constant)
    if rw.ndim != 2 or constant.shape != (rw.shape[1],) or rb.shape != (rw.shape[0],):
        raise ValueError(
            f"expected W1 (H, D), b1 (H,) and constant (D,), got {rw.shape}, {rb.shape}, {constant.shape}"
        )
    offsets = np.hypot(rw[:, constant] - rb[:, None], qw[:, constant] - qb[:, None])
    return {
        "share_constant": float(constant.mean()),
        "max_offset": float(np.nanmax(offsets)) if offsets.size else float("nan"),
        "neuron_share_r": between_neuron_share(rw),
        "neuron_share_q": between_neuron_share(qw),
    }


def pixel_map_summary(pixel_r: np.ndarray, constant: np.ndarray) -> dict[str, float]:
    """Summary of a per-pixel correlation map (D,): signs among changing pixels, means by kind."""
    pixel_r, constant = _array("pixel_r", pixel_r, nan_ok=True), _mask("constant", constant)
    if pixel_r.shape != constant.shape or pixel_r.ndim != 1:
        raise ValueError(
            f"pixel_r and constant must both be (D,), got {pixel_r.shape} and {constant.shape}"
        )
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


def map_agreement(maps, keep=None) -> np.ndarray:
    """Pearson r between every pair of per-seed maps: (K, D) -> (K*(K-1)/2,), over the ``keep`` (D,) entries."""
    m = _array("maps", maps, nan_ok=True)
    if m.ndim != 2 or len(m) < 2:
        raise ValueError(f"maps must be (K, D) with K >= 2, got shape {m.shape}")
    if keep is not None:
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (m.shape[1],):
            raise ValueError(
                f"keep must be a (D,) bool mask with D={m.shape[1]}, got shape {keep.shape}"
            )
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
    r, q = _array("r_w1", r_w1, nan_ok=True), _array("q_w1", q_w1, nan_ok=True)
    constant = _mask("constant", constant)
    if r.shape != q.shape or r.ndim != 2 or constant.shape != (r.shape[1],):
        raise ValueError(
            f"expected r_w1 and q_w1 (H, D) and constant (D,), got {r.shape}, {q.shape}, {constant.shape}"
        )
    bins, min_count = positive_int("bins", bins), positive_int("min_count", min_count)
    H, D = r.shape
    ok = np.isfinite(r) & np.isfinite(q)
    cell_of = lambda v: np.clip((v[ok] * bins).astype(np.int64), 0, bins - 1)
    cell = cell_of(r) * bins + cell_of(q)
    neuron = np.broadcast_to(np.arange(H)[:, None], (H, D))[ok]
    from_constant = np.broadcast_to(constant, (H, D))[ok]
    counts = np.bincount(cell, minlength=bins * bins)
    knots = np.flatnonzero(counts >= min_count)
    if knots.size == 0:
        return {"n_knots": 0, "purity": float("nan"), "constant_share": float("nan")}
    in_knot = np.isin(cell, knots)
    # count (knot, neuron) pairs; the largest count per knot is its majority neuron
    pair_counts = np.bincount(
        cell[in_knot] * H + neuron[in_knot], minlength=bins * bins * H
    ).reshape(bins * bins, H)
    majority = pair_counts[knots].max(1).sum()
    return {
        "n_knots": int(knots.size),
        "purity": float(majority / in_knot.sum()),
        "constant_share": float(from_constant[in_knot].mean()),
    }


# --------------------------------------------------------------------------------------------
# Several activations in one batch, held-out accuracy, tuning, controls and ablation
# --------------------------------------------------------------------------------------------


def mixed_activation(per_member: Sequence) -> str:
    """Register an activation that applies ``per_member[k]`` to member k; returns its key.

    Entries are keys of ``ACTIVATIONS`` or None (linear). With it, networks of different
    activations train in one batched call (the members only share the step loop).
    """
    if isinstance(per_member, str) or not isinstance(per_member, (Sequence, np.ndarray)):
        raise TypeError(
            f"per_member must be a sequence of activation names, got {type(per_member).__name__}"
        )
    kinds = ["linear" if a is None else a for a in per_member]
    if not kinds:
        raise ValueError("per_member: expected at least one activation")
    for a in kinds:
        _check_activation(a, "per_member")
    if len(set(kinds)) == 1:
        return kinds[0]
    key = "mix:" + ",".join(kinds)
    if key not in ACTIVATIONS:
        order = list(dict.fromkeys(kinds))
        members = torch.tensor([order.index(a) for a in kinds])
        cache = {}

        def masks(z):  # one (rows, 1, ...) mask per activation, cached per layout
            reps, rest = divmod(z.shape[0], len(kinds))
            if rest or not reps:  # forks stack their members fork-major: a whole multiple
                raise ValueError(
                    f"z: expected a multiple of {len(kinds)} members, got {z.shape[0]}"
                )
            if (reps, z.ndim) not in cache:
                idx = members.repeat(reps).reshape(-1, *[1] * (z.ndim - 1))
                cache[reps, z.ndim] = [idx == i for i in range(len(order))]
            return cache[reps, z.ndim]

        def apply(z, which):  # elementwise: each member's rows get exactly their function
            ms = masks(z)
            out = ACTIVATIONS[order[-1]][which](z)
            for a, m in zip(order[:-1], ms[:-1]):
                out = torch.where(m, ACTIVATIONS[a][which](z), out)
            return out

        ACTIVATIONS[key] = (lambda z: apply(z, 0), lambda z: apply(z, 1))
    return key


def _check_images(name: str, X, digits=None):
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or tensor (N, D), got {type(X).__name__}")
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if digits is None:
        return X
    digits = np.asarray(digits)
    if digits.shape != (len(X),) or not np.issubdtype(digits.dtype, np.integer):
        raise ValueError(
            f"digits must be (N,) integer labels for the N = {len(X)} images, got {digits.shape} {digits.dtype}"
        )
    return X, digits


def heldout_accuracy(
    params, X, digits, *, activation: str, output_activation=None, first=GROUP_17, second=GROUP_68
) -> np.ndarray:
    """(K,) accuracy of K nets on the held-out images of ``first`` (class 0) versus ``second``
    (class 1); :func:`group_accuracy` also splits it by group."""
    return group_accuracy(
        params,
        X,
        digits,
        activation=activation,
        output_activation=output_activation,
        first=first,
        second=second,
    )[0]


def group_accuracy(
    params, X, digits, *, activation: str, output_activation=None, first=GROUP_17, second=GROUP_68
) -> np.ndarray:
    """(3, K): accuracy over all of ``first`` + ``second`` images, over ``first``, over ``second``
    (evaluated in single precision: an accuracy needs no more)."""
    X, digits = _check_images("X", X, digits)
    p = _check_params(params, torch.float32)
    for name, g in (("first", first), ("second", second)):
        if not isinstance(g, tuple) or not g or not np.isin(digits, g).any():
            raise ValueError(
                f"{name} must be a non-empty tuple of digits present in digits, got {g!r}"
            )
    keep = np.isin(digits, first + second)
    Xt = torch.as_tensor(X[keep], dtype=torch.float32)
    target = torch.as_tensor(np.isin(digits[keep], second))
    with torch.inference_mode():
        right = (forward(p, Xt, activation, output_activation).argmax(-1) == target.long()).double()
    in_second = target[None].expand_as(right)
    return np.stack(
        [
            right.mean(1).numpy(),
            (right * ~in_second).sum(1).numpy() / float((~target).sum()),
            (right * in_second).sum(1).numpy() / float(target.sum()),
        ]
    )


def fork_heldout_accuracy(run: LocalizationRun, X, digits) -> np.ndarray:
    """(4, K) held-out accuracy of every fork on its own task (``FORKS``)."""
    _check_run(run)
    out = []
    for f, (first, second) in enumerate(FORKS.values()):
        p = {n: v[f] for n, v in run.forks.items()}
        out.append(
            heldout_accuracy(
                p,
                X,
                digits,
                activation=run.activation,
                output_activation=run.output_activation,
                first=first,
                second=second,
            )
        )
    return np.stack(out)


def tune_learning_rates(
    data: PhaseData,
    X_test,
    y_test,
    configs: Mapping,
    lrs: Sequence[float],
    seeds: Sequence[int],
    *,
    tolerance: float = 0.005,
    dtype=torch.float32,
) -> dict:
    """Declared tuning rule: per configuration, the smallest rate whose phase-1 network's mean
    held-out accuracy (1/7 vs 6/8, over ``seeds``) is within ``tolerance`` of the best rate's.

    ``configs``: name -> (activation, output_activation). Everything trains in one batch
    (phase 1 only, in the data set's order). Returns name -> {"lr": chosen rate,
    "acc": {lr: mean held-out accuracy}}.
    """
    if not isinstance(data, PhaseData):
        raise TypeError(f"data must be a PhaseData (see split_phases), got {type(data).__name__}")
    if not isinstance(configs, Mapping) or not configs:
        raise ValueError(
            "configs must be a non-empty mapping name -> (activation, output_activation)"
        )
    lrs = [float(_check_lr(lr, 1)[0]) for lr in lrs] if isinstance(lrs, Sequence) and lrs else None
    if lrs is None:
        raise ValueError("lrs must be a non-empty sequence of positive rates")
    seeds = _check_seeds(seeds)
    if (
        not isinstance(tolerance, (int, float))
        or isinstance(tolerance, bool)
        or not 0 <= tolerance < 1
    ):
        raise ValueError(f"tolerance must be a number in [0, 1), got {tolerance!r}")
    members = [(c, lr, s) for c in configs for lr in lrs for s in seeds]
    hid = mixed_activation([configs[c][0] for c, _, _ in members])
    out_act = mixed_activation([configs[c][1] for c, _, _ in members])
    n1 = len(data.digits1)
    K = len(members)
    init = he_params([s for _, _, s in members], n_in=data.X1.shape[1])
    target = np.tile(np.isin(data.digits1, GROUP_68).astype(np.int64), (K, 1))
    with np.errstate(all="ignore"):
        res = per_example_sgd(
            init,
            data.X1,
            np.tile(np.arange(n1), (K, 1)),
            target,
            lr=[lr for _, lr, _ in members],
            activation=hid,
            output_activation=out_act,
            dtype=dtype,
        )
        ok = torch.stack(
            [torch.isfinite(v).reshape(K, -1).all(1) for v in res.params.values()]
        ).all(0)
        finite = {
            n: torch.where(_member_mask(ok.numpy(), v), v, torch.zeros_like(v))
            for n, v in res.params.items()
        }
        acc = heldout_accuracy(finite, X_test, y_test, activation=hid, output_activation=out_act)
    acc = np.where(ok.numpy(), acc, 0.0)  # a run that diverged counts as learning nothing
    acc = acc.reshape(len(configs), len(lrs), len(seeds)).mean(-1)
    out = {}
    for i, c in enumerate(configs):
        best = acc[i].max()
        out[c] = {
            "lr": next(lr for lr, a in zip(lrs, acc[i]) if a >= best - tolerance),
            "acc": dict(zip(lrs, acc[i].tolist())),
        }
    return out


def within_pixel_correlation(r_w1, q_w1) -> np.ndarray:
    """Pearson r of relative updating and relative difference *within* input pixels: both are
    centred on their pixel's mean over the H weights leaving it, then pooled.

    Anything that depends on the pixel alone (its ink, its position) is removed, so what is
    left is how the hidden neurons differ on the same pixel. ``(..., H, D) -> (...)``.
    """
    r, q = _array("r_w1", r_w1, nan_ok=True), _array("q_w1", q_w1, nan_ok=True)
    if r.shape != q.shape or r.ndim < 2:
        raise ValueError(
            f"r_w1 and q_w1 must share a shape (..., H, D), got {r.shape} and {q.shape}"
        )
    ok = np.isfinite(r) & np.isfinite(q)
    n = np.maximum(ok.sum(-2, keepdims=True), 1)
    r0, q0 = np.where(ok, r, 0.0), np.where(ok, q, 0.0)
    rc = np.where(ok, r0 - r0.sum(-2, keepdims=True) / n, 0.0)
    qc = np.where(ok, q0 - q0.sum(-2, keepdims=True) / n, 0.0)
    num = (rc * qc).sum((-2, -1))
    den = np.sqrt((rc**2).sum((-2, -1)) * (qc**2).sum((-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def run_statistics(run: LocalizationRun, ink, changing=None) -> dict[str, np.ndarray]:
    """Per member (K,): the correlations the chapter judges.

    ``weights`` raw r over first-layer weights; ``within`` the within-pixel r over the
    ``changing`` (D,) pixels (default: all); ``biases`` over
    hidden biases; ``output`` over the output layer's weights; ``both`` over the weights of
    both layers; ``whole`` raw weight r with phase 1 tallied whole; ``ink`` r of the pixel's
    ink share (training-free) with the relative difference; ``pixel_pos`` / ``pixel_neg``
    share of changing pixels with a positive / negative per-pixel r.
    """
    _check_run(run)
    ink = _array("ink", ink, nan_ok=True)
    D = run.tallies["W1"].shape[-1]
    if ink.shape != (D,):
        raise ValueError(f"ink must be a (D,) = ({D},) array, got shape {ink.shape}")
    keep = np.ones(D, bool) if changing is None else _mask("changing", changing)
    if keep.shape != (D,) or keep.dtype != bool:
        raise ValueError(
            f"changing must be a (D,) = ({D},) bool mask, got {keep.shape} {keep.dtype}"
        )
    r, q, rw = relative_updating(run), relative_difference(run), relative_updating(run, "whole")
    K = len(run.seeds)
    ink_w = np.broadcast_to(ink, r["W1"].shape[1:])
    corr = lambda a, b: np.array([finite_pearson(a[k], b[k]) for k in range(K)])
    both = lambda d, k: np.r_[d["W1"][k].ravel(), d["W2"][k].ravel()]
    pix = pixel_correlations(r["W1"], q["W1"])
    return {
        "weights": corr(r["W1"], q["W1"]),
        "within": within_pixel_correlation(r["W1"][..., keep], q["W1"][..., keep]),
        "biases": corr(r["b1"], q["b1"]),
        "output": corr(r["W2"], q["W2"]),
        "both": np.array([finite_pearson(both(r, k), both(q, k)) for k in range(K)]),
        "whole": corr(rw["W1"], q["W1"]),
        "ink": np.array([finite_pearson(ink_w, q["W1"][k]) for k in range(K)]),
        "pixel_map": pix,
    }


def ablation_drops(
    run: LocalizationRun, X, digits, *, fraction: float = 0.05, seed: int = 0
) -> dict[str, np.ndarray]:
    """Causal test of the tallies: reset parameters of the phase-1 network to their initial
    values and measure the drop in held-out accuracy on 1/7 images and on 6/8 images.

    Three sets of the same size, ``fraction`` of all parameters: those 1s/7s updated most over
    phase 1 (tally ``a``), those 6s/8s updated most (``b``), and random ones. Returns
    ``{"17", "68", "random"} -> (2, K)`` drops (on 1/7 images, on 6/8 images) and
    ``"base" -> (2, K)`` the accuracies before any reset.
    """
    if not isinstance(run, LocalizationRun) or run.phase1 is None or run.init is None:
        raise TypeError(
            "run must be a LocalizationRun from run_localization (with phase1 and init)"
        )
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    _check_seeds([seed])
    X, digits = _check_images("X", X, digits)
    kw = {"activation": run.activation, "output_activation": run.output_activation}
    names = PARAM_NAMES
    flat = lambda d: torch.cat([d[n].reshape(d[n].shape[0], -1).double() for n in names], 1)
    trained, start = flat(run.phase1), flat(run.init)
    a = flat({n: run.tallies[n][0] + run.tallies[n][2] for n in names})
    b = flat({n: run.tallies[n][1] + run.tallies[n][3] for n in names})
    K, P = trained.shape
    m = max(1, int(round(fraction * P)))
    rng = np.random.default_rng(seed)
    picks = {
        "17": torch.topk(a, m, 1).indices,
        "68": torch.topk(b, m, 1).indices,
        "random": torch.as_tensor(np.stack([rng.choice(P, m, replace=False) for _ in range(K)])),
    }
    shapes = [run.phase1[n].shape for n in names]

    def unflat(v):
        out, i = {}, 0
        for n, sh in zip(names, shapes):
            size = int(np.prod(sh[1:]))
            out[n] = v[:, i : i + size].reshape(sh)
            i += size
        return out

    base = group_accuracy(unflat(trained), X, digits, **kw)[1:]
    out = {"base": base}
    for key, idx in picks.items():
        reset = trained.clone()
        reset.scatter_(1, idx, start.gather(1, idx))
        out[key] = base - group_accuracy(unflat(reset), X, digits, **kw)[1:]
    return out


@dataclass
class MemberPlan:
    """Groups of members trained in one batched call: ``slices[name]`` picks a group's runs."""

    activation: list
    output_activation: list
    modes: list
    lr: np.ndarray
    seeds: list
    slices: dict


def plan_members(groups: Mapping) -> MemberPlan:
    """``groups``: name -> (activation, output_activation, phase-1 mode, lr, number of runs).
    Run j of every group has seed j, so groups are paired run by run (same initial weights
    and data order)."""
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(
            "groups must be a non-empty mapping name -> (activation, output, mode, lr, n)"
        )
    plan = MemberPlan([], [], [], np.zeros(0), [], {})
    lrs = []
    for name, spec in groups.items():
        if not isinstance(spec, tuple) or len(spec) != 5:
            raise ValueError(
                f"groups[{name!r}] must be (activation, output, mode, lr, n), got {spec!r}"
            )
        act, out, mode, lr, n = spec
        n = positive_int(f"groups[{name!r}] n", n)
        _check_modes(mode, 1)
        start = len(plan.seeds)
        plan.activation += [act] * n
        plan.output_activation += [out] * n
        plan.modes += [mode] * n
        lrs += [float(_check_lr(lr, 1)[0])] * n
        plan.seeds += list(range(n))
        plan.slices[name] = slice(start, start + n)
    plan.lr = np.array(lrs)
    return plan


def run_plan(
    data: PhaseData, plan: MemberPlan, *, dtype=torch.float64, shuffle: bool = True
) -> LocalizationRun:
    """All of a plan's members through both phases in one batched computation."""
    if not isinstance(plan, MemberPlan):
        raise TypeError(f"plan must be a MemberPlan (see plan_members), got {type(plan).__name__}")
    with np.errstate(all="ignore"):
        return run_localization(
            data,
            plan.seeds,
            activation=mixed_activation(plan.activation),
            output_activation=mixed_activation(plan.output_activation),
            lr=plan.lr,
            phase1=plan.modes,
            shuffle=shuffle,
            dtype=dtype,
        )


def cluster_statistics(run: LocalizationRun, constant) -> dict[str, np.ndarray]:
    """Per member: ``offset``, the largest distance of a never-changing pixel's weight from
    its neuron's bias point; ``purity`` and ``knots`` of :func:`knot_purity`; ``neuron_share``,
    the share of the variance of the relative updating explained by the hidden neuron."""
    _check_run(run)
    r, q = relative_updating(run), relative_difference(run)
    constant = _mask("constant", constant)
    if constant.shape != (run.tallies["W1"].shape[-1],):
        raise ValueError(
            f"constant must be a ({run.tallies['W1'].shape[-1]},) mask, got {constant.shape}"
        )
    out = {"offset": [], "purity": [], "knots": [], "neuron_share": []}
    for k in range(len(run.seeds)):
        c = cluster_check(
            {n: v[k] for n, v in r.items()}, {n: v[k] for n, v in q.items()}, constant
        )
        kn = knot_purity(r["W1"][k], q["W1"][k], constant)
        out["offset"].append(c["max_offset"])
        out["neuron_share"].append(c["neuron_share_r"])
        out["purity"].append(kn["purity"])
        out["knots"].append(kn["n_knots"])
    return {n: np.array(v) for n, v in out.items()}


def pixel_statistics(pixel_map, constant, biases) -> dict[str, np.ndarray]:
    """Per member, from per-pixel maps (K, D): shares of changing pixels with a positive and a
    negative correlation, whether the never-changing pixels' mean is below the changing ones',
    and the largest gap between a never-changing pixel's correlation and the biases' (K,)."""
    m = _array("pixel_map", pixel_map, nan_ok=True)
    constant, biases = _mask("constant", constant), _array("biases", biases, nan_ok=True)
    if m.ndim != 2 or constant.shape != (m.shape[1],) or biases.shape != (m.shape[0],):
        raise ValueError(
            f"expected pixel_map (K, D), constant (D,), biases (K,), got {m.shape}, {constant.shape}, {biases.shape}"
        )
    s = [pixel_map_summary(m[k], constant) for k in range(len(m))]
    gap = (
        np.abs(m[:, constant] - biases[:, None]).max(1)
        if constant.any()
        else np.full(len(m), np.nan)
    )
    return {
        "positive": np.array([v["share_positive"] for v in s]),
        "negative": np.array([v["share_negative"] for v in s]),
        "edge_lower": np.array([v["mean_constant"] < v["mean_varying"] for v in s]),
        "edge_gap": gap,
    }


def pearson_p(r, n: int) -> np.ndarray:
    """Two-sided p-value of the usual t-test of Pearson correlations ``r`` over ``n`` pairs."""
    from scipy import stats

    n = positive_int("n", n)
    if n < 3:
        raise ValueError(f"n must be >= 3 for a t-test of a correlation, got {n}")
    r = _array("r", r, ndim=1)
    if (np.abs(r) > 1).any():
        raise ValueError("r must be a non-empty array of finite correlations in [-1, 1]")
    with np.errstate(divide="ignore"):
        t = np.abs(r) * np.sqrt((n - 2) / np.maximum(1 - r**2, 0.0))
    return 2 * stats.t.sf(t, n - 2)


def ink_following(run: LocalizationRun, ink) -> np.ndarray:
    """Per member (K,): Pearson r of the first-layer weights' relative updating with the ink
    share of the pixel they leave."""
    _check_run(run)
    r = relative_updating(run)["W1"]
    ink = _array("ink", ink, nan_ok=True)
    if ink.shape != (r.shape[-1],):
        raise ValueError(f"ink must be a ({r.shape[-1]},) array, got shape {ink.shape}")
    ink_w = np.broadcast_to(ink, r.shape[1:])
    return np.array([finite_pearson(r[k], ink_w) for k in range(len(r))])


# --------------------------------------------------------------------------------------------
# The chapter's declared claims (one place, shown as a table in the chapter)
# --------------------------------------------------------------------------------------------

_GAP = "paired gap per run (same seed: same initial weights and data order)"
_CLAIMS = (
    # id, claim, kind, source's statement, where, statistic, rule, partly, controls
    (
        "shuffled_raw",
        "Phase 1 on shuffled labels shows less raw weight r",
        "control",
        "",
        "",
        f"{_GAP}: trained minus shuffled-label phase 1",
        ("interval_above", 0.0, (0.02, 0.05)),
    ),
    (
        "untrained_raw",
        "A network without phase 1 shows less raw weight r",
        "control",
        "",
        "",
        f"{_GAP}: trained minus untrained",
        ("interval_above", 0.0, (0.02, 0.05)),
    ),
    (
        "shuffled_within",
        "Phase 1 on shuffled labels shows less within-pixel r",
        "control",
        "",
        "",
        f"{_GAP}: trained minus shuffled-label phase 1",
        ("interval_above", 0.0, (0.02, 0.05)),
    ),
    (
        "untrained_within",
        "A network without phase 1 shows less within-pixel r",
        "control",
        "",
        "",
        f"{_GAP}: trained minus untrained",
        ("interval_above", 0.0, (0.02, 0.05)),
    ),
    (
        "ink_raw",
        "The ink share, a training-free predictor, follows q less well than r does",
        "control",
        "",
        "",
        "per run: r(r, q) minus r(ink share of the weight's pixel, q)",
        ("interval_above", 0.0, (0.02, 0.05)),
    ),
    (
        "biases",
        "Hidden biases: relative updating correlates positively with relative difference",
        "source",
        "weak-ish positive correlation, by a t-test (values lost)",
        "Analysis, plot 1",
        "Pearson r over the 100 hidden biases, mean over runs",
        ("interval_above", 0.0, (-0.02, 0.05)),
    ),
    (
        "weights",
        "First-layer weights: clearly positive correlation",
        "source",
        "very clear (value lost); no p-value needed",
        "Analysis, plot 2",
        "raw Pearson r over the 78,400 first-layer weights, mean over runs",
        ("interval_above", 0.2, (0.1, 0.3)),
        ("interval_above", 0.0),
        ("shuffled_raw", "untrained_raw", "ink_raw"),
    ),
    (
        "localized",
        "On the same pixel, neurons that 1s/7s moved more hold more of the 1-vs-7 difference",
        "source",
        "the hypothesis; the plots are 'some weak evidence' for it",
        "Analysis, opening; Conclusions",
        "within-pixel r over the weights of changing pixels, mean over runs",
        ("interval_above", 0.0, (0.02, 0.05)),
        None,
        ("shuffled_within", "untrained_within"),
    ),
    (
        "whole_phase",
        "Tallying over the whole of phase 1 also gives the clear correlation",
        "source",
        "the correlation still holds for all of phase 1",
        "Methods, tallies",
        "raw weight r with whole-phase tallies, mean over runs",
        ("interval_above", 0.2, (0.1, 0.3)),
        ("interval_above", 0.0),
    ),
    (
        "second_half",
        "The second half of phase 1 gives a slightly stronger correlation",
        "source",
        "slightly stronger for the second half",
        "Methods, tallies",
        "paired per run: raw weight r (second half) minus r (whole phase)",
        ("interval_above", 0.0, (-0.01, 0.01)),
    ),
    (
        "bias_point",
        "Weights from never-changing pixels sit exactly on their neuron's bias point",
        "identity",
        "",
        "",
        "largest distance over runs, in the (r, q) plane",
        ("at_most", 1e-6, (1e-7, 1e-5)),
    ),
    (
        "clusters",
        "The small knots in the weight scatter are single neurons' incoming weights",
        "source",
        "'pretty confident' each cluster is one hidden neuron's",
        "Analysis, plot 3",
        "share of the weights in dense cells (>= 20 in a 200x200 grid) entering the cell's most "
        "common neuron, mean over runs",
        ("interval_above", 0.75, (0.5, 0.9)),
    ),
    (
        "pixel_positive",
        "Per-pixel correlation (over a pixel's 100 weights) is mostly positive",
        "source",
        "overall correlation mostly [value lost]",
        "Analysis, plot 4",
        "share of changing pixels with r > 0, mean over runs",
        ("interval_above", 0.5, (0.45, 0.55)),
    ),
    (
        "pixel_negative",
        "... with some regions of negative correlation",
        "source",
        "some regions of negative correlation",
        "Analysis, plot 4",
        "share of changing pixels with r < 0, mean over runs",
        ("at_least", 0.05, (0.02, 0.1)),
    ),
    (
        "pixel_edges",
        "Round the edges the per-pixel correlation is much weaker",
        "source",
        "much weaker round the edges",
        "Analysis, plot 4",
        "runs in which the never-changing pixels' mean r lies below the changing pixels'",
        ("share_at_least", 0.9, (0.75, 1.0)),
    ),
    (
        "edge_is_bias",
        "Every never-changing pixel's correlation equals the biases'",
        "identity",
        "",
        "",
        "largest absolute gap over runs and never-changing pixels",
        ("at_most", 1e-6, (1e-7, 1e-5)),
    ),
    (
        "sigmoid_fails",
        "With sigmoid the weight correlation does not appear",
        "source",
        "'this only worked for a ReLU-like activation'; nothing like it with sigmoid",
        "Conclusions",
        "raw weight r, sigmoid hidden layer, linear outputs, its tuned rate",
        ("interval_below", 0.1, (0.05, 0.2)),
    ),
    (
        "relu_works",
        "With ReLU the weight correlation is clear",
        "source",
        "'this only worked for a ReLU-like activation'",
        "Conclusions",
        "raw weight r, ReLU hidden layer, its tuned rate",
        ("interval_above", 0.2, (0.1, 0.3)),
    ),
    (
        "output_layer",
        "The output layer's 200 weights alone show the correlation",
        "beyond",
        "",
        "",
        "Pearson r over the output-layer weights, mean over runs",
        ("interval_above", 0.0, (-0.05, 0.05)),
    ),
    (
        "ablate_17",
        "Resetting the parameters 1s/7s moved most hurts held-out 1/7 accuracy more than "
        "6/8, beyond random resets",
        "beyond",
        "",
        "",
        "per run: (drop on 1/7 - drop on 6/8) for the top {share} by tally a, minus the same for "
        "{share} random parameters",
        ("interval_above", 0.0, (0.01, 0.05)),
    ),
    (
        "ablate_68",
        "Resetting the parameters 6s/8s moved most hurts held-out 6/8 accuracy more than "
        "1/7, beyond random resets",
        "beyond",
        "",
        "",
        "per run: (drop on 6/8 - drop on 1/7) for the top {share} by tally b, minus the same for "
        "{share} random parameters",
        ("interval_above", 0.0, (0.01, 0.05)),
    ),
    (
        "leaky",
        "The correlation moves steadily from linear to ReLU along the leaky slope",
        "beyond",
        "",
        "",
        "raw and within-pixel weight r for leaky slopes 1, 0.5, 0.1, 0.01, 0",
        ("holds",),
    ),
    (
        "ink_free",
        "Localization survives a design without the ink confound (shifted digits or a CNN)",
        "beyond",
        "",
        "",
        "within-pixel r",
        ("holds",),
    ),
)


def _rule(spec):
    from nnlearn.claims import R

    name, *args = spec
    if name == "holds":
        return R.holds()
    threshold, *band = args
    return getattr(R, name)(threshold, band=band[0] if band else ())


def declare_claims(C, *, ablate: float = 0.05):
    """Declare every claim of the chapter on the :class:`nnlearn.claims.Claims` ``C`` (the
    table ``C.declared()`` shows them); ``ablate`` is the causal test's share of parameters."""
    from nnlearn.claims import Claims

    if not isinstance(C, Claims):
        raise TypeError(f"C must be a nnlearn.claims.Claims, got {type(C).__name__}")
    if isinstance(ablate, bool) or not isinstance(ablate, (int, float)) or not 0 < ablate < 1:
        raise ValueError(f"ablate must be a share in (0, 1), got {ablate!r}")
    for cid, claim, kind, source, where, statistic, rule, *rest in _CLAIMS:
        partly = rest[0] if rest else None
        controls = rest[1] if len(rest) > 1 else ()
        C.declare(
            cid,
            claim,
            kind=kind,
            source=source,
            where=where,
            statistic=statistic.format(share=f"{ablate:.0%}"),
            rule=_rule(rule),
            partly=None if partly is None else _rule(partly),
            controls=controls,
        )
    return C
