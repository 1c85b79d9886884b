"""`make bench`: batched ensemble training against a Python loop, and each page's execution time.

A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from nnlearn.data import xor_data
from nnlearn.ensemble import Ensemble, train_ensemble
from nnlearn.models import MLP
from nnlearn.train import fit

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = {"how-networks-learn": 90}


def bench_ensemble(k: int = 100, epochs: int = 500) -> None:
    X, y = xor_data()
    y = y.astype(np.float32)
    make = lambda s: MLP([2, 2, 1], "sigmoid", seed=s)  # noqa: E731
    train_ensemble(Ensemble.from_seeds(make, range(2)), X, y, loss="bce", epochs=5)  # warm-up
    start = time.perf_counter()
    train_ensemble(Ensemble.from_seeds(make, range(k)), X, y, loss="bce", optimizer="adam", lr=0.05, epochs=epochs)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for s in range(k):
        fit(make(s), X, y, loss="bce", optimizer="adam", lr=0.05, epochs=epochs)
    loop = time.perf_counter() - start
    print(f"{k} XOR networks x {epochs} epochs: batched {batched:.2f} s, one at a time {loop:.2f} s, "
          f"speed-up {loop / batched:.0f}x")


def bench_pages() -> None:
    import jupytext
    from nbclient import NotebookClient

    toc = (ROOT / "_toc.yml").read_text().split()
    pages = [ROOT / f"{t}.md" for t in toc if t.startswith("book/")]
    total = 0.0
    print(f"{'page':32s} {'seconds':>8s} {'budget':>7s}")
    for md in pages:
        if "kernelspec:" not in md.read_text()[:800]:  # plain pages (the intro) execute nothing
            continue
        nb = jupytext.read(md)
        start = time.perf_counter()
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(md.parent)}}).execute()
        took = time.perf_counter() - start
        total += took
        budget = BUDGETS.get(md.stem, 60)
        print(f"{md.stem:32s} {took:8.1f} {budget:7d}{'  OVER BUDGET' if took > budget else ''}")
    print(f"{'all pages':32s} {total:8.1f}")


if __name__ == "__main__":
    bench_ensemble()
    if "--no-pages" not in sys.argv:
        bench_pages()
