"""Embedding many training runs: t-SNE, PCA and K-Means on parameter vectors, and how they agree.

Thin wrappers around scikit-learn and SciPy with the checks and defaults the XOR chapter needs:
every function takes runs as rows of a (K, P) array and a seed where anything is random.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.metrics import adjusted_rand_score, homogeneity_score, silhouette_score


def _points(name: str, points, min_rows: int = 2) -> np.ndarray:
    a = np.asarray(points, dtype=float)
    if a.ndim != 2 or a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (K, P) with K >= {min_rows} rows, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def tsne_embed(points, *, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of the rows (PCA initialisation; perplexity capped below K/3 for small K).

    Parameters
    ----------
    points : array (K, P)

    Returns
    -------
    ndarray (K, 2)
    """
    a = _points("points", points, min_rows=5)
    perplexity = float(min(perplexity, (len(a) - 1) / 3))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=_seed(seed), max_iter=500).fit_transform(a)


def pca_embed(points, n_components: int = 2, *, fit_on=None) -> tuple[np.ndarray, np.ndarray]:
    """Linear projection onto the top principal components (distances along them are kept).

    Parameters
    ----------
    points : array (K, P), projected
    fit_on : array (M, P), optional; the axes are fitted on these rows (default ``points``)

    Returns
    -------
    coords : ndarray (K, n_components); explained : ndarray (n_components,) variance ratios
    """
    a = _points("points", points)
    b = a if fit_on is None else _points("fit_on", fit_on)
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"fit_on must have {a.shape[1]} columns like points, got {b.shape[1]}")
    pca = PCA(n_components).fit(b)
    return pca.transform(a), pca.explained_variance_ratio_


def kmeans_labels(points, n_clusters: int, *, seed: int) -> np.ndarray:
    """K-Means cluster of every row (10 restarts), int array (K,)."""
    a = _points("points", points)
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters <= len(a):
        raise ValueError(f"n_clusters must be an int in 1..{len(a)}, got {n_clusters!r}")
    return KMeans(int(n_clusters), n_init=10, random_state=_seed(seed)).fit_predict(a)


def best_k(points, k_range=range(2, 9), *, seed: int) -> tuple[int, dict[int, float]]:
    """Number of K-Means clusters with the highest silhouette score, and every score."""
    a = _points("points", points, min_rows=3)
    ks = [k for k in k_range if 2 <= k < len(a)]
    if not ks:
        raise ValueError(f"k_range must hold a k with 2 <= k < {len(a)}, got {list(k_range)}")
    scores = {k: float(silhouette_score(a, kmeans_labels(a, k, seed=seed))) for k in ks}
    return max(scores, key=scores.get), scores


def cluster_agreement(labels_a, labels_b) -> float:
    """Adjusted Rand index of two labelings of the same rows (1 = identical partitions, ~0 = chance)."""
    a, b = np.asarray(labels_a).ravel(), np.asarray(labels_b).ravel()
    if a.size != b.size or a.size < 2:
        raise ValueError(f"labels_a and labels_b must have equal lengths >= 2, got {a.size} and {b.size}")
    return float(adjusted_rand_score(a, b))


def cluster_purity(clusters, labels) -> float:
    """Homogeneity of clusters with respect to labels, in [0, 1]: 1 when no cluster mixes labels.

    Unlike the adjusted Rand index it does not penalise splitting one label over many clusters,
    so it asks "does each cluster hold one kind of run?" (scikit-learn's ``homogeneity_score``).
    """
    a, b = np.asarray(clusters).ravel(), np.asarray(labels).ravel()
    if a.size != b.size or a.size < 2:
        raise ValueError(f"clusters and labels must have equal lengths >= 2, got {a.size} and {b.size}")
    b = np.unique(b, return_inverse=True)[1]   # any hashable labels (floats, strings) -> 0..n-1
    return float(homogeneity_score(b, a))


def neighbourhood_kept(points, embedding, n_neighbors: int = 5) -> float:
    """Trustworthiness of an embedding in [0, 1]: are its near neighbours near in the original space?"""
    a, e = _points("points", points), _points("embedding", embedding)
    if len(a) != len(e):
        raise ValueError(f"points and embedding must have the same rows, got {len(a)} and {len(e)}")
    if not 1 <= n_neighbors < len(a) / 2:
        raise ValueError(f"n_neighbors must be in 1..{int(len(a) / 2 - 1)}, got {n_neighbors}")
    return float(trustworthiness(a, e, n_neighbors=n_neighbors))


def distance_correlation(start, end) -> tuple[float, float]:
    """Spearman correlation between pairwise start distances and pairwise end distances.

    Parameters
    ----------
    start, end : arrays (K, P) of the same runs (e.g. initial and final parameters)

    Returns
    -------
    (rho, p_value); pairs are not independent, so read the p-value as indicative only
    """
    a, b = _points("start", start, 4), _points("end", end, 4)
    if len(a) != len(b):
        raise ValueError(f"start and end must hold the same runs, got {len(a)} and {len(b)} rows")
    res = stats.spearmanr(pdist(a), pdist(b))
    return float(res.statistic), float(res.pvalue)


def nearest_neighbour_agreement(start, outcome) -> np.ndarray:
    """For each run: does its nearest neighbour in ``start`` space share its ``outcome``?

    Returns
    -------
    bool ndarray (K,)
    """
    a = _points("start", start, 2)
    outcome = np.asarray(outcome).ravel()
    if len(outcome) != len(a):
        raise ValueError(f"outcome must have one entry per run ({len(a)}), got {len(outcome)}")
    sq = (a**2).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * a @ a.T
    np.fill_diagonal(d, np.inf)
    return outcome[d.argmin(1)] == outcome


def chance_agreement(outcome) -> float:
    """Probability that two runs drawn at random (without replacement) share an outcome."""
    outcome = np.asarray(outcome).ravel()
    if outcome.size < 2:
        raise ValueError("outcome must hold at least 2 runs")
    _, counts = np.unique(outcome, return_counts=True)
    n = outcome.size
    return float((counts * (counts - 1)).sum() / (n * (n - 1)))
