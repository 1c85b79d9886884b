"""Small sigmoid networks read as logic gates: batched training, gate reading, unit removal, splicing.

Everything here works on *flat parameter rows*: a network ``widths = (n_in, h, n_out)`` with one
sigmoid hidden layer is stored as one row of ``P = h*n_in + h + n_out*h + n_out`` numbers in
the order of :meth:`nnlearn.ensemble.Ensemble.flat_params` (``layers.0.weight`` (h, n_in),
``layers.0.bias`` (h,), ``layers.1.weight`` (n_out, h), ``layers.1.bias`` (n_out,)), and K
networks are a (K, P) tensor. The output layer has no activation: it gives logits, read as
probabilities through a sigmoid and trained with binary cross-entropy.

Sections
--------
training    :func:`init_params` (exactly ``MLP(widths, "sigmoid", seed=s)``'s initialisation) and
            :func:`train_sigmoid_nets`, full-batch SGD/Adam of K networks as one computation
            with hand-written gradients (tested against :func:`nnlearn.ensemble.train_ensemble`).
gates       :func:`gate_name`, :func:`hidden_gates`, :func:`output_gates`: each unit's truth table
            over binary inputs, named when it has two inputs.
removal     :func:`removal_accuracy` (many unit masks at once), :func:`split_pairs`,
            :func:`merge_units` (drop one unit, add its outgoing weight to its twin).
splicing    :func:`splice_xor_nets`, :func:`extract_xor_net` for the 4-6-3 network of three XORs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nnlearn.seeding import make_generator

OPTIMIZERS = ("sgd", "adam")

# Truth tables of two-input gates, rows (a, b) = 00, 01, 10, 11 read as a 4-bit number, MSB first.
GATE_NAMES = {
    0: "false", 1: "and", 2: "a and not b", 3: "a", 4: "b and not a", 5: "b", 6: "xor", 7: "or",
    8: "nor", 9: "xnor", 10: "not b", 11: "b implies a", 12: "not a", 13: "a implies b", 14: "nand", 15: "true",
}


# ----------------------------------------------------------------------------------------- layout
def _check_widths(widths) -> tuple[int, int, int]:
    widths = tuple(widths) if isinstance(widths, (list, tuple)) else widths
    if not (isinstance(widths, tuple) and len(widths) == 3 and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
        raise ValueError(f"widths must be three positive ints (n_in, hidden, n_out), got {widths!r}")
    return widths


def n_params(widths) -> int:
    """Number of parameters P of a (n_in, h, n_out) network."""
    n, h, o = _check_widths(widths)
    return h * n + h + o * h + o


def _check_params(params, widths) -> torch.Tensor:
    if isinstance(params, np.ndarray):
        params = torch.as_tensor(params)
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"params must be a torch.Tensor or numpy array of shape (K, P), got {type(params).__name__}")
    P = n_params(widths)
    if params.ndim != 2 or params.shape[1] != P:
        raise ValueError(f"params must have shape (K, {P}) for widths {tuple(widths)}, got {tuple(params.shape)}")
    return params.float()


def unflatten(params, widths) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split flat rows into ``(W1 (K, h, n_in), b1 (K, h), W2 (K, n_out, h), b2 (K, n_out))`` (views)."""
    params = _check_params(params, widths)
    n, h, o = widths
    K, out, i = params.shape[0], [], 0
    for shape in ((h, n), (h,), (o, h), (o,)):
        size = math.prod(shape)
        out.append(params[:, i : i + size].reshape(K, *shape))
        i += size
    return tuple(out)


def flatten(W1, b1, W2, b2) -> torch.Tensor:
    """Inverse of :func:`unflatten`: shapes (K, h, n), (K, h), (K, o, h), (K, o) -> (K, P)."""
    K = W1.shape[0]
    return torch.cat([t.reshape(K, -1) for t in (W1, b1, W2, b2)], 1)


# --------------------------------------------------------------------------------------- training
INIT_SCHEMES = ("default", "normal")


def init_params(widths, seeds: Sequence[int], scheme: str = "default") -> torch.Tensor:
    """Initial flat parameters, row k equal to ``MLP(widths, "sigmoid", seed=seeds[k])``'s.

    ``scheme="default"``: PyTorch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for weights and biases, drawn in the same order from the same private generator, without
    building K models. ``scheme="normal"``: every parameter drawn from N(0, 1), the choice of
    many hand-written tutorials (``np.random.randn``), for the initialisation ambiguity.

    Returns
    -------
    Tensor, shape (K, P)
    """
    n, h, o = _check_widths(widths)
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    if scheme == "normal":
        return torch.stack([torch.randn(n_params(widths), generator=make_generator(s)) for s in seeds])
    rows = []
    for s in seeds:
        g, parts = make_generator(s), []
        for fan_in, fan_out in ((n, h), (h, o)):
            bound = 1.0 / math.sqrt(fan_in)
            parts.append(torch.rand((fan_out, fan_in), generator=g).reshape(-1) * 2 * bound - bound)
            parts.append(torch.rand((fan_out,), generator=g) * 2 * bound - bound)
        rows.append(torch.cat(parts))
    return torch.stack(rows)


def perturb_params(params, radius: float, seed: int) -> torch.Tensor:
    """Each row moved by ``radius`` in a random direction (uniform on the sphere), seeded.

    Parameters
    ----------
    params : Tensor (K, P); radius : float >= 0 (Euclidean length of every move)

    Returns
    -------
    Tensor (K, P)
    """
    if not isinstance(params, torch.Tensor) or params.ndim != 2:
        raise ValueError(f"params must be a tensor of shape (K, P), got {getattr(params, 'shape', type(params).__name__)}")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius >= 0:
        raise ValueError(f"radius must be a non-negative number, got {radius!r}")
    direction = torch.randn(params.shape, generator=make_generator(seed))
    return params.float() + radius * direction / direction.norm(dim=1, keepdim=True)


@dataclass
class SigmoidRuns:
    """Result of :func:`train_sigmoid_nets`.

    params : Tensor (K, P), final parameters
    loss, acc : ndarray (R, K), mean BCE and accuracy at the epochs in ``record_epochs``
    snapshots : ndarray (S, K, P) or None, parameters at ``snapshot_epochs`` (0 = initialisation)
    """

    params: torch.Tensor
    loss: np.ndarray
    acc: np.ndarray
    record_epochs: np.ndarray
    snapshots: np.ndarray | None
    snapshot_epochs: np.ndarray | None


def _k_last_views(theta, widths):
    n, h, o = widths
    K, out, i = theta.shape[1], [], 0
    for shape in ((h, n), (h,), (o, h), (o,)):
        size = math.prod(shape)
        out.append(theta[i : i + size].view(*shape, K))
        i += size
    return out


def _forward_k_last(X, W1, b1, W2, b2):
    """X (N, n); W1 (h, n, K) ... -> H (h, N, K), Z2 (o, N, K)."""
    H = torch.sigmoid(torch.matmul(X, W1) + b1[:, None, :])
    Z2 = (W2[:, :, None, :] * H[None]).sum(1) + b2[:, None, :]
    return H, Z2


def _bce_and_acc(Z2, Yk, double_sigmoid):
    logits = torch.sigmoid(Z2) if double_sigmoid else Z2
    loss = (F.softplus(logits) - Yk * logits).mean((0, 1))
    acc = ((Z2 > 0) == (Yk > 0.5)).float().mean((0, 1))
    return loss, acc


def _check_training_args(X, Y, widths, optimizer, lr, epochs):
    n, h, o = _check_widths(widths)
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[1] != n:
        raise ValueError(f"X must be a float tensor of shape (N, {n}), got {getattr(X, 'shape', type(X).__name__)}")
    if not isinstance(Y, torch.Tensor) or Y.shape != (X.shape[0], o):
        raise ValueError(f"Y must be a tensor of 0/1 targets of shape ({X.shape[0]}, {o}), got {getattr(Y, 'shape', type(Y).__name__)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    lrs = np.atleast_1d(np.asarray(lr, dtype=float)) if isinstance(lr, (int, float, list, tuple, np.ndarray)) and not isinstance(lr, bool) else None
    if lrs is None or lrs.ndim != 1 or not (lrs > 0).all():
        raise ValueError(f"lr must be a positive number or a sequence of K positive numbers, got {lr!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")


def train_sigmoid_nets(
    params,
    widths,
    X,
    Y,
    *,
    optimizer: str = "adam",
    lr: float = 0.01,
    epochs: int = 1000,
    record_every: int = 1,
    snapshot_every: int | None = None,
    double_sigmoid: bool = False,
) -> SigmoidRuns:
    """Full-batch training of K one-hidden-layer sigmoid networks as one computation.

    Each network minimises its own mean binary cross-entropy (over examples and outputs) with
    plain SGD or Adam (PyTorch's defaults: betas (0.9, 0.999), eps 1e-8), exactly as
    ``train_ensemble(..., loss="bce", batch_size=None)`` would, but with hand-written
    gradients in a K-last memory layout (several times faster for tiny networks).

    Parameters
    ----------
    params : Tensor (K, P), initial parameters (see :func:`init_params`); not modified
    widths : (n_in, h, n_out)
    X : Tensor (N, n_in); Y : Tensor (N, n_out) of 0/1 targets
    lr : learning rate, one for all or one per network (shape (K,)), e.g. for a sweep
    record_every : record loss and accuracy every this many epochs (and after the last)
    snapshot_every : keep parameters at initialisation and every this many epochs
    double_sigmoid : reproduce a common bug: apply a sigmoid to the output and then a
        logits-based BCE (so the loss sees sigmoid(sigmoid(z))); for the stalled-loss question

    Returns
    -------
    SigmoidRuns
    """
    widths = _check_widths(widths)
    params = _check_params(params, widths)
    _check_training_args(X, Y, widths, optimizer, lr, epochs)
    if np.size(lr) not in (1, params.shape[0]):
        raise ValueError(f"lr must be one number or K={params.shape[0]} numbers, got {np.size(lr)}")
    lr = torch.as_tensor(np.broadcast_to(np.asarray(lr, dtype=np.float32), (params.shape[0],)).copy())
    for name, val in (("record_every", record_every), ("snapshot_every", snapshot_every)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    n, h, o = widths
    N = X.shape[0]
    X = X.float()
    theta = params.detach().T.contiguous()
    grad = torch.zeros_like(theta)
    W1, b1, W2, b2 = _k_last_views(theta, widths)
    gW1, gb1, gW2, gb2 = _k_last_views(grad, widths)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    Yk = Y.float().T.reshape(o, N, 1)
    scale = 1.0 / (N * o)
    losses, accs, rec_epochs = [], [], []
    snaps, snap_epochs = ([theta.T.clone()], [0]) if snapshot_every else ([], [])
    for t in range(1, epochs + 1):
        H, Z2 = _forward_k_last(X, W1, b1, W2, b2)
        if (t - 1) % record_every == 0:
            loss, acc = _bce_and_acc(Z2, Yk, double_sigmoid)
            losses.append(loss)
            accs.append(acc)
            rec_epochs.append(t - 1)
        if double_sigmoid:
            S = torch.sigmoid(Z2)
            dZ2 = (torch.sigmoid(S) - Yk) * S * (1 - S) * scale
        else:
            dZ2 = (torch.sigmoid(Z2) - Yk) * scale
        gW2.copy_((dZ2[:, None] * H[None]).sum(2))
        gb2.copy_(dZ2.sum(1))
        dZ1 = (W2[:, :, None, :] * dZ2[:, None]).sum(0) * H * (1 - H)
        gW1.copy_(torch.matmul(X.T, dZ1))
        gb1.copy_(dZ1.sum(1))
        if optimizer == "sgd":
            theta.sub_(grad * lr)
        else:
            m.lerp_(grad, 0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            denom = (v / (1 - 0.999**t)).sqrt_().add_(1e-8)
            theta.sub_(m * (lr / (1 - 0.9**t)) / denom)
        if snapshot_every and t % snapshot_every == 0:
            snaps.append(theta.T.clone())
            snap_epochs.append(t)
    H, Z2 = _forward_k_last(X, W1, b1, W2, b2)
    loss, acc = _bce_and_acc(Z2, Yk, double_sigmoid)
    losses.append(loss)
    accs.append(acc)
    rec_epochs.append(epochs)
    return SigmoidRuns(
        params=theta.T.contiguous(),
        loss=torch.stack(losses).numpy(),
        acc=torch.stack(accs).numpy(),
        record_epochs=np.array(rec_epochs),
        snapshots=torch.stack(snaps).numpy() if snapshot_every else None,
        snapshot_epochs=np.array(snap_epochs) if snapshot_every else None,
    )


def loss_gradient_norm(params, widths, X, Y) -> np.ndarray:
    """Euclidean norm of each network's BCE gradient with respect to all its parameters.

    Returns
    -------
    ndarray (K,)
    """
    params = _check_params(params, widths).detach().clone().requires_grad_(True)
    logits = forward(params, widths, X)[1]
    Yk = Y.float().expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits, Yk, reduction="none").mean((1, 2)).sum()
    (g,) = torch.autograd.grad(loss, params)
    return g.norm(dim=1).numpy()


# ------------------------------------------------------------------------------------------ forward
def forward(params, widths, X, masks=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden activations and output logits of K networks.

    Parameters
    ----------
    params : (K, P); X : (N, n_in)
    masks : optional tensor broadcastable to (..., K, 1, h): multiplies the hidden activations,
        e.g. shape (M, 1, 1, h) evaluates M unit-removal masks on every network at once

    Returns
    -------
    hidden : Tensor (..., K, N, h); logits : Tensor (..., K, N, n_out)
    """
    W1, b1, W2, b2 = unflatten(params, widths)
    if not isinstance(X, torch.Tensor) or X.ndim != 2 or X.shape[1] != widths[0]:
        raise ValueError(f"X must be a tensor of shape (N, {widths[0]}), got {getattr(X, 'shape', type(X).__name__)}")
    hidden = torch.sigmoid(torch.matmul(X.float(), W1.transpose(1, 2)) + b1[:, None, :])
    if masks is not None:
        if not isinstance(masks, torch.Tensor) or masks.shape[-1] != widths[1]:
            raise ValueError(f"masks must be a tensor whose last dimension is h={widths[1]}, got {getattr(masks, 'shape', type(masks).__name__)}")
        hidden = hidden * masks
    logits = torch.matmul(hidden, W2.transpose(1, 2)) + b2[:, None, :]
    return hidden, logits


def accuracy(params, widths, X, y, masks=None) -> np.ndarray:
    """Fraction of examples classified right (logit > 0 means 1), shape (..., K).

    ``y`` : (N,) or (N, n_out) 0/1 targets; with several outputs every output counts.
    """
    _, logits = forward(params, widths, X, masks)
    y = torch.as_tensor(y).reshape(X.shape[0], -1)
    return ((logits > 0) == (y > 0.5)).float().mean((-1, -2)).numpy()


# -------------------------------------------------------------------------------------------- gates
def binary_inputs(n: int) -> torch.Tensor:
    """All 2**n binary input rows in counting order (first input most significant), (2**n, n)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
        raise ValueError(f"n must be an int in 1..16, got {n!r}")
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))


def truth_code(bits) -> np.ndarray:
    """Truth tables (..., R) of 0/1 values read as integers, first row most significant."""
    bits = np.asarray(bits)
    if bits.ndim < 1 or bits.shape[-1] < 1 or not np.isin(bits, (0, 1)).all():
        raise ValueError(f"bits must be a 0/1 array of shape (..., R) with R >= 1, got {bits.shape}")
    weights = 2 ** np.arange(bits.shape[-1] - 1, -1, -1)
    return (bits.astype(np.int64) * weights).sum(-1)


def gate_name(code: int, n_inputs: int = 2) -> str:
    """Name of a gate from its truth-table code; gates of other than two inputs get their bits."""
    if isinstance(code, bool) or not isinstance(code, (int, np.integer)) or not 0 <= code < 2 ** (2**n_inputs):
        raise ValueError(f"code must be an int in 0..{2 ** (2**n_inputs) - 1} for {n_inputs} inputs, got {code!r}")
    if n_inputs == 2:
        return GATE_NAMES[int(code)]
    return format(int(code), f"0{2**n_inputs}b")


def hidden_gates(params, widths) -> np.ndarray:
    """Truth-table code of every hidden unit over the binary inputs (activation > 0.5 is 1).

    Returns
    -------
    ndarray int (K, h); name them with :func:`gate_name` (``n_inputs = n_in``)
    """
    hidden, _ = forward(params, widths, binary_inputs(widths[0]))
    return truth_code((hidden > 0.5).int().numpy().transpose(0, 2, 1))


def output_gates(params, widths) -> np.ndarray:
    """Truth-table code of every output unit over *binarised* hidden units.

    The output unit is evaluated with its hidden inputs set to every 0/1 pattern (the ideal
    gates), including patterns the hidden layer never produces on binary inputs.

    Returns
    -------
    ndarray int (K, n_out)
    """
    _, _, W2, b2 = unflatten(params, widths)
    patterns = binary_inputs(widths[1])  # (2**h, h)
    logits = torch.matmul(patterns, W2.transpose(1, 2)) + b2[:, None, :]  # (K, 2**h, o)
    return truth_code((logits > 0).int().numpy().transpose(0, 2, 1))


def reachable_patterns(params, widths) -> np.ndarray:
    """Which 0/1 hidden patterns occur on the binary inputs: bool (K, 2**h)."""
    hidden, _ = forward(params, widths, binary_inputs(widths[0]))
    codes = truth_code((hidden > 0.5).int().numpy())  # (K, 2**n_in)
    seen = np.zeros((hidden.shape[0], 2 ** widths[1]), bool)
    np.put_along_axis(seen, codes, True, axis=1)
    return seen


def gate_structure(params, widths) -> list[str]:
    """One readable string per network: hidden gates, then output gate, e.g. ``"nand, nor -> a and not b"``."""
    hid, out = hidden_gates(params, widths), output_gates(params, widths)
    n, h, _ = widths
    return [
        ", ".join(gate_name(int(c), n) for c in hid[k]) + " -> " + ", ".join(gate_name(int(c), h) for c in out[k])
        for k in range(len(hid))
    ]


def canonical_order(params, widths) -> torch.Tensor:
    """Permute each network's hidden units into a canonical order (the function is unchanged).

    Units are sorted by their gate's truth-table code, ties by outgoing weight to output 0.

    Returns
    -------
    Tensor (K, P)
    """
    W1, b1, W2, b2 = unflatten(params, widths)
    codes = torch.as_tensor(hidden_gates(params, widths), dtype=torch.float64)
    key = codes * 1e6 + torch.tanh(W2[:, 0, :].double())  # code first, outgoing weight breaks ties
    order = key.argsort(dim=1)
    W1p = torch.take_along_dim(W1, order[:, :, None], 1)
    b1p = torch.take_along_dim(b1, order, 1)
    W2p = torch.take_along_dim(W2, order[:, None, :], 2)
    return flatten(W1p, b1p, W2p, b2)


def canonical_structure(params, widths) -> list[str]:
    """:func:`gate_structure` after :func:`canonical_order`: twins under a unit swap read the same."""
    return gate_structure(canonical_order(params, widths), widths)


# ------------------------------------------------------------------------------------------ removal
def single_removal_masks(h: int) -> torch.Tensor:
    """The h masks that each switch off one hidden unit, shape (h, 1, 1, h)."""
    if isinstance(h, bool) or not isinstance(h, int) or h < 1:
        raise ValueError(f"h must be a positive int, got {h!r}")
    return (1 - torch.eye(h)).reshape(h, 1, 1, h)


def keep_masks(h: int, keep: int) -> tuple[torch.Tensor, list[tuple[int, ...]]]:
    """Masks keeping each subset of ``keep`` hidden units: (M, 1, 1, h) and the subsets."""
    if isinstance(h, bool) or not isinstance(h, int) or h < 1 or not (isinstance(keep, int) and 1 <= keep <= h):
        raise ValueError(f"need ints h >= 1 and 1 <= keep <= h, got h={h!r}, keep={keep!r}")
    subsets = list(itertools.combinations(range(h), keep))
    masks = torch.zeros(len(subsets), h)
    for i, s in enumerate(subsets):
        masks[i, list(s)] = 1
    return masks.reshape(-1, 1, 1, h), subsets


def removal_accuracy(params, widths, X, y, masks) -> np.ndarray:
    """Accuracy of every network under every mask in one pass: masks (M, 1, 1, h) -> (M, K)."""
    if not isinstance(masks, torch.Tensor) or masks.ndim != 4 or masks.shape[1:3] != (1, 1):
        raise ValueError(f"masks must have shape (M, 1, 1, h), got {getattr(masks, 'shape', type(masks).__name__)}")
    return accuracy(params, widths, X, y, masks)


def split_pairs(params, widths, *, tol: float = 0.5) -> list[list[tuple[int, int]]]:
    """Pairs of hidden units that compute the same gate with nearly equal incoming weights.

    Two units of one network form a pair when their truth tables agree and their incoming
    weight vectors (weights and bias) differ by at most ``tol`` times the larger norm.

    Returns
    -------
    list (length K) of lists of (i, j) with i < j
    """
    W1, b1, _, _ = unflatten(params, widths)
    codes = hidden_gates(params, widths)
    incoming = torch.cat([W1, b1[:, :, None]], 2)  # (K, h, n+1)
    found = []
    for k in range(len(codes)):
        pairs = []
        for i, j in itertools.combinations(range(widths[1]), 2):
            if codes[k, i] != codes[k, j]:
                continue
            diff = (incoming[k, i] - incoming[k, j]).norm()
            if diff <= tol * max(incoming[k, i].norm(), incoming[k, j].norm()):
                pairs.append((i, j))
        found.append(pairs)
    return found


def merge_units(params, widths, k: int, drop: int, keep: int, *, factor: float | None = None) -> torch.Tensor:
    """Network ``k`` with hidden unit ``drop`` removed and unit ``keep``'s outgoing weights rescaled.

    With ``factor=None`` unit ``keep`` takes over ``drop``'s outgoing weight (``w_keep +=
    w_drop``); a number multiplies ``w_keep`` by it instead (e.g. 2 doubles it). The dropped
    unit's incoming and outgoing weights are zeroed, so the shape stays (1, P).
    """
    params = _check_params(params, widths)
    h = widths[1]
    if not (0 <= k < len(params)):
        raise ValueError(f"k must index one of the {len(params)} networks, got {k}")
    if not (0 <= drop < h and 0 <= keep < h and drop != keep):
        raise ValueError(f"drop and keep must be two different hidden units in 0..{h - 1}, got {drop}, {keep}")
    W1, b1, W2, b2 = (t[k : k + 1].clone() for t in unflatten(params, widths))
    if factor is None:
        W2[:, :, keep] += W2[:, :, drop]
    else:
        W2[:, :, keep] *= factor
    W2[:, :, drop] = 0
    W1[:, drop] = 0
    b1[:, drop] = 0
    return flatten(W1, b1, W2, b2)


def smallest_sufficient_subset(params, widths, X, y) -> np.ndarray:
    """Per network, the fewest hidden units that still classify every example when all others are off.

    Every subset of every size is tried, each size as one batch of masks (so keep h small).

    Returns
    -------
    int ndarray (K,), in 1..h (h when no smaller subset works)
    """
    h = _check_widths(widths)[1]
    params = _check_params(params, widths)
    best = np.full(len(params), h)
    for keep in range(h - 1, 0, -1):
        masks, _ = keep_masks(h, keep)
        works = (removal_accuracy(params, widths, X, y, masks) == 1).any(0)
        best[works] = keep
    return best


# ----------------------------------------------------------------------------------------- splicing
XOR_SPLICE_INPUTS = ((0, 1), (1, 2), (2, 3))


def splice_xor_nets(small) -> torch.Tensor:
    """Copy three 2-2-1 networks into one 4-6-3 network computing three XORs of input pairs.

    Network ``m`` reads inputs ``XOR_SPLICE_INPUTS[m]`` ((x1,x2), (x2,x3), (x3,x4)) with hidden
    units 2m, 2m+1 and writes output m; every other weight is zero.

    Parameters
    ----------
    small : Tensor (B, 3, 9), B triples of flat 2-2-1 parameter rows

    Returns
    -------
    Tensor (B, 51), flat 4-6-3 parameters
    """
    small = torch.as_tensor(small).float()
    if small.ndim != 3 or small.shape[1:] != (3, n_params((2, 2, 1))):
        raise ValueError(f"small must have shape (B, 3, 9), got {tuple(small.shape)}")
    B = small.shape[0]
    W1, b1, W2, b2 = torch.zeros(B, 6, 4), torch.zeros(B, 6), torch.zeros(B, 3, 6), torch.zeros(B, 3)
    for m, ins in enumerate(XOR_SPLICE_INPUTS):
        w1, c1, w2, c2 = unflatten(small[:, m], (2, 2, 1))
        units = [2 * m, 2 * m + 1]
        W1[:, units[0] : units[1] + 1, ins[0] : ins[1] + 1] = w1
        b1[:, units] = c1
        W2[:, m, units] = w2[:, 0]
        b2[:, m] = c2[:, 0]
    return flatten(W1, b1, W2, b2)


def extract_xor_net(big, m: int) -> torch.Tensor:
    """The 2-2-1 network at position ``m`` of spliced 4-6-3 networks: (B, 51) -> (B, 9).

    Weights from other inputs or hidden units are dropped (see :func:`off_block_weight`).
    """
    if m not in (0, 1, 2):
        raise ValueError(f"m must be 0, 1 or 2, got {m!r}")
    W1, b1, W2, b2 = unflatten(big, (4, 6, 3))
    ins, units = list(XOR_SPLICE_INPUTS[m]), [2 * m, 2 * m + 1]
    return flatten(W1[:, units][:, :, ins], b1[:, units], W2[:, m : m + 1, units], b2[:, m : m + 1])


def off_block_weight(big) -> np.ndarray:
    """Largest absolute weight outside the three spliced blocks, per network: (B, 51) -> (B,)."""
    W1, _, W2, _ = unflatten(big, (4, 6, 3))
    in_mask, out_mask = torch.ones(6, 4, dtype=torch.bool), torch.ones(3, 6, dtype=torch.bool)
    for m, (a, b) in enumerate(XOR_SPLICE_INPUTS):
        in_mask[2 * m : 2 * m + 2, a : b + 1] = False
        out_mask[m, 2 * m : 2 * m + 2] = False
    return torch.maximum(W1[:, in_mask].abs().amax(1), W2[:, out_mask].abs().amax(1)).numpy()


def three_xor_data() -> tuple[torch.Tensor, torch.Tensor]:
    """All 16 binary 4-bit inputs (16, 4) and targets (16, 3): XOR(x1,x2), XOR(x2,x3), XOR(x3,x4)."""
    X = binary_inputs(4)
    Y = torch.stack([(X[:, a] != X[:, b]) for a, b in XOR_SPLICE_INPUTS], 1).float()
    return X, Y


def activation_matrix(params, widths, X) -> np.ndarray:
    """Every unit's activation on every input: hidden sigmoids then output sigmoids, (K, N, h + n_out)."""
    hidden, logits = forward(params, widths, X)
    return torch.cat([hidden, torch.sigmoid(logits)], -1).detach().numpy()


def within_module_fit(acts: np.ndarray) -> np.ndarray:
    """How well each output of a spliced 4-6-3 net is a *linear* function of its own two hidden units.

    Parameters
    ----------
    acts : (16, 9) activations (6 hidden, 3 outputs) of one network over the 16 inputs

    Returns
    -------
    ndarray (3,), R^2 of the least-squares fit out_m ~ h_2m + h_2m+1 + 1
    """
    acts = np.asarray(acts, dtype=float)
    if acts.shape != (16, 9):
        raise ValueError(f"acts must have shape (16, 9), got {acts.shape}")
    r2 = []
    for m in range(3):
        A = np.column_stack([acts[:, 2 * m], acts[:, 2 * m + 1], np.ones(16)])
        target = acts[:, 6 + m]
        coef, *_ = np.linalg.lstsq(A, target, rcond=None)
        resid = target - A @ coef
        total = ((target - target.mean()) ** 2).sum()
        r2.append(1 - (resid**2).sum() / total if total > 0 else 1.0)
    return np.array(r2)


def block_null_vectors(acts: np.ndarray) -> np.ndarray:
    """The three within-block linear relations of a spliced 4-6-3 net, as unit vectors over the 9 units.

    For block m the least-squares fit ``out_m ~ c0 h_2m + c1 h_2m+1 + const`` gives the vector
    with ``-c0, -c1`` on the block's hidden units and 1 on its output (zero elsewhere); when the
    fit is exact the vector is in the null space of the activations' covariance.

    Parameters
    ----------
    acts : (16, 9) activations (6 hidden, 3 outputs) of one network over the 16 inputs

    Returns
    -------
    ndarray (9, 3), one unit-norm column per block
    """
    acts = np.asarray(acts, dtype=float)
    if acts.shape != (16, 9):
        raise ValueError(f"acts must have shape (16, 9), got {acts.shape}")
    vectors = np.zeros((9, 3))
    for m in range(3):
        A = np.column_stack([acts[:, 2 * m], acts[:, 2 * m + 1], np.ones(16)])
        coef, *_ = np.linalg.lstsq(A, acts[:, 6 + m], rcond=None)
        vectors[[2 * m, 2 * m + 1, 6 + m], m] = -coef[0], -coef[1], 1.0
    return vectors / np.linalg.norm(vectors, axis=0)


def count_before_largest_gap(values) -> np.ndarray:
    """Number of values above the largest ratio between consecutive sorted values (a threshold-free "large").

    Parameters
    ----------
    values : (..., R) positive values sorted in decreasing order along the last axis (e.g. singular values)

    Returns
    -------
    int ndarray (...)
    """
    v = np.asarray(values, dtype=float)
    if v.ndim < 1 or v.shape[-1] < 2 or (v <= 0).any() or (np.diff(v, axis=-1) > 0).any():
        raise ValueError(f"values must be positive, sorted decreasingly, with at least 2 along the last axis, got shape {v.shape}")
    return np.argmax(-np.diff(np.log(v), axis=-1), axis=-1) + 1


def hidden_collision(params, widths, y) -> np.ndarray:
    """Whether two binary inputs with different targets get the same 0/1 hidden pattern.

    If they do, no output layer can tell them apart: with thresholded hidden units the network
    cannot classify all inputs. ``y`` : (2**n_in,) targets in binary counting order.

    Returns
    -------
    bool ndarray (K,)
    """
    y = np.asarray(y).ravel()
    if y.shape != (2 ** widths[0],):
        raise ValueError(f"y must hold one target per binary input ({2 ** widths[0]}), got shape {y.shape}")
    hidden, _ = forward(params, widths, binary_inputs(widths[0]))
    pattern = truth_code((hidden > 0.5).int().numpy())  # (K, N): each input's hidden pattern
    same = pattern[:, :, None] == pattern[:, None, :]
    differ = y[:, None] != y[None, :]
    return (same & differ).any((1, 2))
