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

from nnlearn.models import MLP
from nnlearn.seeding import make_generator

__all__ = [
    "keras_init_",
    "n_layers",
    "stacked_forward",
    "keep_from_indices",
    "random_keep",
    "lowest_std_keep",
    "prune_stacked",
    "prune_mlp",
    "activation_std",
    "member_ce",
    "member_accuracy",
    "loss_rise_bound",
    "block",
    "never_updated",
    "dead_nodes",
    "concat_params",
    "select_members",
    "train_adam",
    "TrainResult",
    "adam_single_kick_travel",
    "class_one_probability",
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
        raise ValueError("params: need at least two layers ('layers.0.weight', 'layers.1.weight', ...)")
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
    return X.float()


def _check_keep(keep, K: int, widths: Sequence[int]) -> list:
    """keep: one (K, width) bool tensor (or None = keep all) per hidden layer."""
    if not isinstance(keep, Sequence) or isinstance(keep, (str, torch.Tensor)):
        raise TypeError("keep must be a list with one (K, width) bool tensor (or None) per hidden layer")
    if len(keep) != len(widths):
        raise ValueError(f"keep: expected {len(widths)} entries (one per hidden layer), got {len(keep)}")
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
            raise ValueError(f"keep[{l}]: pruning every node of hidden layer {l} (members {bad}) is not allowed")
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
        raise ValueError(f"masks: expected {L - 1} entries (one per hidden layer), got {len(masks)}")
    h, hidden = X, []
    for i in range(L):
        z = torch.matmul(h, params[f"layers.{i}.weight"].transpose(-1, -2)) + params[f"layers.{i}.bias"].unsqueeze(-2)
        if i == L - 1:
            return hidden, z
        h = torch.relu(z)
        if masks[i] is not None:
            h = h * masks[i].to(h.dtype).unsqueeze(-2)
        hidden.append(h)


def member_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each member: logits (K, N, C), y (N,) -> (K,)."""
    if logits.ndim != 3 or y.ndim != 1 or logits.shape[1] != len(y):
        raise ValueError(f"logits must be (K, N, C) and y (N,), got {tuple(logits.shape)} and {tuple(y.shape)}")
    yk = y.long().expand(logits.shape[0], -1)
    return F.cross_entropy(logits.transpose(1, 2), yk, reduction="none").mean(1)


def member_accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy of each member: logits (K, N, C), y (N,) -> (K,)."""
    if logits.ndim != 3 or y.ndim != 1 or logits.shape[1] != len(y):
        raise ValueError(f"logits must be (K, N, C) and y (N,), got {tuple(logits.shape)} and {tuple(y.shape)}")
    return (logits.argmax(-1) == y.long()).float().mean(1)


# ----------------------------------------------------------------------------- choosing nodes
def keep_from_indices(indices: Sequence[int], width: int) -> torch.Tensor:
    """A (width,) bool mask keeping exactly ``indices``; rejects empty, repeated or out-of-range indices."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    idx = [int(i) for i in indices]
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
        raise ValueError(f"n_keep must be in 1..{width} (pruning every node is not allowed), got {n_keep}")
    return int(n_keep)


def random_keep(width: int, n_keep: int, seeds: Sequence[int]) -> torch.Tensor:
    """For each seed, keep ``n_keep`` of ``width`` nodes chosen uniformly at random.

    Returns
    -------
    Tensor, bool, shape (K, width), K = len(seeds)
    """
    n_keep = _check_n_keep(n_keep, width)
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
    if not isinstance(stds, torch.Tensor) or stds.ndim != 2:
        raise ValueError("stds must be a Tensor of shape (K, width)")
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
    """Prune K stacked networks: mask removed nodes and fold their mean activation into the next bias.

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
    cur = [torch.ones(K, w) for w in widths] if masks is None else [m.detach().float().clone() for m in masks]
    for l in range(L - 1):
        removed = (~keep[l]).float() * cur[l]  # nodes removed now (not already removed)
        if removed.sum() == 0:
            continue
        hidden, _ = stacked_forward(new, X, cur)
        mean = hidden[l].mean(1)  # (K, width)
        W_next = new[f"layers.{l + 1}.weight"]  # (K, out, width)
        new[f"layers.{l + 1}.bias"] = new[f"layers.{l + 1}.bias"] + torch.einsum("koi,ki->ko", W_next, mean * removed)
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
        raise ValueError(f"keep_indices: expected a list of {len(widths)} entries (one per hidden layer)")
    keep = [None if k is None else keep_from_indices(k, w).unsqueeze(0) for k, w in zip(keep_indices, widths)]
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
        raise ValueError(f"keep_rows/keep_cols must have shapes {tuple(W.shape[:2])} and {(W.shape[0], W.shape[2])}")
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
        raise ValueError(f"before and after must have equal shapes, got {tuple(before.shape)} and {tuple(after.shape)}")
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


def train_adam(params, X, y, *, lr: float, steps: int, masks=None, snapshot_every: int | None = None,
               snapshot_members=None, track_grad: bool = False) -> TrainResult:
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
        received (``TrainResult.grad_max``); an entry whose gradient was always 0 cannot move under Adam
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
    sel = slice(None) if snapshot_members is None else snapshot_members
    p = {n: t.detach().clone().requires_grad_(True) for n, t in params.items()}
    opt = torch.optim.Adam(list(p.values()), lr=lr)
    losses, accs, snaps = [], [], []
    seen = {n: torch.zeros(t.shape) for n, t in p.items()} if track_grad else None
    for step in range(steps):
        if snapshot_every and step % snapshot_every == 0:
            snaps.append((step, {n: t.detach()[sel].clone() for n, t in p.items()}))
        opt.zero_grad()
        _, logits = stacked_forward(p, X, masks)
        per = member_ce(logits, y)
        per.sum().backward()
        if seen is not None:
            for n, t in p.items():
                torch.maximum(seen[n], t.grad.abs(), out=seen[n])
        opt.step()
        losses.append(per.detach().numpy().copy())
        accs.append(member_accuracy(logits.detach(), y).numpy())
    final = {n: t.detach() for n, t in p.items()}
    if snapshot_every:
        snaps.append((steps, {n: t[sel].clone() for n, t in final.items()}))
    return TrainResult(final, np.array(losses), np.array(accs), snaps, seen)


def adam_single_kick_travel(steps: int, betas=(0.9, 0.999)) -> float:
    """How far Adam moves a weight, in units of the learning rate, when its gradient is nonzero at
    the first step only and zero for the next ``steps - 1`` steps (eps neglected).

    With gradient g at step 1 only, step t moves the weight by
    ``lr * [(1-b1) b1^(t-1) / (1-b1^t)] / sqrt[(1-b2) b2^(t-1) / (1-b2^t)]`` against sign(g):
    the size of g cancels, so every such weight travels the same distance.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    b1, b2 = betas
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
    if _check_params(params_b) != L or any(params_a[n].shape != params_b[n].shape for n in params_a):
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
