"""Book maintenance: executed, image-free notebook baselines and their pairing with the sources.

    python -m nnlearn.booktools baseline book/<slug>.md [...]

executes each MyST source (the file people edit) and writes the paired ``.ipynb`` beside it,
with text outputs only: images and widget views are dropped (their ``text/plain`` stays), so
git holds no image payloads and nbval compares text.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DROPPED_MIME_PREFIXES = ("image/", "application/vnd.jupyter.widget", "application/javascript")
MAX_HTML_CHARS = 20_000


def _html_is_payload(html) -> bool:
    """HTML that carries images (animations, inline PNGs) or is too big to review in a diff."""
    text = "".join(html) if isinstance(html, list) else str(html)
    return "data:image" in text or "base64" in text or len(text) > MAX_HTML_CHARS


def strip_outputs(nb):
    """Drop image, widget and image-carrying HTML payloads from every output. Returns ``nb``.

    Plain text stays, and so does small HTML without images (tables): nbval compares every
    mime type a checked cell produces, so a checked cell that shows a table needs its HTML.
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        kept = []
        for out in cell.get("outputs", []):
            if "data" in out:
                out["data"] = {
                    k: v for k, v in out["data"].items()
                    if not k.startswith(DROPPED_MIME_PREFIXES) and not (k == "text/html" and _html_is_payload(v))
                }
                if not out["data"]:
                    continue
            kept.append(out)
        cell.outputs = kept
    nb.metadata.pop("widgets", None)
    return nb


def code_sources(nb) -> list[str]:
    """The code cells' sources, stripped of trailing whitespace."""
    return [c.source.rstrip() for c in nb.cells if c.cell_type == "code"]


def baseline(md_path: str | os.PathLike, timeout: int = 600) -> Path:
    """Execute ``md_path`` and write its paired, image-free ``.ipynb``; returns that path."""
    import jupytext
    from nbclient import NotebookClient

    md_path = Path(md_path)
    if md_path.suffix != ".md" or not md_path.is_file():
        raise ValueError(f"md_path must be an existing .md chapter source, got {md_path}")
    nb = jupytext.read(md_path)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(md_path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    out = md_path.with_suffix(".ipynb")
    tmp = out.with_name(f".{out.stem}.tmp.ipynb")
    jupytext.write(strip_outputs(nb), tmp, fmt="ipynb")
    os.replace(tmp, out)
    print(f"{out}: executed in {elapsed:.1f} s")
    return out


def lock(path: str | os.PathLike) -> None:
    """Rewrite the lock file from the running environment (``pip freeze``)."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True, capture_output=True, text=True).stdout
    lines = [ln.replace("torch==2.13.0+cpu", "torch==2.13.0") for ln in frozen.splitlines() if not ln.lower().startswith("nnlearn")]
    header = Path(path).read_text().splitlines()
    header = [ln for ln in header if ln.startswith("#")]
    Path(path).write_text("\n".join(header + lines) + "\n")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "baseline":
        for md in argv[1:]:
            baseline(md)
        return 0
    if len(argv) == 2 and argv[0] == "lock":
        lock(argv[1])
        return 0
    print("usage: python -m nnlearn.booktools baseline BOOK/SLUG.md [...] | lock FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
