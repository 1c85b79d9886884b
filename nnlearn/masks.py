"""Node removal in a one-hidden-layer, two-class network: random masks, batched mask evaluation,
mask gradients and hypercube paths (the circle study of the *node-removal* chapter).

A hidden node ``j`` is kept when ``mask[j] = 1`` and removed when ``mask[j] = 0``; the mask
multiplies the node's ReLU output. For a two-class softmax network the cross-entropy of one
example depends only on the logit difference

    d(x) = (z_1 - z_0)(x) = sum_j mask_j * c_j(x) + beta,
    c_j(x) = relu(w_j . x + b_j) * (V[1, j] - V[0, j]),    beta = a_1 - a_0,

(``V``, ``a``: output weights and biases) and equals ``softplus(-(2y - 1) d)``. So the losses of
M masks on N examples are one (M, H) @ (H, N) matrix product, and the gradient of the mean loss
with respect to the mask is a second one. Everything here is vectorised over masks and over
K stacked networks (an :class:`nnlearn.ensemble.Ensemble`'s ``params``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from nnlearn.data.toy import circle_data, grid
from nnlearn.ensemble import Ensemble
from nnlearn.models import MLP
from nnlearn.seeding import make_generator, make_rng
from nnlearn.train import as_tensor, epoch_batches

PARAM_NAMES = ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias")


# ----------------------------------------------------------------------------- checks
def _int_at_least(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


def _check_params(params) -> dict:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping name -> (K, ...) tensor, got {type(params).__name__}")
    missing = [n for n in PARAM_NAMES if n not in params]
    if missing:
        raise ValueError(f"params: missing {missing}; expected a one-hidden-layer MLP with biases ({PARAM_NAMES})")
    w1, b1, w2, b2 = (params[n] for n in PARAM_NAMES)
    if w1.ndim != 3 or w2.ndim != 3 or w2.shape[1] != 2:
        raise ValueError(
            "params: expected stacked shapes (K, H, n_in), (K, H), (K, 2, H), (K, 2); got "
            f"{tuple(w1.shape)}, {tuple(b1.shape)}, {tuple(w2.shape)}, {tuple(b2.shape)}"
        )
    return params


def stacked_params(model) -> dict:
    """A single :class:`~nnlearn.models.MLP` (or an Ensemble) as stacked params (K, ...), detached."""
    if isinstance(model, Ensemble):
        return {n: t.detach() for n, t in model.params.items()}
    if isinstance(model, MLP):
        return {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
    raise TypeError(f"model must be an MLP or an Ensemble, got {type(model).__name__}")


# ----------------------------------------------------------------------------- masks
def source_masks(probs: Sequence[float] = (0.25, 0.5, 0.75), n_masks: int = 1000, n_nodes: int = 20, seed: int = 17) -> dict:
    """Random masks drawn exactly as the source's printed loop draws them.

    NumPy's legacy generator is seeded once with ``seed``; then, for each keep probability in
    ``probs`` in turn, ``n_masks`` vectors ``rand(n_nodes) < p`` are drawn.

    Returns
    -------
    dict of float -> np.ndarray, float32, shape (n_masks, n_nodes), entries 0 (removed) / 1 (kept)
    """
    n_masks = _int_at_least("n_masks", n_masks, 1)
    n_nodes = _int_at_least("n_nodes", n_nodes, 1)
    seed = _int_at_least("seed", seed, 0)
    probs = [_probability("probs[i]", p) for p in np.atleast_1d(probs).tolist()]
    rs = np.random.RandomState(seed)
    out = {}
    for p in probs:
        out[p] = np.stack([(rs.rand(n_nodes) < p) for _ in range(n_masks)]).astype(np.float32)
    return out


def bernoulli_masks(n_masks: int, n_nodes: int, p: float, seed: int) -> np.ndarray:
    """``n_masks`` masks with every node kept independently with probability ``p``.

    Returns
    -------
    np.ndarray, float32, shape (n_masks, n_nodes)
    """
    n_masks = _int_at_least("n_masks", n_masks, 1)
    n_nodes = _int_at_least("n_nodes", n_nodes, 1)
    p = _probability("p", p)
    return (make_rng(seed).random((n_masks, n_nodes)) < p).astype(np.float32)


def single_removal_masks(n_nodes: int) -> np.ndarray:
    """Row ``j`` keeps every node but ``j``: shape (n_nodes, n_nodes), float32."""
    n_nodes = _int_at_least("n_nodes", n_nodes, 1)
    return (1.0 - np.eye(n_nodes)).astype(np.float32)


def mask_summary(masks) -> dict:
    """How many masks keep every node, how many are distinct, and the mean share kept.

    masks : array (M, H) of 0/1
    """
    m = np.asarray(masks)
    if m.ndim != 2:
        raise ValueError(f"masks must have shape (M, H), got {m.shape}")
    return {"all_on": int((m == 1).all(1).sum()), "distinct": len({r.tobytes() for r in m.astype(np.uint8)}), "mean_kept": float(m.mean())}


def hypercube_paths(n_paths: int, n_nodes: int, p: float = 0.5, seed: int = 0) -> np.ndarray:
    """Random walks across the mask hypercube that flip every node exactly once.

    Each path starts at a Bernoulli(p) mask and flips the nodes one at a time in a random order,
    ending at the start's complement.

    Returns
    -------
    np.ndarray, float32, shape (n_paths, n_nodes + 1, n_nodes); ``[:, t]`` is the mask after t flips
    """
    n_paths = _int_at_least("n_paths", n_paths, 1)
    n_nodes = _int_at_least("n_nodes", n_nodes, 1)
    p = _probability("p", p)
    rng = make_rng(seed)
    start = (rng.random((n_paths, n_nodes)) < p).astype(np.float32)
    order = rng.permuted(np.tile(np.arange(n_nodes), (n_paths, 1)), axis=1)
    flipped = np.zeros((n_paths, n_nodes + 1, n_nodes), dtype=bool)  # which nodes are flipped after t steps
    rows = np.arange(n_paths)
    for t in range(n_nodes):
        flipped[:, t + 1] = flipped[:, t]
        flipped[rows, t + 1, order[:, t]] = True
    return np.where(flipped, 1.0 - start[:, None, :], start[:, None, :]).astype(np.float32)


# ----------------------------------------------------------------------------- the network
def glorot_uniform_mlp(widths: Sequence[int], seed: int) -> MLP:
    """An MLP initialised as Keras' ``Dense`` default: Glorot-uniform weights, zero biases.

    Weights are uniform in ``[-l, l]`` with ``l = sqrt(6 / (fan_in + fan_out))``.
    """
    model = MLP(list(widths), "relu", seed=seed)
    g = make_generator(seed)
    with torch.no_grad():
        for layer in model.layers:
            limit = math.sqrt(6.0 / (layer.in_features + layer.out_features))
            layer.weight.copy_((torch.rand(layer.weight.shape, generator=g) * 2 - 1) * limit)
            layer.bias.zero_()
    return model


def train_circle_nets(
    seeds: Sequence[int],
    *,
    n_train: int = 1000,
    hidden: int = 20,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 0.01,
    eps: float = 1e-7,
    threshold: float = math.sqrt(2 / math.pi),
):
    """Train one 2-``hidden``-2 ReLU network per seed on its own circle data, all in one batch.

    Member ``k`` is initialised by :func:`glorot_uniform_mlp` with ``seeds[k]``, trained on
    ``circle_data(n_train, seeds[k])`` with Adam (``lr``, ``eps``; Keras' default eps is 1e-7),
    mini-batches of ``batch_size`` drawn in a fresh order every epoch from ``seeds[k]`` (the last
    batch is smaller when ``batch_size`` does not divide ``n_train``, as in Keras), and the mean
    cross-entropy of the softmax output. With ``eps=1e-8`` member ``k`` equals
    ``nnlearn.train.fit(model_k, X_k, y_k, batch_size=batch_size, seed=seeds[k])``.

    Returns
    -------
    ens : Ensemble of K trained members
    X : Tensor (K, n_train, 2), y : Tensor (K, n_train): each member's training data
    """
    seeds = [_int_at_least("seeds[i]", s, 0) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    n_train = _int_at_least("n_train", n_train, 1)
    epochs = _int_at_least("epochs", epochs, 1)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    if not lr > 0 or not eps > 0:
        raise ValueError(f"lr and eps must be > 0, got lr={lr}, eps={eps}")
    data = [circle_data(n_train, s, threshold=threshold) for s in seeds]
    X = torch.as_tensor(np.stack([d[0] for d in data]))
    y = torch.as_tensor(np.stack([d[1] for d in data]))
    ens = Ensemble.from_seeds(lambda s: glorot_uniform_mlp([2, hidden, 2], s), seeds)
    opt = torch.optim.Adam(list(ens.params.values()), lr=lr, eps=eps)
    gens = [make_generator(s) for s in seeds]
    K = len(seeds)
    rows = torch.arange(K)[:, None]
    for _ in range(epochs):
        orders = [epoch_batches(n_train, batch_size, g, True) for g in gens]
        for parts in zip(*orders):
            idx = torch.stack(parts)  # (K, B)
            out = ens(X[rows, idx], per_member=True)  # (K, B, 2)
            loss = F.cross_entropy(out.transpose(1, 2), y[rows, idx], reduction="none").mean(1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return ens, X, y


# ----------------------------------------------------------------------------- evaluation
def node_contributions(params, X) -> tuple[torch.Tensor, torch.Tensor]:
    """What each hidden node adds to the logit difference ``z_1 - z_0``.

    Parameters
    ----------
    params : stacked params of K two-class one-hidden-layer MLPs (see :func:`stacked_params`)
    X : Tensor or array, shape (N, n_in) shared by all K, or (K, N, n_in)

    Returns
    -------
    contrib : Tensor (K, N, H), ``relu(W x + b)_j * (V[1, j] - V[0, j])``
    offset : Tensor (K,), ``a_1 - a_0``
    """
    p = _check_params(params)
    X = as_tensor(X, torch.float32)
    if X.ndim not in (2, 3) or X.shape[-1] != p["layers.0.weight"].shape[-1]:
        raise ValueError(f"X must have shape (N, {p['layers.0.weight'].shape[-1]}) or (K, N, n_in), got {tuple(X.shape)}")
    h = torch.relu(torch.matmul(X, p["layers.0.weight"].transpose(1, 2)) + p["layers.0.bias"][:, None, :])
    dv = p["layers.1.weight"][:, 1, :] - p["layers.1.weight"][:, 0, :]
    return h * dv[:, None, :], p["layers.1.bias"][:, 1] - p["layers.1.bias"][:, 0]


def _as_masks(masks, K: int, H: int) -> torch.Tensor:
    m = as_tensor(masks, torch.float32)
    if m.ndim == 2:
        m = m.expand(K, *m.shape)
    if m.ndim != 3 or m.shape[0] != K or m.shape[2] != H:
        raise ValueError(f"masks must have shape (M, {H}) or ({K}, M, {H}), got {tuple(m.shape)}")
    return m


def mask_losses(params, X, y, masks, *, chunk: int = 4096, with_grad: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean cross-entropy of every mask, and its gradient with respect to the mask, batched.

    Parameters
    ----------
    params : stacked params of K two-class networks
    X : (N, n_in) test inputs shared by all networks, or (K, N, n_in) one test set per network
    y : (N,) labels in {0, 1}, or (K, N) with per-network test sets
    masks : (M, H) shared by all networks, or (K, M, H); 0/1 or fractional
    chunk : masks evaluated per matrix product (bounds memory at about K * chunk * N floats)
    with_grad : also return the gradients (else ``None`` in their place)

    Returns
    -------
    losses : np.ndarray (K, M), mean over the N examples of ``-log softmax(z)_y``
    grads : np.ndarray (K, M, H), d losses / d mask, or None
    """
    contrib, offset = node_contributions(params, X)
    y = as_tensor(y)
    K, N, H = contrib.shape
    if y.shape not in ((N,), (K, N)):
        raise ValueError(f"y must have shape ({N},) or ({K}, {N}), got {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must hold labels 0 and 1 only (a two-class task)")
    chunk = _int_at_least("chunk", chunk, 1)
    m = _as_masks(masks, K, H)
    yf = y.to(torch.float32).reshape(-1, 1, N)  # (1 or K, 1, N), broadcasts against (K, C, N)
    sign = 2.0 * yf - 1.0  # +1 for class 1, -1 for class 0
    losses, grads = [], []
    with torch.no_grad():
        for start in range(0, m.shape[1], chunk):
            mc = m[:, start : start + chunk]  # (K, C, H)
            d = torch.bmm(mc, contrib.transpose(1, 2)) + offset[:, None, None]  # (K, C, N)
            losses.append(F.softplus(-sign * d).mean(-1))
            if with_grad:
                residual = torch.sigmoid(d) - yf  # d loss_n / d d_n
                grads.append(torch.bmm(residual, contrib) / N)  # (K, C, H)
    return torch.cat(losses, 1).numpy(), (torch.cat(grads, 1).numpy() if with_grad else None)


def pointwise_mask_grads(params, X, y, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Each example's own loss and its gradient with respect to each node's mask.

    Parameters
    ----------
    params : stacked params of K two-class networks; X : (N, n_in); y : (N,) in {0, 1}
    mask : (H,) or None (all nodes kept)

    Returns
    -------
    loss : np.ndarray (K, N); grad : np.ndarray (K, N, H)
    """
    contrib, offset = node_contributions(params, X)
    K, N, H = contrib.shape
    y = as_tensor(y).to(torch.float32)
    if y.shape != (N,):
        raise ValueError(f"y must have shape ({N},), got {tuple(y.shape)}")
    m = torch.ones(H) if mask is None else as_tensor(mask, torch.float32)
    if m.shape != (H,):
        raise ValueError(f"mask must have shape ({H},), got {tuple(m.shape)}")
    with torch.no_grad():
        d = (contrib * m).sum(-1) + offset[:, None]
        loss = F.softplus(-(2 * y - 1) * d)
        grad = (torch.sigmoid(d) - y)[..., None] * contrib
    return loss.numpy(), grad.numpy()


def predict_inside(params, X, mask=None) -> np.ndarray:
    """Probability each network gives to class 0 ("inside the circle"): shape (K, N)."""
    contrib, offset = node_contributions(params, X)
    H = contrib.shape[-1]
    m = torch.ones(H) if mask is None else as_tensor(mask, torch.float32)
    if m.shape != (H,):
        raise ValueError(f"mask must have shape ({H},), got {tuple(m.shape)}")
    with torch.no_grad():
        return torch.sigmoid(-((contrib * m).sum(-1) + offset[:, None])).numpy()


# ----------------------------------------------------------------------------- analysis helpers
def fixed_width_kde(values, width: float, points) -> np.ndarray:
    """Gaussian kernel density of ``values`` with an absolute kernel width (standard deviation).

    scipy's ``gaussian_kde`` scales its kernel by the data's standard deviation, so the factor
    passed is ``width / std(values)``.

    values : (n,) finite, not all equal; points : (G,) -> density (G,)
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2 or not np.isfinite(v).all():
        raise ValueError(f"values must hold at least 2 finite numbers, got {v.size}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    sd = v.std(ddof=1)
    if sd == 0:
        raise ValueError("values must not all be equal")
    return stats.gaussian_kde(v, bw_method=width / sd)(np.asarray(points, dtype=float))


def normality_check(values) -> dict:
    """Skewness, excess kurtosis and the D'Agostino-Pearson normality test of ``values`` (n >= 20)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 20 or not np.isfinite(v).all():
        raise ValueError(f"values must hold at least 20 finite numbers, got {v.size}")
    return {"skew": float(stats.skew(v)), "kurtosis": float(stats.kurtosis(v)), "p_value": float(stats.normaltest(v).pvalue)}


def boxcox_lambda(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Maximum-likelihood Box-Cox exponent of positive ``values`` with its profile-likelihood interval.

    ``lambda = 0`` means the logarithm is the power transform that makes ``values`` most normal;
    1 means no transform. values : (n,) positive, n >= 20 -> (lambda, lo, hi)
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 20 or not np.isfinite(v).all() or not (v > 0).all():
        raise ValueError(f"values must hold at least 20 positive finite numbers, got {v.size} values, min {v.min() if v.size else None}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _, lmbda, (lo, hi) = stats.boxcox(v, alpha=1 - confidence)
    return float(lmbda), float(lo), float(hi)


def lag_correlations(series) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of each path's first value with its value t steps later, and of its last value
    with the value t steps before the end.

    series : (P, T) values along P paths -> (from_start (T,), from_end (T,))
    """
    s = np.asarray(series, dtype=float)
    if s.ndim != 2 or s.shape[0] < 3:
        raise ValueError(f"series must have shape (P >= 3, T), got {s.shape}")
    c = np.corrcoef(s, rowvar=False)
    return c[0], c[-1, ::-1]


def residualise(target, covariates) -> np.ndarray:
    """``target`` minus its least-squares fit on ``covariates`` (with intercept): shape (n,)."""
    t = np.asarray(target, dtype=float).ravel()
    c = np.asarray(covariates, dtype=float)
    c = c.reshape(len(c), -1)
    if len(c) != t.size:
        raise ValueError(f"covariates must have {t.size} rows, got {len(c)}")
    design = np.column_stack([np.ones(t.size), c])
    coef, *_ = np.linalg.lstsq(design, t, rcond=None)
    return t - design @ coef


def half_network_deviation(contrib, masks) -> np.ndarray:
    """How far each kept subset is from "half the full network".

    ``mean_n (sum_j m_j c_j(x_n) - 0.5 sum_j c_j(x_n))**2``; a mask and its complement score the
    same exactly (their deviations are negatives of each other).

    contrib : (N, H) one network's node contributions; masks : (M, H) -> (M,)
    """
    c = as_tensor(contrib, torch.float32)
    m = as_tensor(masks, torch.float32)
    if c.ndim != 2 or m.ndim != 2 or m.shape[1] != c.shape[1]:
        raise ValueError(f"contrib must be (N, H) and masks (M, H) with equal H, got {tuple(c.shape)}, {tuple(m.shape)}")
    with torch.no_grad():
        dev = (m - 0.5) @ c.T
        return (dev**2).mean(1).numpy()


def direction_imbalance(params, masks) -> np.ndarray:
    """A coarse "are the kept nodes balanced around the circle?" score, per network and mask.

    Node ``j`` pushes towards "outside" along its input-weight vector ``w_j`` with strength
    ``V[1, j] - V[0, j]``; the score is ``|| sum_j (m_j - 1/2) (V[1, j] - V[0, j]) w_j ||``, which is
    the same for a mask and its complement.

    params : stacked params of K two-class networks; masks : (M, H) -> np.ndarray (K, M)
    """
    p = _check_params(params)
    H = p["layers.0.weight"].shape[1]
    m = as_tensor(masks, torch.float32)
    if m.ndim != 2 or m.shape[1] != H:
        raise ValueError(f"masks must have shape (M, {H}), got {tuple(m.shape)}")
    dv = p["layers.1.weight"][:, 1, :] - p["layers.1.weight"][:, 0, :]  # (K, H)
    push = dv[..., None] * p["layers.0.weight"]  # (K, H, n_in)
    with torch.no_grad():
        return torch.linalg.vector_norm(torch.matmul(m - 0.5, push), dim=-1).numpy()


def bias_like_nodes(params, *, low: float = -1.0, high: float = 1.0, n: int = 101, max_cv: float = 0.5) -> np.ndarray:
    """Hidden nodes that behave like a constant on the square [low, high]^2.

    A node counts as bias-like when it is active (ReLU > 0) at every grid point and its output
    varies little there: coefficient of variation std/mean below ``max_cv``.

    Returns
    -------
    np.ndarray bool, shape (K, H)
    """
    if not max_cv > 0:
        raise ValueError(f"max_cv must be > 0, got {max_cv}")
    p = _check_params(params)
    pts, _ = grid(low, high, n)
    h = torch.relu(torch.matmul(torch.as_tensor(pts), p["layers.0.weight"].transpose(1, 2)) + p["layers.0.bias"][:, None, :])
    h = h.detach().numpy()
    mean = h.mean(1)
    cv = np.divide(h.std(1), mean, out=np.full_like(mean, np.inf), where=mean > 0)
    return (h > 0).all(1) & (cv < max_cv)


def fade_distance(series, *, below: float | None = None, confidence: float = 0.95) -> int:
    """Steps along the path until the correlation with the first value fades.

    series : (P, T) values along P paths. With ``below=None`` the answer is the first step t >= 1
    whose Fisher-z ``confidence`` interval for corr(series[:, 0], series[:, t]) contains 0 (depends
    on P); otherwise the first t with correlation < ``below``. Returns T if it never fades.
    """
    s = np.asarray(series, dtype=float)
    if s.ndim != 2 or s.shape[0] < 4 or s.shape[1] < 2:
        raise ValueError(f"series must have shape (P >= 4, T >= 2), got {s.shape}")
    r = np.corrcoef(s, rowvar=False)[0]
    if below is not None:
        hits = np.nonzero(r[1:] < below)[0]
    else:
        z, half = np.arctanh(np.clip(r[1:], -0.999999, 0.999999)), stats.norm.ppf((1 + confidence) / 2) / math.sqrt(s.shape[0] - 3)
        hits = np.nonzero((z - half <= 0) & (0 <= z + half))[0]
    return int(hits[0] + 1) if hits.size else s.shape[1]


def trough_ratio(values, width: float = 0.03, *, span: float = 1.0, n_points: int = 201) -> float:
    """Kernel density at 0 divided by the lower of the highest density left and right of 0.

    Below 1 means the density has a trough at 0 between a peak on each side; about 1 or more
    means no trough (a single peak at or near 0). The density is evaluated on ``n_points`` points
    spanning ``[-span, span]``, so peaks farther out than ``span`` are not seen.
    values : (n,) -> float
    """
    xs = np.linspace(-span, span, n_points)
    if not np.any(xs == 0):
        raise ValueError(f"n_points must be odd so that the grid contains 0, got {n_points}")
    dens = fixed_width_kde(values, width, xs)
    at0 = dens[xs == 0][0]
    return float(at0 / min(dens[xs < 0].max(), dens[xs > 0].max()))


def class_flip_share(params, X, paths, *, chunk: int = 256) -> np.ndarray:
    """Share of inputs whose predicted class changes at each step of each mask path.

    params : stacked params of K two-class networks; X : (N, n_in) or (K, N, n_in)
    paths : (P, T, H) masks along P paths -> np.ndarray (K, P, T - 1)
    """
    contrib, offset = node_contributions(params, X)
    K, N, H = contrib.shape
    pth = as_tensor(paths, torch.float32)
    if pth.ndim != 3 or pth.shape[2] != H or pth.shape[1] < 2:
        raise ValueError(f"paths must have shape (P, T >= 2, {H}), got {tuple(pth.shape)}")
    chunk = _int_at_least("chunk", chunk, 1)
    P, T, _ = pth.shape
    out = []
    with torch.no_grad():
        for start in range(0, P, chunk):
            part = pth[start : start + chunk].reshape(-1, H)  # (C*T, H)
            d = torch.matmul(part, contrib.transpose(1, 2)) + offset[:, None, None]  # (K, C*T, N)
            cls = (d > 0).reshape(K, -1, T, N)
            out.append((cls[:, :, 1:] != cls[:, :, :-1]).float().mean(-1))
    return torch.cat(out, 1).numpy()


def text_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A plain fixed-width text table (stable for regression baselines).

    header : H column names; rows : sequences of H cells (anything with ``str``)
    """
    header = [str(h) for h in header]
    cells = [[str(c) for c in row] for row in rows]
    for i, row in enumerate(cells):
        if len(row) != len(header):
            raise ValueError(f"rows: row {i} has {len(row)} cells, expected {len(header)} (one per header column)")
    widths = [max(len(r[j]) for r in [header, *cells]) for j in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])


# ----------------------------------------------------------------------------- interactive
def explorer(model, *, low: float = -2.0, high: float = 2.0, n: int = 121, threshold: float = math.sqrt(2 / math.pi)):
    """An ipywidgets explorer: one toggle per hidden node, the output heatmap redrawn on change.

    Only for live Jupyter sessions (needs ipywidgets). ``model`` is a two-class one-hidden-layer
    :class:`~nnlearn.models.MLP`. Returns the widget.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    params = stacked_params(model)
    H = params["layers.0.weight"].shape[1]
    pts, _ = grid(low, high, n)
    toggles = [widgets.ToggleButton(value=True, description=str(j), layout=widgets.Layout(width="42px")) for j in range(H)]
    out = widgets.Output()

    def redraw(_=None):
        mask = np.array([t.value for t in toggles], dtype=np.float32)
        values = predict_inside(params, pts, mask)[0].reshape(n, n)
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.imshow(values, origin="lower", extent=(low, high, low, high), vmin=0, vmax=1)
            ax.add_patch(plt.Circle((0, 0), math.sqrt(threshold), fill=False, color="w"))
            ax.set_title(f"{int(mask.sum())} of {H} nodes on")
            display(fig)
            plt.close(fig)

    for t in toggles:
        t.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(toggles[: H // 2]), widgets.HBox(toggles[H // 2 :]), out])
