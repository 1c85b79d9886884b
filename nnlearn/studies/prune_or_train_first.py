"""Node pruning with mean-activation bias correction, for stacks of K ReLU MLPs at once.

Removing hidden node ``i`` of a layer replaces its activation by its mean over the training
data: for every kept node ``j`` of the next layer,

    b_j' = b_j + sum_{i removed} mean(x_i) w_ij,

so removing a node whose activation is constant over the data changes nothing. Nodes are
removed with a 0/1 mask (a removed node's outgoing weights and incoming weights then get zero
gradient, so training a masked network is training the smaller network) or, for a single
network, physically (:func:`prune_mlp`).

Parameters of K networks are handled as in :class:`nnlearn.ensemble.Ensemble`: a dict
``layers.{i}.weight`` -> (K, out, in), ``layers.{i}.bias`` -> (K, out).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from nnlearn import engine
from nnlearn.models import MLP, MLPStack
from nnlearn.seeding import make_generator

__all__ = [
    "TrainResult",
    "activation_std",
    "adam_single_kick_travel",
    "block",
    "block_correlation",
    "claim_evidence",
    "class_one_probability",
    "concat_params",
    "criterion_rank_correlation",
    "dead_nodes",
    "declare_claims",
    "keep_from_indices",
    "keras_init_",
    "linear_cka",
    "loss_rise_bound",
    "lowest_std_keep",
    "matched_block_correlation",
    "matched_units",
    "member_accuracy",
    "member_ce",
    "n_layers",
    "never_updated",
    "plane_disagreement",
    "prune_mlp",
    "prune_stacked",
    "random_keep",
    "random_route_gap",
    "removal_effects",
    "route_evidence",
    "run_routes",
    "select_members",
    "spiral_points",
    "stacked_forward",
    "train_adam",
    "train_keras",
    "travel_peak",
    "unit_role_similarity",
]


# ----------------------------------------------------------------------------- checks
def _check_params(params) -> int:
    """Validate a stacked parameter dict; return the number of linear layers."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping name -> Tensor, got {type(params).__name__}")
    L = 0
    while f"layers.{L}.weight" in params:
        w = params[f"layers.{L}.weight"]
        if not isinstance(w, torch.Tensor) or w.ndim != 3:
            raise ValueError(f"params['layers.{L}.weight'] must be a Tensor of shape (K, out, in)")
        if f"layers.{L}.bias" not in params:
            raise ValueError(f"params: missing 'layers.{L}.bias' (pruning needs biases)")
        L += 1
    if L < 2:
        raise ValueError(
            "params: need at least two layers ('layers.0.weight', 'layers.1.weight', ...)"
        )
    return L


def n_layers(params) -> int:
    """Number of linear layers in a stacked parameter dict (hidden layers + 1)."""
    return _check_params(params)


def _check_X(X, n_in: int) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        if isinstance(X, np.ndarray):
            X = torch.as_tensor(X, dtype=torch.float32)
        else:
            raise TypeError(f"X must be a torch.Tensor or numpy array, got {type(X).__name__}")
    if X.ndim != 2 or X.shape[1] != n_in or len(X) == 0:
        raise ValueError(f"X must have shape (N, {n_in}) with N >= 1, got {tuple(X.shape)}")
    if not X.is_floating_point() and not X.dtype.is_signed and X.dtype != torch.uint8:
        raise TypeError(f"X must hold numbers, got dtype {X.dtype}")
    if not torch.isfinite(X.float()).all():
        raise ValueError("X must be finite (got NaN or inf)")
    return X.float()


def _check_keep(keep, K: int, widths: Sequence[int]) -> list:
    """keep: one (K, width) bool tensor (or None = keep all) per hidden layer."""
    if not isinstance(keep, Sequence) or isinstance(keep, (str, torch.Tensor)):
        raise TypeError(
            "keep must be a list with one (K, width) bool tensor (or None) per hidden layer"
        )
    if len(keep) != len(widths):
        raise ValueError(
            f"keep: expected {len(widths)} entries (one per hidden layer), got {len(keep)}"
        )
    out = []
    for l, (k, w) in enumerate(zip(keep, widths)):
        if k is None:
            out.append(torch.ones(K, w, dtype=torch.bool))
            continue
        if not isinstance(k, torch.Tensor) or k.dtype != torch.bool:
            raise TypeError(f"keep[{l}] must be a bool Tensor of shape ({K}, {w}) or None")
        if tuple(k.shape) != (K, w):
            raise ValueError(f"keep[{l}] must have shape ({K}, {w}), got {tuple(k.shape)}")
        if not k.any(1).all():
            bad = (~k.any(1)).nonzero().flatten().tolist()
            raise ValueError(
                f"keep[{l}]: pruning every node of hidden layer {l} (members {bad}) is not allowed"
            )
        out.append(k)
    return out


# ----------------------------------------------------------------------------- networks
@torch.no_grad()
def keras_init_(model: MLP, seed: int) -> MLP:
    """Re-initialise ``model`` in place as Keras' ``Dense`` does: Glorot-uniform weights
    ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``, and zero biases. Returns ``model``."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be an nnlearn.models.MLP, got {type(model).__name__}")
    g = make_generator(seed)
    for layer in model.layers:
        a = math.sqrt(6.0 / (layer.in_features + layer.out_features))
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=g) * 2 * a - a)
        if layer.bias is not None:
            layer.bias.zero_()
    return model


def stacked_forward(params, X, masks=None):
    """Forward pass of K stacked ReLU MLPs that keeps the hidden activations.

    Parameters
    ----------
    params : dict, ``layers.{i}.weight`` (K, out, in) and ``layers.{i}.bias`` (K, out)
    X : Tensor (N, n_in)
    masks : list of (K, width) 0/1 tensors or None, one per hidden layer (optional)

    Returns
    -------
    hidden : list of Tensor (K, N, width), post-ReLU (and post-mask) activations
    logits : Tensor (K, N, n_out)
    """
    L = _check_params(params)
    X = _check_X(X, params["layers.0.weight"].shape[-1])
    masks = [None] * (L - 1) if masks is None else list(masks)
    if len(masks) != L - 1:
        raise ValueError(
            f"masks: expected {L - 1} entries (one per hidden layer), got {len(masks)}"
        )
    h, hidden = X, []
    for i in range(L):
        z = torch.matmul(h, params[f"layers.{i}.weight"].transpose(-1, -2)) + params[
            f"layers.{i}.bias"
        ].unsqueeze(-2)
        if i == L - 1:
            return hidden, z
        h = torch.relu(z)
        if masks[i] is not None:
            h = h * masks[i].to(h.dtype).unsqueeze(-2)
        hidden.append(h)


def _check_logits(logits, y) -> None:
    """logits: finite float Tensor (K, N, C) with N >= 1; y: integer Tensor (N,) in 0..C-1."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if logits.ndim != 3 or y.ndim != 1 or logits.shape[1] != len(y) or len(y) == 0:
        raise ValueError(
            f"logits must be (K, N, C) and y (N,) with N >= 1, got {tuple(logits.shape)} and "
            f"{tuple(y.shape)}"
        )
    if not logits.is_floating_point() or not torch.isfinite(logits).all():
        raise ValueError("logits must be finite floats (got NaN, inf or an integer tensor)")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer classes, got dtype {y.dtype}")
    if (y < 0).any() or (y >= logits.shape[2]).any():
        raise ValueError(f"y: classes must lie in 0..{logits.shape[2] - 1}")


def member_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each member: logits (K, N, C), y (N,) -> (K,)."""
    _check_logits(logits, y)
    yk = y.long().expand(logits.shape[0], -1)
    return F.cross_entropy(logits.transpose(1, 2), yk, reduction="none").mean(1)


def member_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy of each member: logits (K, N, C), y (N,) -> (K,)."""
    _check_logits(logits, y)
    return (logits.argmax(-1) == y.long()).float().mean(1)


# ----------------------------------------------------------------------------- choosing nodes
def keep_from_indices(indices: Sequence[int], width: int) -> torch.Tensor:
    """A (width,) bool mask keeping exactly ``indices``; rejects empty, repeated or out-of-range
    indices.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    if isinstance(indices, (str, bytes)) or not isinstance(
        indices, (Sequence, torch.Tensor, np.ndarray)
    ):
        raise TypeError(f"indices must be a sequence of ints, got {type(indices).__name__}")
    items = indices.tolist() if isinstance(indices, (torch.Tensor, np.ndarray)) else list(indices)
    if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in items):
        raise TypeError(f"indices must hold ints, got {items!r}")
    idx = [int(i) for i in items]
    if not idx:
        raise ValueError("indices: pruning every node of a layer is not allowed (no index kept)")
    bad = [i for i in idx if not 0 <= i < width]
    if bad:
        raise ValueError(f"indices out of range 0..{width - 1}: {bad}")
    if len(set(idx)) != len(idx):
        raise ValueError(f"indices must not repeat, got {idx}")
    keep = torch.zeros(width, dtype=torch.bool)
    keep[idx] = True
    return keep


def _check_n_keep(n_keep, width: int) -> int:
    if isinstance(n_keep, bool) or not isinstance(n_keep, (int, np.integer)):
        raise TypeError(f"n_keep must be an int, got {type(n_keep).__name__}")
    if not 1 <= n_keep <= width:
        raise ValueError(
            f"n_keep must be in 1..{width} (pruning every node is not allowed), got {n_keep}"
        )
    return int(n_keep)


def random_keep(width: int, n_keep: int, seeds: Sequence[int]) -> torch.Tensor:
    """For each seed, keep ``n_keep`` of ``width`` nodes chosen uniformly at random.

    Returns
    -------
    Tensor, bool, shape (K, width), K = len(seeds)
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    n_keep = _check_n_keep(n_keep, width)
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be a sequence of ints, got {type(seeds).__name__}")
    rows = []
    for s in seeds:
        perm = torch.randperm(width, generator=make_generator(s))
        rows.append(keep_from_indices(perm[:n_keep].tolist(), width))
    if not rows:
        raise ValueError("seeds: expected at least one seed")
    return torch.stack(rows)


def lowest_std_keep(stds: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Keep the ``n_keep`` nodes with the largest activation standard deviation (ties: lower index).

    Parameters
    ----------
    stds : Tensor (K, width)

    Returns
    -------
    Tensor, bool, shape (K, width)
    """
    if not isinstance(stds, torch.Tensor):
        raise TypeError(f"stds must be a Tensor of shape (K, width), got {type(stds).__name__}")
    if stds.ndim != 2 or stds.numel() == 0:
        raise ValueError(f"stds must be a Tensor of shape (K, width), got {tuple(stds.shape)}")
    if not stds.is_floating_point() or not torch.isfinite(stds).all() or (stds < 0).any():
        raise ValueError("stds must hold finite, non-negative standard deviations")
    n_keep = _check_n_keep(n_keep, stds.shape[1])
    order = torch.argsort(-stds, dim=1, stable=True)
    keep = torch.zeros_like(stds, dtype=torch.bool)
    keep.scatter_(1, order[:, :n_keep], True)
    return keep


@torch.no_grad()
def activation_std(params, X) -> list:
    """Standard deviation over the data of every hidden node: list of (K, width) tensors."""
    hidden, _ = stacked_forward(params, X)
    return [h.std(1, unbiased=False) for h in hidden]


# ----------------------------------------------------------------------------- pruning
@torch.no_grad()
def prune_stacked(params, X, keep, *, masks=None):
    """Prune K stacked networks: mask removed nodes and fold their mean activation into the next
    bias.

    Hidden layers are pruned in order; the means of layer ``l`` are taken over ``X`` in the
    network whose earlier layers are already pruned (the network as it is at that moment).

    Parameters
    ----------
    params : dict of stacked parameters (see module docstring); not modified
    X : Tensor (N, n_in), the training inputs the means are taken over
    keep : list, one entry per hidden layer: bool Tensor (K, width) (True = keep) or None
    masks : optional list of (K, width) 0/1 masks already applied (earlier pruning)

    Returns
    -------
    new_params : dict, copies with adjusted biases (weights shared, not copied)
    masks : list of (K, width) float 0/1 masks, to pass to :func:`stacked_forward`
    """
    L = _check_params(params)
    K = params["layers.0.weight"].shape[0]
    widths = [params[f"layers.{i}.weight"].shape[1] for i in range(L - 1)]
    keep = _check_keep(keep, K, widths)
    X = _check_X(X, params["layers.0.weight"].shape[-1])
    new = {k: v.detach() for k, v in params.items()}
    cur = (
        [torch.ones(K, w) for w in widths]
        if masks is None
        else [m.detach().float().clone() for m in masks]
    )
    for l in range(L - 1):
        removed = (~keep[l]).float() * cur[l]  # nodes removed now (not already removed)
        if removed.sum() == 0:
            continue
        hidden, _ = stacked_forward(new, X, cur)
        mean = hidden[l].mean(1)  # (K, width)
        W_next = new[f"layers.{l + 1}.weight"]  # (K, out, width)
        new[f"layers.{l + 1}.bias"] = new[f"layers.{l + 1}.bias"] + torch.einsum(
            "koi,ki->ko", W_next, mean * removed
        )
        cur[l] = cur[l] * keep[l].float()
    return new, cur


def prune_mlp(model: MLP, X, keep_indices) -> MLP:
    """Physically prune one ReLU MLP: a smaller MLP without the removed hidden nodes.

    Parameters
    ----------
    model : MLP with ReLU hidden layers and biases
    X : Tensor or array (N, n_in), training inputs for the mean activations
    keep_indices : list with one entry per hidden layer: a sequence of node indices to keep,
        or None to keep the whole layer

    Returns
    -------
    MLP with hidden widths ``len(keep_indices[l])``
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be an nnlearn.models.MLP, got {type(model).__name__}")
    if any(a != "relu" for a in model.activation_names) or model.layers[0].bias is None:
        raise ValueError("model must have ReLU hidden layers and biases")
    widths = model.hidden_widths
    if not isinstance(keep_indices, Sequence) or len(keep_indices) != len(widths):
        raise ValueError(
            f"keep_indices: expected a list of {len(widths)} entries (one per hidden layer)"
        )
    keep = [
        None if k is None else keep_from_indices(k, w).unsqueeze(0)
        for k, w in zip(keep_indices, widths)
    ]
    params = {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
    new, masks = prune_stacked(params, X, keep)
    idx = [m[0].nonzero().flatten() for m in masks]
    small = MLP([model.widths[0], *[len(i) for i in idx], model.widths[-1]], "relu")
    with torch.no_grad():
        for i, layer in enumerate(small.layers):
            W, b = new[f"layers.{i}.weight"][0], new[f"layers.{i}.bias"][0]
            rows = idx[i] if i < len(idx) else torch.arange(W.shape[0])
            cols = idx[i - 1] if i > 0 else torch.arange(W.shape[1])
            layer.weight.copy_(W[rows][:, cols])
            layer.bias.copy_(b[rows])
    return small


# ----------------------------------------------------------------------------- analysis
@torch.no_grad()
def loss_rise_bound(params, X, keep):
    """Upper bound on the change in mean cross-entropy caused by :func:`prune_stacked`.

    ReLU is 1-Lipschitz and cross-entropy is sqrt(2)-Lipschitz in the logits, so replacing the
    removed activations of hidden layer ``l`` by their means moves the loss by at most
    ``sqrt(2) * K_l * X_l``, with ``K_l`` the product of the operator (spectral) norms of the
    weight matrices after layer ``l`` and ``X_l = sqrt(mean_x sum_{i removed} (x_i - mean x_i)^2)``
    the removed activations' standard deviation (root of their summed variances; taken in the
    network as it is when layer ``l`` is pruned). Layers pruned in turn add their bounds.

    Returns
    -------
    bound : Tensor (K,), the summed bound
    parts : list of (K_l, X_l) pairs of (K,) tensors, one per hidden layer
    """
    L = _check_params(params)
    K = params["layers.0.weight"].shape[0]
    widths = [params[f"layers.{i}.weight"].shape[1] for i in range(L - 1)]
    keep = _check_keep(keep, K, widths)
    norms = [torch.linalg.matrix_norm(params[f"layers.{i}.weight"], ord=2) for i in range(L)]
    cur, masks = dict(params), None
    total, parts = torch.zeros(K), []
    for l in range(L - 1):
        hidden, _ = stacked_forward(cur, X, masks)
        removed = ~keep[l]
        dev = (hidden[l] - hidden[l].mean(1, keepdim=True)) * removed.unsqueeze(1)
        X_l = dev.pow(2).sum(-1).mean(1).sqrt()
        K_l = torch.stack(norms[l + 1 :]).prod(0)
        parts.append((K_l, X_l))
        total = total + math.sqrt(2) * K_l * X_l
        step_keep = [keep[m] if m == l else None for m in range(L - 1)]
        cur, masks = prune_stacked(cur, X, step_keep, masks=masks)
    return total, parts


def block(params, name: str, keep_rows: torch.Tensor, keep_cols: torch.Tensor) -> torch.Tensor:
    """The surviving block of a stacked weight matrix: (K, out, in) -> (K, n_rows, n_cols).

    ``keep_rows`` (K, out) and ``keep_cols`` (K, in) are bool; every member must keep the same
    number of rows and of columns.
    """
    W = params[name].detach()
    if keep_rows.shape != W.shape[:2] or keep_cols.shape != (W.shape[0], W.shape[2]):
        raise ValueError(
            f"keep_rows/keep_cols must have shapes {tuple(W.shape[:2])} and "
            f"{(W.shape[0], W.shape[2])}"
        )
    nr, nc = keep_rows.sum(1), keep_cols.sum(1)
    if (nr != nr[0]).any() or (nc != nc[0]).any():
        raise ValueError("every member must keep the same number of rows and of columns")
    out = [W[k][keep_rows[k]][:, keep_cols[k]] for k in range(W.shape[0])]
    return torch.stack(out)


@torch.no_grad()
def dead_nodes(params, X, masks=None) -> list:
    """Hidden nodes whose ReLU is zero on every input of ``X``: list of (K, width) bool tensors."""
    hidden, _ = stacked_forward(params, X, masks)
    return [(h <= 0).all(1) for h in hidden]


def never_updated(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Entries bit-for-bit unchanged between two parameter tensors of equal shape (bool)."""
    if before.shape != after.shape:
        raise ValueError(
            f"before and after must have equal shapes, got {tuple(before.shape)} and "
            f"{tuple(after.shape)}"
        )
    return before == after


# ----------------------------------------------------------------------------- training
def concat_params(*stacks) -> dict:
    """Join stacked parameter dicts along the member axis: K1 + K2 + ... members."""
    if not stacks:
        raise ValueError("concat_params: expected at least one parameter dict")
    names = list(stacks[0])
    for i, s in enumerate(stacks):
        _check_params(s)
        if list(s) != names:
            raise ValueError(f"stacks[{i}] has other parameter names than stacks[0]")
    return {n: torch.cat([s[n].detach() for s in stacks], 0) for n in names}


def select_members(params, idx) -> dict:
    """Members ``idx`` (int sequence or slice) of a stacked parameter dict."""
    _check_params(params)
    K = params["layers.0.weight"].shape[0]
    if not isinstance(idx, slice):
        if isinstance(idx, (str, bytes)) or not isinstance(
            idx, (Sequence, torch.Tensor, np.ndarray)
        ):
            raise TypeError(f"idx must be a slice or a sequence of ints, got {type(idx).__name__}")
        items = idx.tolist() if isinstance(idx, (torch.Tensor, np.ndarray)) else list(idx)
        if not items:
            raise ValueError("idx: expected at least one member index")
        for i in items:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"idx must hold ints, got {type(i).__name__}")
            if not 0 <= i < K:
                raise ValueError(f"idx: member index {i} is out of range 0..{K - 1}")
        idx = [int(i) for i in items]
    elif len(range(K)[idx]) == 0:
        raise ValueError(f"idx: slice {idx} selects no member of {K}")
    return {n: t.detach()[idx] for n, t in params.items()}


class TrainResult(NamedTuple):
    """params: trained stacked parameters; loss, acc: (steps, K) before each step;
    snapshots: list of (step, params) taken before step 0 and every ``snapshot_every`` steps;
    grad_max: with ``track_grad=True``, a dict name -> tensor shaped like the parameter holding the
    largest absolute gradient each entry received during training (0 = never a nonzero gradient);
    else None."""

    params: dict
    loss: np.ndarray
    acc: np.ndarray
    snapshots: list
    grad_max: dict | None = None


def train_adam(
    params,
    X,
    y,
    *,
    lr: float,
    steps: int,
    masks=None,
    snapshot_every: int | None = None,
    snapshot_members=None,
    track_grad: bool = False,
) -> TrainResult:
    """Full-batch Adam (PyTorch defaults, betas (0.9, 0.999)) on the summed cross-entropy of K
    stacked ReLU nets; each member gets exactly its own gradient, as if trained alone.

    Parameters
    ----------
    params : stacked parameters (K, ...); not modified (trained copies are returned)
    X : Tensor (N, n_in); y : Tensor (N,) integer classes
    lr : float > 0; steps : int >= 1
    masks : optional list of (K, width) 0/1 node masks (removed nodes get zero gradient)
    snapshot_every : keep a copy of the parameters every this many steps (optional)
    snapshot_members : which members to keep in snapshots (default: all)
    track_grad : if True, record for every parameter entry the largest absolute gradient it ever
        received (``TrainResult.grad_max``); an entry whose gradient was always 0 cannot move under
        Adam
    """
    _check_params(params)
    X = _check_X(X, params["layers.0.weight"].shape[-1])
    if not isinstance(y, torch.Tensor) or y.shape != (len(X),):
        raise ValueError(f"y must be a Tensor of shape ({len(X)},)")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if snapshot_every is not None and (not isinstance(snapshot_every, int) or snapshot_every < 1):
        raise ValueError(f"snapshot_every must be a positive int or None, got {snapshot_every!r}")
    # the core engine: full batch, one step per "epoch", snapshots and gradient tracking as
    # callbacks
    L = _check_params(params)
    widths = [params["layers.0.weight"].shape[2]] + [
        params[f"layers.{i}.weight"].shape[1] for i in range(L)
    ]
    snaps = (
        engine.Snapshots(snapshot_every, unit="step", members=snapshot_members)
        if snapshot_every
        else None
    )
    grad = engine.GradMax() if track_grad else None
    run = engine.train(
        MLPStack(widths, "relu"),
        params,
        X,
        y,
        loss="ce",
        optimizer="adam",
        adam="torch",
        lr=lr,
        epochs=steps,
        masks=masks,
        record="step",
        callbacks=[c for c in (snaps, grad) if c],
        progress=False,
    )
    return TrainResult(
        run.params,
        run.loss,
        run.acc,
        list(zip(snaps.at, snaps.params)) if snaps else [],
        grad.value if grad else None,
    )


def adam_single_kick_travel(steps: int, betas=(0.9, 0.999)) -> float:
    """How far Adam moves a weight, in units of the learning rate, when its gradient is nonzero at
    the first step only and zero for the next ``steps - 1`` steps (eps neglected).

    With gradient g at step 1 only, step t moves the weight by
    ``lr * [(1-b1) b1^(t-1) / (1-b1^t)] / sqrt[(1-b2) b2^(t-1) / (1-b2^t)]`` against sign(g):
    the size of g cancels, so every such weight travels the same distance.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (b1, b2), got {betas!r}")
    b1, b2 = betas
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas):
        raise TypeError(f"betas must hold two numbers, got {betas!r}")
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas must lie in [0, 1), got {betas}")
    t = np.arange(1, steps + 1, dtype=float)
    m_hat = (1 - b1) * b1 ** (t - 1) / (1 - b1**t)
    v_hat = (1 - b2) * b2 ** (t - 1) / (1 - b2**t)
    return float(np.sum(m_hat / np.sqrt(v_hat)))


@torch.no_grad()
def class_one_probability(params, points, masks=None) -> torch.Tensor:
    """Softmax probability of class 1 at each point for each member: (K, M)."""
    _, logits = stacked_forward(params, points, masks)
    return torch.softmax(logits, -1)[..., 1]


@torch.no_grad()
def unit_role_similarity(params_a, params_b, X, masks, layer: int):
    """Do the kept units of two networks of the same shape play the same role?

    For hidden layer ``layer``, correlate each kept unit's activation over ``X`` in network A with
    the same unit's activation in network B ("matched"), and with every other kept unit of B
    ("mismatched", the chance level for units that share nothing but the data). Units constant on
    ``X`` in either network (e.g. dead ReLUs) are left out.

    Parameters
    ----------
    params_a, params_b : stacked parameter dicts of K networks with equal shapes
    X : Tensor (N, n_in)
    masks : list of (K, width) 0/1 masks shared by both (the kept units), or None
    layer : index of the hidden layer (0-based)

    Returns
    -------
    matched, mismatched : Tensor (K,), mean Pearson correlation per member (NaN if no unit is live)
    """
    L = _check_params(params_a)
    if _check_params(params_b) != L or any(
        params_a[n].shape != params_b[n].shape for n in params_a
    ):
        raise ValueError("params_a and params_b must have the same parameter shapes")
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < L - 1:
        raise ValueError(f"layer must be an int in 0..{L - 2}, got {layer!r}")
    ha = stacked_forward(params_a, X, masks)[0][layer]
    hb = stacked_forward(params_b, X, masks)[0][layer]  # (K, N, width)
    K, width = ha.shape[0], ha.shape[2]
    kept = torch.ones(K, width, dtype=torch.bool) if masks is None else masks[layer].bool()
    za = (ha - ha.mean(1, keepdim=True)) / ha.std(1, unbiased=False, keepdim=True)
    zb = (hb - hb.mean(1, keepdim=True)) / hb.std(1, unbiased=False, keepdim=True)
    live = kept & (ha.std(1) > 0) & (hb.std(1) > 0)  # (K, width)
    corr = torch.einsum("kni,knj->kij", torch.nan_to_num(za), torch.nan_to_num(zb)) / ha.shape[1]
    pair = live.unsqueeze(2) & live.unsqueeze(1)
    eye = torch.eye(width, dtype=torch.bool).unsqueeze(0)
    matched = (corr * (pair & eye)).sum((1, 2)) / (pair & eye).sum((1, 2))
    mismatched = (corr * (pair & ~eye)).sum((1, 2)) / (pair & ~eye).sum((1, 2))
    return matched, mismatched


# ----------------------------------------------------------------------------- Keras training
def train_keras(
    params,
    X,
    y,
    *,
    lr: float = 0.01,
    epochs: int = 20,
    batch_size: int = 32,
    seeds,
    masks=None,
    track_grad: bool = False,
    snapshot_members=None,
) -> TrainResult:
    """Mini-batch Adam with Keras' conventions, the optimiser the post series prints.

    ``keras.optimizers.Adam(0.01)`` with ``fit``'s default batch of 32: eps = 1e-7 added to the
    root of the *uncorrected* second moment, the bias correction folded into the step size.
    Trained through :func:`nnlearn.engine.train` on :class:`nnlearn.models.MLPStack`; member k
    draws its mini-batch order (a fresh shuffle every epoch) from ``seeds[k]``.

    Returns
    -------
    TrainResult: ``loss``, ``acc`` are (epochs, K) on all of ``X`` after each epoch;
    ``snapshots`` (with ``snapshot_members``, a list of member indices) hold (epoch, params of
    those members) at the start and after every epoch; ``grad_max`` as in :func:`train_adam`.
    """
    from nnlearn import engine
    from nnlearn.models import MLPStack

    L = _check_params(params)
    X = _check_X(X, params["layers.0.weight"].shape[-1])
    _check_labels(y, len(X))
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    K = params["layers.0.weight"].shape[0]
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) != K:
        raise ValueError(f"seeds must be a sequence of {K} ints (one per member), got {seeds!r}")
    widths = [params["layers.0.weight"].shape[2]] + [
        params[f"layers.{i}.weight"].shape[1] for i in range(L)
    ]
    grad = engine.GradMax() if track_grad else None
    snap = None
    if snapshot_members is not None:
        snap = engine.Snapshots(1, members=[int(i) for i in snapshot_members])
    run = engine.train(
        MLPStack(widths, "relu"),
        params,
        X,
        y,
        optimizer="adam",
        adam="keras",
        lr=float(lr),
        epochs=epochs,
        batch_size=batch_size,
        seeds=[int(s) for s in seeds],
        masks=masks,
        callbacks=[c for c in (grad, snap) if c is not None],
        progress=False,
    )
    snaps = list(zip(snap.at, snap.params)) if snap is not None else []
    return TrainResult(
        run.params, run.loss, run.acc, snaps, grad.value if grad is not None else None
    )


def _check_labels(y, n: int) -> None:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of integer classes, got {type(y).__name__}")
    if y.shape != (n,) or y.is_floating_point() or y.dtype == torch.bool or (y < 0).any():
        raise ValueError(f"y must be a Tensor of shape ({n},) holding non-negative integer classes")


# ----------------------------------------------------------------------------- similarity
def _check_hidden(name: str, h) -> torch.Tensor:
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (K, N, width), got {type(h).__name__}")
    if h.ndim != 3 or h.shape[1] < 2 or h.shape[2] < 1:
        raise ValueError(f"{name} must have shape (K, N, width) with N >= 2, got {tuple(h.shape)}")
    if not h.is_floating_point() or not torch.isfinite(h).all():
        raise ValueError(f"{name} must hold finite floats")
    return h.double()


@torch.no_grad()
def plane_disagreement(params_a, params_b, points, masks_a=None, masks_b=None) -> np.ndarray:
    """Share of ``points`` where member k of stack A and member k of stack B predict different
    classes (argmax): (K,) in [0, 1]. A function-level, unit-order-free comparison."""
    pa = stacked_forward(params_a, points, masks_a)[1].argmax(-1)
    pb = stacked_forward(params_b, points, masks_b)[1].argmax(-1)
    if pa.shape != pb.shape:
        raise ValueError(
            f"params_a and params_b must stack the same number of members, got {pa.shape[0]} and "
            f"{pb.shape[0]}"
        )
    return (pa != pb).double().mean(1).numpy()


@torch.no_grad()
def linear_cka(ha, hb) -> np.ndarray:
    """Linear CKA between two stacks of representations of the same N inputs:
    ``ha`` (K, N, wa), ``hb`` (K, N, wb) -> (K,) in [0, 1] (Kornblith et al. 2019). Invariant to
    any permutation (indeed any rotation) of the units and to isotropic scaling; units that are
    constant (dead or removed) contribute nothing. NaN where a representation is constant."""
    a, b = _check_hidden("ha", ha), _check_hidden("hb", hb)
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"ha and hb must share (K, N), got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    cross = (a.transpose(1, 2) @ b).pow(2).sum((1, 2))
    norm = (a.transpose(1, 2) @ a).pow(2).sum((1, 2)).sqrt() * (b.transpose(1, 2) @ b).pow(2).sum(
        (1, 2)
    ).sqrt()
    out = torch.where(norm > 0, cross / torch.where(norm > 0, norm, 1.0), torch.nan)
    return out.numpy()


def _live_corr(ha: torch.Tensor, hb: torch.Tensor, ka, kb):
    """Correlation matrix (na, nb) between the live kept units of one member's two layers."""
    la = torch.nonzero(ka & (ha.std(0) > 0)).flatten()
    lb = torch.nonzero(kb & (hb.std(0) > 0)).flatten()
    za = (ha[:, la] - ha[:, la].mean(0)) / ha[:, la].std(0, unbiased=False)
    zb = (hb[:, lb] - hb[:, lb].mean(0)) / hb[:, lb].std(0, unbiased=False)
    return (za.T @ zb / ha.shape[0]).numpy(), la.numpy(), lb.numpy()


@torch.no_grad()
def matched_units(ha, hb, keep_a=None, keep_b=None):
    """Match the kept, live units of two stacks of one hidden layer by their activations.

    ``ha``, ``hb`` : (K, N, width) activations over the same inputs; ``keep_a``, ``keep_b`` :
    (K, width) bool kept units (default: all). Units constant on the inputs are left out.

    Returns
    -------
    same : (K,) mean correlation of unit i of A with unit i of B (units live in both)
    best : (K,) mean correlation of the pairs chosen by the Hungarian algorithm
        (``scipy.optimize.linear_sum_assignment``, maximising the summed correlation): what a
        relabelling of the units can reach, an order-free similarity
    pairs : list of K (idx_a, idx_b) arrays, the Hungarian pairs (unit indices)
    """
    from scipy.optimize import linear_sum_assignment

    a, b = _check_hidden("ha", ha), _check_hidden("hb", hb)
    if a.shape != b.shape:
        raise ValueError(
            f"ha and hb must have equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    K, _, w = a.shape
    keeps = []
    for name, k in (("keep_a", keep_a), ("keep_b", keep_b)):
        if k is None:
            k = torch.ones(K, w, dtype=torch.bool)
        if not isinstance(k, torch.Tensor) or k.dtype != torch.bool or tuple(k.shape) != (K, w):
            raise ValueError(f"{name} must be a bool Tensor of shape ({K}, {w}) or None")
        keeps.append(k)
    same, best, pairs = np.full(K, np.nan), np.full(K, np.nan), []
    for k in range(K):
        c, la, lb = _live_corr(a[k], b[k], keeps[0][k], keeps[1][k])
        both = np.intersect1d(la, lb)
        if both.size:
            same[k] = np.mean([c[np.searchsorted(la, i), np.searchsorted(lb, i)] for i in both])
        if c.size:
            r, s = linear_sum_assignment(-c)
            best[k] = c[r, s].mean()
            pairs.append((la[r], lb[s]))
        else:
            pairs.append((np.zeros(0, int), np.zeros(0, int)))
    return same, best, pairs


@torch.no_grad()
def matched_block_correlation(params_a, params_b, X, masks_a=None, masks_b=None) -> np.ndarray:
    """Pearson r of the main (hidden 1 -> hidden 2) weights of two stacks after matching the
    units of both hidden layers by the Hungarian algorithm on their activations over ``X``
    (see :func:`matched_units`): an order-free weight comparison, (K,)."""
    if _check_params(params_a) != 3 or _check_params(params_b) != 3:
        raise ValueError("params_a and params_b must be networks with two hidden layers")
    ha = stacked_forward(params_a, X, masks_a)[0]
    hb = stacked_forward(params_b, X, masks_b)[0]
    keeps = [[None if m is None else m[l].bool() for l in (0, 1)] for m in (masks_a, masks_b)]
    p0 = matched_units(ha[0], hb[0], keeps[0][0], keeps[1][0])[2]
    p1 = matched_units(ha[1], hb[1], keeps[0][1], keeps[1][1])[2]
    Wa, Wb = params_a["layers.1.weight"], params_b["layers.1.weight"]
    out = np.full(Wa.shape[0], np.nan)
    for k in range(Wa.shape[0]):
        (a0, b0), (a1, b1) = p0[k], p1[k]
        if len(a0) > 1 and len(a1) > 1:
            wa = Wa[k][a1][:, a0].flatten().numpy()
            wb = Wb[k][b1][:, b0].flatten().numpy()
            out[k] = np.corrcoef(wa, wb)[0, 1]
    return out


# ----------------------------------------------------------------------------- pruning criteria
def _forward_with_grads(params, X, y, masks):
    """Hidden activations and the gradient of each member's mean loss with respect to them."""
    L = _check_params(params)
    params = {n: t.detach().clone().requires_grad_(True) for n, t in params.items()}
    masks = [None] * (L - 1) if masks is None else list(masks)
    h, hidden = X, []
    for i in range(L):
        z = torch.matmul(h, params[f"layers.{i}.weight"].transpose(-1, -2)) + params[
            f"layers.{i}.bias"
        ].unsqueeze(-2)
        if i == L - 1:
            break
        h = torch.relu(z)
        if masks[i] is not None:
            h = h * masks[i].to(h.dtype).unsqueeze(-2)
        h.retain_grad()
        hidden.append(h)
    member_ce(z, y).sum().backward()
    return [t.detach() for t in hidden], [t.grad.detach() for t in hidden]


def removal_effects(params, X, y, masks=None):
    """Actual and predicted change of each member's training loss when one hidden unit alone is
    removed with the mean-activation bias correction (:func:`prune_stacked`).

    Returns
    -------
    dict name -> (K, n_units) array over the kept units of all hidden layers (layer by layer;
    removed units are NaN): ``"actual"`` (the exact loss change), ``"spread"`` (activation
    standard deviation), ``"spread x out-norm"`` (times the norm of the unit's outgoing
    weights), ``"taylor"`` (first-order estimate of the mean-replacement change,
    ``sum_x dL/dh_i(x) (mean h_i - h_i(x))``) and ``"taylor, zeroed"`` (Molchanov et al.'s
    ``|sum_x dL/dh_i(x) h_i(x)|``, the first-order change of setting the unit to zero).
    """
    L = _check_params(params)
    X = _check_X(X, params["layers.0.weight"].shape[-1])
    _check_labels(y, len(X))
    K = params["layers.0.weight"].shape[0]
    widths = [params[f"layers.{i}.weight"].shape[1] for i in range(L - 1)]
    if masks is not None:
        _check_keep([m.bool() for m in masks], K, widths)
    p = {n: t.detach() for n, t in params.items()}
    with torch.enable_grad():
        hidden, grads = _forward_with_grads(p, X, y, masks)
    base = member_ce(stacked_forward(p, X, masks)[1], y)
    out = {k: [] for k in ("actual", "spread", "spread x out-norm", "taylor", "taylor, zeroed")}
    for l, (h, g) in enumerate(zip(hidden, grads)):
        mean = h.mean(1)
        kept = torch.ones(K, widths[l], dtype=torch.bool) if masks is None else masks[l].bool()
        actual = torch.full((K, widths[l]), float("nan"))
        for i in range(widths[l]):
            keep = [None] * (L - 1)
            keep[l] = torch.ones(K, widths[l], dtype=torch.bool)
            keep[l][:, i] = False
            keep[l] = keep[l] & kept | ~kept  # units already removed stay as they are
            new, m = prune_stacked(p, X, keep, masks=masks)
            actual[:, i] = member_ce(stacked_forward(new, X, m)[1], y) - base
        norm = p[f"layers.{l + 1}.weight"].norm(dim=1)  # (K, width): outgoing weights per unit
        spread = h.std(1, unbiased=False)
        parts = {
            "actual": actual,
            "spread": spread,
            "spread x out-norm": spread * norm,
            "taylor": (g * (mean.unsqueeze(1) - h)).sum(1),
            "taylor, zeroed": (g * h).sum(1).abs(),
        }
        for k, v in parts.items():
            out[k].append(torch.where(kept, v, torch.nan))
    return {k: torch.cat(v, 1).numpy() for k, v in out.items()}


def criterion_rank_correlation(scores, actual) -> np.ndarray:
    """Spearman rank correlation, per member, between a criterion's scores and the actual loss
    changes (both (K, n_units); NaN entries, removed units, are left out): (K,)."""
    from scipy.stats import spearmanr

    s, a = np.asarray(scores, dtype=float), np.asarray(actual, dtype=float)
    if s.ndim != 2 or s.shape != a.shape:
        raise ValueError(
            f"scores and actual must be equal (K, n_units) arrays, got {s.shape} and {a.shape}"
        )
    out = np.full(len(s), np.nan)
    for k in range(len(s)):
        ok = np.isfinite(s[k]) & np.isfinite(a[k])
        if ok.sum() < 3:
            raise ValueError(f"scores: member {k} has fewer than 3 finite units")
        out[k] = spearmanr(s[k][ok], a[k][ok]).statistic
    return out


# ----------------------------------------------------------------------------- data readings
def spiral_points(
    n: int, seed: int, *, sampling: str = "angle", turns: float = 1.5, noise: float = 0.05
):
    """Two spiral arms as :func:`nnlearn.data.spirals`, with a choice of how points are placed.

    ``sampling="angle"``: the angle t is uniform on [0, 2 pi turns] (``nnlearn.data.spirals``, so
    points crowd near the centre); ``"arc"``: ``t = t_max sqrt(u)``, u uniform, which spreads
    points evenly along the arm (its length grows like t^2). Returns float32 X (n, 2), int64 y.
    """
    import math as _m

    from nnlearn.checks import check_choice, finite_float, positive_int
    from nnlearn.data import spirals
    from nnlearn.seeding import make_rng

    check_choice("sampling", sampling, ("angle", "arc"))
    if sampling == "angle":
        return spirals(n, seed=seed, turns=turns, noise=noise)
    n = positive_int("n", n)
    turns = finite_float("turns", turns, low=0.0, strict=True)
    noise = finite_float("noise", noise, low=0.0)
    rng = make_rng(seed)
    y = np.arange(n) % 2
    t_max = 2 * _m.pi * turns
    t = t_max * np.sqrt(rng.uniform(0, 1, size=n))
    angle = t + _m.pi * y
    r = t / t_max
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], 1) + rng.normal(0, noise, size=(n, 2))
    return X.astype(np.float32), y.astype(np.int64)


# ----------------------------------------------------------------------------- the chapter's claims
def declare_claims(C) -> None:
    """Declare the chapter's claims on ``C`` (an :class:`nnlearn.claims.Claims`), before any
    experiment runs. Controls come before the claims that name them."""
    from nnlearn.claims import R

    post = "third post"
    d = C.declare
    d(
        "const_unit",
        "Removing a unit that is constant on the data changes no output",
        kind="identity",
        statistic="largest change of any logit on the plane",
        rule=R.at_most(1e-5, band=(1e-6, 1e-4)),
    )
    d(
        "fits",
        "The trained network classifies almost every training point correctly",
        kind="source",
        source="confident correct predictions for almost all points",
        where=f"{post}, Random Pruning",
        statistic="mean training accuracy over seeds (bootstrap interval)",
        rule=R.interval_above(0.95, band=(0.9, 0.97)),
        partly=R.interval_above(0.9),
    )
    d(
        "first_works",
        "Pruned at initialisation, then trained: a working, high-scoring network",
        kind="source",
        source="the pruned then trained networks are functional high scoring nets",
        where=f"{post}, Random Pruning",
        statistic="mean training accuracy, random half pruned first",
        rule=R.interval_above(0.9, band=(0.85, 0.95)),
    )
    d(
        "commute_random",
        "Random pruning and training do not commute: prune-first beats train-first",
        kind="source",
        source="pruning and training don't commute with random pruning; the others"
        " just aren't [functional]",
        where=f"{post}, Random Pruning",
        statistic="paired accuracy gap prune-first minus train-first (bootstrap)",
        rule=R.interval_above(0.1, band=(0.05, 0.2)),
        partly=R.interval_above(0.0),
    )
    d(
        "chunk_wrong",
        "Train-first pruning often reclassifies a large chunk of the plane",
        kind="source",
        source="often a large chunk of space is categorized wrongly",
        where=f"{post}, Random Pruning",
        statistic="share of seeds where >= 10% of the plane changes arm",
        rule=R.share_at_least(0.5, band=(0.3, 0.7)),
    )
    d(
        "diagonal",
        "The exact middle piece of the diagonal is weights never updated",
        kind="source",
        source="middle piece on the diagonal to machine precision: points never updated",
        where=f"{post}, Random Pruning",
        statistic="exactly equal weights inside [-a, a] exist and"
        " all are unchanged since initialisation in both routes",
        rule=R.holds(),
    )
    d(
        "uniform",
        "The middle piece follows the initial distribution U(-a, a)",
        kind="source",
        source="uniform distribution with sharp cutoffs: the initialization distribution",
        where=f"{post}, Random Pruning",
        statistic="KS test p-value against U(-a, a)",
        rule=R.at_least(0.05, band=(0.01, 0.1)),
    )
    d(
        "dashes",
        "The diagonal is dashed: outer pieces on the diagonal, beyond a gap",
        kind="source",
        source="the dashed diagonal line (upper and lower sections)",
        where=f"{post}, Random Pruning",
        statistic="weights kicked once the same way in both routes exist and the kick exceeds 2a",
        rule=R.holds(),
    )
    d(
        "offsets",
        "Training moves weights by about 0.59",
        kind="source",
        source_value=0.59,
        source="upper and lower sections moved about ±0.59",
        where=f"{post}, Random Pruning",
        statistic="most common distance a moved main-matrix weight travels",
        rule=R.close_to_source(0.06, band=(0.03, 0.12)),
    )
    _declare_std_claims(C)


def _declare_std_claims(C) -> None:
    from nnlearn.claims import R

    post, d = "third post, Nonrandom Pruning", C.declare
    d(
        "ctrl_random_visible",
        "Positive control: removing a random half visibly changes the map",
        kind="control",
        statistic="mean share of the plane that changes arm (bootstrap)",
        rule=R.interval_above(0.05, band=(0.02, 0.1)),
    )
    d(
        "std_invisible",
        "Removing the lowest-spread half leaves the map visually unchanged",
        kind="source",
        source="visually indistinguishable from the original",
        where=post,
        statistic="mean share of the plane that changes arm (bootstrap)",
        rule=R.interval_below(0.01, band=(0.005, 0.02)),
        partly=R.interval_below(0.05),
        controls=("ctrl_random_visible",),
    )
    d(
        "std_unimportant",
        "Low-spread units matter less than random ones",
        kind="source",
        source="a significant fraction of neurons aren't doing much",
        where=post,
        statistic="paired accuracy, lowest-spread half removed minus random half removed",
        rule=R.interval_above(0.0, band=(-0.01, 0.02)),
    )
    d(
        "ctrl_indep_differ",
        "Two independently initialised trained nets differ visibly",
        kind="control",
        statistic="mean share of the plane where seed k and seed k+1 disagree",
        rule=R.interval_above(0.01, band=(0.005, 0.02)),
    )
    d(
        "ctrl_map_random",
        "Random pruning: the routes disagree more than after low-spread pruning",
        kind="control",
        statistic="paired disagreement, random minus lowest-spread",
        rule=R.interval_above(0.0, band=(0.005, 0.01)),
    )
    d(
        "std_similar_map",
        "Low-spread pruning: prune-first looks like train-first",
        kind="source",
        source="similar to the trained and then pruned, but slightly different",
        where=post,
        statistic="paired disagreement of the routes minus that of independent nets",
        rule=R.interval_below(0.0, band=(-0.005, 0.005)),
        controls=("ctrl_indep_differ", "ctrl_map_random"),
    )
    d(
        "ctrl_kernel_indep",
        "Independent nets, units matched: weights correlate less than the routes",
        kind="control",
        statistic="paired r (routes, same units) minus r (independent, Hungarian)",
        rule=R.interval_above(0.0, band=(0.05, 0.1)),
    )
    d(
        "kernel_corr",
        "Low-spread pruning: surviving weights of the routes correlate",
        kind="source",
        source="a significant correlation, but still some difference",
        where=post,
        statistic="Pearson r of the surviving main-matrix weights (mean over seeds)",
        rule=R.interval_above(0.1, band=(0.0, 0.3)),
        controls=("ctrl_kernel_indep",),
    )
    d(
        "ctrl_roles_random",
        "Random pruning: kept units keep their roles less than low-spread",
        kind="control",
        statistic="paired role score, lowest-spread minus random",
        rule=R.interval_above(0.0, band=(0.02, 0.05)),
    )
    d(
        "roles",
        "Low-spread pruning first: the kept units end up in the same roles",
        kind="source",
        source="the remaining neurons often end up in similar roles",
        where=post,
        statistic="same-unit activation r (routes) minus Hungarian-matched r (independent nets)",
        rule=R.interval_above(0.0, band=(0.02, 0.05)),
        controls=("ctrl_roles_random",),
    )
    d(
        "bound",
        "The loss rise from pruning is at most sqrt2 K X (our derivation)",
        kind="identity",
        statistic="bound holds on every network, both rules",
        rule=R.holds(),
    )
    _declare_beyond_claims(C)


def _declare_beyond_claims(C) -> None:
    from nnlearn.claims import R

    d = C.declare
    d(
        "b_kick",
        "Adam's single-kick drift sets the most common travel (both settings)",
        kind="beyond",
        statistic="largest relative gap between travel peak and single-kick travel",
        rule=R.at_most(0.05, band=(0.02, 0.1)),
    )
    d(
        "b_kernel_vs_random",
        "Low-spread pruning gives weaker weight agreement than random pruning",
        kind="beyond",
        statistic="paired r, lowest-spread minus random",
        rule=R.interval_below(0.0, band=(-0.02, 0.02)),
    )
    d(
        "b_tuned_commute",
        "Once both are retrained, the two routes compute the same function",
        kind="beyond",
        statistic="share of the plane where fine-tuned train-first and prune-first"
        " disagree (bootstrap)",
        rule=R.interval_below(0.02, band=(0.01, 0.05)),
    )
    d(
        "b_tuned_closer",
        "Fine-tuning brings the routes closer than independent networks",
        kind="beyond",
        statistic="paired disagreement (routes, fine-tuned) minus independent nets",
        rule=R.interval_below(0.0, band=(-0.005, 0.005)),
    )
    d(
        "b_taylor_best",
        "A first-order estimate ranks single removals better than spread",
        kind="beyond",
        statistic="paired Spearman rho with the actual loss change, Taylor minus spread",
        rule=R.interval_above(0.0, band=(0.05, 0.1)),
    )
    d(
        "b_wide_reading",
        "The 100-to-50 reading keeps the random-pruning gap",
        kind="beyond",
        statistic="paired accuracy gap prune-first minus train-first, 2-100-100-2 halved",
        rule=R.interval_above(0.1, band=(0.05, 0.2)),
    )
    d(
        "b_deeper",
        "A deeper net (three hidden layers) keeps the random-pruning gap",
        kind="beyond",
        statistic="paired accuracy gap prune-first minus train-first, 2-50-50-50-2 halved",
        rule=R.interval_above(0.1, band=(0.05, 0.2)),
    )
    d(
        "b_mnist",
        "The routes also fail to commute for an MNIST MLP",
        kind="beyond",
        statistic="paired test accuracy gap prune-first minus train-first",
        rule=R.interval_above(0.0, band=(0.01, 0.05)),
    )


# ----------------------------------------------------------------------------- the experiment
def _cat_masks(*mask_lists):
    return [torch.cat([m.float() for m in parts]) for parts in zip(*mask_lists)]


def random_route_gap(init, X, y, keep, train, X_test=None, y_test=None) -> dict:
    """Random pruning only, in one batched run: accuracy (on ``X_test`` if given) of the full,
    train-first and prune-first networks, and the paired gap prune-first minus train-first."""
    K = init["layers.0.weight"].shape[0]
    init_p, masks = prune_stacked(init, X, keep)
    ones = [torch.ones_like(m) for m in masks]
    run = train(concat_params(init, init_p), _cat_masks(ones, masks))
    trained = select_members(run.params, slice(0, K))
    first = select_members(run.params, slice(K, 2 * K))
    then, _ = prune_stacked(trained, X, keep)
    A, b = (X, y) if X_test is None else (X_test, y_test)
    acc = lambda p, m=None: member_accuracy(stacked_forward(p, A, m)[1], b).numpy()
    out = {"full": acc(trained), "train first": acc(then, masks), "prune first": acc(first, masks)}
    out["gap"] = out["prune first"] - out["train first"]
    return out


def run_routes(init, X, keep_rand, train, *, n_keep: int) -> dict:
    """Both routes for random and lowest-spread pruning, in two batched training runs.

    ``train(params, masks)`` trains a stack and returns a :class:`TrainResult` (the setting).
    Run 1: the full networks and the random half pruned first. Run 2: the lowest-spread half
    (picked in each trained network, layer by layer) pruned first, and the train-first randomly
    pruned networks fine-tuned. Returns a dict of the stacks, masks, keeps and both runs.
    """
    L = _check_params(init)
    K = init["layers.0.weight"].shape[0]
    widths = [init[f"layers.{i}.weight"].shape[1] for i in range(L - 1)]
    init_rand, masks_rand = prune_stacked(init, X, keep_rand)
    ones = [torch.ones(K, w) for w in widths]
    run1 = train(concat_params(init, init_rand), _cat_masks(ones, masks_rand))
    trained = select_members(run1.params, slice(0, K))
    then_rand, _ = prune_stacked(trained, X, keep_rand)
    keep_std = [lowest_std_keep(s, n_keep) for s in activation_std(trained, X)]
    then_std, masks_std = prune_stacked(trained, X, keep_std)
    init_std, _ = prune_stacked(init, X, keep_std)
    run2 = train(concat_params(init_std, then_rand), _cat_masks(masks_std, masks_rand))
    return dict(
        init=init,
        trained=trained,
        first_rand=select_members(run1.params, slice(K, 2 * K)),
        then_rand=then_rand,
        masks_rand=masks_rand,
        keep_rand=keep_rand,
        keep_std=keep_std,
        then_std=then_std,
        masks_std=masks_std,
        first_std=select_members(run2.params, slice(0, K)),
        tuned_rand=select_members(run2.params, slice(K, 2 * K)),
        run1=run1,
        run2=run2,
    )


def _shift(t):
    return torch.roll(t, -1, 0)


def _shifted(params):
    return {n: _shift(t) for n, t in params.items()}


@torch.no_grad()
def travel_peak(trained, init, lr: float) -> float:
    """Most common distance (in units of ``lr``) a moved main-matrix weight travelled."""
    travel = (trained["layers.1.weight"] - init["layers.1.weight"]).abs().flatten() / lr
    counts, edges = np.histogram(travel[travel > 0].numpy(), bins=np.arange(0.0, 20.0, 0.05))
    return float(edges[counts.argmax()] + 0.025)


@torch.no_grad()
def _role_scores(r, X, rule: str) -> np.ndarray:
    """Same-unit activation r (routes) minus Hungarian r (independent nets), mean of layers."""
    then, first, masks = r[f"then_{rule}"], r[f"first_{rule}"], r[f"masks_{rule}"]
    ha, hb = stacked_forward(then, X, masks)[0], stacked_forward(first, X, masks)[0]
    hc = stacked_forward(_shifted(first), X, [_shift(m) for m in masks])[0]
    out = []
    for l in range(len(ha)):
        keep = masks[l].bool()
        same = matched_units(ha[l], hb[l], keep, keep)[0]
        best = matched_units(ha[l], hc[l], keep, _shift(keep))[1]
        out.append(same - best)
    return np.mean(out, 0)


@torch.no_grad()
def route_evidence(r, X, y, X_test, y_test, points, *, lr: float, kick: float) -> dict:
    """Every statistic the chapter judges, for one setting's :func:`run_routes` result."""
    acc = lambda p, m=None, A=X, b=y: member_accuracy(stacked_forward(p, A, m)[1], b).numpy()
    mr, ms = r["masks_rand"], r["masks_std"]
    nets = {
        "trained (full)": (r["trained"], None),
        "trained, then half pruned": (r["then_rand"], mr),
        "trained, pruned, fine-tuned": (r["tuned_rand"], mr),
        "pruned first, then trained": (r["first_rand"], mr),
        "trained, lowest-spread half pruned": (r["then_std"], ms),
        "lowest-spread half pruned first, trained": (r["first_std"], ms),
    }
    e = {
        "acc": {k: acc(p, m) for k, (p, m) in nets.items()},
        "acc_test": {k: acc(p, m, X_test, y_test) for k, (p, m) in nets.items()},
    }
    a = e["acc"]
    e["gap"] = a["pruned first, then trained"] - a["trained, then half pruned"]
    e["std_minus_rand"] = a["trained, lowest-spread half pruned"] - a["trained, then half pruned"]
    dis = lambda p, q, mp=None, mq=None: plane_disagreement(p, q, points, mp, mq)
    e["flip_rand"] = dis(r["trained"], r["then_rand"], None, mr)
    e["flip_std"] = dis(r["trained"], r["then_std"], None, ms)
    e["indep"] = dis(r["trained"], _shifted(r["trained"]))
    e["map_std"] = dis(r["first_std"], r["then_std"], ms, ms)
    e["map_rand"] = dis(r["first_rand"], r["then_rand"], mr, mr)
    e["tuned"] = dis(r["tuned_rand"], r["first_rand"], mr, mr)
    e.update(_weight_evidence(r, X, lr=lr, kick=kick))
    e["roles_std"], e["roles_rand"] = _role_scores(r, X, "std"), _role_scores(r, X, "rand")
    hs, hf = stacked_forward(r["then_std"], X, ms)[0], stacked_forward(r["first_std"], X, ms)[0]
    hi = stacked_forward(_shifted(r["first_std"]), X, [_shift(m) for m in ms])[0]
    e["cka_routes"] = [linear_cka(hs[l], hf[l]) for l in range(len(hs))]
    e["cka_indep"] = [linear_cka(hs[l], hi[l]) for l in range(len(hs))]
    e["dead"] = np.stack([d.sum(1).numpy() for d in dead_nodes(r["trained"], X)], 1)
    removed = [dead_nodes(r["trained"], X)[l] & ~r["keep_std"][l] for l in range(len(hs))]
    e["removed_dead"] = float(
        sum(m.sum() for m in removed) / sum((~k).sum() for k in r["keep_std"])
    )
    e.update(_bound_evidence(r, X, y))
    return e


def block_correlation(p, q, keep) -> np.ndarray:
    """Pearson r, per member, of the surviving main-matrix blocks of two stacks (same units)."""
    a = block(p, "layers.1.weight", keep[1], keep[0]).flatten(1).numpy()
    b = block(q, "layers.1.weight", keep[1], keep[0]).flatten(1).numpy()
    return np.array([np.corrcoef(a[k], b[k])[0, 1] for k in range(len(a))])


@torch.no_grad()
def _weight_evidence(r, X, *, lr: float, kick: float) -> dict:
    """The weight scatter of random pruning (middle piece, dashes, travel) and weight r's."""
    from scipy import stats as st

    kr, ks_ = r["keep_rand"], r["keep_std"]
    I0 = block(r["init"], "layers.1.weight", kr[1], kr[0])
    A = block(r["trained"], "layers.1.weight", kr[1], kr[0])  # train, then prune
    B = block(r["first_rand"], "layers.1.weight", kr[1], kr[0])  # prune, then train
    w = r["init"]["layers.1.weight"]
    a_init = math.sqrt(6.0 / (w.shape[1] + w.shape[2]))
    exact, unmoved = A == B, (I0 == A) & (I0 == B)
    middle = exact & (A.abs() <= a_init)
    e = dict(I0=I0, A=A, B=B, a_init=a_init, exact=exact, unmoved=unmoved, middle=middle)
    gm = r["run1"].grad_max
    if gm is not None:
        g, K = gm["layers.1.weight"], A.shape[0]
        both = torch.maximum(
            block({"g": g[:K]}, "g", kr[1], kr[0]), block({"g": g[K:]}, "g", kr[1], kr[0])
        )
        e["frozen_zero_grad"] = int((unmoved & (both == 0)).sum())
    vals = I0[middle].numpy()
    e["ks_p"] = (
        float(st.kstest(vals, "uniform", args=(-a_init, 2 * a_init)).pvalue)
        if vals.size > 1
        else None
    )
    e["middle_values"] = vals
    one_kick = lambda W: ((W - I0).abs() / lr - kick).abs() < 0.01
    e["outer"] = one_kick(A) & one_kick(B) & ((A - B).abs() < 0.05 * lr)
    e["peak"] = travel_peak(r["trained"], r["init"], lr)
    e["r_std"], e["r_rand"] = (
        block_correlation(r["trained"], r["first_std"], ks_),
        block_correlation(r["trained"], r["first_rand"], kr),
    )
    ms = r["masks_std"]
    e["r_indep"] = matched_block_correlation(
        r["then_std"], _shifted(r["first_std"]), X, ms, [_shift(m) for m in ms]
    )
    return e


@torch.no_grad()
def _bound_evidence(r, X, y) -> dict:
    """Loss rise of train-first pruning against :func:`loss_rise_bound`, both rules."""
    base = member_ce(stacked_forward(r["trained"], X)[1], y)
    out = {}
    for rule in ("std", "rand"):
        rise = (
            member_ce(stacked_forward(r[f"then_{rule}"], X, r[f"masks_{rule}"])[1], y) - base
        ).numpy()
        bound = loss_rise_bound(r["trained"], X, r[f"keep_{rule}"])[0].numpy()
        out[f"bound_{rule}"] = (rise, bound, rise <= bound + 1e-6)
    return out


def claim_evidence(e: dict, *, lr: float, kick: float) -> dict:
    """The evidence each declared claim's rule takes, from one setting's :func:`route_evidence`
    (bounded statistics get bootstrap intervals within their bounds)."""
    from nnlearn.stats import bootstrap_ci

    def boot(v, lo=0.0, hi=1.0):  # seeds where a statistic is undefined (NaN) are left out
        v = np.asarray(v, dtype=float)
        return bootstrap_ci(v[np.isfinite(v)], bounds=(lo, hi))

    middle = e["middle"]
    return {
        "fits": boot(e["acc"]["trained (full)"]),
        "first_works": boot(e["acc"]["pruned first, then trained"]),
        "commute_random": boot(e["gap"], -1, 1),
        "chunk_wrong": e["flip_rand"] >= 0.1,
        "diagonal": bool(middle.sum() > 0 and (middle & e["unmoved"]).sum() == middle.sum()),
        "uniform": e["ks_p"],
        "dashes": bool(e["outer"].sum() > 0 and kick * lr > 2 * e["a_init"]),
        "offsets": e["peak"] * lr,
        "ctrl_random_visible": boot(e["flip_rand"]),
        "std_invisible": boot(e["flip_std"]),
        "std_unimportant": boot(e["std_minus_rand"], -1, 1),
        "ctrl_indep_differ": boot(e["indep"]),
        "ctrl_map_random": boot(e["map_rand"] - e["map_std"], -1, 1),
        "std_similar_map": boot(e["map_std"] - e["indep"], -1, 1),
        "ctrl_kernel_indep": boot(e["r_std"] - e["r_indep"], -2, 2),
        "kernel_corr": boot(e["r_std"], -1, 1),
        "ctrl_roles_random": boot(e["roles_std"] - e["roles_rand"], -4, 4),
        "roles": boot(e["roles_std"], -2, 2),
        "bound": bool(e["bound_std"][2].all() and e["bound_rand"][2].all()),
        "b_kernel_vs_random": boot(e["r_std"] - e["r_rand"], -2, 2),
        "b_tuned_commute": boot(e["tuned"]),
        "b_tuned_closer": boot(e["tuned"] - e["indep"], -1, 1),
    }
