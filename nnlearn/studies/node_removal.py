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

from nnlearn import engine
from nnlearn.data.toy import circle_data, grid
from nnlearn.ensemble import Ensemble
from nnlearn.models import MLP, MLPStack
from nnlearn.seeding import make_generator, make_rng

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


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


def _seed_list(seeds) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise TypeError(f"seeds must be a sequence of ints, got {type(seeds).__name__}")
    out = [_int_at_least("seeds[i]", s, 0) for s in seeds]
    if not out:
        raise ValueError("seeds must hold at least one seed")
    return out


def _check_params(params) -> dict:
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a mapping name -> (K, ...) tensor, got {type(params).__name__}"
        )
    missing = [n for n in PARAM_NAMES if n not in params]
    if missing:
        raise ValueError(
            f"params: missing {missing}; expected a one-hidden-layer MLP with biases "
            f"({PARAM_NAMES})"
        )
    w1, b1, w2, b2 = (params[n] for n in PARAM_NAMES)
    for n in PARAM_NAMES:
        if not isinstance(params[n], torch.Tensor):
            raise TypeError(f"params[{n!r}] must be a torch.Tensor, got {type(params[n]).__name__}")
        if not bool(torch.isfinite(params[n]).all()):
            raise ValueError(f"params[{n!r}] contains NaN or infinite values")
    if w1.ndim != 3 or w2.ndim != 3 or w2.shape[1] != 2:
        raise ValueError(
            "params: expected stacked shapes (K, H, n_in), (K, H), (K, 2, H), (K, 2); got "
            f"{tuple(w1.shape)}, {tuple(b1.shape)}, {tuple(w2.shape)}, {tuple(b2.shape)}"
        )
    return params


def stacked_params(model) -> dict:
    """One :class:`~nnlearn.models.MLP` (or an Ensemble) as stacked params (K, ...), detached."""
    if isinstance(model, Ensemble):
        return {n: t.detach() for n, t in model.params.items()}
    if isinstance(model, MLP):
        return {n: p.detach().unsqueeze(0) for n, p in model.named_parameters()}
    raise TypeError(f"model must be an MLP or an Ensemble, got {type(model).__name__}")


# ----------------------------------------------------------------------------- masks
def source_masks(
    probs: Sequence[float] = (0.25, 0.5, 0.75),
    n_masks: int = 1000,
    n_nodes: int = 20,
    seed: int = 17,
) -> dict:
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
    if isinstance(probs, (str, bytes)) or not isinstance(probs, (Sequence, np.ndarray)):
        raise TypeError(f"probs must be a sequence of probabilities, got {type(probs).__name__}")
    probs = [_probability("probs[i]", p) for p in list(probs)]
    if not probs:
        raise ValueError("probs must hold at least one probability")
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
    m = _finite_array("masks", masks)
    if m.ndim != 2:
        raise ValueError(f"masks must have shape (M, H), got {m.shape}")
    if not np.isin(m, (0.0, 1.0)).all():
        raise ValueError("masks must hold 0 (removed) and 1 (kept) only")
    return {
        "all_on": int((m == 1).all(1).sum()),
        "distinct": len({r.tobytes() for r in m.astype(np.uint8)}),
        "mean_kept": float(m.mean()),
    }


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
    flipped = np.zeros(
        (n_paths, n_nodes + 1, n_nodes), dtype=bool
    )  # which nodes are flipped after t steps
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
    seeds = _seed_list(seeds)
    n_train = _int_at_least("n_train", n_train, 1)
    hidden = _int_at_least("hidden", hidden, 1)
    epochs = _int_at_least("epochs", epochs, 1)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    lr, eps = _positive("lr", lr), _positive("eps", eps)
    threshold = _positive("threshold", threshold)
    data = [circle_data(n_train, s, threshold=threshold) for s in seeds]
    X = torch.as_tensor(np.stack([d[0] for d in data]))
    y = torch.as_tensor(np.stack([d[1] for d in data]))
    # the core engine: Glorot init (= glorot_uniform_mlp), PyTorch's Adam placement of eps
    stack = MLPStack([2, hidden, 2], "relu")
    run = engine.train(
        stack,
        stack.init(seeds, init="glorot"),
        X,
        y,
        loss="ce",
        optimizer="adam",
        adam="torch",
        lr=lr,
        eps=eps,
        epochs=epochs,
        batch_size=batch_size,
        seeds=seeds,
        record="none",
        progress=False,
    )
    return Ensemble.from_params(MLP([2, hidden, 2], "relu", seed=0), run.params), X, y


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
    X = torch.as_tensor(_finite_array("X", X), dtype=torch.float32)
    if X.ndim not in (2, 3) or X.shape[-1] != p["layers.0.weight"].shape[-1]:
        raise ValueError(
            f"X must have shape (N, {p['layers.0.weight'].shape[-1]}) or (K, N, n_in), got "
            f"{tuple(X.shape)}"
        )
    if X.ndim == 3 and X.shape[0] != p["layers.0.weight"].shape[0]:
        raise ValueError(
            f"X: one test set per network needs {p['layers.0.weight'].shape[0]} sets, got "
            f"{X.shape[0]}"
        )
    h = torch.relu(
        torch.matmul(X, p["layers.0.weight"].transpose(1, 2)) + p["layers.0.bias"][:, None, :]
    )
    dv = p["layers.1.weight"][:, 1, :] - p["layers.1.weight"][:, 0, :]
    return h * dv[:, None, :], p["layers.1.bias"][:, 1] - p["layers.1.bias"][:, 0]


def _as_masks(masks, K: int, H: int) -> torch.Tensor:
    m = _finite_array("masks", masks)
    if (m < 0).any() or (m > 1).any():
        raise ValueError("masks must lie in [0, 1] (0: removed, 1: kept)")
    m = torch.as_tensor(m, dtype=torch.float32)
    if m.ndim == 2:
        m = m.expand(K, *m.shape)
    if m.ndim != 3 or m.shape[0] != K or m.shape[2] != H or m.shape[1] == 0:
        raise ValueError(
            f"masks must have shape (M >= 1, {H}) or ({K}, M, {H}), got {tuple(m.shape)}"
        )
    return m


def _one_mask(mask, H: int) -> torch.Tensor:
    if mask is None:
        return torch.ones(H)
    m = _finite_array("mask", mask)
    if m.shape != (H,):
        raise ValueError(f"mask must have shape ({H},), got {m.shape}")
    if (m < 0).any() or (m > 1).any():
        raise ValueError("mask must lie in [0, 1] (0: removed, 1: kept)")
    return torch.as_tensor(m, dtype=torch.float32)


def mask_losses(
    params, X, y, masks, *, chunk: int = 128, with_grad: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
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
    y = torch.as_tensor(_finite_array("y", y))
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
    y = torch.as_tensor(_finite_array("y", y), dtype=torch.float32)
    if y.shape != (N,):
        raise ValueError(f"y must have shape ({N},), got {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must hold labels 0 and 1 only (a two-class task)")
    m = _one_mask(mask, H)
    with torch.no_grad():
        d = (contrib * m).sum(-1) + offset[:, None]
        loss = F.softplus(-(2 * y - 1) * d)
        grad = (torch.sigmoid(d) - y)[..., None] * contrib
    return loss.numpy(), grad.numpy()


def predict_inside(params, X, mask=None) -> np.ndarray:
    """Probability each network gives to class 0 ("inside the circle"): shape (K, N)."""
    contrib, offset = node_contributions(params, X)
    H = contrib.shape[-1]
    m = _one_mask(mask, H)
    with torch.no_grad():
        return torch.sigmoid(-((contrib * m).sum(-1) + offset[:, None])).numpy()


# ----------------------------------------------------------------------------- analysis helpers
def fixed_width_kde(values, width: float, points) -> np.ndarray:
    """Gaussian kernel density of ``values`` with an absolute kernel width (standard deviation).

    scipy's ``gaussian_kde`` scales its kernel by the data's standard deviation, so the factor
    passed is ``width / std(values)``.

    values : (n,) finite, not all equal; points : (G,) -> density (G,)
    """
    v = _finite_array("values", values, min_size=2).ravel()
    width = _positive("width", width)
    pts = _finite_array("points", points).ravel()
    sd = v.std(ddof=1)
    if sd == 0:
        raise ValueError("values must not all be equal")
    return stats.gaussian_kde(v, bw_method=width / sd)(pts)


def normality_check(values) -> dict:
    """Skewness, excess kurtosis and D'Agostino-Pearson normality test of ``values`` (n >= 20)."""
    v = _finite_array("values", values, min_size=20).ravel()
    if np.ptp(v) == 0:
        raise ValueError("values must not all be equal")
    return {
        "skew": float(stats.skew(v)),
        "kurtosis": float(stats.kurtosis(v)),
        "p_value": float(stats.normaltest(v).pvalue),
    }


def boxcox_lambda(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Maximum-likelihood Box-Cox exponent of positive ``values`` with its profile-likelihood
    interval.

    ``lambda = 0`` means the logarithm is the power transform that makes ``values`` most normal;
    1 means no transform. values : (n,) positive, n >= 20 -> (lambda, lo, hi)
    """
    v = _finite_array("values", values, min_size=20).ravel()
    _probability("confidence", confidence)
    if not (v > 0).all() or np.ptp(v) == 0:
        raise ValueError(
            f"values must hold at least 20 positive finite numbers, got {v.size} values, min "
            f"{v.min() if v.size else None}"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _, lmbda, (lo, hi) = stats.boxcox(v, alpha=1 - confidence)
    return float(lmbda), float(lo), float(hi)


def lag_correlations(series) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of each path's first value with its value t steps later, and of its last value
    with the value t steps before the end.

    series : (P, T) values along P paths -> (from_start (T,), from_end (T,))
    """
    s = _finite_array("series", series)
    if s.ndim != 2 or s.shape[0] < 3:
        raise ValueError(f"series must have shape (P >= 3, T), got {s.shape}")
    if (s.std(0) == 0).any():
        raise ValueError("series: every position must vary across paths")
    c = np.corrcoef(s, rowvar=False)
    return c[0], c[-1, ::-1]


def residualise(target, covariates) -> np.ndarray:
    """``target`` minus its least-squares fit on ``covariates`` (with intercept): shape (n,)."""
    t = _finite_array("target", target).ravel()
    c = _finite_array("covariates", covariates)
    c = c.reshape(len(c), -1) if c.ndim else c.reshape(1, 1)
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
    c = torch.as_tensor(_finite_array("contrib", contrib), dtype=torch.float32)
    m = torch.as_tensor(_finite_array("masks", masks), dtype=torch.float32)
    if c.ndim != 2 or m.ndim != 2 or m.shape[1] != c.shape[1]:
        raise ValueError(
            f"contrib must be (N, H) and masks (M, H) with equal H, got {tuple(c.shape)}, "
            f"{tuple(m.shape)}"
        )
    with torch.no_grad():
        dev = (m - 0.5) @ c.T
        return (dev**2).mean(1).numpy()


def direction_imbalance(params, masks) -> np.ndarray:
    """A coarse "are the kept nodes balanced around the circle?" score, per network and mask.

    Node ``j`` pushes towards "outside" along its input-weight vector ``w_j`` with strength
    ``V[1, j] - V[0, j]``; the score is ``|| sum_j (m_j - 1/2) (V[1, j] - V[0, j]) w_j ||``, which
    is
    the same for a mask and its complement.

    params : stacked params of K two-class networks; masks : (M, H) -> np.ndarray (K, M)
    """
    p = _check_params(params)
    H = p["layers.0.weight"].shape[1]
    m = torch.as_tensor(_finite_array("masks", masks), dtype=torch.float32)
    if m.ndim != 2 or m.shape[1] != H:
        raise ValueError(f"masks must have shape (M, {H}), got {tuple(m.shape)}")
    dv = p["layers.1.weight"][:, 1, :] - p["layers.1.weight"][:, 0, :]  # (K, H)
    push = dv[..., None] * p["layers.0.weight"]  # (K, H, n_in)
    with torch.no_grad():
        return torch.linalg.vector_norm(torch.matmul(m - 0.5, push), dim=-1).numpy()


def bias_like_nodes(
    params, *, low: float = -1.0, high: float = 1.0, n: int = 101, max_cv: float = 0.5
) -> np.ndarray:
    """Hidden nodes that behave like a constant on the square [low, high]^2.

    A node counts as bias-like when it is active (ReLU > 0) at every grid point and its output
    varies little there: coefficient of variation std/mean below ``max_cv``.

    Returns
    -------
    np.ndarray bool, shape (K, H)
    """
    max_cv = _positive("max_cv", max_cv)
    n = _int_at_least("n", n, 2)
    for name, v in (("low", low), ("high", high)):
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float, np.integer, np.floating))
            or not math.isfinite(v)
        ):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not low < high:
        raise ValueError(f"low must be < high, got {low}, {high}")
    p = _check_params(params)
    pts, _ = grid(low, high, n)
    h = torch.relu(
        torch.matmul(torch.as_tensor(pts), p["layers.0.weight"].transpose(1, 2))
        + p["layers.0.bias"][:, None, :]
    )
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
    s = _finite_array("series", series)
    if s.ndim != 2 or s.shape[0] < 4 or s.shape[1] < 2:
        raise ValueError(f"series must have shape (P >= 4, T >= 2), got {s.shape}")
    if (s.std(0) == 0).any():
        raise ValueError("series: every position must vary across paths")
    _probability("confidence", confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if below is not None and (
        isinstance(below, bool)
        or not isinstance(below, (int, float, np.floating))
        or not math.isfinite(below)
    ):
        raise ValueError(f"below must be a finite number or None, got {below!r}")
    r = np.corrcoef(s, rowvar=False)[0]
    if below is not None:
        hits = np.nonzero(r[1:] < below)[0]
    else:
        z, half = (
            np.arctanh(np.clip(r[1:], -0.999999, 0.999999)),
            stats.norm.ppf((1 + confidence) / 2) / math.sqrt(s.shape[0] - 3),
        )
        hits = np.nonzero((z - half <= 0) & (0 <= z + half))[0]
    return int(hits[0] + 1) if hits.size else s.shape[1]


def binned_kde(values, width: float, span: float, n_points: int) -> np.ndarray:
    """Gaussian kernel density of ``values`` (kernel sd ``width``) on ``linspace(-span, span,
    n_points)``, computed by binning on a grid 4x finer than the output and convolving: within
    about 0.1% of :func:`fixed_width_kde` there, and far faster for large samples."""
    v = _finite_array("values", values, min_size=2).ravel()
    width, span = _positive("width", width), _positive("span", span)
    n_points = _int_at_least("n_points", n_points, 3)
    if n_points > 100_001:
        raise ValueError(f"n_points must be <= 100001, got {n_points}")
    if 5 * width / (2 * span / (n_points - 1) / 4) > 10**7:
        raise ValueError("width is too large for span and n_points (over 10^7 kernel points)")
    h = 2 * span / (n_points - 1) / 4
    reach = int(math.ceil(5 * width / h))
    n_bins = 4 * (n_points - 1) + 1 + 2 * reach
    centre0 = -span - reach * h
    idx = np.rint((v - centre0) / h).astype(np.int64)
    counts = np.bincount(idx[(idx >= 0) & (idx < n_bins)], minlength=n_bins).astype(float)
    offs = np.arange(-reach, reach + 1) * h
    kern = np.exp(-0.5 * (offs / width) ** 2) / (width * math.sqrt(2 * math.pi))
    dens = np.convolve(counts, kern, mode="same") / v.size
    return dens[reach : reach + 4 * (n_points - 1) + 1 : 4]


def trough_ratio(values, width: float = 0.03, *, span: float = 1.0, n_points: int = 201) -> float:
    """Kernel density at 0 divided by the lower of the highest density left and right of 0.

    Below 1 means the density has a trough at 0 between a peak on each side; about 1 or more
    means no trough (a single peak at or near 0). The density is evaluated on ``n_points`` points
    spanning ``[-span, span]``, so peaks farther out than ``span`` are not seen.
    values : (n,) -> float
    """
    n_points = _int_at_least("n_points", n_points, 3)
    span = _positive("span", span)
    xs = np.linspace(-span, span, n_points)
    if not np.any(xs == 0):
        raise ValueError(f"n_points must be odd so that the grid contains 0, got {n_points}")
    dens = binned_kde(values, width, span, n_points)
    at0 = dens[xs == 0][0]
    return float(at0 / min(dens[xs < 0].max(), dens[xs > 0].max()))


def class_flip_share(params, X, paths, *, chunk: int = 256) -> np.ndarray:
    """Share of inputs whose predicted class changes at each step of each mask path.

    params : stacked params of K two-class networks; X : (N, n_in) or (K, N, n_in)
    paths : (P, T, H) masks along P paths -> np.ndarray (K, P, T - 1)
    """
    contrib, offset = node_contributions(params, X)
    K, N, H = contrib.shape
    pth = torch.as_tensor(_finite_array("paths", paths), dtype=torch.float32)
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
    if isinstance(header, (str, bytes)) or not isinstance(header, Sequence) or not header:
        raise TypeError(f"header must be a non-empty sequence of column names, got {header!r:.40}")
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise TypeError(f"rows must be a sequence of rows, got {type(rows).__name__}")
    if any(isinstance(r, (str, bytes)) or not isinstance(r, Sequence) for r in rows):
        raise TypeError("rows: each row must be a sequence of cells, not a str")
    header = [str(h) for h in header]
    cells = [[str(c) for c in row] for row in rows]
    for i, row in enumerate(cells):
        if len(row) != len(header):
            raise ValueError(
                f"rows: row {i} has {len(row)} cells, expected {len(header)} (one per header "
                "column)"
            )
    widths = [max(len(r[j]) for r in [header, *cells]) for j in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])


# ----------------------------------------------------------------------------- interactive
def explorer(
    model,
    *,
    low: float = -2.0,
    high: float = 2.0,
    n: int = 121,
    threshold: float = math.sqrt(2 / math.pi),
):
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
    toggles = [
        widgets.ToggleButton(value=True, description=str(j), layout=widgets.Layout(width="42px"))
        for j in range(H)
    ]
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


# ----------------------------------------------------------------------------- judging helpers
def _finite_array(name: str, value, ndim: int | None = None, min_size: int = 1) -> np.ndarray:
    """``value`` as a finite float array, or a TypeError / ValueError naming ``name``."""
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
    try:
        a = np.asarray(value.detach() if hasattr(value, "detach") else value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if a.size < min_size:
        raise ValueError(f"{name} must hold at least {min_size} values, got {a.size}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def joint_prediction_test(source, runs) -> dict:
    """Could the source's table have been one more of our runs? A joint test over its cells.

    ``runs`` (n, c) holds our n runs' values of a table's c cells, ``source`` (c,) the source's.
    For a new draw x from the same multivariate normal as the runs, ``T2 = n/(n+1) (x - mean)'
    S^-1 (x - mean)`` (S: sample covariance) gives ``F = T2 (n - c) / (c (n - 1))`` with an
    F(c, n - c) distribution (Hotelling's prediction test); needs n > c + 1.

    Returns dict: ``p_value`` (joint), ``percentile`` (c,) the share of our runs below the
    source's value per cell (0-100), ``gap`` (c,) per-cell standardised gaps, ``above`` (c,)
    whether the source exceeds our mean.
    """
    r = _finite_array("runs", runs)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"runs must have shape (n, cells), got {r.shape}")
    s = _finite_array("source", source).ravel()
    n, c = r.shape
    if s.size != c:
        raise ValueError(f"source must hold one value per cell of runs ({c}), got {s.size}")
    if n <= c + 1:
        raise ValueError(f"runs: need more than cells + 1 = {c + 1} runs, got {n}")
    mean, cov = r.mean(0), np.atleast_2d(np.cov(r, rowvar=False))
    sd = np.sqrt(np.diag(cov))
    if not (sd > 0).all():
        raise ValueError("runs: every cell must vary between runs")
    diff = s - mean
    t2 = n / (n + 1) * float(diff @ np.linalg.solve(cov, diff))
    f = t2 * (n - c) / (c * (n - 1))
    return {
        "p_value": float(stats.f.sf(f, c, n - c)),
        "percentile": 100 * (r < s).mean(0),
        "gap": diff / (sd * math.sqrt(1 + 1 / n)),
        "above": diff > 0,
    }


def bonferroni_inside(source, runs, alpha: float = 0.05) -> np.ndarray:
    """Per cell: does the source lie in our Student-t prediction interval at level 1 - alpha/c?
    (the previous version's per-cell rule). source (c,), runs (n, c) -> bool (c,)"""
    from nnlearn.stats import prediction_interval

    r = _finite_array("runs", runs)
    r = r[:, None] if r.ndim == 1 else r
    s = _finite_array("source", source).ravel()
    if r.ndim != 2 or s.size != r.shape[1] or r.shape[0] < 2:
        raise ValueError(
            f"runs must be (n >= 2, {s.size}) for {s.size} source values, got {r.shape}"
        )
    alpha = _probability("alpha", alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    out = []
    for j in range(s.size):
        lo, hi = prediction_interval(r[:, j], 1 - alpha / s.size)
        out.append(lo <= s[j] <= hi)
    return np.array(out)


def percentile_text(percentiles) -> str:
    """Percentiles (0-100) as short stable text, e.g. ``"pct 91, 97, 100"``."""
    p = _finite_array("percentiles", percentiles).ravel()
    return "pct " + ", ".join(f"{v:.0f}" for v in p)


# ----------------------------------------------------------------------------- the spectrum
def walsh_features(masks, order: int = 2) -> np.ndarray:
    """Walsh (parity) features of 0/1 masks in the +-1 coding ``x = 2 m - 1``.

    order 1: the H single-node features x_j; order 2 adds the H(H-1)/2 products x_i x_j (i < j).
    masks : (M, H) -> (M, H) or (M, H + H(H-1)/2) float64
    """
    m = _finite_array("masks", masks, ndim=2)
    if not np.isin(m, (0.0, 1.0)).all():
        raise ValueError("masks must hold 0 (removed) and 1 (kept) only")
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    x = 2 * m - 1
    if order == 1:
        return x
    i, j = np.triu_indices(m.shape[1], 1)
    return np.concatenate([x, x[:, i] * x[:, j]], axis=1)


def fit_spectrum(train_masks, train_values, test_masks, test_values) -> dict:
    """Fit the log loss over masks by single-node and pairwise Walsh terms (least squares).

    train_masks (M, H), train_values (K, M): K networks' values on the same masks (independent
    Bernoulli(1/2) masks, so the features are orthogonal in expectation); test_* likewise, held
    out. Returns dict with ``r2`` (K,) held-out R^2, and the *spectral weights* as shares of
    the test variance: ``w1`` (K,) single-node, ``w2`` (K,) pairwise, ``rest`` (K,) what is left
    (higher orders), from the fitted coefficients (``w1 + w2 + rest = 1``).
    """
    tm, vm = (
        _finite_array("train_masks", train_masks, ndim=2),
        _finite_array("train_values", train_values, ndim=2),
    )
    sm, sv = (
        _finite_array("test_masks", test_masks, ndim=2),
        _finite_array("test_values", test_values, ndim=2),
    )
    H = tm.shape[1]
    if (
        sm.shape[1] != H
        or vm.shape[1] != tm.shape[0]
        or sv.shape[1] != sm.shape[0]
        or vm.shape[0] != sv.shape[0]
    ):
        raise ValueError(
            "shapes must be train_masks (M, H), train_values (K, M), test_masks (M', H), "
            "test_values "
            f"(K, M'); got {tm.shape}, {vm.shape}, {sm.shape}, {sv.shape}"
        )
    n_feat = H + H * (H - 1) // 2
    if tm.shape[0] <= 2 * n_feat:
        raise ValueError(
            f"train_masks: need more than {2 * n_feat} masks for {n_feat} features, got "
            f"{tm.shape[0]}"
        )
    design = np.column_stack([np.ones(len(tm)), walsh_features(tm)])
    coef, *_ = np.linalg.lstsq(design, vm.T, rcond=None)  # (1 + F, K)
    pred = np.column_stack([np.ones(len(sm)), walsh_features(sm)]) @ coef  # (M', K)
    resid = sv.T - pred
    var = sv.var(1)
    if not (var > 0).all():
        raise ValueError("test_values must vary over masks for every network")
    w1 = (coef[1 : 1 + H] ** 2).sum(0) / var
    w2 = (coef[1 + H :] ** 2).sum(0) / var
    return {
        "r2": 1 - (resid**2).mean(0) / var,
        "w1": w1,
        "w2": w2,
        "rest": 1 - w1 - w2,
        "coef": coef.T,
    }


def spectrum_path_curve(w1, w2, n_nodes: int, rest=None) -> np.ndarray:
    """Correlation between a mask and the mask t random flips away, predicted by the spectrum.

    Flipping a random t of n nodes multiplies a degree-k Walsh term by ``(-1)^{|S cap T|}``,
    whose mean is the normalised Krawtchouk polynomial: ``1 - 2t/n`` for k = 1 and
    ``((n - 2t)^2 - n) / (n (n - 1))`` for k = 2. The prediction is
    ``(w1 kappa_1(t) + w2 kappa_2(t)) / (w1 + w2 + rest)``; with ``rest=None`` the weights are
    taken as shares of the explained part (``rest`` = 0).
    w1, w2 (K,) -> (K, n_nodes + 1)
    """
    a = _finite_array("w1", w1).ravel()
    b = _finite_array("w2", w2).ravel()
    if a.shape != b.shape or (a < 0).any() or (b < 0).any():
        raise ValueError(
            f"w1 and w2 must be non-negative and of equal length, got {a.shape}, {b.shape}"
        )
    n = _int_at_least("n_nodes", n_nodes, 2)
    c = np.zeros_like(a) if rest is None else _finite_array("rest", rest).ravel()
    if c.shape != a.shape:
        raise ValueError(f"rest must match w1's length {a.size}, got {c.size}")
    t = np.arange(n + 1)
    k1, k2 = 1 - 2 * t / n, ((n - 2 * t) ** 2 - n) / (n * (n - 1))
    total = a + b + np.clip(c, 0, None)
    if not (total > 0).all():
        raise ValueError("w1 + w2 + rest must be > 0")
    return (a[:, None] * k1 + b[:, None] * k2) / total[:, None]


# ----------------------------------------------------------------------------- pruning
def prune_to(params, X, y, keep: int, method: str) -> np.ndarray:
    """Remove hidden nodes one at a time until ``keep`` remain; returns the masks (K, H).

    ``method="greedy"``: at each step remove the node whose removal gives the lowest loss on
    (X, y) (exact search over the one-step removals). ``method="gradient"``: remove the node
    whose first-order predicted change ``-dL/dm_j`` is smallest (the mask gradient at the
    current mask). Every network is pruned at once. X (N, n_in) or (K, N, n_in), y likewise.
    """
    p = _check_params(params)
    K, H = p["layers.0.weight"].shape[:2]
    keep = _int_at_least("keep", keep, 1)
    if keep > H:
        raise ValueError(f"keep must be <= the {H} hidden nodes, got {keep}")
    if method not in ("greedy", "gradient"):
        raise ValueError(f"method must be 'greedy' or 'gradient', got {method!r}")
    mask = np.ones((K, H), np.float32)
    rows = np.arange(K)
    for _ in range(H - keep):
        if method == "gradient":
            _, g = mask_losses(params, X, y, mask[:, None, :])
            score = np.where(mask > 0, -g[:, 0], np.inf)  # predicted change when removing j
        else:
            trial = np.repeat(mask[:, None, :], H, axis=1) * (1 - np.eye(H, dtype=np.float32))
            score, _ = mask_losses(params, X, y, trial, with_grad=False)
            score = np.where(mask > 0, score, np.inf)
        mask[rows, score.argmin(1)] = 0.0
    return mask


def exact_size_masks(n_masks: int, n_nodes: int, keep: int, seed: int) -> np.ndarray:
    """``n_masks`` masks keeping exactly ``keep`` of ``n_nodes`` nodes, chosen uniformly."""
    n_masks = _int_at_least("n_masks", n_masks, 1)
    n_nodes = _int_at_least("n_nodes", n_nodes, 1)
    keep = _int_at_least("keep", keep, 0)
    if keep > n_nodes:
        raise ValueError(f"keep must be <= n_nodes={n_nodes}, got {keep}")
    order = make_rng(seed).random((n_masks, n_nodes)).argsort(1)
    return (order < keep).astype(np.float32)


# ----------------------------------------------------------------------------- the trough
def lean_sign_agreement(params, X, y, masks) -> np.ndarray:
    """Share of mask-gradient components whose sign is ``sign(lean) * sign(dv_j)``.

    The *lean* of a masked network is its mean residual ``mean_n (sigmoid(d_n) - y_n)`` (above 0:
    it calls too many points "outside"); ``dv_j = V[1, j] - V[0, j]`` is the sign of node j's vote.
    Node j's contribution has that sign wherever it is active, so if the lean dominates, its
    gradient ``mean_n r_n c_j(x_n)`` takes the sign of lean times vote. Components that are
    exactly 0 (a node inactive on every test point) are left out.
    X (N, n_in) or (K, N, n_in), y (N,) or (K, N), masks (M, H) -> (K,) shares
    """
    contrib, offset = node_contributions(params, X)
    K, N, H = contrib.shape
    m = _as_masks(masks, K, H)
    yt = torch.as_tensor(_finite_array("y", y), dtype=torch.float32)
    if tuple(yt.shape) not in ((N,), (K, N)):
        raise ValueError(f"y must have shape ({N},) or ({K}, {N}), got {tuple(yt.shape)}")
    if not bool(((yt == 0) | (yt == 1)).all()):
        raise ValueError("y must hold labels 0 and 1 only (a two-class task)")
    with torch.no_grad():
        d = torch.bmm(m, contrib.transpose(1, 2)) + offset[:, None, None]  # (K, M, N)
        r = torch.sigmoid(d) - yt.reshape(-1, 1, N)
        g = torch.bmm(r, contrib) / N  # (K, M, H)
        lean = r.mean(-1, keepdim=True)  # (K, M, 1)
    p = _check_params(params)
    dv = (p["layers.1.weight"][:, 1, :] - p["layers.1.weight"][:, 0, :]).detach()[:, None, :]
    agree = torch.sign(g) == torch.sign(lean) * torch.sign(dv)
    live = g != 0
    return ((agree & live).sum((1, 2)) / live.sum((1, 2)).clamp(min=1)).numpy()


def untrained_circle_nets(seeds: Sequence[int], hidden: int = 20) -> Ensemble:
    """Networks as initialised for training (Glorot-uniform weights, zero biases), untrained:
    the negative control of the mask studies."""
    seeds = _seed_list(seeds)
    hidden = _int_at_least("hidden", hidden, 1)
    return Ensemble.from_seeds(lambda s: glorot_uniform_mlp([2, hidden, 2], s), seeds)


# ----------------------------------------------------------------------------- the claims
def declare_claims(C, *, n_paths: int) -> None:
    """Declare every claim of the chapter on ``C`` (a :class:`nnlearn.claims.Claims`), before
    any experiment runs. ``n_paths``: hypercube paths per network (sets the reversal check's
    sampling tolerance, two 95% half-widths of a correlation from ``n_paths`` pairs)."""
    from nnlearn.claims import R

    n_paths = _int_at_least("n_paths", n_paths, 4)
    every = dict(rule=R.share_at_least(1.0, band=(0.9, 0.95)))
    joint = dict(
        rule=R.at_least(0.05, band=(0.01, 0.1)),
        partly=R.at_least(0.001),
        statistic="joint prediction p-value of the source's cells (Hotelling T^2)",
    )
    d = C.declare
    # --- the trained network and the loss over random subsets
    d(
        "accurate",
        "With every node on, the network fits the circle",
        kind="source",
        source="the full network approximates the circle accurately",
        where="video, takeaway 1",
        statistic="test accuracy per run",
        rule=R.interval_above(0.95, band=(0.9, 0.97)),
    )
    d(
        "full-loss",
        "Full-network test loss",
        kind="source",
        source="0.117",
        where="loss section, note 2",
        source_value=0.117,
        statistic="test loss per run",
        rule=R.source_in_prediction(0.95, band=(0.9, 0.99)),
    )
    d(
        "seed17",
        "Seed-17 mask draws: 5 all-on, 952 distinct at p=0.75; node 14 alone off 3x",
        kind="identity",
        source="5 / 952 / 3",
        where="loss section, notes 4-6",
        statistic="counts in our redraw of the printed loop",
        rule=R.holds(),
    )
    d(
        "varies",
        "Loss varies a lot with which nodes are removed",
        kind="source",
        source="performance varies a lot with the removed neurons",
        where="video, takeaway 2",
        statistic="90th / 10th percentile of the loss over p=0.5 masks, per run",
        rule=R.interval_above(2.0, band=(1.5, 3.0)),
    )
    d(
        "order",
        "More nodes kept gives a lower mean loss",
        kind="source",
        source="1.028 > 0.878 > 0.584",
        where="takeaway 4; loss note 3",
        statistic="runs with mean loss strictly falling in p",
        **every,
    )
    d(
        "loss-table",
        "Mean loss per p",
        kind="source",
        source="1.028, 0.878, 0.584",
        where="loss table",
        **joint,
    )
    d(
        "cheap-node",
        "Some single node can be removed at almost no cost",
        kind="source",
        source="node 14 off: 0.119 against 0.117",
        where="loss note 5",
        statistic="runs whose cheapest single removal raises the loss < 5%",
        rule=R.share_at_least(0.5, band=(0.4, 0.6)),
    )
    d(
        "skew",
        "Loss over masks is right-skewed",
        kind="source",
        source="looks right-skewed",
        where="loss note 7",
        statistic="(p, run) cases with positive skewness",
        **every,
    )
    # --- log-normality
    d(
        "logloss-table",
        "Mean and sd of the log loss per p",
        kind="source",
        source="means -0.080, -0.285, -0.729; sds 0.448, 0.554, 0.613",
        where="log-loss table",
        **joint,
    )
    d(
        "raw-not-normal",
        "Positive control: the normality test rejects the raw losses",
        kind="control",
        statistic="(p, run) cases with D'Agostino p < 0.05 on raw losses",
        rule=R.share_at_least(0.9, band=(0.8, 1.0)),
    )
    d(
        "lognormal",
        "Loss is log-normal over masks (normality not rejected)",
        kind="source",
        source="close to bell curves; deviations could be noise",
        where="log-loss section",
        statistic="(p, run) cases with D'Agostino p >= 0.05 on log losses",
        rule=R.share_at_least(0.5, band=(0.4, 0.6)),
        controls=("raw-not-normal",),
    )
    d(
        "lognormal-approx",
        "Log-normal is a reasonable approximation",
        kind="source",
        source="a reasonably good approximation",
        where="log-loss section",
        statistic="largest |mean skewness| or |mean excess kurtosis| of log losses over p",
        rule=R.at_most(0.5, band=(0.3, 1.0)),
    )
    d(
        "boxcox",
        "The logarithm is the best power transform (Box-Cox)",
        kind="beyond",
        statistic="(p, run) cases whose Box-Cox 95% interval contains 0",
        rule=R.share_at_least(0.5, band=(0.4, 0.6)),
    )
    d(
        "wiggles",
        "Small wiggles of the density curves are noise",
        kind="source",
        source="the small local wiggles are probably random noise",
        where="loss note 1",
        statistic="r between the wiggles (KDE minus a 5x wider KDE) of two independent mask sets",
        rule=R.interval_below(0.3, band=(0.2, 0.5)),
    )
    # added after the first full run (see the chapter's "Rule changes"): the wiggle statistic
    # needs a control, because kernel smoothing alone correlates the two sets' wiggles
    d(
        "wiggles-control",
        "Control: wiggles of two samples from a smooth surrogate are uncorrelated",
        kind="control",
        statistic="the wiggle r for two smoothed-bootstrap "
        "samples (kernel 0.15) of the run's losses",
        rule=R.interval_below(0.3, band=(0.2, 0.5)),
    )
    d(
        "wiggles-excess",
        "The wiggles correlate no more than a smooth surrogate's do",
        kind="beyond",
        statistic="wiggle r of the two mask sets minus the surrogate's, per run",
        rule=R.interval_below(0.1, band=(0.05, 0.2)),
    )
    # --- gradients
    d(
        "grad-table",
        "Mean and sd of the mask gradient per p",
        kind="source",
        source="means -0.069, -0.048, +0.027; sds 0.368, 0.335, 0.267",
        where="gradient table",
        **joint,
    )
    d(
        "grad-peaked",
        "Mask gradients are more peaked and heavy-tailed than normal",
        kind="source",
        source="more pointy topped and heavy tailed",
        where="gradient section",
        statistic="excess kurtosis per run, at the p where its interval is lowest",
        rule=R.interval_above(0.0, band=(0.25, 1.0)),
    )
    d(
        "sanity",
        "10 x mean gradient at p=0.5 is close to loss(0.75) - loss(0.25)",
        kind="source",
        source="-0.475 vs -0.443",
        where="gradient section",
        statistic="runs with the ratio in (2/3, 3/2)",
        **every,
    )
    d(
        "loggrad-table",
        "Mean and sd of the log-loss gradient per p",
        kind="source",
        source="means -0.075, -0.058, -0.047; sds 0.361, 0.384, 0.446",
        where="log-loss gradient table",
        **joint,
    )
    d(
        "trough-control",
        "Control: normal samples of the same size and spread show no trough",
        kind="control",
        statistic="runs whose matched normal sample has ratio < 0.9 at some p",
        rule=R.share_at_most(0.05, band=(0.0, 0.1)),
    )
    d(
        "trough",
        "The log-loss gradient density has a trough at 0 at every p",
        kind="source",
        source="a consistent trough at 0",
        where="log-loss gradient section",
        statistic="runs with trough ratio < 0.9 at all three p",
        rule=R.share_at_least(1.0, band=(0.5, 0.9)),
        partly=R.share_at_least(0.5),
        controls=("trough-control",),
    )
    d(
        "onoff-table",
        "Log-loss gradient at p=0.5 for nodes on / off (mean, sd)",
        kind="source",
        source="on 0.056 / 0.359; off -0.173 / 0.373",
        where="'Is that node on'",
        **joint,
    )
    d(
        "node-spread",
        "Some nodes have much smaller gradients than others",
        kind="source",
        source="neuron 11's gradients much smaller than neuron 4's",
        where="'Is that node on'",
        statistic="runs whose largest / smallest live-node gradient sd >= 2",
        **every,
    )
    # --- flips and paths
    d(
        "flip-matters",
        "One flip can matter",
        kind="source",
        source="flipping one neuron can have a significant effect",
        where="video, takeaway 3",
        statistic="runs where >= 10% of single flips change >= 5% of predictions",
        **every,
    )
    d(
        "flip-rarely-total",
        "One flip rarely changes the behaviour completely",
        kind="source",
        source="but does not usually change it completely",
        where="video, takeaway 3",
        statistic="runs where < 1% of single flips change >= 50% of predictions",
        **every,
    )
    tol = 2 * 1.96 / math.sqrt(n_paths - 3)
    d(
        "reversal",
        "Start- and end-anchored path correlations agree",
        kind="identity",
        source="the two lines look identical",
        where="hypercube section",
        statistic="largest |r_start(t) - r_end(t)| over t and runs",
        rule=R.at_most(round(tol, 3), band=(round(tol / 2, 3), round(2 * tol, 3))),
    )
    d(
        "fade",
        "Correlation with the start has faded after 5-6 flips",
        kind="source",
        source="about 5 or 6 flips until insignificance",
        where="hypercube section",
        statistic="correlation of log loss at the start and 6 flips later, per run",
        rule=R.interval_below(0.1, band=(0.062, 0.2)),
        partly=R.interval_below(0.2),
    )
    d(
        "complement-untrained",
        "Control: untrained networks show no clear mask-complement correlation",
        kind="control",
        statistic="untrained runs whose r(mask, complement) has lower 95% bound > 0",
        rule=R.share_at_most(0.5, band=(0.25, 0.75)),
    )
    d(
        "complement",
        "A mask and its complement have positively correlated log loss",
        kind="source",
        source="significant positive correlation",
        where="hypercube section",
        statistic="runs whose r(mask, complement) has lower 95% bound > 0",
        **every,
        partly=R.share_at_least(0.5),
        controls=("complement-untrained",),
    )
    d(
        "D-symmetric",
        "Half-network deviation D is equal for a mask and its complement",
        kind="identity",
        statistic="largest relative |D(m) - D(1 - m)|",
        rule=R.at_most(1e-5, band=(1e-6, 1e-4)),
    )
    d(
        "D-explains",
        "Regressing out D (and the count) leaves no positive complement r",
        kind="identity",
        statistic="residual r(mask, complement) per run",
        rule=R.interval_below(0.1, band=(0.05, 0.2)),
    )
    d(
        "balance-dir",
        "Subsets balanced in direction score better",
        kind="source",
        source="a subset scores well when its nodes balance top/bottom/left/right",
        where="hypercube section",
        statistic="partial r(direction imbalance, log loss | count)",
        rule=R.interval_above(0.0, band=(0.05, 0.1)),
    )
    d(
        "balance-explains",
        "Direction balance explains the complement correlation",
        kind="source",
        source="the full net is balanced, so reversals are balanced too",
        where="hypercube section",
        statistic="residual r(mask, complement) after direction imbalance and count",
        rule=R.interval_below(0.1, band=(0.05, 0.2)),
    )
    # --- roles of nodes and the loss map
    d(
        "bias-roles",
        "Some nodes act as biases voting 'inside'",
        kind="source",
        source="nodes 0, 9, 10, 19 ignore the input and vote inside",
        where="gradient heatmaps",
        statistic="runs with >= 1 bias-like node, all voting inside",
        **every,
    )
    d(
        "bias-count",
        "Four of twenty nodes are bias-like",
        kind="source",
        source="4 of 20",
        where="gradient heatmaps",
        source_value=4,
        statistic="median bias-like count over runs",
        rule=R.between(3, 5, band=((2, 6), (4, 4))),
    )
    d(
        "edge-loss",
        "Most loss sits around the circle's edge",
        kind="source",
        source="most of the loss occurs around the edge",
        where="loss heatmap",
        statistic="share of loss in the band |r - r0| < 0.1 over its share of area, per run",
        rule=R.interval_above(2.0, band=(1.5, 3.0)),
    )
    # --- beyond the source
    d(
        "circle-reading",
        "The source's numbers fit the code's circle and exclude the comment's",
        kind="beyond",
        statistic="joint p of (full loss, mean loss per p): >= 0.05 for the code's "
        "reading and < 0.05 for the comment's",
        rule=R.holds(),
    )
    d(
        "spread-offset",
        "The source's spreads lie above our mean in most cells",
        kind="beyond",
        statistic="sd cells of the numeric tables with the source above our mean",
        rule=R.share_at_least(0.8, band=(0.7, 0.9)),
    )
    d(
        "bias-sensitivity",
        "Runs with more bias-like nodes have a wider log-loss spread",
        kind="beyond",
        statistic="r over runs of bias-like count and sd of log loss at p=0.5",
        rule=R.interval_above(0.0, band=(0.1,)),
    )
    d(
        "spectrum-r2",
        "Single-node + pairwise terms predict held-out log loss",
        kind="beyond",
        statistic="held-out R^2 per run",
        rule=R.interval_above(0.8, band=(0.7, 0.9)),
    )
    d(
        "spectrum-path",
        "The spectrum predicts the whole path-correlation curve",
        kind="beyond",
        statistic="mean over runs of max over t of |observed - predicted r(t)|",
        rule=R.at_most(0.1, band=(0.05, 0.15)),
    )
    d(
        "spectrum-complement",
        "The spectrum predicts the mask-complement correlation",
        kind="beyond",
        statistic="predicted minus observed r(mask, complement), per run",
        rule=R.interval_within(-0.1, 0.1, band=((-0.05, 0.05), (-0.15, 0.15))),
    )
    d(
        "trough-lean",
        "The gradient's sign follows the masked net's lean times the node's vote",
        kind="beyond",
        statistic="share of live gradient components with that sign, per run",
        rule=R.interval_above(0.8, band=(0.7, 0.9)),
    )
    d(
        "prune-gradient",
        "Gradient-guided pruning to 10 nodes beats random removal",
        kind="beyond",
        statistic="log(random-subset loss / gradient-pruned loss), per run",
        rule=R.interval_above(0.0, band=(0.05, 0.1)),
    )
    d(
        "prune-greedy",
        "Greedy exact pruning to 10 nodes beats gradient-guided pruning",
        kind="beyond",
        statistic="log(gradient-pruned loss / greedy-pruned loss), per run",
        rule=R.interval_above(0.0, band=(0.05, 0.1)),
    )


# ----------------------------------------------------------------------------- chapter helpers
#: The source's printed tables (p = 0.25, 0.5, 0.75 in order; on/off at p = 0.5).
SOURCE_TABLES = {
    "loss-table": {"mean loss": (1.028, 0.878, 0.584)},
    "logloss-table": {
        "mean log loss": (-0.080, -0.285, -0.729),
        "sd log loss": (0.448, 0.554, 0.613),
    },
    "grad-table": {"mean gradient": (-0.069, -0.048, 0.027), "sd gradient": (0.368, 0.335, 0.267)},
    "loggrad-table": {
        "mean log-loss gradient": (-0.075, -0.058, -0.047),
        "sd log-loss gradient": (0.361, 0.384, 0.446),
    },
    "onoff-table": {"node on (mean, sd)": (0.056, 0.359), "node off (mean, sd)": (-0.173, 0.373)},
}


def table_report(source: dict, runs: dict) -> tuple[str, dict, np.ndarray, np.ndarray]:
    """One source table against our runs: text, the joint test, and source / runs flattened.

    source : {row name: tuple of c_r source values}; runs : {row name: (n, c_r) our values}
    Returns (text table with per-cell mean [95% CI], percentile and gap; joint_prediction_test
    result; source (c,); runs (n, c)).
    """
    from nnlearn.stats import mean_ci

    if not isinstance(source, Mapping) or not isinstance(runs, Mapping) or set(source) != set(runs):
        raise ValueError("source and runs must be mappings with the same row names")
    src = np.concatenate([np.asarray(source[k], dtype=float).ravel() for k in source])
    cols = [np.asarray(runs[k], dtype=float).reshape(len(runs[k]), -1) for k in source]
    if any(c.shape[1] != len(source[k]) for c, k in zip(cols, source)):
        raise ValueError("runs: each row must have one column per source value")
    r = np.concatenate(cols, axis=1)
    res = joint_prediction_test(src, r)
    names = [f"{k} [{i}]" for k in source for i in range(len(source[k]))]
    rows = [
        [
            n,
            f"{s:.3f}",
            mean_ci(r[:, j]).format(3),
            f"{res['percentile'][j]:.0f}",
            f"{res['gap'][j]:+.1f}",
        ]
        for j, (n, s) in enumerate(zip(names, src))
    ]
    text = text_table(
        ["cell", "source", "ours: mean [95% CI]", "source pct", "gap (pred. SE)"], rows
    )
    return (
        text + f"\njoint prediction test over {src.size} cells: p = {res['p_value']:.3f}",
        res,
        src,
        r,
    )


def wiggle_correlation(a, b, width: float = 0.03, wide: float = 0.15, points=None) -> float:
    """Correlation of the small wiggles of two samples' density curves.

    The wiggle of a sample is its kernel density at ``width`` minus the one at ``wide`` (the
    smooth shape), on ``points`` (default 300 points spanning both samples). If wiggles are
    sampling noise, two independent samples from one distribution give uncorrelated wiggles.
    a, b : (n,) samples -> float
    """
    a, b = _finite_array("a", a, ndim=1, min_size=3), _finite_array("b", b, ndim=1, min_size=3)
    if not 0 < width < wide:
        raise ValueError(f"width and wide must satisfy 0 < width < wide, got {width}, {wide}")
    xs = (
        np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), 300)
        if points is None
        else _finite_array("points", points, ndim=1, min_size=3)
    )
    wa = fixed_width_kde(a, width, xs) - fixed_width_kde(a, wide, xs)
    wb = fixed_width_kde(b, width, xs) - fixed_width_kde(b, wide, xs)
    return float(np.corrcoef(wa, wb)[0, 1])


def partial_complement(a, b, cov_a, cov_b) -> float:
    """Correlation of ``a`` and ``b`` after each is regressed on its covariates (with intercept).
    a, b : (n,); cov_a, cov_b : (n,) or (n, q)"""
    return float(np.corrcoef(residualise(a, cov_a), residualise(b, cov_b))[0, 1])


def smooth_surrogate(values, width: float, n: int, seed: int) -> np.ndarray:
    """``n`` draws from the kernel density of ``values`` at kernel sd ``width`` (a smoothed
    bootstrap): a sample like ``values`` whose density has no structure finer than ``width``."""
    v = _finite_array("values", values, min_size=2).ravel()
    if (
        isinstance(width, bool)
        or not isinstance(width, (int, float, np.floating))
        or not (math.isfinite(width) and width > 0)
    ):
        raise ValueError(f"width must be a positive finite number, got {width!r}")
    n = _int_at_least("n", n, 1)
    rng = make_rng(seed)
    return rng.choice(v, size=n) + rng.normal(0.0, width, size=n)


# ----------------------------------------------------------------------------- sensitivity runs
class _DropoutMasks(engine.Callback):
    """Redraws one inverted-dropout mask (K, H) per network after every step."""

    def __init__(self, mask: torch.Tensor, keep: float, seed: int):
        self.mask, self.keep, self.gen = mask, keep, make_generator(seed)
        self.draw()

    def draw(self) -> None:
        fresh = (torch.rand(self.mask.shape, generator=self.gen) < self.keep).to(self.mask.dtype)
        self.mask.copy_(fresh / self.keep)

    def on_step(self, state) -> None:
        self.draw()


def train_circle_nets_dropout(
    seeds: Sequence[int],
    *,
    keep: float = 0.5,
    n_train: int = 1000,
    hidden: int = 20,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 0.01,
    eps: float = 1e-7,
    mask_seed: int = 0,
):
    """As :func:`train_circle_nets`, but training with dropout on the hidden nodes: every step
    each network keeps each node with probability ``keep`` (outputs scaled by 1/keep, as Keras'
    ``Dropout`` does). The engine takes one mask per network and step, so all examples of a
    mini-batch share it (per-batch dropout, not Keras' per-example masks). Masks come from
    ``mask_seed``. Returns (Ensemble, X, y)."""
    seeds = _seed_list(seeds)
    keep = _probability("keep", keep)
    if keep == 0:
        raise ValueError("keep must be > 0")
    n_train, hidden = _int_at_least("n_train", n_train, 1), _int_at_least("hidden", hidden, 1)
    epochs, batch_size = (
        _int_at_least("epochs", epochs, 1),
        _int_at_least("batch_size", batch_size, 1),
    )
    lr, eps = _positive("lr", lr), _positive("eps", eps)
    data = [circle_data(n_train, s, threshold=math.sqrt(2 / math.pi)) for s in seeds]
    X = torch.as_tensor(np.stack([d[0] for d in data]))
    y = torch.as_tensor(np.stack([d[1] for d in data]))
    mask = torch.ones(len(seeds), hidden)
    cb = _DropoutMasks(mask, keep, _int_at_least("mask_seed", mask_seed, 0))
    stack = MLPStack([2, hidden, 2], "relu")
    run = engine.train(
        stack,
        stack.init(seeds, init="glorot"),
        X,
        y,
        loss="ce",
        optimizer="adam",
        adam="torch",
        lr=lr,
        eps=eps,
        epochs=epochs,
        batch_size=batch_size,
        seeds=seeds,
        masks=mask,
        record="none",
        callbacks=[cb],
        progress=False,
    )
    return Ensemble.from_params(MLP([2, hidden, 2], "relu", seed=0), run.params), X, y


def sweep_summary(params, X, y, *, n_masks: int = 1000, seed: int = 0) -> dict:
    """Per-run summaries of K networks under random p=0.5 masks, for sensitivity settings.

    Returns dict of (K,) arrays: ``mean_loss`` (mean loss of the masks), ``normal`` (D'Agostino
    p >= 0.05 on the log losses), ``skew`` (of the log losses), ``trough`` (trough ratio of the
    pooled log-loss gradient) and ``complement`` (r of log loss between each mask and its
    complement, over the same masks); ``w1``, ``w2`` (single-node and pairwise spectral weights,
    see :func:`fit_spectrum`; NaN for more than 50 hidden nodes).
    """
    p = _check_params(params)
    H = p["layers.0.weight"].shape[1]
    masks = bernoulli_masks(n_masks, H, 0.5, seed)
    both = np.concatenate([masks, 1 - masks])
    loss, grad = mask_losses(params, X, y, both)
    lg = grad[:, :n_masks] / loss[:, :n_masks, None]
    logl = np.log(loss)
    checks = [normality_check(r[:n_masks]) for r in logl]
    w1 = w2 = np.full(len(logl), np.nan)
    if H <= 50:  # the pairwise fit needs more than H (H + 1) masks
        fit = bernoulli_masks(max(3000, 2 * H * (H + 1) + 1), H, 0.5, seed + 1)
        fit_log = np.log(mask_losses(params, X, y, fit, with_grad=False)[0])
        spec = fit_spectrum(fit, fit_log, masks, logl[:, :n_masks])
        w1, w2 = spec["w1"], spec["w2"]
    return {
        "w1": w1,
        "w2": w2,
        "mean_loss": loss[:, :n_masks].mean(1),
        "normal": np.array([c["p_value"] >= 0.05 for c in checks]),
        "skew": np.array([c["skew"] for c in checks]),
        "trough": np.array([trough_ratio(g.ravel()) for g in lg]),
        "complement": np.array([np.corrcoef(r[:n_masks], r[n_masks:])[0, 1] for r in logl]),
    }


SWEEP_HEAD = [
    "setting",
    "mean loss",
    "log-normal",
    "skew of log",
    "trough ratio",
    "r(mask, compl.)",
    "W1 / W2",
]


def sweep_row(name: str, summary: dict) -> list[str]:
    """One text row of the sensitivity table from a :func:`sweep_summary` result."""
    from nnlearn.stats import mean_ci

    if not isinstance(name, str) or not isinstance(summary, Mapping):
        raise TypeError("name must be a str and summary a mapping from sweep_summary")
    n = len(summary["mean_loss"])
    w1, w2 = np.asarray(summary["w1"]), np.asarray(summary["w2"])
    spec = "n/a" if np.isnan(w1).any() else f"{w1.mean():.2f} / {w2.mean():.2f}"
    return [
        name,
        mean_ci(summary["mean_loss"]).format(3),
        f"{int(summary['normal'].sum())} of {n}",
        mean_ci(summary["skew"]).format(2),
        mean_ci(summary["trough"]).format(2),
        mean_ci(summary["complement"]).format(2),
        spec,
    ]
