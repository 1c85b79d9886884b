"""CPU seconds one chapter's kernel spends executing it (a fair measure on a busy machine).

    .venv/bin/python benchmarks/cputime.py book/<slug>.md

With OMP_NUM_THREADS=1 (as the Makefile sets) the kernel's CPU time is close to the wall time
the chapter takes on an otherwise idle machine. Wall time is printed beside it.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NNLEARN_PROGRESS", "0")
os.environ.setdefault(
    "NNLEARN_RESULTS", str(Path(__file__).resolve().parents[1] / "_build" / "results-bench")
)
shared = Path(__file__).resolve().parents[2] / "shared" / "data"
if shared.is_dir():
    os.environ.setdefault("NNLEARN_DATA", str(shared))


def main(md: str) -> None:
    import jupytext
    from nbclient import NotebookClient

    path = Path(md)
    nb = jupytext.read(path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{path}: kernel CPU {cpu:.1f} s, wall {wall:.1f} s")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        main(arg)
