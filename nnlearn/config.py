"""Run-time settings read from the environment, each in one place.

``NNLEARN_SCALE``
    ``book`` (default: what CI runs, at least each source's own scale), ``paper`` (ten times
    the runs and seeds of every chapter) or a positive number (that multiple). Chapters ask
    :func:`scaled` for their run counts, so changing the scale needs no code change.
``NNLEARN_DEVICE``
    A torch device string (default ``cpu``); :func:`device` reads it once.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import torch

SCALES = {"book": 1.0, "paper": 10.0}


def scale_factor(value: str | None = None) -> float:
    """The multiplier named by ``value`` (default: ``$NNLEARN_SCALE``, else ``book``)."""
    raw = os.environ.get("NNLEARN_SCALE", "book") if value is None else value
    if not isinstance(raw, str):
        raise TypeError(f"NNLEARN_SCALE must be a str, got {type(raw).__name__}")
    key = raw.strip().lower()
    if key in SCALES:
        return SCALES[key]
    try:
        factor = float(key)
    except ValueError:
        raise ValueError(
            f"NNLEARN_SCALE must be 'book', 'paper' or a positive number, got {raw!r}"
        ) from None
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"NNLEARN_SCALE must be a positive finite number, got {raw!r}")
    return factor


def scaled(n: int, *, minimum: int | None = None) -> int:
    """``n`` runs at the book's scale, multiplied by the scale factor (never below ``n``
    at the default scale, never below ``minimum`` or 1 at any scale)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = max(1, int(round(n * scale_factor())))
    return max(out, minimum) if minimum is not None else out


@lru_cache(maxsize=1)
def device() -> torch.device:
    """The torch device named by ``$NNLEARN_DEVICE`` (default ``cpu``), read once."""
    name = os.environ.get("NNLEARN_DEVICE", "cpu").strip() or "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"NNLEARN_DEVICE must be a torch device such as 'cpu' or 'cuda', got {name!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"NNLEARN_DEVICE={name!r} but no CUDA device is available")
    return dev
