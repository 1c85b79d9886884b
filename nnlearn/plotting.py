"""Small figure helpers shared by chapters."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from nnlearn.checks import positive_int
from nnlearn.data.toy import grid


def decision_map(
    ax,
    predict,
    *,
    low=-1.0,
    high=1.0,
    n=151,
    X=None,
    y=None,
    cmap="RdBu_r",
    vmin=0.0,
    vmax=1.0,
    **imshow,
):
    """Colour the square [low, high]^2 by ``predict(points)`` and overlay labelled points.

    Parameters
    ----------
    ax : matplotlib Axes
    predict : callable, float32 array (M, 2) -> array-like (M,), e.g. P(class 1)
    X, y : optional data to overlay, shapes (N, 2) and (N,)

    Returns
    -------
    The ``AxesImage``.
    """
    if not callable(predict):
        raise TypeError(f"predict must be callable, got {type(predict).__name__}")
    points, xs = grid(low, high, n)
    values = predict(points)
    if isinstance(values, torch.Tensor):
        values = values.detach().numpy()
    values = np.asarray(values, dtype=float)
    if values.size != n * n:
        raise ValueError(
            f"predict must return one value per grid point ({n * n}), got {values.size}"
        )
    values = values.reshape(n, n)
    im = ax.imshow(
        values,
        origin="lower",
        extent=(low, high, low, high),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        **imshow,
    )
    if X is not None:
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, s=6, edgecolors="k", linewidths=0.2)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    return im


def image_grid(
    images,
    *,
    ncols: int = 10,
    titles=None,
    cmap="RdBu_r",
    symmetric: bool = True,
    size: float = 1.2,
):
    """Show images (N, H, W) in a grid, each with its own symmetric colour scale.

    Returns
    -------
    (fig, axes)
    """
    ncols = positive_int("ncols", ncols)
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size < 100:
        raise ValueError(f"size must be a number in (0, 100) inches, got {size!r}")
    if isinstance(images, (str, bytes)) or images is None:
        raise TypeError(f"images must be an array of shape (N, H, W), got {type(images).__name__}")
    images = np.asarray(images, dtype=float)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (N, H, W) with N >= 1, got {images.shape}")
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}), got {len(titles)}")
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        lim = np.nanmax(np.abs(images[i])) if np.isfinite(images[i]).any() else 1.0
        lim = lim or 1.0
        kw = {"vmin": -lim, "vmax": lim} if symmetric else {}
        ax.imshow(images[i], cmap=cmap, **kw)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    return fig, axes
