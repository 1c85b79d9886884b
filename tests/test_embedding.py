"""Tests for nnlearn.embedding: wrappers agree with direct computations and reject bad input."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from nnlearn import embedding as E


def blobs(seed=0, n=30):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 5, [10.0] * 5, [-10.0] + [0.0] * 4])
    labels = np.repeat(np.arange(3), n)
    return centres[labels] + rng.normal(0, 0.5, (3 * n, 5)), labels


def test_kmeans_recovers_blobs_and_best_k_is_three():
    points, labels = blobs()
    assert E.cluster_agreement(E.kmeans_labels(points, 3, seed=0), labels) == pytest.approx(1.0)
    k, scores = E.best_k(points, range(2, 6), seed=0)
    assert k == 3 and set(scores) == {2, 3, 4, 5}


def test_tsne_is_seeded_and_keeps_blobs():
    points, labels = blobs()
    a, b = E.tsne_embed(points, seed=1), E.tsne_embed(points, seed=1)
    assert a.shape == (90, 2) and np.allclose(a, b)
    assert E.cluster_agreement(E.kmeans_labels(a, 3, seed=0), labels) > 0.95
    assert E.neighbourhood_kept(points, a) > 0.9


def test_pca_projection_of_a_line_is_exact():
    t = np.linspace(-1, 1, 20)
    points = np.outer(t, [1.0, 2.0, 2.0])
    coords, explained = E.pca_embed(points, 1)
    assert explained[0] == pytest.approx(1.0)
    assert np.allclose(np.abs(coords[:, 0]), np.abs(t) * 3.0, atol=1e-6)


def test_distance_correlation_of_a_scaled_copy_is_one():
    points, _ = blobs()
    rho, p = E.distance_correlation(points, 3 * points + 1)
    assert rho == pytest.approx(1.0) and p < 1e-6


def test_nearest_neighbour_agreement_matches_brute_force():
    points, labels = blobs(seed=2, n=10)
    d = cdist(points, points)
    np.fill_diagonal(d, np.inf)
    assert np.array_equal(E.nearest_neighbour_agreement(points, labels), labels[d.argmin(1)] == labels)


def test_chance_agreement_counts_pairs():
    assert E.chance_agreement([0, 0, 1, 1]) == pytest.approx(4 / 12)  # 4 of 12 ordered pairs match
    assert E.chance_agreement([5, 5, 5]) == pytest.approx(1.0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="points"):
        E.tsne_embed(np.zeros(5), seed=0)
    with pytest.raises(ValueError, match="seed"):
        E.tsne_embed(np.zeros((10, 2)), seed=-1)
    with pytest.raises(ValueError, match="NaN"):
        E.pca_embed(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="n_clusters"):
        E.kmeans_labels(np.zeros((4, 2)), 5, seed=0)
    with pytest.raises(ValueError, match="labels_a"):
        E.cluster_agreement([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="same runs"):
        E.distance_correlation(np.zeros((5, 2)), np.zeros((6, 2)))
    with pytest.raises(ValueError, match="outcome"):
        E.nearest_neighbour_agreement(np.zeros((5, 2)), [0, 1])
    with pytest.raises(ValueError, match="k_range"):
        E.best_k(np.zeros((3, 2)), range(5, 6), seed=0)


def test_cluster_purity_ignores_splitting_but_not_mixing():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert E.cluster_purity([0, 0, 1, 1, 2, 2, 3, 3], labels) == pytest.approx(1.0)   # split, pure
    assert E.cluster_purity([0, 1, 0, 1, 0, 1, 0, 1], labels) == pytest.approx(0.0)   # fully mixed
    with pytest.raises(ValueError, match="clusters and labels"):
        E.cluster_purity([0, 1], [0, 1, 1])
