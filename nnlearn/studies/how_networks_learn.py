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

from nnlearn import engine
from nnlearn.checks import finite_float, index_in_range, positive_int
from nnlearn.ensemble import Ensemble, train_ensemble
from nnlearn.models import MLP, CNNStack
from nnlearn.seeding import make_generator, make_rng

# --------------------------------------------------------------------------- input checks


def _as_array(name: str, a, ndim_min: int = 1) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(a).__name__}")
    if a.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimension(s), got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _level(name: str, value) -> float:
    """A probability level strictly inside (0, 1)."""
    return finite_float(name, value, low=0.0, high=1.0, strict=True)


def _tensor(name: str, a, ndim_min: int = 1) -> torch.Tensor:
    """A checked float32 tensor (finite, non-empty, numeric)."""
    return torch.as_tensor(np.ascontiguousarray(_as_array(name, a, ndim_min)), dtype=torch.float32)


def _params(name: str, params) -> dict:
    if not isinstance(params, dict) or not params:
        raise TypeError(
            f"{name} must be a non-empty dict of stacked parameters, got {type(params).__name__}"
        )
    for k, v in params.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name}[{k!r}] must be a torch tensor, got {type(v).__name__}")
        if not torch.isfinite(v).all():
            raise ValueError(f"{name}[{k!r}] contains NaN or infinite values")
    return params


def _labels(labels, n: int, name: str = "labels") -> np.ndarray:
    labels = _as_array(name, labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(
            f"{name} must have shape ({n},) to match the examples axis, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {labels.dtype}")
    return labels


# --------------------------------------------------------------------------- Experiment 1


def bipartitions(classes: Sequence[int]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every split of ``classes`` into two non-empty groups, each split listed once.

    There are ``2**(C-1) - 1`` of them (the source's ``2**C - 2`` counts each split twice).

    Returns
    -------
    list of (group_a, group_b); ``group_a`` always holds the first class.
    """
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
        raise TypeError(f"classes must be a sequence of ints, got {type(classes).__name__}")
    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
        raise TypeError(f"classes must hold ints, got {list(classes)!r}")
    classes = [int(c) for c in classes]
    if len(classes) > 16:
        raise ValueError(f"classes: at most 16 classes (2**15 splits), got {len(classes)}")
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
    params = _params("params", params)
    X = _tensor("X", X, 2)
    n_in = params["layers.0.weight"].shape[-1] if "layers.0.weight" in params else None
    if n_in is None or X.shape[-1] != n_in:
        raise ValueError(
            f"X must have {n_in} features in its last axis, got shape {tuple(X.shape)}"
        )
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
    if not isinstance(ens, Ensemble):
        raise TypeError(f"ens must be an Ensemble, got {type(ens).__name__}")
    flat = _tensor("flat", flat, 2)
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
    finite_float("value_range", value_range, low=0.0, strict=True)
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
    if not isinstance(ens, Ensemble):
        raise TypeError(f"ens must be an Ensemble, got {type(ens).__name__}")
    snapshots = _as_array("snapshots", snapshots, 3)
    if isinstance(epochs, (str, bytes)) or not all(
        isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in epochs
    ):
        raise TypeError(f"epochs must be a sequence of ints, got {epochs!r}")
    epochs = [int(e) for e in epochs]
    if not epochs:
        raise ValueError("epochs must not be empty")
    if snapshots.ndim != 3 or any(not 0 <= e < len(snapshots) for e in epochs):
        raise ValueError(
            f"snapshots must be (S, K, P) and epochs in 0..S-1, got {snapshots.shape} and {epochs}"
        )
    y = _labels(y, len(X))
    two = len(np.unique(y)) == 2
    sep, gap, var = [], [], []
    for e in epochs:
        acts = hidden_activations(ens.base, unflatten(ens, snapshots[e]), X)
        sep.append([separation_scores(a, y).mean(-1) for a in acts])
        gap.append([class_gap(a, y).mean(-1) if two else np.full(len(ens), np.nan) for a in acts])
        var.append([within_class_variance_ratio(a, y) for a in acts])
    to_kel = lambda v: np.transpose(np.array(v), (2, 0, 1))
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
    score_X=None,
    score_y=None,
) -> dict:
    """Mean separation score of all hidden units before and after training, for every
    (depth, width, activation) configuration; each configuration's seeds train as one ensemble
    (Adam, cross-entropy). Scores are computed on ``score_X``, ``score_y`` (default: the
    training data).

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
    SX = X if score_X is None else score_X
    Sy = y if score_y is None else _labels(score_y, len(SX))
    out = {}
    for depth, width, act in itertools.product(depths, widths, activations):
        if not isinstance(depth, int) or depth < 1 or not isinstance(width, int) or width < 1:
            raise ValueError(
                f"depths and widths must be positive ints, got depth={depth!r}, width={width!r}"
            )
        arch = [X.shape[1]] + [width] * depth + [n_classes]
        ens = Ensemble.from_seeds(lambda s: MLP(arch, act, seed=s), seeds)
        before = np.mean(
            [
                separation_scores(a, Sy).mean(-1)
                for a in hidden_activations(ens.base, ens.params, SX)
            ],
            0,
        )
        train_ensemble(
            ens,
            X,
            y,
            optimizer="adam",
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            seeds=list(seeds),
        )
        after = np.mean(
            [
                separation_scores(a, Sy).mean(-1)
                for a in hidden_activations(ens.base, ens.params, SX)
            ],
            0,
        )
        out[(depth, width, act)] = (before, after)
    return out


def strip_plot(
    ax,
    acts,
    labels,
    *,
    max_points: int = 300,
    seed: int = 0,
    colors=None,
    size: float = 2.0,
    xlim=(-1.05, 1.05),
):
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
        ax.scatter(
            acts[idx].ravel(),
            ys.ravel(),
            s=size,
            color=colors[k % len(colors)],
            alpha=0.5,
            linewidths=0,
            label=str(c),
            rasterized=True,
        )
    ax.set_ylim(-0.6, U - 0.4)
    ax.set_yticks(range(U))
    ax.invert_yaxis()
    if xlim is not None:
        ax.set_xlim(*xlim)
    return ax


def pixel_strip_plot(
    ax,
    X,
    labels,
    *,
    side: int = 28,
    max_points: int = 60,
    seed: int = 0,
    colors=None,
    size: float = 1.0,
):
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
        idx = rng.choice(
            np.flatnonzero(labels == c), min(max_points, int((labels == c).sum())), replace=False
        )
        vals = X[idx]
        n, p = np.nonzero(vals > 0)
        xs = cols[p] + 0.85 * vals[n, p]
        ys = rows[p] + rng.uniform(0.1, 0.9, size=len(p))
        ax.scatter(
            xs, ys, s=size, color=colors[k % len(colors)], alpha=0.5, linewidths=0, rasterized=True
        )
    ax.set_xlim(0, side)
    ax.set_ylim(side, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def outgoing_weight_norms(params: dict, n_layers: int) -> list[torch.Tensor]:
    """Norm of each hidden unit's outgoing weights: list of (K, width) for hidden layers 0..L-1."""
    if not isinstance(n_layers, int) or n_layers < 2:
        raise ValueError(
            f"n_layers must be an int >= 2 (number of linear layers), got {n_layers!r}"
        )
    return [params[f"layers.{i + 1}.weight"].detach().norm(dim=-2) for i in range(n_layers - 1)]


def incoming_weight_norms(params: dict, n_layers: int) -> list[torch.Tensor]:
    """Norm of each hidden unit's incoming weights: list of (K, width) for hidden layers 0..L-1.

    params : dict name -> (K, ...) stacked parameters; n_layers : number of linear layers (>= 2).
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 2:
        raise ValueError(
            f"n_layers must be an int >= 2 (number of linear layers), got {n_layers!r}"
        )
    return [params[f"layers.{i}.weight"].detach().norm(dim=-1) for i in range(n_layers - 1)]


def uniform_random_task(n_samples: int = 100, n_features: int = 100, seed: int = 0):
    """Inputs drawn uniformly from [0, 1) with uniformly random binary labels (the source's fake
    data).

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
    pattern, weight, bias = (
        _tensor(n, a) for n, a in (("pattern", pattern), ("weight", weight), ("bias", bias))
    )
    if not isinstance(orders, (torch.Tensor, np.ndarray)):
        raise TypeError(f"orders must be an integer tensor (R, U), got {type(orders).__name__}")
    orders = torch.as_tensor(orders)
    U = pattern.shape[-1]
    if weight.shape[-1] != U or weight.shape[:-2] != pattern.shape[:-1]:
        raise ValueError(
            f"weight must have shape (..., C, {U}) matching pattern {tuple(pattern.shape)}, got "
            f"{tuple(weight.shape)}"
        )
    if bias.shape != weight.shape[:-1]:
        raise ValueError(
            f"bias must have shape {tuple(weight.shape[:-1])}, got {tuple(bias.shape)}"
        )
    if orders.ndim != 2 or orders.shape[1] != U or orders.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"orders must be an integer tensor (R, {U}), got {tuple(orders.shape)} {orders.dtype}"
        )
    if not (torch.sort(orders, 1).values == torch.arange(U)).all():
        raise ValueError("orders: every row must be a permutation of the units")
    contrib = (weight * pattern.unsqueeze(-2)).transpose(
        -1, -2
    )  # (..., U, C): unit j's share of the logits
    start = contrib.sum(-2) + bias  # (..., C)
    moves = -2 * contrib[..., orders, :]  # (..., R, U, C)
    logits = torch.cat(
        [
            start.unsqueeze(-2).unsqueeze(-2).expand(*moves.shape[:-2], 1, -1),
            start.unsqueeze(-2).unsqueeze(-2) + moves.cumsum(-2),
        ],
        -2,
    )
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
    level = _level("level", level)
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
        raise ValueError(
            f"weight must have shape (..., 2, {h.shape[-1]}) matching pattern {h.shape}, got "
            f"{W.shape}"
        )
    if b.shape != W.shape[:-1]:
        raise ValueError(f"bias must have shape {W.shape[:-1]}, got {b.shape}")
    level = _level("level", level)
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
    """Each class's mean image minus the mean of the other classes' means: (C, P), by class."""
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
    """Shares of lagged inputs in a change: change (K, out, in), lagged (K, L+1, in) -> (K, L+1,
    out).
    """
    A = lagged.transpose(-1, -2).double()  # (K, in, L+1)
    coef = torch.linalg.lstsq(
        A, change.transpose(-1, -2).double(), driver="gelsd"
    ).solution  # (K, L+1, out)
    size = coef.abs() * lagged.double().norm(dim=-1, keepdim=True)
    total = size.sum(-2, keepdim=True)
    return torch.where(
        total > 0, size / total.clamp_min(1e-300), torch.full_like(size, float("nan"))
    ).float()


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
    if not isinstance(ens, Ensemble):
        raise TypeError(f"ens must be an Ensemble, got {type(ens).__name__}")
    X = _tensor("X", X, 2)
    y = torch.as_tensor(_labels(y, X.shape[0], "y"))
    if X.ndim != 2:
        raise ValueError(f"X must be (N, n_in), got {tuple(X.shape)}")
    positive_int("steps", steps)
    finite_float("lr", lr, low=0.0, strict=True)
    if finite_float("momentum", momentum, low=0.0) >= 1:
        raise ValueError(f"momentum must be < 1, got {momentum}")
    positive_int("keep_updates", keep_updates)
    if not isinstance(max_lag, int) or max_lag < 0:
        raise ValueError(f"max_lag must be an int >= 0, got {max_lag!r}")
    K = len(ens)
    seeds = list(seeds)
    if len(seeds) != K:
        raise ValueError(f"seeds: expected {K} seeds (one per member), got {len(seeds)}")
    model = ens.base
    n_lin = len(model.layers)
    order = torch.stack(
        [torch.randint(len(X), (steps,), generator=make_generator(s)) for s in seeds]
    )  # (K, T)
    shapes = [
        ens.params[f"layers.{i}.weight"].shape[1:] for i in range(n_lin)
    ]  # (out, in) per layer
    inputs = [torch.zeros(K, steps, w[1]) for w in shapes]
    deltas = [torch.zeros(K, steps, w[0]) for w in shapes]
    updates = [torch.zeros(K, min(keep_updates, steps), *w) for w in shapes]
    cos_input = [torch.zeros(K, steps, w[0]) for w in shapes]
    lag_share = [torch.full((K, steps, max_lag + 1, w[0]), float("nan")) for w in shapes]

    class Record(engine.Callback):
        """Each layer's input, its error dL/dz (the bias gradient, for one example) and weight
        change.
        """

        def before_step(self, state):
            t, p, h = state.step, state.params, state.x  # h: (K, 1, n_in)
            self.before = [p[f"layers.{i}.weight"].detach().clone() for i in range(n_lin)]
            with torch.no_grad():
                for i in range(n_lin):
                    inputs[i][:, t] = h.squeeze(1)
                    deltas[i][:, t] = state.grads[f"layers.{i}.bias"]
                    if i < n_lin - 1:
                        h = model.acts[i](
                            torch.matmul(h, p[f"layers.{i}.weight"].transpose(-1, -2))
                            + p[f"layers.{i}.bias"].unsqueeze(-2)
                        )

        def on_step(self, state):
            t = state.step - 1
            with torch.no_grad():
                for i in range(n_lin):
                    change = state.params[f"layers.{i}.weight"] - self.before[i]
                    if t < updates[i].shape[1]:
                        updates[i][:, t] = change
                    cos_input[i][:, t] = _cosine_rows(change, inputs[i][:, t])
                    if t >= max_lag and inputs[i].shape[-1] > max_lag + 1:
                        lagged = inputs[i][:, t - max_lag : t + 1].flip(1)  # lag 0 first
                        lag_share[i][:, t] = _lag_shares(change, lagged)

    # the core engine's online SGD; the loss is F.cross_entropy on (K, C), as the source computes it
    one_example_ce = lambda out, yy: torch.nn.functional.cross_entropy(
        out.squeeze(1), yy.squeeze(1), reduction="none"
    )
    run = engine.train_online(
        ens.stacked,
        ens.params,
        X,
        order,
        y,
        lr=lr,
        loss=one_example_ce,
        optimizer="sgd",
        momentum=momentum,
        record="none",
        callbacks=[Record()],
        progress=False,
    )
    with torch.no_grad():
        for n, t in ens.params.items():
            t.copy_(run.params[n])
    return StepRecord(
        *[[a.numpy() for a in arr] for arr in (inputs, deltas, updates, cos_input, lag_share)],
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
            running = (
                np.cumsum(d[k, idx], 0) / np.arange(1, len(idx) + 1)[:, None]
            )  # mean up to and incl. i
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
    low = finite_float("low", low, low=0.0, high=100.0)
    high = finite_float("high", high, low=0.0, high=100.0)
    if not low < high:
        raise ValueError(f"low must be below high, got low={low}, high={high}")
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
        if isinstance(seeds, (int, str)) or not hasattr(seeds, "__iter__"):
            raise TypeError(f"seeds must be a sequence of ints, got {type(seeds).__name__}")
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds: expected at least one seed")
        if (
            not isinstance(n_filters, int)
            or n_filters < 1
            or not isinstance(n_classes, int)
            or n_classes < 2
        ):
            raise ValueError(
                f"need n_filters >= 1 and n_classes >= 2, got {n_filters}, {n_classes}"
            )
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
        h = torch.relu(
            torch.nn.functional.conv2d(x.reshape(-1, 1, 28, 28), self.conv_weight, self.conv_bias)
        )
        h = torch.nn.functional.max_pool2d(h, 2)  # (N, K*F, 12, 12)
        h = h.reshape(len(x), self.K, -1).transpose(0, 1)  # (K, N, F*144)
        return torch.matmul(h, self.fc_weight.transpose(-1, -2)) + self.fc_bias.unsqueeze(1)


def train_stacked_cnn(
    net: StackedCNN, X, y, *, epochs: int = 1, batch_size: int = 64, lr: float = 3e-3, seed: int = 0
) -> np.ndarray:
    """Adam on the summed cross-entropy of all members (each gets its own gradient), one
    shared mini-batch order drawn from ``seed``. Returns each member's training accuracy (K,)."""
    if not isinstance(net, StackedCNN):
        raise TypeError(f"net must be a StackedCNN, got {type(net).__name__}")
    X = _tensor("X", X, 2)
    y = torch.as_tensor(_labels(y, X.shape[0], "y"))
    finite_float("lr", lr, low=0.0, strict=True)
    if X.ndim != 2 or X.shape[1] != 784 or y.shape != (X.shape[0],):
        raise ValueError(
            f"X must be (N, 784) and y (N,), got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    if (
        not isinstance(epochs, int)
        or epochs < 1
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            f"epochs and batch_size must be positive ints, got {epochs!r}, {batch_size!r}"
        )
    # the core engine with the stacked CNN; one shared batch order (seeds=seed); the loss is
    # F.cross_entropy over (K * B, C), as this function computed it before the engine existed
    K, F_ = net.K, net.F
    params = {
        "conv_weight": net.conv_weight.detach().reshape(K, F_, 1, 5, 5),
        "conv_bias": net.conv_bias.detach().reshape(K, F_),
        "fc_weight": net.fc_weight.detach(),
        "fc_bias": net.fc_bias.detach(),
    }
    flat_ce = lambda out, yy: (
        torch.nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), yy.reshape(-1), reduction="none"
        )
        .reshape(out.shape[0], -1)
        .mean(1)
    )
    run = engine.train(
        CNNStack(F_, net.fc_weight.shape[1]),
        params,
        X,
        y,
        loss=flat_ce,
        optimizer="adam",
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        seeds=seed,
        record="none",
        progress=False,
    )
    with torch.no_grad():
        for name, t in run.params.items():
            getattr(net, name).copy_(t.reshape(getattr(net, name).shape))
        return (net(X).argmax(-1) == y).float().mean(-1).numpy()


def edge_bank(size: int = 5, n_orient: int = 8, sigma: float = 1.0) -> np.ndarray:
    """Oriented first-derivative-of-Gaussian (edge) filters: (n_orient, size, size), unit norm."""
    finite_float("sigma", sigma, low=0.0, strict=True)
    if not isinstance(size, int) or size < 3 or not isinstance(n_orient, int) or n_orient < 1:
        raise ValueError(
            f"need size >= 3, n_orient >= 1, sigma > 0; got {size}, {n_orient}, {sigma}"
        )
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


# --------------------------------------------------------------------------- claims-protocol
# helpers


def member_accuracy(ens: Ensemble, X, y, params: dict | None = None) -> np.ndarray:
    """Accuracy of every member of ``ens`` (or of stacked ``params``): array (K,) in [0, 1].

    X : (N, n_in) shared by all members, or (K, N, n_in) one data set per member;
    y : (N,) or (K, N) int classes. Non-finite logits count as wrong."""
    if not isinstance(ens, Ensemble):
        raise TypeError(f"ens must be an Ensemble, got {type(ens).__name__}")
    X = _finite("X", X, 2)
    if X.ndim == 3:
        y = _as_array("y", y, 2)
        if X.shape[0] != len(ens) or y.shape != X.shape[:2]:
            raise ValueError(f"y must have shape {X.shape[:2]} for X of shape {X.shape}")
        for k in range(len(y)):
            _labels(y[k], X.shape[1])
    elif X.ndim == 2:
        y = _labels(y, X.shape[0], "y")
    else:
        raise ValueError(f"X must have shape (N, n_in) or (K, N, n_in), got {X.shape}")
    with torch.no_grad():
        p = ens.params if params is None else params
        logits = ens.stacked(p, torch.as_tensor(X), per_member=X.ndim == 3)
    ok = torch.isfinite(logits).all(-1) & (logits.argmax(-1) == torch.as_tensor(y))
    return ok.float().mean(-1).numpy()


def _per_member_scores(acts, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separation, class gap and within-class variance ratio of (K, N, U) activations with
    per-member labels (K, N): three arrays (K,)."""
    K = acts.shape[0]
    sep = np.array([separation_scores(acts[k], y[k]).mean() for k in range(K)])
    gap = np.array([class_gap(acts[k], y[k]).mean() for k in range(K)])
    var = np.array([float(within_class_variance_ratio(acts[k], y[k])) for k in range(K)])
    return sep, gap, var


def random_layer_scores(ens: Ensemble, snapshots, epochs: Sequence[int], X, y) -> LayerScores:
    """:func:`layer_scores` for per-member data: X (K, N, n_in), y (K, N) (two classes)."""
    if not isinstance(ens, Ensemble):
        raise TypeError(f"ens must be an Ensemble, got {type(ens).__name__}")
    X = _finite("X", X, 3)
    y = _as_array("y", y, 2)
    if X.ndim != 3 or X.shape[0] != len(ens) or y.shape != X.shape[:2]:
        raise ValueError(f"need X (K={len(ens)}, N, n_in) and y (K, N), got {X.shape}, {y.shape}")
    snapshots = _finite("snapshots", snapshots, 3)
    out = np.zeros((3, len(ens), len(epochs), len(ens.base.layers) - 1))
    for i, e in enumerate(epochs):
        index_in_range("epochs", e, len(snapshots))
        acts = hidden_activations(ens.base, unflatten(ens, snapshots[e]), X)
        for layer, a in enumerate(acts):
            out[:, :, i, layer] = _per_member_scores(a.numpy(), y)
    return LayerScores(list(epochs), out[0], out[1], out[2])


def template_run(
    arch,
    activation: str,
    X,
    y,
    template,
    seeds,
    *,
    epochs: int,
    lr: float,
    init: str = "default",
    optimizer: str = "adam",
    batch_size: int = 32,
) -> dict:
    """Train one ensemble of ``MLP(arch, activation)`` (one member per seed) and score its
    first-layer weight images against ``template`` (or None to skip the scores).

    Returns dict: ens, W (K, units, P) final first-layer weights, acc (K,) training accuracy,
    score and change (K, units) correlations of the weights and of their change with the
    template (None without a template)."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of ints")
    positive_int("epochs", epochs)
    finite_float("lr", lr, low=0, strict=True)
    ens = Ensemble.from_seeds(lambda s: MLP(list(arch), activation, init=init, seed=s), seeds)
    W0 = ens.params["layers.0.weight"].detach().clone().numpy()
    h = train_ensemble(
        ens, X, y, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, seeds=seeds
    )
    W = ens.params["layers.0.weight"].detach().numpy().copy()
    out = dict(ens=ens, W=W, acc=h.acc[-1], score=None, change=None)
    if template is not None:
        out["score"] = template_scores(W, template)
        out["change"] = template_scores(W - W0, template)
    return out


def cnn_accuracy(net: StackedCNN, X, y) -> np.ndarray:
    """Accuracy of every member of a :class:`StackedCNN` on X (N, 784), y (N,): (K,)."""
    if not isinstance(net, StackedCNN):
        raise TypeError(f"net must be a StackedCNN, got {type(net).__name__}")
    X = _finite("X", X, 2)
    y = _labels(y, X.shape[0], "y")
    if X.shape[1] != 784:
        raise ValueError(f"X must have shape (N, 784), got {X.shape}")
    with torch.no_grad():
        return (net(torch.as_tensor(X)).argmax(-1) == torch.as_tensor(y)).float().mean(-1).numpy()


def shift_losses(mlp: Ensemble, cnn: StackedCNN, X, y, pixels: int = 2) -> dict:
    """Held-out accuracy each network loses when the images move by ``pixels`` (mean over the
    four directions): dict name -> (K,) for the feed-forward ensemble and the CNN."""
    positive_int("pixels", pixels)
    moves = [(pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels)]
    shifted = [shift_images(X, dx, dy) for dx, dy in moves]
    out = {}
    for name, acc in (
        ("feed-forward (16 tanh)", lambda Z: member_accuracy(mlp, Z, y)),
        ("convolutional", lambda Z: cnn_accuracy(cnn, Z, y)),
    ):
        base = acc(X)
        out[name] = base - np.mean([acc(Z) for Z in shifted], 0)
    return out


def _finite(name: str, a, ndim_min: int = 1) -> np.ndarray:
    a = _as_array(name, a, ndim_min)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a.astype(np.float32) if a.dtype != np.float64 else a


def two_endedness(acts, labels) -> np.ndarray:
    """How far each unit puts the classes at two ends rather than in a graded order.

    Sort the class means of a unit's activation; the score is the largest gap between
    neighbouring means divided by their range: 1 when the classes form two tight groups at
    the ends, ``1 / (C - 1)`` for evenly spaced means (a graded ordering). For C = 4 random
    means it averages 0.61 (the largest of three uniform spacings).

    acts : (..., N, U); labels : (N,) ints with at least 3 classes. Returns (..., U) in
    [1 / (C - 1), 1] (units with equal class means get 1 / (C - 1)).
    """
    a = _finite("acts", acts, 2).astype(np.float64)
    y = _labels(labels, a.shape[-2])
    classes = np.unique(y)
    if len(classes) < 3:
        raise ValueError(f"labels must contain at least 3 classes, got {len(classes)}")
    means = np.sort(np.stack([a[..., y == c, :].mean(-2) for c in classes], -1), -1)
    gaps, span = np.diff(means, axis=-1), means[..., -1] - means[..., 0]
    floor = 1.0 / (len(classes) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, gaps.max(-1) / np.where(span > 0, span, 1), floor)


def oriented_crossing(curves, level: float) -> np.ndarray:
    """First flip count at which the class predicted before any flip drops below ``level``,
    as a share of the number of units.

    curves : (..., T, C) probabilities from :func:`flip_curves` (T = U + 1); level in (0, 1).
    Returns (...) in [0, 1] (1 if it never drops below ``level``).
    """
    p = _finite("curves", curves, 2)
    if p.shape[-2] < 2:
        raise ValueError(f"curves must have at least 2 steps, got shape {p.shape}")
    level = _level("level", level)
    start = p[..., 0, :].argmax(-1)
    own = np.take_along_axis(p, start[..., None, None], -1)[..., 0]
    return first_crossing(own, level) / (p.shape[-2] - 1)


def image_combinations(X, n_combos: int, n_images: int, seed: int) -> np.ndarray:
    """Random combinations of training images, the null for "a weight change is a template":
    each row is ``sum_i a_i x_i`` over ``n_images`` images drawn without replacement, with
    standard normal coefficients ``a_i`` (any first-layer update is such a combination).

    X : (N, P). Returns (n_combos, P) float64.
    """
    X = _finite("X", X, 2)
    for name, v in (("n_combos", n_combos), ("n_images", n_images)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if n_images > len(X):
        raise ValueError(f"n_images must be at most the number of images {len(X)}, got {n_images}")
    rng = make_rng(seed)
    out = np.empty((n_combos, X.shape[1]))
    for i in range(n_combos):
        idx = rng.choice(len(X), n_images, replace=False)
        out[i] = rng.standard_normal(n_images) @ X[idx].astype(np.float64)
    return out


def smoothed_noise(n: int, size: int = 5, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` patches of white noise blurred by a Gaussian of width ``sigma``: (n, size, size),
    the calibration for an edge score (smooth noise has some edge-likeness by chance)."""
    for name, v in (("n", n), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < 100:
        raise ValueError(f"sigma must be a positive number below 100, got {sigma!r}")
    from scipy.ndimage import gaussian_filter

    noise = make_rng(seed).standard_normal((n, size + 8, size + 8))
    blurred = np.stack([gaussian_filter(z, sigma) for z in noise])
    return blurred[:, 4 : 4 + size, 4 : 4 + size]


def shift_images(X, dx: int, dy: int, side: int = 28) -> np.ndarray:
    """Images translated by ``dx`` pixels right and ``dy`` down, zeros shifted in: (N, side**2)."""
    X = _finite("X", X, 2)
    if X.shape[1] != side * side:
        raise ValueError(f"X must have shape (N, {side * side}), got {X.shape}")
    for name, v in (("dx", dx), ("dy", dy)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or abs(v) >= side:
            raise ValueError(f"{name} must be an int with |{name}| < {side}, got {v!r}")
    img = X.reshape(-1, side, side)
    out = np.zeros_like(img)
    ys, yd = (
        (slice(0, side - dy), slice(dy, side))
        if dy >= 0
        else (slice(-dy, side), slice(0, side + dy))
    )
    xs, xd = (
        (slice(0, side - dx), slice(dx, side))
        if dx >= 0
        else (slice(-dx, side), slice(0, side + dx))
    )
    out[:, yd, xd] = img[:, ys, xs]
    return out.reshape(len(X), -1)


def random_tasks(n_samples: int, n_features: int, seeds: Sequence[int]):
    """One :func:`uniform_random_task` per seed, stacked: X (K, N, F) float32, y (K, N)."""
    seeds = list(seeds) if not isinstance(seeds, (int, str)) else None
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of ints")
    pairs = [uniform_random_task(n_samples, n_features, seed=s) for s in seeds]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def dead_unit_stats(ens: Ensemble, init: dict, X, y, n_linear: int, weights: str = "outgoing"):
    """Per network: Pearson r between each hidden unit's final separation score and the log
    change of its weight norm (final over initial), and the mean log change of the
    least-separating quarter of units. ``weights`` is ``"outgoing"`` or ``"incoming"``.
    Returns two arrays (K,)."""
    if weights not in ("outgoing", "incoming"):
        raise ValueError(f"weights must be 'outgoing' or 'incoming', got {weights!r}")
    if not isinstance(init, dict):
        raise TypeError(f"init must be a dict of stacked parameters, got {type(init).__name__}")
    norms = outgoing_weight_norms if weights == "outgoing" else incoming_weight_norms
    X = _finite("X", X, 2)
    y = _as_array("y", y)
    acts = hidden_activations(ens.base, ens.params, X)
    if y.ndim == 2:  # one data set per member: X (K, N, n_in), y (K, N)
        score = np.stack(
            [
                np.concatenate([separation_scores(a[k], y[k]) for a in acts], -1)
                for k in range(len(ens))
            ]
        )
    else:
        score = np.concatenate([separation_scores(a, y) for a in acts], -1)  # (K, units)
    pairs = zip(norms(ens.params, n_linear), norms(init, n_linear))
    ratio = np.log(np.concatenate([(a / b).numpy() for a, b in pairs], -1))
    r = np.array([stats.pearsonr(score[k], ratio[k]).statistic for k in range(len(score))])
    low = [ratio[k][score[k] <= np.quantile(score[k], 0.25)].mean() for k in range(len(score))]
    return r, np.array(low)


def layer_table(scores: LayerScores, digits: int = 2) -> list[str]:
    """Lines "epoch e  layer l  separation=..  gap=..  variance_ratio=.." (mean [95% bootstrap
    interval within [0, 1]] over networks) for a :class:`LayerScores`."""
    from nnlearn.stats import bootstrap_ci

    if not isinstance(scores, LayerScores):
        raise TypeError(f"scores must be a LayerScores, got {type(scores).__name__}")
    lines = []
    for i, e in enumerate(scores.epochs):
        for layer in range(scores.separation.shape[2]):
            cells = []
            for name in ("separation", "gap", "variance_ratio"):
                v = getattr(scores, name)[:, i, layer]
                text = (
                    bootstrap_ci(v, bounds=(0, 1)).format(digits) if np.isfinite(v).all() else "n/a"
                )
                cells.append(f"{name}={text}")
            lines.append(f"epoch {e:>3}  layer {layer + 1}  " + "  ".join(cells))
    return lines


# --------------------------------------------------------------------------- the chapter's claims


def declare_claims(C) -> None:
    """Declare every claim of the chapter on ``C`` (a :class:`nnlearn.claims.Claims`), before
    any experiment runs: id, claim, kind, the source's statement and where it stands, the
    statistic, and the rule with its band of reasonable thresholds."""
    from nnlearn.claims import Claims, R

    if not isinstance(C, Claims):
        raise TypeError(f"C must be a Claims, got {type(C).__name__}")
    E1 = "Exp. 1"
    C.declare(
        "untrained-sep",
        "Before training, units do not yet separate 0s from 1s",
        kind="control",
        statistic="separation |2 AUC - 1| at initialisation, per network",
        rule=R.interval_below(0.9, band=(0.8, 0.95)),
    )
    C.declare(
        "untrained-gap",
        "Before training, the class means sit near the middle of tanh",
        kind="control",
        statistic="class gap |mean_0 - mean_1| / 2 at initialisation",
        rule=R.interval_below(0.5, band=(0.4, 0.6)),
    )
    C.declare(
        "split-sep",
        "Every hidden unit comes to separate 0s from 1s",
        kind="source",
        source="the two classes' activations separate, each unit in its own direction",
        where=f"{E1}, epochs 3, 5, 15",
        statistic="separation score at epoch 15",
        rule=R.interval_above(0.9, band=(0.8, 0.95)),
        controls=("untrained-sep",),
    )
    C.declare(
        "split-ends",
        "... towards the two opposite ends of tanh",
        kind="source",
        source="classes diverge to -1 and 1",
        where=f"{E1}, epochs 3, 5, 15",
        statistic="class gap at epoch 15 (1: one class at -1, the other at +1)",
        rule=R.interval_above(0.5, band=(0.4, 0.6)),
        controls=("untrained-gap",),
    )
    C.declare(
        "deeper",
        "The third hidden layer separates the classes more than the first",
        kind="source",
        source="the third layer diverged more than the second and first",
        where=f"{E1}, epochs 3, 5, 15",
        statistic="paired class gap, layer 3 minus layer 1, mean over epochs 3, 5 and 15",
        rule=R.interval_above(0.0, band=(-0.02, 0.02)),
    )
    C.declare(
        "pixels-split",
        "Raw pixels already split: some are lit for 0s, others for 1s",
        kind="source",
        source="a zero and a one can be outlined in the pixel plot",
        where=f"{E1}, explanation",
        statistic="fewer of (pixels separating > 0.5 for zeros, for ones)",
        rule=R.at_least(20, band=(10, 50)),
    )
    C.declare(
        "var-decreases",
        "The within-class share of variance falls from pixels to layer 3",
        kind="source",
        source="over the hidden layers the variance decreases",
        where=f"{E1}, explanation",
        statistic="networks (epoch 15) whose ratio falls strictly: pixels > layer 1 > 2 > 3",
        rule=R.share_at_least(1.0, band=(0.8,)),
    )
    C.declare(
        "var-built-in",
        "That decrease is built into the architecture (before training too)",
        kind="source",
        source="the decrease is built in the architecture",
        where=f"{E1}, explanation",
        statistic="untrained networks whose ratio falls strictly from layer 1 to 3",
        rule=R.share_at_least(0.8, band=(0.6, 1.0)),
    )
    C.declare(
        "random-untrained",
        "Before training, units do not separate random labels",
        kind="control",
        statistic="separation at initialisation, random data",
        rule=R.interval_below(0.5, band=(0.4, 0.7)),
    )
    C.declare(
        "random-labels",
        "The same splitting appears on uniform random data, random labels",
        kind="source",
        source="the same result on uniform random numbers with random labels",
        where=f"{E1}, random data",
        statistic="separation at epoch 200 (100 x 100 data)",
        rule=R.interval_above(0.5, band=(0.4, 0.7)),
        controls=("random-untrained",),
    )
    C.declare(
        "rows-only",
        "Fewer rows alone (same columns) do not make memorising much easier",
        kind="control",
        statistic="paired difference of mean training accuracy over 200 "
        "epochs, 50 x 50 minus 200 x 50",
        rule=R.interval_below(0.02, band=(0.01, 0.05)),
    )
    C.declare(
        "cols-rows",
        "More columns at the expense of rows makes random data easier to fit",
        kind="source",
        source="more columns at the expense of rows eases overfitting",
        where=f"{E1}, side note",
        statistic="paired difference of mean training accuracy "
        "over 200 epochs, 50 x 200 minus 200 x 50 data",
        rule=R.interval_above(0.0, band=(-0.01, 0.02)),
        controls=("rows-only",),
    )
    C.declare(
        "cols-only",
        "More columns at a fixed number of rows make random data easier to fit",
        kind="beyond",
        statistic="the same difference, 100 x 200 minus 100 x 50",
        rule=R.interval_above(0.0, band=(-0.01, 0.02)),
    )
    C.declare(
        "four-ends-untrained",
        "Before training, units do not put four digits at two ends",
        kind="control",
        statistic="two-endedness at initialisation, the highest layer",
        rule=R.interval_below(0.75, band=(0.7, 0.8)),
    )
    C.declare(
        "four-ends",
        "With four digits each unit puts some digits at one end, the rest at the other",
        kind="source",
        source="several classes' activations tend to one side",
        where=f"{E1}, more than two classes",
        statistic="two-endedness (largest gap between "
        "sorted class means / their range), per layer, judged on the weakest layer",
        rule=R.interval_above(0.75, band=(0.7, 0.8)),
        controls=("four-ends-untrained",),
    )
    C.declare(
        "four-half",
        "... half of the classes on each side",
        kind="source",
        source="half of the classes tend to one side, the rest to the other",
        where=f"{E1}, more than two classes",
        statistic="share of units (all layers and "
        "networks) whose best cut is two digits against two",
        rule=R.share_at_least(0.5, band=(3 / 7, 0.6)),
    )
    C.declare(
        "any-arch",
        "Splitting holds for any depth, width and activation",
        kind="source",
        source="holds for any architecture, depth, width and activation",
        where=E1,
        statistic="configurations (1 or 3 layers, 10 or 50 units, tanh/sigmoid/ReLU) whose "
        "separation grows and ends with its interval above 0.9",
        rule=R.share_at_least(1.0, band=(0.9,)),
        partly=R.share_at_least(0.5),
    )
    C.declare(
        "dead",
        "Units that do not split get their weights pushed to zero",
        kind="source",
        source="a neuron that does not split has its weight pushed to 0 (dead)",
        where=f"{E1}, explanation",
        statistic="log change of the outgoing weight norm of each "
        "network's least-separating quarter of units (random-label and four-digit networks)",
        rule=R.interval_below(0.0, band=(-0.1, 0.05)),
    )
    C.declare(
        "dead-graded",
        "Units that separate less grow their outgoing weights less",
        kind="beyond",
        statistic="per-network Pearson r of separation vs log norm change",
        rule=R.interval_above(0.0, band=(-0.05, 0.1)),
    )
    E2, E3 = "Exp. 2", "Exp. 3"
    C.declare(
        "flip-plateau",
        "The class-0 pattern stays confident until about 200 of 500 flips",
        kind="source",
        source="very high probability until about 200 of 500 are flipped",
        where=E2,
        source_value=0.4,
        statistic="share of the 500 units flipped when P(zero) "
        "first drops below 0.9, mean over 200 random orders, per network",
        rule=R.interval_within(0.3, 0.5, band=((0.25, 0.55), (0.35, 0.45))),
    )
    C.declare(
        "flip-half-untrained",
        "An untrained network's pattern does not cross 0.5 at half",
        kind="control",
        statistic="|crossing share - 0.5| for the untrained network's own class-0 pattern",
        rule=R.interval_above(0.1, band=(0.05, 0.15)),
    )
    C.declare(
        "flip-half",
        "P(zero) reaches 0.5 when about half the signs are flipped",
        kind="source",
        source="0.5 when around half the activations are flipped",
        where=E2,
        source_value=0.5,
        statistic="share flipped when P(zero) first drops below 0.5",
        rule=R.interval_within(0.4, 0.6, band=((0.35, 0.65), (0.45, 0.55))),
        controls=("flip-half-untrained",),
    )
    C.declare(
        "flip-margin",
        "Both crossings follow from the pattern's logit margin alone",
        kind="beyond",
        statistic="largest |measured - margin-only prediction| of the 0.9 and "
        "0.5 crossings over networks (share of 500)",
        rule=R.at_most(0.02, band=(0.01, 0.05)),
    )
    C.declare(
        "logreg-templates",
        "Logistic-regression weights are templates of their digits",
        kind="source",
        source="weights look roughly like a template of the class",
        where=E3,
        statistic="corr of each class's weight image with its one-vs-rest mean image, mean "
        "over classes, per run",
        rule=R.interval_above(0.5, band=(0.4, 0.6)),
    )
    C.declare(
        "mlp-noise",
        "A 16-unit network's first-layer weights look like noise",
        kind="source",
        source="the weights look like random noise",
        where=E3,
        statistic="|corr| of weight images with the zeros-minus-ones mean image",
        rule=R.interval_below(0.3, band=(0.2, 0.4)),
    )
    C.declare(
        "mlp-joint",
        "With inputs divided by 10^5 they become joint templates",
        kind="source",
        source="a joint template for both classes",
        where=E3,
        statistic="the same |corr|, inputs x 1e-5",
        rule=R.interval_above(0.7, band=(0.6, 0.8)),
    )
    C.declare(
        "mlp-signs",
        "The joint templates come with both signs, about equally often",
        kind="source",
        source="7 units with one sign, 9 with the other",
        where=E3,
        statistic="share of units (all networks) with a positive correlation, inputs x 1e-5",
        rule=R.share_in_range(0.25, 0.75, band=((0.2, 0.8), (0.3, 0.7))),
    )
    E4, RES = "Exp. 4", "Results"
    C.declare(
        "templates-archs",
        "Joint templates appear for other architectures too",
        kind="source",
        source="the results hold for several architectures",
        where=E3,
        statistic="architectures (16 tanh, 16-16 tanh, 16 sigmoid) whose |corr| at x 1e-5 "
        "has its interval above 0.7",
        rule=R.share_at_least(1.0, band=(0.66,)),
        partly=R.share_at_least(0.5),
    )
    C.declare(
        "normalise",
        "Inputs should be scaled to the activation's range",
        kind="source",
        source="normalise inputs to about the range of the activation",
        where=f"{E4}, hidden",
        statistic="paired held-out accuracy, pixels in [0, 1] minus raw 0-255 values",
        rule=R.interval_above(0.0, band=(-0.005, 0.01)),
    )
    C.declare(
        "grad-image",
        "A first-layer weight change is the input image times a scalar",
        kind="identity",
        source="the gradient replicates the image",
        where=E4,
        statistic="smallest per-network median |cos(change row, input)|, layer 1",
        rule=R.at_least(0.999, band=(0.99, 0.9999)),
    )
    C.declare(
        "grad-hidden",
        "A hidden layer's change repeats the previous layer's activations",
        kind="identity",
        source="the gradient repeats the activation pattern",
        where=E4,
        statistic="the same, layers 2 and 3",
        rule=R.at_least(0.999, band=(0.99, 0.9999)),
    )
    C.declare(
        "momentum-fades",
        "With momentum an image lingers in later changes and fades",
        kind="identity",
        source="a single image persists and slowly fades",
        where=E4,
        statistic="lag shares (momentum 0.9) fall strictly with lag; lag 0 below 0.9",
        rule=R.holds(),
    )
    C.declare(
        "softmax-sign",
        "Output-layer error signs are fixed by the class (p - one-hot)",
        kind="identity",
        statistic="output-layer class-sign consistency, lowest network",
        rule=R.at_least(0.999, band=(0.99,)),
    )
    C.declare(
        "class-sign-null",
        "With shuffled digits the class does not fix the sign",
        kind="control",
        statistic="first-layer class-sign consistency, shuffled digits",
        rule=R.interval_below(0.9, band=(0.8, 0.95)),
    )
    C.declare(
        "class-sign",
        "The sign of a first-layer change is fixed by the class",
        kind="source",
        source="direction depends on the class, consistent for a fixed class",
        where=f"{E4}; {RES}",
        statistic="first-layer class-sign consistency after step 100",
        rule=R.interval_above(0.9, band=(0.8, 0.95)),
        controls=("class-sign-null",),
    )
    C.declare(
        "all-layers",
        "All layers do the same thing: class-fixed signs in every hidden layer",
        kind="source",
        source="neurons on all layers do the same thing",
        where=RES,
        statistic="class-sign consistency of hidden layers 1 and 2, the weaker one",
        rule=R.interval_above(0.9, band=(0.8, 0.95)),
    )
    C.declare(
        "speedup-premise",
        "Image-shaped updates could speed training up by factors "
        "(premise tested: the class alone fixes each update)",
        kind="source",
        source="could speed up the training by factors",
        where=f"{E4}, explanation",
        statistic="cos(true change, class-only prediction from earlier same-digit errors)",
        rule=R.interval_above(0.9, band=(0.8, 0.95)),
        partly=R.interval_above(0.5),
    )
    C.declare(
        "span-null",
        "Random combinations of training images lie mostly outside the span of the class means",
        kind="control",
        statistic="share of squared norm in the span "
        "of the 10 class means, 500 random combinations of 100 training images",
        rule=R.interval_below(0.5, band=(0.4, 0.6)),
    )
    C.declare(
        "ff-templates",
        "Feed-forward nets learn joint templates of their inputs, not edges",
        kind="source",
        source="they create joint templates of their inputs, not edges",
        where=f"Abstract; {RES}",
        statistic="share of each unit's learned first-layer change inside the class-mean span",
        rule=R.interval_above(0.5, band=(0.4, 0.6)),
        controls=("span-null",),
    )
    C.declare(
        "cnn-untrained",
        "Untrained 5x5 filters are no more edge-like than smoothed noise",
        kind="control",
        statistic="edge score of untrained filters minus smoothed noise's",
        rule=R.interval_below(0.0, band=(-0.02, 0.02)),
    )
    C.declare(
        "cnn-edges",
        "Convolutional networks learn edges",
        kind="source",
        source="edge-like features, shown for convolutional networks",
        where="Abstract",
        statistic="edge score of trained filters minus that of smoothed noise",
        rule=R.interval_above(0.0, band=(-0.02, 0.02)),
        controls=("cnn-untrained",),
    )
    C.declare(
        "shift",
        "A 2-pixel shift costs the feed-forward net more accuracy than the CNN",
        kind="beyond",
        statistic="held-out accuracy lost under 2-pixel shifts, MLP minus CNN",
        rule=R.interval_above(0.0, band=(-0.02, 0.02)),
    )
    C.declare(
        "no-generalise",
        "Plain feed-forward networks do not generalise",
        kind="source",
        source="plain feed-forward networks do not generalise",
        where="Abstract",
        statistic="training minus held-out accuracy, 16 tanh units on ten digits",
        rule=R.interval_above(0.05, band=(0.02, 0.1)),
    )
    C.declare(
        "vanishing",
        "The thesis's mechanism for the layer order: smaller gradients reach layer 1 than layer 3",
        kind="beyond",
        statistic="RMS gradient of the loss wrt "
        "layer-1 weights over that wrt layer-3 weights, mean over epochs 1, 3, 5 and 15",
        rule=R.interval_below(1.0, band=(0.8, 1.2)),
    )


def layer_grad_rms(ens: Ensemble, params: dict, X, y) -> np.ndarray:
    """Root-mean-square gradient of the mean cross-entropy with respect to each hidden layer's
    incoming weights, per member: (K, L) for stacked ``params`` on X (N, n_in), y (N,)."""
    if not isinstance(ens, Ensemble):
        raise TypeError(f"ens must be an Ensemble, got {type(ens).__name__}")
    params = {
        k: v.detach().clone().requires_grad_(True) for k, v in _params("params", params).items()
    }
    X = _tensor("X", X, 2)
    y = torch.as_tensor(_labels(y, X.shape[0], "y"))
    logits = ens.stacked(params, X)  # (K, N, C)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), y.repeat(len(ens))
    )
    n_hidden = len(ens.base.layers) - 1
    grads = torch.autograd.grad(
        loss * len(ens), [params[f"layers.{i}.weight"] for i in range(n_hidden)]
    )
    return torch.stack([g.pow(2).mean((-2, -1)).sqrt() for g in grads], -1).numpy()


def draft_rule_changes(
    gap_lead, epochs, random_scores: LayerScores, consistency, spread
) -> list[dict]:
    """The rules of earlier drafts, with the verdicts they give on today's numbers, for the two
    rows whose rules were replaced between drafts ("deeper" and "speedup-premise"); each dict
    has ``id``, ``old_rule`` (the rule in words, with today's values) and ``verdict``, ready for
    :meth:`nnlearn.claims.Claims.log_change`.

    gap_lead : (K, E) paired class gap, layer 3 minus layer 1, at ``epochs``; random_scores :
    the random-label :class:`LayerScores`; consistency, spread : (K,) first-layer class-sign
    consistency and |delta| 90/10 percentile ratio."""
    from nnlearn.stats import mean_ci

    gap_lead = _as_array("gap_lead", gap_lead, 2)
    if not isinstance(random_scores, LayerScores):
        raise TypeError(f"random_scores must be a LayerScores, got {type(random_scores).__name__}")
    epochs = list(epochs)
    for e in (3, 5, 15):
        if e not in epochs:
            raise ValueError(f"epochs must include 3, 5 and 15, got {epochs}")

    def verdict(ok):
        return "replicated" if ok else "not replicated"

    e15 = mean_ci(gap_lead[:, epochs.index(15)])
    each = [mean_ci(gap_lead[:, epochs.index(e)]) for e in (3, 5, 15)]
    g = random_scores.gap[:, -1]
    rnd = mean_ci(g[:, -1] - g[:, 0])
    draft2 = all(c.lo > 0 for c in each) and rnd.lo > 0
    cons, spr = mean_ci(consistency), mean_ci(spread)
    draft1_speed = cons.lo >= 0.99 and spr.hi <= 3
    each_text = ", ".join(c.format(3) for c in each)
    return [
        {
            "id": "deeper",
            "old_rule": "draft 1: epoch-15 paired difference, interval above 0 "
            f"(today {e15.format(3)})",
            "verdict": verdict(e15.lo > 0),
        },
        {
            "id": "deeper",
            "old_rule": "draft 2: each of epochs 3, 5, 15 above 0 and the random-label run "
            f"above 0 (today {each_text}; random {rnd.format(3)})",
            "verdict": verdict(draft2),
        },
        {
            "id": "speedup-premise",
            "old_rule": "draft 1: class-sign consistency lower bound >= 0.99 and |delta| 90/10 "
            f"ratio upper bound <= 3 (today {cons.lo:.3f}, {spr.hi:.1f})",
            "verdict": verdict(draft1_speed),
        },
    ]
