"""Looking at single XOR runs: decision boundary, gate table, and an ipywidgets run browser.

The browser (:func:`explorer`) is for a live Jupyter session; the book shows the static
:func:`run_cards` figure instead.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from nnlearn import gates
from nnlearn.plotting import decision_map


def gate_rows(params, widths, k: int) -> list[tuple[str, str]]:
    """(unit, gate) rows describing network ``k``: every hidden unit, then the output."""
    params = gates._check_params(params, widths)
    if not 0 <= k < len(params):
        raise ValueError(f"k must index one of the {len(params)} runs, got {k!r}")
    one = params[k : k + 1]
    hid, out = gates.hidden_gates(one, widths)[0], gates.output_gates(one, widths)[0]
    rows = [(f"h{i + 1}", gates.gate_name(int(c), widths[0])) for i, c in enumerate(hid)]
    rows += [(f"out{j + 1}" if len(out) > 1 else "out", gates.gate_name(int(c), widths[1])) for j, c in enumerate(out)]
    return rows


def draw_run(ax, params, widths, k: int, *, title: str | None = None, n: int = 61):
    """Decision map of network ``k`` on [0, 1]^2 (P(1) colour) with its gates in the title."""
    params = gates._check_params(params, widths)
    one = params[k : k + 1]

    def predict(points):
        return torch.sigmoid(gates.forward(one, widths, torch.as_tensor(points))[1])[0, :, 0]

    X = gates.binary_inputs(2).numpy()
    decision_map(ax, predict, low=0.0, high=1.0, n=n, cmap="PiYG_r")
    ax.scatter(X[:, 0], X[:, 1], c=["white" if t == 0 else "black" for t in X.sum(1) % 2], s=22,
               edgecolors="k", linewidths=0.6, clip_on=False, zorder=3)   # the four XOR inputs (black: target 1)
    ax.set_xticks([0, 1])
    ax.set_yticks([0, 1])
    rows = gate_rows(params, widths, k)
    label = ", ".join(g for _, g in rows[:-1]) + "\n→ " + rows[-1][1]   # hidden gates, then the output gate
    ax.set_title(title if title is not None else label, fontsize=7)
    return ax


def run_cards(params, widths, runs, *, titles=None, ncols: int = 4, size: float = 1.9):
    """A grid of :func:`draw_run` panels, one per index in ``runs``; returns (fig, axes)."""
    runs = list(runs)
    if not runs:
        raise ValueError("runs must name at least one run")
    nrows = -(-len(runs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.1), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(runs):
            ax.axis("off")
            continue
        draw_run(ax, params, widths, runs[i], title=None if titles is None else titles[i])
    fig.tight_layout()
    return fig, axes


def explorer(params, widths, acc=None):
    """ipywidgets browser: pick a run, see its decision boundary and gate table (live Jupyter only)."""
    import ipywidgets as widgets
    from IPython.display import display

    params = gates._check_params(params, widths)
    out = widgets.Output()
    slider = widgets.IntSlider(0, 0, len(params) - 1, description="run")

    def show(change=None):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(3, 3))
            k = slider.value
            draw_run(ax, params, widths, k, title=f"run {k}" + ("" if acc is None else f", accuracy {float(acc[k]):.2f}"))
            plt.show()
            for unit, gate in gate_rows(params, widths, k):
                print(f"{unit:>5}: {gate}")

    slider.observe(show, names="value")
    show()
    display(widgets.VBox([slider, out]))
    return slider
