"""Tools for the chapter *How feed-forward networks learn* (Petrosyan, 2018).

- class splitting: strip plots of hidden activations, per-neuron separation scores (an AUC
  between two groups of classes), within-class variance ratios;
- activation patterns: sign-flip curves of a class's last-hidden-layer pattern;
- weight templates: correlation of weight images with a class-mean difference image;
- per-example gradients: batched one-example-at-a-time SGD that records every weight change,
  cosines between changes and layer inputs, class-sign consistency;
- a small convolutional network and an oriented-edge score for its filters.

Shapes follow the convention ``(..., N, U)``: any leading batch axes (ensemble members,
snapshots), then N examples, then U units.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn

from nnlearn.ensemble import Ensemble, train_ensemble
from nnlearn.models import MLP
from nnlearn.seeding import make_generator, make_rng

# --------------------------------------------------------------------------- input checks


def _as_array(name: str, a, ndim_min: int = 1) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(a).__name__}")
    if a.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimension(s), got shape {a.shape}")
    return a


def _labels(labels, n: int) -> np.ndarray:
    labels = _as_array("labels", labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must have shape ({n},) to match the examples axis, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    return labels


# --------------------------------------------------------------------------- Experiment 1


def bipartitions(classes: Sequence[int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every split of ``classes`` into two non-empty groups, each split listed once.

    There are ``2**(C-1) - 1`` of them (the source's ``2**C - 2`` counts each split twice).

    Returns
    -------
    list of (group_a, group_b); ``group_a`` always holds the first class.
    """
    classes = [int(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must hold at least two distinct labels, got {classes}")
    first, rest = classes[0], classes[1:]
    out = []
    for r in range(len(rest) + 1):
        for picked in itertools.combinations(rest, r):
            a = (first, *picked)
            b = tuple(c for c in rest if c not in picked)
            if b:
                out.append((a, b))
    return out


@dataclass
class SplitScores:
    """Best two-group split of each unit.

    score : (..., U) ``|2 AUC - 1|`` of the best split (0: classes mixed, 1: fully separated)
    split : (..., U) index into ``splits`` of the best split
    splits : list of (group_a, group_b)
    """

    score: np.ndarray
    split: np.ndarray
    splits: list


def split_scores(acts, labels) -> SplitScores:
    """How well each unit separates the classes into two groups.

    For every bipartition of the classes present in ``labels`` the unit's AUC between the
    two groups is computed from average ranks (ties, e.g. ReLU zeros, count one half); the
    score is ``|2 AUC - 1|`` of the best bipartition. With two classes this is the absolute
    Gini coefficient of the unit as a classifier.

    Parameters
    ----------
    acts : array or Tensor, shape (..., N, U)
    labels : int array, shape (N,)

    Returns
    -------
    SplitScores with arrays of shape (..., U)
    """
    acts = _as_array("acts", acts, 2).astype(np.float64)
    labels = _labels(labels, acts.shape[-2])
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"labels must contain at least two classes, got {classes.tolist()}")
    ranks = stats.rankdata(acts, axis=-2)  # (..., N, U), ties averaged
    splits = bipartitions(classes.tolist())
    scores = []
    for group_a, _ in splits:
        in_a = np.isin(labels, group_a)
        n_a, n_b = int(in_a.sum()), int((~in_a).sum())
        rank_sum = ranks[..., in_a, :].sum(-2)
        auc = (rank_sum - n_a * (n_a + 1) / 2) / (n_a * n_b)
        scores.append(np.abs(2 * auc - 1))
    scores = np.stack(scores, -1)  # (..., U, S)
    return SplitScores(scores.max(-1), scores.argmax(-1), splits)


def separation_scores(acts, labels) -> np.ndarray:
    """``split_scores(acts, labels).score``: shape (..., U), in [0, 1]."""
    return split_scores(acts, labels).score


def within_class_variance_ratio(acts, labels) -> np.ndarray:
    """Share of a layer's activation variance left within classes.

    ``sum_units sum_classes n_c var_c / sum_units N var`` (0: every class is one point,
    1: the class explains nothing). Pooled over units, so constant (dead) units add nothing.

    Parameters
    ----------
    acts : shape (..., N, U); labels : shape (N,)

    Returns
    -------
    np.ndarray of shape (...); NaN where the layer has no variance at all.
    """
    acts = _as_array("acts", acts, 2).astype(np.float64)
    labels = _labels(labels, acts.shape[-2])
    total = ((acts - acts.mean(-2, keepdims=True)) ** 2).sum((-2, -1))
    within = np.zeros_like(total)
    for c in np.unique(labels):
        part = acts[..., labels == c, :]
        within = within + ((part - part.mean(-2, keepdims=True)) ** 2).sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, within / np.where(total > 0, total, 1), np.nan)


def within_class_variance(acts, labels) -> np.ndarray:
    """Mean over classes and units of the within-class variance: shape (...) from (..., N, U)."""
    acts = _as_array("acts", acts, 2).astype(np.float64)
    labels = _labels(labels, acts.shape[-2])
    return np.mean([acts[..., labels == c, :].var(-2).mean(-1) for c in np.unique(labels)], 0)


def hidden_activations(model, params: dict, X) -> list[torch.Tensor]:
    """Post-activations of every hidden layer of an MLP for stacked parameters.

    Parameters
    ----------
    model : nnlearn.models.MLP (architecture and activations)
    params : dict name -> Tensor (K, ...) as in ``Ensemble.params``
    X : Tensor (N, n_in)

    Returns
    -------
    list with one Tensor (K, N, width) per hidden layer
    """
    if not hasattr(model, "acts") or not hasattr(model, "layers"):
        raise TypeError(f"model must be an nnlearn MLP, got {type(model).__name__}")
    X = torch.as_tensor(X, dtype=torch.float32)
    out, h = [], X
    with torch.no_grad():
        for i in range(len(model.layers) - 1):
            z = torch.matmul(h, params[f"layers.{i}.weight"].transpose(-1, -2))
            if f"layers.{i}.bias" in params:
                z = z + params[f"layers.{i}.bias"].unsqueeze(-2)
            h = model.acts[i](z)
            out.append(h)
    return out


def unflatten(ens: Ensemble, flat) -> dict[str, torch.Tensor]:
    """Split flat parameters (K, P) (as from ``Ensemble.flat_params``) into a params dict."""
    flat = torch.as_tensor(np.asarray(flat), dtype=torch.float32)
    K = len(ens)
    sizes = [p[0].numel() for p in ens.params.values()]
    if flat.ndim != 2 or flat.shape != (K, sum(sizes)):
        raise ValueError(f"flat must have shape ({K}, {sum(sizes)}), got {tuple(flat.shape)}")
    out = {}
    for (name, p), part in zip(ens.params.items(), flat.split(sizes, 1)):
        out[name] = part.reshape(p.shape)
    return out


def class_gap(acts, labels, value_range: float = 2.0) -> np.ndarray:
    """Distance between the two class means of each unit as a share of the activation range.

    ``|mean_a - mean_b| / value_range`` (for tanh, range 2: 1 means one class sits at -1 and
    the other at +1).

    Parameters
    ----------
    acts : (..., N, U); labels : (N,) with exactly two classes

    Returns
    -------
    np.ndarray (..., U)
    """
    acts = _as_array("acts", acts, 2).astype(np.float64)
    labels = _labels(labels, acts.shape[-2])
    classes = np.unique(labels)
    if len(classes) != 2:
        raise ValueError(f"labels must hold exactly two classes, got {classes.tolist()}")
    if not value_range > 0:
        raise ValueError(f"value_range must be > 0, got {value_range}")
    a, b = (acts[..., labels == c, :].mean(-2) for c in classes)
    return np.abs(a - b) / value_range


@dataclass
class LayerScores:
    """Per-layer summaries over training; every array has shape (K, E, L) for K members,
    E recorded epochs and L hidden layers (means over the layer's units)."""

    epochs: list
    separation: np.ndarray
    gap: np.ndarray
    variance_ratio: np.ndarray


def layer_scores(ens: Ensemble, snapshots, epochs: Sequence[int], X, y) -> LayerScores:
    """Separation score, class gap (two classes only; NaN otherwise) and within-class variance
    ratio of every hidden layer at the given epochs.

    Parameters
    ----------
    ens : Ensemble of MLPs; snapshots : (S, K, P) flat parameters with snapshot s taken after
        epoch s (s = 0: the initialisation), as from ``train_ensemble(..., snapshot_every=1)``
    epochs : which snapshots to score (0 = before training)
    X : (N, n_in); y : (N,)
    """
    snapshots = np.asarray(snapshots)
    epochs = [int(e) for e in epochs]
    if snapshots.ndim != 3 or any(not 0 <= e < len(snapshots) for e in epochs):
        raise ValueError(f"snapshots must be (S, K, P) and epochs in 0..S-1, got {snapshots.shape} and {epochs}")
    y = _labels(y, len(X))
    two = len(np.unique(y)) == 2
    sep, gap, var = [], [], []
    for e in epochs:
        acts = hidden_activations(ens.base, unflatten(ens, snapshots[e]), X)
        sep.append([separation_scores(a, y).mean(-1) for a in acts])
        gap.append([class_gap(a, y).mean(-1) if two else np.full(len(ens), np.nan) for a in acts])
        var.append([within_class_variance_ratio(a, y) for a in acts])
    to_kel = lambda v: np.transpose(np.array(v), (2, 0, 1))  # noqa: E731  (E, L, K) -> (K, E, L)
    return LayerScores(epochs, to_kel(sep), to_kel(gap), to_kel(var))


def separation_grid(
    X,
    y,
    *,
    depths: Sequence[int],
    widths: Sequence[int],
    activations: Sequence[str],
    seeds: Sequence[int],
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
) -> dict:
    """Mean separation score of all hidden units before and after training, for every
    (depth, width, activation) configuration; each configuration's seeds train as one ensemble
    (Adam, cross-entropy).

    Parameters
    ----------
    X : (N, n_in); y : (N,) int classes

    Returns
    -------
    dict (depth, width, activation) -> (before, after), two arrays of shape (K,)
    """
    y = np.asarray(y)
    if not depths or not widths or not activations:
        raise ValueError("depths, widths and activations must be non-empty")
    n_classes = int(y.max()) + 1
    out = {}
    for depth, width, act in itertools.product(depths, widths, activations):
        if not isinstance(depth, int) or depth < 1 or not isinstance(width, int) or width < 1:
            raise ValueError(f"depths and widths must be positive ints, got depth={depth!r}, width={width!r}")
        arch = [X.shape[1]] + [width] * depth + [n_classes]
        ens = Ensemble.from_seeds(lambda s: MLP(arch, act, seed=s), seeds)
        before = np.mean([separation_scores(a, y).mean(-1) for a in hidden_activations(ens.base, ens.params, X)], 0)
        train_ensemble(ens, X, y, optimizer="adam", lr=lr, epochs=epochs, batch_size=batch_size, seeds=list(seeds))
        after = np.mean([separation_scores(a, y).mean(-1) for a in hidden_activations(ens.base, ens.params, X)], 0)
        out[(depth, width, act)] = (before, after)
    return out


def strip_plot(ax, acts, labels, *, max_points: int = 300, seed: int = 0, colors=None, size: float = 2.0, xlim=(-1.05, 1.05)):
    """One strip per unit: x = activation, y = unit index plus jitter, colour = class.

    Parameters
    ----------
    ax : matplotlib Axes
    acts : shape (N, U); labels : shape (N,)
    max_points : at most this many examples per class are drawn (seeded subsample)
    """
    acts = _as_array("acts", acts, 2)
    if acts.ndim != 2:
        raise ValueError(f"acts must have shape (N, U), got {acts.shape}")
    labels = _labels(labels, acts.shape[0])
    rng = make_rng(seed)
    classes = np.unique(labels)
    colors = colors or ["#e6a100", "#5b2a86", "#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    U = acts.shape[1]
    for k, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        idx = rng.choice(idx, min(max_points, len(idx)), replace=False)
        jitter = rng.uniform(-0.35, 0.35, size=(len(idx), U))
        ys = np.arange(U)[None, :] + jitter
        ax.scatter(acts[idx].ravel(), ys.ravel(), s=size, color=colors[k % len(colors)], alpha=0.5, linewidths=0, label=str(c), rasterized=True)
    ax.set_ylim(-0.6, U - 0.4)
    ax.set_yticks(range(U))
    ax.invert_yaxis()
    if xlim is not None:
        ax.set_xlim(*xlim)
    return ax


def pixel_strip_plot(ax, X, labels, *, side: int = 28, max_points: int = 60, seed: int = 0, colors=None, size: float = 1.0):
    """The strip plot of raw pixels laid out as the image: pixel (r, c) gets a small cell in
    which x = pixel value and y = jitter, colour = class. Zero pixels are not drawn.

    X : shape (N, side*side) with values in [0, 1]; labels : shape (N,)
    """
    X = _as_array("X", X, 2)
    if X.ndim != 2 or X.shape[1] != side * side:
        raise ValueError(f"X must have shape (N, {side * side}), got {X.shape}")
    labels = _labels(labels, X.shape[0])
    rng = make_rng(seed)
    colors = colors or ["#e6a100", "#5b2a86"]
    rows, cols = np.divmod(np.arange(side * side), side)
    for k, c in enumerate(np.unique(labels)):
        idx = rng.choice(np.flatnonzero(labels == c), min(max_points, int((labels == c).sum())), replace=False)
        vals = X[idx]
        n, p = np.nonzero(vals > 0)
        xs = cols[p] + 0.85 * vals[n, p]
        ys = rows[p] + rng.uniform(0.1, 0.9, size=len(p))
        ax.scatter(xs, ys, s=size, color=colors[k % len(colors)], alpha=0.5, linewidths=0, rasterized=True)
    ax.set_xlim(0, side)
    ax.set_ylim(side, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def outgoing_weight_norms(params: dict, n_layers: int) -> list[torch.Tensor]:
    """Norm of each hidden unit's outgoing weights: list of (K, width) for hidden layers 0..L-1."""
    if not isinstance(n_layers, int) or n_layers < 2:
        raise ValueError(f"n_layers must be an int >= 2 (number of linear layers), got {n_layers!r}")
    return [params[f"layers.{i + 1}.weight"].detach().norm(dim=-2) for i in range(n_layers - 1)]


def incoming_weight_norms(params: dict, n_layers: int) -> list[torch.Tensor]:
    """Norm of each hidden unit's incoming weights: list of (K, width) for hidden layers 0..L-1.

    params : dict name -> (K, ...) stacked parameters; n_layers : number of linear layers (>= 2).
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 2:
        raise ValueError(f"n_layers must be an int >= 2 (number of linear layers), got {n_layers!r}")
    return [params[f"layers.{i}.weight"].detach().norm(dim=-1) for i in range(n_layers - 1)]


def uniform_random_task(n_samples: int = 100, n_features: int = 100, seed: int = 0):
    """Inputs drawn uniformly from [0, 1) with uniformly random binary labels (the source's fake data).

    Returns
    -------
    X : float32 (n_samples, n_features); y : int64 (n_samples,)
    """
    for name, v in (("n_samples", n_samples), ("n_features", n_features)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an int >= 2, got {v!r}")
    rng = make_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(n_samples, n_features)).astype(np.float32)
    y = rng.integers(0, 2, size=n_samples).astype(np.int64)
    return X, y


# --------------------------------------------------------------------------- Experiment 2


def random_orders(n_units: int, n_orders: int, seed: int) -> torch.Tensor:
    """``n_orders`` random permutations of ``range(n_units)``: LongTensor (n_orders, n_units)."""
    for name, v in (("n_units", n_units), ("n_orders", n_orders)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    g = make_generator(seed)
    return torch.stack([torch.randperm(n_units, generator=g) for _ in range(n_orders)])


def flip_curves(pattern, weight, bias, orders) -> torch.Tensor:
    """Output probabilities as the signs of a hidden pattern are flipped one unit at a time.

    The last layer is linear, so flipping unit j moves the logits by ``-2 W[:, j] h_j``; the
    curve for an order is the running sum of those moves (exact, no re-evaluation needed).

    Parameters
    ----------
    pattern : Tensor (..., U), the last hidden layer's activation pattern
    weight : Tensor (..., C, U); bias : Tensor (..., C)
    orders : LongTensor (R, U), flip orders (each a permutation of the units)

    Returns
    -------
    Tensor (..., R, U + 1, C): softmax probabilities after 0, 1, ..., U flips
    """
    pattern, weight, bias, orders = (torch.as_tensor(a) for a in (pattern, weight, bias, orders))
    U = pattern.shape[-1]
    if weight.shape[-1] != U or weight.shape[:-2] != pattern.shape[:-1]:
        raise ValueError(f"weight must have shape (..., C, {U}) matching pattern {tuple(pattern.shape)}, got {tuple(weight.shape)}")
    if bias.shape != weight.shape[:-1]:
        raise ValueError(f"bias must have shape {tuple(weight.shape[:-1])}, got {tuple(bias.shape)}")
    if orders.ndim != 2 or orders.shape[1] != U or orders.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"orders must be an integer tensor (R, {U}), got {tuple(orders.shape)} {orders.dtype}")
    if not (torch.sort(orders, 1).values == torch.arange(U)).all():
        raise ValueError("orders: every row must be a permutation of the units")
    contrib = (weight * pattern.unsqueeze(-2)).transpose(-1, -2)  # (..., U, C): unit j's share of the logits
    start = contrib.sum(-2) + bias  # (..., C)
    moves = -2 * contrib[..., orders, :]  # (..., R, U, C)
    logits = torch.cat([start.unsqueeze(-2).unsqueeze(-2).expand(*moves.shape[:-2], 1, -1), start.unsqueeze(-2).unsqueeze(-2) + moves.cumsum(-2)], -2)
    return torch.softmax(logits.double(), -1).to(pattern.dtype)


def first_crossing(curves, level: float) -> np.ndarray:
    """First index along the last axis where a curve drops below ``level``.

    Parameters
    ----------
    curves : array (..., T), decreasing-ish probabilities
    level : float in (0, 1)

    Returns
    -------
    float array (...): the first t with ``curves[..., t] < level`` (T if never)
    """
    curves = _as_array("curves", curves)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    below = curves < level
    return np.where(below.any(-1), below.argmax(-1), curves.shape[-1]).astype(float)


def predicted_flip_fraction(pattern, weight, bias, level: float) -> np.ndarray:
    """Share of units that random flips need, on average, to bring P(class 0) below ``level``.

    For two classes the logit difference of the pattern is ``D = b + S`` with ``S = sum_j c_j``,
    ``c_j = (W[0, j] - W[1, j]) h_j`` and ``b = bias[0] - bias[1]``. Flipping a random set of
    ``k`` of the ``U`` units removes ``2 c_j`` for each, so on average
    ``D_k = b + S (1 - 2 k / U)``; it equals ``logit(level)`` at
    ``k / U = (1 - (logit(level) - b) / S) / 2`` (clipped to [0, 1]).

    Parameters
    ----------
    pattern : (..., U); weight : (..., 2, U); bias : (..., 2); level in (0, 1)

    Returns
    -------
    np.ndarray (...): the predicted crossing as a share of U
    """
    h = _as_array("pattern", pattern).astype(np.float64)
    W = _as_array("weight", weight, 2).astype(np.float64)
    b = _as_array("bias", bias).astype(np.float64)
    if W.shape[-2:] != (2, h.shape[-1]) or W.shape[:-2] != h.shape[:-1]:
        raise ValueError(f"weight must have shape (..., 2, {h.shape[-1]}) matching pattern {h.shape}, got {W.shape}")
    if b.shape != W.shape[:-1]:
        raise ValueError(f"bias must have shape {W.shape[:-1]}, got {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    S = ((W[..., 0, :] - W[..., 1, :]) * h).sum(-1)
    target = math.log(level / (1 - level)) - (b[..., 0] - b[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((1 - target / S) / 2, 0.0, 1.0)


# --------------------------------------------------------------------------- Experiment 3


def template_scores(weights, template) -> np.ndarray:
    """Pearson correlation of every weight image with a template image.

    Parameters
    ----------
    weights : shape (..., P), e.g. (K, units, 784)
    template : shape (P,), e.g. a class-mean difference image

    Returns
    -------
    np.ndarray (...): signed correlations in [-1, 1]
    """
    w = _as_array("weights", weights).astype(np.float64)
    t = _as_array("template", template).astype(np.float64)
    if t.ndim != 1 or t.shape[0] != w.shape[-1]:
        raise ValueError(f"template must have shape ({w.shape[-1]},), got {t.shape}")
    if t.std() == 0:
        raise ValueError("template must not be constant")
    wc = w - w.mean(-1, keepdims=True)
    tc = t - t.mean()
    denom = np.linalg.norm(wc, axis=-1) * np.linalg.norm(tc)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (wc @ tc) / np.where(denom > 0, denom, 1), 0.0)


def class_mean_difference(X, y, a: int, b: int) -> np.ndarray:
    """Mean image of class ``a`` minus mean image of class ``b``: shape (P,) from X (N, P)."""
    X = _as_array("X", X, 2)
    y = _labels(y, X.shape[0])
    for name, c in (("a", a), ("b", b)):
        if not (y == c).any():
            raise ValueError(f"class {name}={c} does not occur in y")
    return X[y == a].mean(0) - X[y == b].mean(0)


def one_vs_rest_templates(X, y) -> np.ndarray:
    """Each class's mean image minus the mean of the other classes' means: (C, P), classes sorted."""
    X = _as_array("X", X, 2)
    y = _labels(y, X.shape[0])
    means = np.stack([X[y == c].mean(0) for c in np.unique(y)])
    C = len(means)
    if C < 2:
        raise ValueError("y must contain at least two classes")
    return means - (means.sum(0, keepdims=True) - means) / (C - 1)


def span_fraction(vectors, basis) -> np.ndarray:
    """Share of each vector's squared norm inside the span of ``basis``.

    vectors : (..., P); basis : (B, P) with B < P. Returns (...) in [0, 1].
    """
    v = _as_array("vectors", vectors).astype(np.float64)
    B = _as_array("basis", basis, 2).astype(np.float64)
    if B.shape[1] != v.shape[-1]:
        raise ValueError(f"basis must have shape (B, {v.shape[-1]}), got {B.shape}")
    q, _ = np.linalg.qr(B.T)  # (P, B) orthonormal columns
    proj = v @ q
    with np.errstate(invalid="ignore", divide="ignore"):
        norm2 = (v**2).sum(-1)
        return np.where(norm2 > 0, (proj**2).sum(-1) / np.where(norm2 > 0, norm2, 1), 0.0)


# --------------------------------------------------------------------------- Experiment 4


@dataclass
class StepRecord:
    """What :func:`per_example_sgd` saw and did at every step.

    inputs : list per linear layer l of (K, T, in_l), the layer's input at each step
    deltas : list per layer of (K, T, out_l), the backpropagated error dL/dz_l at each step
    updates : list per layer of (K, T_keep, out_l, in_l), weight changes of the first kept steps
    cos_input : list per layer of (K, T, out_l), cosine of each row's change with the
        layer's input at that step
    lag_share : list per layer of (K, T, L+1, out_l): each row's change is least-squares
        fitted by the inputs of steps t, t-1, ..., t-L; share of lag k in the summed
        |coefficient| x |input| (NaN for t < L, and for layers whose input has at most L+1
        entries, where the fit is not unique)
    labels : (K, T) the class of each step's example
    """

    inputs: list
    deltas: list
    updates: list
    cos_input: list
    lag_share: list
    labels: np.ndarray


def _cosine_rows(rows: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """Cosine of every row (K, out, in) with a vector (K, in): (K, out); 0 for zero rows."""
    num = (rows * vec.unsqueeze(-2)).sum(-1)
    den = rows.norm(dim=-1) * vec.norm(dim=-1, keepdim=True)
    return torch.where(den > 0, num / den.clamp_min(1e-30), torch.zeros_like(num))


def _lag_shares(change: torch.Tensor, lagged: torch.Tensor) -> torch.Tensor:
    """Shares of lagged inputs in a change: change (K, out, in), lagged (K, L+1, in) -> (K, L+1, out)."""
    A = lagged.transpose(-1, -2).double()  # (K, in, L+1)
    coef = torch.linalg.lstsq(A, change.transpose(-1, -2).double(), driver="gelsd").solution  # (K, L+1, out)
    size = coef.abs() * lagged.double().norm(dim=-1, keepdim=True)
    total = size.sum(-2, keepdim=True)
    return torch.where(total > 0, size / total.clamp_min(1e-300), torch.full_like(size, float("nan"))).float()


def per_example_sgd(
    ens: Ensemble,
    X,
    y,
    *,
    steps: int,
    lr: float,
    momentum: float = 0.0,
    seeds: Sequence[int],
    keep_updates: int = 20,
    max_lag: int = 6,
) -> StepRecord:
    """SGD on one example per step for every ensemble member at once, recording each change.

    Member k draws its examples (with replacement) from ``seeds[k]`` and updates with its own
    optimiser state (``torch.optim.SGD`` acts elementwise, so one optimiser over the stacked
    parameters equals K separate ones). The weight change of a step is the difference of the
    weights after and before it, as in the source.

    Parameters
    ----------
    ens : Ensemble of nnlearn MLPs with biases (cross-entropy on logits)
    X : (N, n_in); y : (N,) int classes
    steps : number of one-example steps T
    keep_updates : the full weight changes of the first this many steps are kept
    max_lag : L, the number of earlier inputs used to explain a change

    Returns
    -------
    StepRecord
    """
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (N, n_in) and y (N,), got {tuple(X.shape)} and {tuple(y.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0 or not 0 <= momentum < 1:
        raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
    if not isinstance(max_lag, int) or max_lag < 0:
        raise ValueError(f"max_lag must be an int >= 0, got {max_lag!r}")
    K = len(ens)
    seeds = list(seeds)
    if len(seeds) != K:
        raise ValueError(f"seeds: expected {K} seeds (one per member), got {len(seeds)}")
    model = ens.base
    n_lin = len(model.layers)
    order = torch.stack([torch.randint(len(X), (steps,), generator=make_generator(s)) for s in seeds])  # (K, T)
    weights = [ens.params[f"layers.{i}.weight"] for i in range(n_lin)]
    opt = torch.optim.SGD(list(ens.params.values()), lr=lr, momentum=momentum)
    inputs = [torch.zeros(K, steps, w.shape[-1]) for w in weights]
    deltas = [torch.zeros(K, steps, w.shape[-2]) for w in weights]
    updates = [torch.zeros(K, min(keep_updates, steps), *w.shape[1:]) for w in weights]
    cos_input = [torch.zeros(K, steps, w.shape[-2]) for w in weights]
    lag_share = [torch.full((K, steps, max_lag + 1, w.shape[-2]), float("nan")) for w in weights]
    for t in range(steps):
        xb, yb = X[order[:, t]].unsqueeze(1), y[order[:, t]]  # (K, 1, n_in), (K,)
        h, zs, hs = xb, [], []
        for i in range(n_lin):
            hs.append(h)
            z = torch.matmul(h, weights[i].transpose(-1, -2)) + ens.params[f"layers.{i}.bias"].unsqueeze(-2)
            z.retain_grad()
            zs.append(z)
            h = model.acts[i](z) if i < n_lin - 1 else z
        loss = torch.nn.functional.cross_entropy(h.squeeze(1), yb, reduction="sum")
        before = [w.detach().clone() for w in weights]
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for i in range(n_lin):
                inputs[i][:, t] = hs[i].squeeze(1).detach()
                deltas[i][:, t] = zs[i].grad.squeeze(1)
                change = weights[i] - before[i]
                if t < updates[i].shape[1]:
                    updates[i][:, t] = change
                cos_input[i][:, t] = _cosine_rows(change, inputs[i][:, t])
                if t >= max_lag and inputs[i].shape[-1] > max_lag + 1:
                    lagged = inputs[i][:, t - max_lag : t + 1].flip(1)  # lag 0 first
                    lag_share[i][:, t] = _lag_shares(change, lagged)
    return StepRecord(
        [a.numpy() for a in inputs],
        [a.numpy() for a in deltas],
        [a.numpy() for a in updates],
        [a.numpy() for a in cos_input],
        [a.numpy() for a in lag_share],
        y[order].numpy(),
    )


def class_sign_consistency(deltas, labels) -> np.ndarray:
    """How often a unit's error sign agrees with its majority sign for the example's class.

    Parameters
    ----------
    deltas : (K, T, U) per-step errors dL/dz; labels : (K, T) classes

    Returns
    -------
    np.ndarray (K,): over all (unit, class) pairs, the share of steps whose sign equals the
    pair's majority sign (0.5: sign unrelated to class, 1: fixed by the class)
    """
    d = _as_array("deltas", deltas, 3)
    lab = _as_array("labels", labels, 2)
    if lab.shape != d.shape[:2]:
        raise ValueError(f"labels must have shape {d.shape[:2]}, got {lab.shape}")
    out = np.zeros(d.shape[0])
    for k in range(d.shape[0]):
        agree = total = 0
        for c in np.unique(lab[k]):
            s = np.sign(d[k, lab[k] == c])  # (n_c, U)
            pos, neg = (s > 0).sum(0), (s < 0).sum(0)
            agree += np.maximum(pos, neg).sum()
            total += (pos + neg).sum()
        out[k] = agree / max(total, 1)
    return out


def class_mean_surrogate_cosine(deltas, labels, start: int = 100) -> np.ndarray:
    """How well the class alone predicts a layer's per-example error vector.

    The weight change of a step is ``-lr * delta x^T``; a shortcut that knew only the class
    would use ``-lr * m_c x^T`` with ``m_c`` the mean error of earlier steps of that class.
    Both share ``x``, so the cosine between the two changes equals ``cos(delta, m_c)``.
    For every step ``t >= start`` whose class occurred before, ``m_c`` is the mean over steps
    ``< t`` of that class (no look-ahead).

    Parameters
    ----------
    deltas : (K, T, U) per-step errors dL/dz; labels : (K, T) classes
    start : first step scored (int >= 1)

    Returns
    -------
    np.ndarray (K,): mean cosine over scored steps (1: the class fixes the change exactly)
    """
    d = _as_array("deltas", deltas, 3).astype(np.float64)
    lab = _as_array("labels", labels, 2)
    if lab.shape != d.shape[:2]:
        raise ValueError(f"labels must have shape {d.shape[:2]}, got {lab.shape}")
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start < d.shape[1]:
        raise ValueError(f"start must be an int in 1..{d.shape[1] - 1}, got {start!r}")
    out = np.zeros(d.shape[0])
    for k in range(d.shape[0]):
        cosines = []
        for c in np.unique(lab[k]):
            idx = np.flatnonzero(lab[k] == c)
            running = np.cumsum(d[k, idx], 0) / np.arange(1, len(idx) + 1)[:, None]  # mean up to and incl. i
            for i in range(1, len(idx)):
                if idx[i] < start:
                    continue
                cur, ref = d[k, idx[i]], running[i - 1]
                den = np.linalg.norm(cur) * np.linalg.norm(ref)
                cosines.append(cur @ ref / den if den > 0 else 0.0)
        out[k] = np.mean(cosines) if cosines else np.nan
    return out


def error_spread(deltas, labels, low: float = 10, high: float = 90) -> np.ndarray:
    """How much the size of a unit's error varies within a class.

    For every (unit, class) pair with at least 5 steps, the ratio of the ``high``-th to the
    ``low``-th percentile of ``|delta|``; the median over pairs is returned per member.

    Parameters
    ----------
    deltas : (K, T, U); labels : (K, T)

    Returns
    -------
    np.ndarray (K,)
    """
    d = np.abs(_as_array("deltas", deltas, 3))
    lab = _as_array("labels", labels, 2)
    if lab.shape != d.shape[:2]:
        raise ValueError(f"labels must have shape {d.shape[:2]}, got {lab.shape}")
    if not 0 <= low < high <= 100:
        raise ValueError(f"need 0 <= low < high <= 100, got {low}, {high}")
    out = []
    for k in range(d.shape[0]):
        ratios = []
        for c in np.unique(lab[k]):
            part = d[k, lab[k] == c]
            if len(part) < 5:
                continue
            lo, hi = np.percentile(part, [low, high], axis=0)
            ratios.extend((hi / np.maximum(lo, 1e-30)).tolist())
        if not ratios:
            raise ValueError("no (unit, class) pair has at least 5 steps")
        out.append(np.median(ratios))
    return np.array(out)


class StackedCNN(nn.Module):
    """K small convolutional networks evaluated as one: each member is
    Conv(1 -> F, 5x5) - ReLU - 2x2 max-pool - Linear(F*12*12 -> C).

    All members' filters form one convolution with K*F channels (the input is shared), and
    the members' linear read-outs are one batched matmul, so K networks cost about one.

    Parameters
    ----------
    seeds : sequence of K ints, one initialisation seed per member (PyTorch's default init)
    n_filters : F; n_classes : C
    """

    def __init__(self, seeds: Sequence[int], n_filters: int = 8, n_classes: int = 10):
        super().__init__()
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds: expected at least one seed")
        if not isinstance(n_filters, int) or n_filters < 1 or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"need n_filters >= 1 and n_classes >= 2, got {n_filters}, {n_classes}")
        convs, fcs = [], []
        for s in seeds:
            g = make_generator(s)
            bound_c, bound_f = 1 / 5.0, 1 / math.sqrt(n_filters * 144)
            convs.append((torch.rand(n_filters, 1, 5, 5, generator=g) * 2 - 1) * bound_c)
            fcs.append((torch.rand(n_classes, n_filters * 144, generator=g) * 2 - 1) * bound_f)
        self.K, self.F = len(seeds), n_filters
        self.conv_weight = nn.Parameter(torch.cat(convs))  # (K*F, 1, 5, 5)
        self.conv_bias = nn.Parameter(torch.zeros(self.K * n_filters))
        self.fc_weight = nn.Parameter(torch.stack(fcs))  # (K, C, F*144)
        self.fc_bias = nn.Parameter(torch.zeros(self.K, n_classes))

    def filters(self) -> np.ndarray:
        """The first-layer filters: (K, F, 5, 5)."""
        return self.conv_weight.detach().reshape(self.K, self.F, 5, 5).numpy().copy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 784) -> logits (K, N, C)."""
        h = torch.relu(torch.nn.functional.conv2d(x.reshape(-1, 1, 28, 28), self.conv_weight, self.conv_bias))
        h = torch.nn.functional.max_pool2d(h, 2)  # (N, K*F, 12, 12)
        h = h.reshape(len(x), self.K, -1).transpose(0, 1)  # (K, N, F*144)
        return torch.matmul(h, self.fc_weight.transpose(-1, -2)) + self.fc_bias.unsqueeze(1)


def train_stacked_cnn(net: StackedCNN, X, y, *, epochs: int = 1, batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> np.ndarray:
    """Adam on the summed cross-entropy of all members (each gets its own gradient), one
    shared mini-batch order drawn from ``seed``. Returns each member's training accuracy (K,)."""
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y)
    if X.ndim != 2 or X.shape[1] != 784 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (N, 784) and y (N,), got {tuple(X.shape)} and {tuple(y.shape)}")
    if not isinstance(epochs, int) or epochs < 1 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive ints, got {epochs!r}, {batch_size!r}")
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = make_generator(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(X), generator=g).split(batch_size):
            out = net(X[idx])
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y[idx].repeat(net.K), reduction="sum") / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return (net(X).argmax(-1) == y).float().mean(-1).numpy()


def edge_bank(size: int = 5, n_orient: int = 8, sigma: float = 1.0) -> np.ndarray:
    """Oriented first-derivative-of-Gaussian (edge) filters: (n_orient, size, size), unit norm."""
    if not isinstance(size, int) or size < 3 or not isinstance(n_orient, int) or n_orient < 1 or not sigma > 0:
        raise ValueError(f"need size >= 3, n_orient >= 1, sigma > 0; got {size}, {n_orient}, {sigma}")
    r = np.arange(size) - (size - 1) / 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    g = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    bank = []
    for th in np.arange(n_orient) * math.pi / n_orient:
        f = (np.cos(th) * xx + np.sin(th) * yy) * g
        bank.append(f / np.linalg.norm(f))
    return np.stack(bank)


def edge_scores(filters, bank=None) -> np.ndarray:
    """Best |cosine| of each (mean-removed) filter with an oriented edge filter.

    filters : (..., s, s); bank : (B, s, s), default :func:`edge_bank` of size s.
    Returns (...) in [0, 1]; 1 means the filter is exactly an oriented edge detector.
    """
    f = _as_array("filters", filters, 2).astype(np.float64)
    s = f.shape[-1]
    if f.shape[-2] != s:
        raise ValueError(f"filters must be square (..., s, s), got {f.shape}")
    bank = edge_bank(s) if bank is None else _as_array("bank", bank, 3)
    if bank.shape[1:] != (s, s):
        raise ValueError(f"bank must have shape (B, {s}, {s}), got {bank.shape}")
    flat = f.reshape(*f.shape[:-2], s * s)
    flat = flat - flat.mean(-1, keepdims=True)
    b = bank.reshape(len(bank), -1)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    cos = np.abs(flat @ b.T) / np.where(norms > 0, norms, 1)
    return cos.max(-1)
