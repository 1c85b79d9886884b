"""Progress bars that can be switched off for builds (``NNLEARN_PROGRESS=0``)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_enabled(progress: bool | None = None) -> bool:
    """``progress`` if given, else False when the environment sets ``NNLEARN_PROGRESS=0``."""
    if progress is not None:
        return bool(progress)
    return os.environ.get("NNLEARN_PROGRESS", "1") != "0"


def progress_bar(iterable=None, *, total=None, desc=None, progress: bool | None = None):
    """A tqdm bar over ``iterable`` unless progress is disabled."""
    return tqdm(
        iterable, total=total, desc=desc, disable=not progress_enabled(progress), leave=False
    )
