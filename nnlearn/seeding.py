"""Seeding: one call makes every random draw in a run repeatable."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    return int(seed)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and make PyTorch deterministic.

    Parameters
    ----------
    seed : int
        Seed in [0, 2**63) (what torch.manual_seed accepts).

    Returns
    -------
    torch.Generator
        A generator seeded with ``seed``, for code that prefers explicit generators.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    return make_generator(seed)


def make_generator(seed: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded with ``seed`` (no global state touched)."""
    g = torch.Generator()
    g.manual_seed(_check_seed(seed))
    return g


def make_rng(seed: int) -> np.random.Generator:
    """A fresh NumPy ``Generator`` seeded with ``seed``."""
    return np.random.default_rng(_check_seed(seed))
