"""`make bench`: the batched-training engine against a Python loop, the chapters' fast paths
against the engine, and each page's execution time.

A benchmark, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from nnlearn import config, engine
from nnlearn.data import xor_data
from nnlearn.models import MLP, MLPStack
from nnlearn.train import fit

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = {"how-networks-learn": 90}


def _clock() -> float:
    """CPU seconds of this process (fair on a busy machine with one thread; wall time otherwise)."""
    return (
        time.process_time()
        if torch.get_num_threads() == 1 and config.device().type == "cpu"
        else time.perf_counter()
    )


def _timed(fn):
    if config.device().type == "cuda":
        torch.cuda.synchronize()
    start = _clock()
    out = fn()
    if config.device().type == "cuda":
        torch.cuda.synchronize()
    return out, _clock() - start


def _row(what: str, name_a: str, a: float, name_b: str, b: float, agree: str) -> None:
    print(f"  {what:44s} {name_a} {a:6.2f} s | {name_b} {b:6.2f} s | {b / a:5.1f}x | {agree}")


def bench_ensemble(k: int = 100, epochs: int = 500) -> None:
    """The engine (batched) against K separate nnlearn.train.fit runs."""
    X, y = xor_data()
    y = y.astype(np.float32)
    make = lambda s: MLP([2, 2, 1], "sigmoid", seed=s)
    stack = MLPStack([2, 2, 1], "sigmoid")
    kw = dict(loss="bce", optimizer="adam", lr=0.05, epochs=epochs)
    engine.train(
        stack, stack.init(range(2)), X, y, **{**kw, "epochs": 5}, progress=False
    )  # warm-up
    run, batched = _timed(
        lambda: engine.train(stack, stack.init(range(k)), X, y, **kw, record="none", progress=False)
    )
    nets, loop = _timed(
        lambda: [(m := make(s), fit(m, X, y, **kw, progress=False))[0] for s in range(k)]
    )
    diff = max(
        (run.params[n][i] - p.detach()).abs().max().item()
        for i, m in enumerate(nets)
        for n, p in m.named_parameters()
    )
    print(
        f"{k} XOR networks x {epochs} epochs: batched engine {batched:.2f} s, one at a time (fit) "
        f"{loop:.2f} s, "
        f"speed-up {loop / batched:.0f}x (largest parameter difference {diff:.1e})"
    )


def bench_fast_paths() -> None:
    """Chapters' hand-written fast paths against the same training configured in the general engine.

    Each pair computes the same numbers (tests/test_engine.py checks that they agree); the
    columns are the fast path's time, the engine's, and how many times slower the engine is.
    """
    from nnlearn.studies import knowledge_localization as loc
    from nnlearn.studies import learning_xor as G

    print("fast paths kept beside the engine (time, engine time, engine / fast path):")
    X, Y = G.binary_inputs(2), torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    for K, epochs in ((4000, 200), (1000, 2000)):
        p0 = G.init_params((2, 2, 1), range(K))
        kw = dict(optimizer="adam", lr=0.01, epochs=epochs, record_every=10)
        a, ta = _timed(lambda: G.train_sigmoid_nets(p0, (2, 2, 1), X, Y, **kw))
        b, tb = _timed(lambda: G.train_sigmoid_nets(p0, (2, 2, 1), X, Y, use_engine=True, **kw))
        _row(
            f"learning-xor K-last, {K} 2-2-1 nets x {epochs}",
            "K-last",
            ta,
            "engine",
            tb,
            f"same accuracy in {(a.acc[-1] == b.acc[-1]).mean():.1%} of runs",
        )
    g = torch.Generator().manual_seed(0)
    N, K, T = 2000, 5, 2000
    Xl = torch.rand(N, 784, generator=g, dtype=torch.float64)
    order = np.stack([np.random.default_rng(k).permutation(N)[:T] for k in range(K)])
    kw = dict(lr=1e-3, groups=order % 4, n_groups=4)
    init = loc.he_params(range(K), n_in=784, hidden=100)
    a, ta = _timed(lambda: loc.per_example_sgd(init, Xl, order, order % 2, **kw))
    b, tb = _timed(lambda: loc.per_example_sgd(init, Xl, order, order % 2, use_engine=True, **kw))
    diff = max((a.tallies[n] - b.tallies[n]).abs().max().item() for n in loc.PARAM_NAMES)
    _row(
        f"knowledge-localization chunked, {K} x {T} steps",
        "chunked",
        ta,
        "engine",
        tb,
        f"largest tally difference {diff:.1e}",
    )


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
        NotebookClient(
            nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(md.parent)}}
        ).execute()
        took = time.perf_counter() - start
        total += took
        budget = BUDGETS.get(md.stem, 60)
        print(f"{md.stem:32s} {took:8.1f} {budget:7d}{'  OVER BUDGET' if took > budget else ''}")
    print(f"{'all pages':32s} {total:8.1f}")


if __name__ == "__main__":
    print(f"device: {config.device()}, torch threads: {torch.get_num_threads()}")
    bench_ensemble()
    bench_fast_paths()
    if "--no-pages" not in sys.argv:
        bench_pages()
