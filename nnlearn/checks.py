"""Argument checks shared across nnlearn: clear errors that name the argument and what was expected."""

from __future__ import annotations

import numpy as np


def positive_int(name: str, value) -> int:
    """``value`` as an int, or TypeError (not an int) / ValueError (< 1) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_choice(name: str, value, choices) -> None:
    """ValueError naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
