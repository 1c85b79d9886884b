"""Small seeded toy data sets. Every function returns float32 inputs and int64 labels."""

from __future__ import annotations

import itertools
import math

import numpy as np

from nnlearn.checks import finite_float, positive_int
from nnlearn.seeding import make_rng


def xor_data(n_bits: int = 2):
    """The full truth table of n-bit parity (XOR for ``n_bits=2``).

    Returns
    -------
    X : np.ndarray, float32, shape (2**n_bits, n_bits), rows in binary counting order
    y : np.ndarray, int64, shape (2**n_bits,), the parity of each row
    """
    n_bits = positive_int("n_bits", n_bits)
    X = np.array(list(itertools.product([0, 1], repeat=n_bits)), dtype=np.float32)
    return X, (X.sum(1) % 2).astype(np.int64)


def circle_data(
    n: int, seed: int, *, threshold: float = math.sqrt(2 / math.pi), low=-1.0, high=1.0
):
    """Points uniform in the square [low, high]^2, labelled 1 when ``x1**2 + x2**2 > threshold``.

    The default threshold is the one printed in Hobson's circle code (the squared radius is
    compared with sqrt(2/pi)); pass ``threshold=2/math.pi`` for the circle of radius
    sqrt(2/pi) that the code's comment describes.

    Returns
    -------
    X : np.ndarray, float32, shape (n, 2)
    y : np.ndarray, int64, shape (n,)
    """
    n = positive_int("n", n)
    threshold = finite_float("threshold", threshold)
    low, high = finite_float("low", low), finite_float("high", high)
    if not high > low:
        raise ValueError(f"high must exceed low, got low={low}, high={high}")
    X = make_rng(seed).uniform(low, high, size=(n, 2)).astype(np.float32)
    return X, ((X**2).sum(1) > threshold).astype(np.int64)


def spirals(n: int, seed: int, *, turns: float = 1.5, noise: float = 0.05, radius: float = 1.0):
    """Two interleaved spiral arms, ``n`` points in all (alternating arm 0 and arm 1).

    Arm ``k`` is ``r (cos(t + k pi), sin(t + k pi))`` with ``r = radius * t / t_max`` for
    t uniform in [0, 2 pi turns], plus Gaussian noise of standard deviation ``noise``.

    Returns
    -------
    X : np.ndarray, float32, shape (n, 2)
    y : np.ndarray, int64, shape (n,), the arm of each point
    """
    n = positive_int("n", n)
    noise = finite_float("noise", noise, low=0.0)
    turns = finite_float("turns", turns, low=0.0, strict=True)
    radius = finite_float("radius", radius, low=0.0, strict=True)
    rng = make_rng(seed)
    y = np.arange(n) % 2
    t_max = 2 * math.pi * turns
    t = rng.uniform(0, t_max, size=n)
    r = radius * t / t_max
    angle = t + math.pi * y
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], 1) + rng.normal(0, noise, size=(n, 2))
    return X.astype(np.float32), y.astype(np.int64)


def random_labels(
    n_samples: int = 100, n_features: int = 100, seed: int = 0, *, n_classes: int = 2
):
    """Standard-normal inputs with labels drawn uniformly at random (nothing to learn but memory).

    Returns
    -------
    X : np.ndarray, float32, shape (n_samples, n_features)
    y : np.ndarray, int64, shape (n_samples,)
    """
    n_samples = positive_int("n_samples", n_samples)
    n_features = positive_int("n_features", n_features)
    if positive_int("n_classes", n_classes) < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    rng = make_rng(seed)
    X = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    return X, rng.integers(0, n_classes, size=n_samples).astype(np.int64)


def grid(low: float = -1.0, high: float = 1.0, n: int = 101):
    """A square grid of points for decision maps.

    Returns
    -------
    points : np.ndarray, float32, shape (n*n, 2), x varying fastest
    xs : np.ndarray, shape (n,), the coordinates along each axis
    """
    n = positive_int("n", n)
    low, high = finite_float("low", low), finite_float("high", high)
    if not high > low:
        raise ValueError(f"high must exceed low, got low={low}, high={high}")
    xs = np.linspace(low, high, n, dtype=np.float32)
    xx, yy = np.meshgrid(xs, xs)
    return np.stack([xx.ravel(), yy.ravel()], 1), xs
