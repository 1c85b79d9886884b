"""Argument checks shared across nnlearn: clear errors naming the argument and what was expected."""

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


def finite_float(
    name: str, value, *, low: float | None = None, high: float | None = None, strict: bool = False
) -> float:
    """``value`` as a finite float, or TypeError (not a real number) / ValueError (NaN, inf,
    or outside ``[low, high]``; ``(low, high)`` with ``strict``) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (strict and value == low)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    if high is not None and (value > high or (strict and value == high)):
        raise ValueError(f"{name} must be {'<' if strict else '<='} {high}, got {value}")
    return value


def index_in_range(name: str, value, size: int) -> int:
    """``value`` as an index in ``[0, size)`` (negative indices are refused, not wrapped)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must lie in [0, {size}), got {value}")
    return int(value)
