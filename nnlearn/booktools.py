"""Book maintenance: executed, image-free notebook baselines and their pairing with the sources.

    python -m nnlearn.booktools baseline book/<slug>.md [...]
    python -m nnlearn.booktools check-pair book/<slug>.md [...]
    python -m nnlearn.booktools canonical book/<slug>.md [...]

``baseline`` executes each MyST source (the file people edit) and writes the paired ``.ipynb``
beside it, with text outputs only: images and widget views are dropped (their ``text/plain``
stays), so git holds no image payloads and nbval compares text. ``check-pair`` exits non-zero,
saying what to run, when a source's code cells differ from its baseline's (``make check`` runs
it first). ``canonical`` rewrites a page in the form a jupytext save writes, so that opening and
saving it in Jupyter changes nothing (``tests/test_pairing.py`` checks every page).
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
                    k: v
                    for k, v in out["data"].items()
                    if not k.startswith(DROPPED_MIME_PREFIXES)
                    and not (k == "text/html" and _html_is_payload(v))
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


def toc_slugs(toc_path: str | os.PathLike) -> list[str]:
    """Every page of a Jupyter Book ``_toc.yml``, in reading order, root first.

    A page's slug is its file name without folder and suffix (``book/node-removal`` gives
    ``node-removal``). Parts, chapters and nested sections are all followed; entries that are
    not files (``url:``, ``glob:``) are skipped.
    """
    import yaml

    toc = yaml.safe_load(Path(toc_path).read_text())
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(
            f"toc_path: {toc_path} is not a Jupyter Book table of contents (no 'root:')"
        )
    slugs: list[str] = []

    def walk(entries):
        for entry in entries or []:
            if not isinstance(entry, dict):
                raise ValueError(f"toc_path: unexpected entry {entry!r} in {toc_path}")
            if "file" in entry:
                slugs.append(Path(str(entry["file"])).stem)
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    slugs.append(Path(str(toc["root"])).stem)
    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key))
    return slugs


def pair_problem(md_path: str | os.PathLike) -> str | None:
    """Why ``md_path`` and its paired ``.ipynb`` baseline disagree, or ``None`` when in sync."""
    import jupytext
    import nbformat

    md_path = Path(md_path)
    ipynb = md_path.with_suffix(".ipynb")
    slug = md_path.stem
    if not md_path.is_file():
        return f"{md_path} does not exist"
    if not ipynb.is_file():
        return f"{ipynb} is missing: run `make baseline CH={slug}`"
    src, base = (
        code_sources(jupytext.read(md_path)),
        code_sources(nbformat.read(ipynb, as_version=4)),
    )
    if src != base:
        differ = [i for i, (a, b) in enumerate(zip(src, base)) if a != b]
        where = (
            f"first differing code cell: #{differ[0] + 1}"
            if differ
            else f"{len(src)} code cells in .md, {len(base)} in .ipynb"
        )
        return (
            f"{md_path} and {ipynb.name} are out of sync ({where}): the baseline does not run the "
            f"code you edited. Run `make baseline CH={slug}` first, review the diff, then `make "
            f"check CH={slug}`."
        )
    return None


def _join_caption_lines(meta) -> None:
    for key, value in list(meta.items()) if isinstance(meta, dict) else []:
        if key == "caption" and isinstance(value, str) and "\n" in value.strip():
            meta[key] = " ".join(
                line.strip() for line in value.strip().splitlines() if line.strip()
            )
        else:
            _join_caption_lines(value)


def canonical_text(md_path: str | os.PathLike) -> str:
    """``md_path`` as jupytext writes it when the page is opened and saved unchanged.

    Figure captions written over several lines become one line (the same text in Markdown).
    Header metadata that a save would drop (jupytext keeps only its own and ``kernelspec`` by
    default; the scorecard's ``mystnb: execution_mode: force`` is one) is kept by naming it in
    the header's ``jupytext.notebook_metadata_filter``, so later saves keep it too.
    """
    import jupytext

    nb = jupytext.read(md_path)
    # a caption's line breaks are spaces in Markdown: one line, no folding noise
    for cell in nb.cells:
        _join_caption_lines(cell.get("metadata", {}))
    jmeta = nb.metadata.setdefault("jupytext", {})
    fmt = "md:" + jmeta.get("text_representation", {}).get("format_name", "markdown")
    lost = [
        k
        for k in nb.metadata
        if k not in jupytext.reads(jupytext.writes(nb, fmt=fmt), fmt=fmt).metadata
    ]
    if lost:
        kept = [k for k in str(jmeta.get("notebook_metadata_filter", "")).split(",") if k]
        jmeta["notebook_metadata_filter"] = ",".join(kept + [k for k in lost if k not in kept])
        nb.metadata["jupytext"] = dict(
            sorted(jmeta.items())
        )  # the order a save (via the .ipynb) writes
    text = jupytext.writes(nb, fmt=fmt)
    for _ in range(3):  # a re-read may order the header differently: iterate to the fixed point
        again = jupytext.writes(jupytext.reads(text, fmt=fmt), fmt=fmt)
        if again == text:
            break
        text = again
    return text


def baseline(md_path: str | os.PathLike, timeout: int = 600) -> Path:
    """Execute ``md_path`` and write its paired, image-free ``.ipynb``; returns that path."""
    import jupytext
    from nbclient import NotebookClient

    md_path = Path(md_path)
    if md_path.suffix != ".md" or not md_path.is_file():
        raise ValueError(f"md_path must be an existing .md chapter source, got {md_path}")
    nb = jupytext.read(md_path)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(md_path.parent)}},
    ).execute()
    elapsed = time.perf_counter() - start
    out = md_path.with_suffix(".ipynb")
    tmp = out.with_name(f".{out.stem}.tmp.ipynb")
    jupytext.write(strip_outputs(nb), tmp, fmt="ipynb")
    os.replace(tmp, out)
    print(f"{out}: executed in {elapsed:.1f} s")
    return out


def lock(path: str | os.PathLike) -> None:
    """Rewrite the lock file from the running environment (``pip freeze``)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [
        ln.replace("torch==2.13.0+cpu", "torch==2.13.0")
        for ln in frozen.splitlines()
        if not ln.lower().startswith("nnlearn")
    ]
    header = Path(path).read_text().splitlines()
    header = [ln for ln in header if ln.startswith("#")]
    Path(path).write_text("\n".join(header + lines) + "\n")


def format_cells(md_path: str | os.PathLike, line_length: int = 100) -> int:
    """Format every code cell of a MyST page with ruff, in place; returns how many changed.

    Only the code between a ```` ```{code-cell} ```` fence (after its ``:option:`` lines) and
    the closing fence is touched; cells holding IPython magics or shell escapes are left alone.
    """
    import re

    path = Path(md_path)
    text = path.read_text()
    pattern = re.compile(
        r"(^```\{code-cell\}[^\n]*\n(?:---\n.*?^---\n|(?::[^\n]*\n)*))(.*?)(^```[ \t]*$)",
        re.MULTILINE | re.DOTALL,
    )
    changed = 0

    def fmt(m):
        nonlocal changed
        body = m.group(2)
        if any(ln.lstrip().startswith(("%", "!")) for ln in body.splitlines()):
            return m.group(0)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                "format",
                "--line-length",
                str(line_length),
                "--stdin-filename",
                "cell.py",
                "-",
            ],
            input=body.rstrip() + "\n",
            text=True,
            capture_output=True,
        )
        if out.returncode != 0:
            raise ValueError(f"md_path: a code cell of {path} does not parse: {out.stderr[:300]}")
        if out.stdout != body.lstrip("\n"):
            changed += 1
        # jupytext writes a blank line between a cell's :option: lines and its code
        sep = "\n" if "\n:" in m.group(1) else ""
        return m.group(1) + sep + out.stdout + m.group(3)

    new = pattern.sub(fmt, text)
    if new != text:
        path.write_text(new)
    return changed


def _execute_page(md: str, timeout: int):
    """Worker of :func:`fill_execution_cache`: the page read as myst-nb reads it, executed."""
    from jupyter_cache.executors.utils import single_nb_execution
    from myst_nb.core.read import read_myst_markdown_notebook

    path = Path(md).resolve()
    nb = read_myst_markdown_notebook(path.read_text(), path=path)
    result = single_nb_execution(
        nb, cwd=str(path.parent), timeout=timeout, allow_errors=False, meta_override=True
    )
    return str(path), nb, result.time, result.exc_string if result.err is not None else None


def fill_execution_cache(
    cache_path: str | os.PathLike, pages, *, jobs: int = 2, timeout: int = 600
) -> list[str]:
    """Execute the pages that jupyter-cache does not hold yet, ``jobs`` at a time, and cache
    them as myst-nb's ``execute_notebooks: cache`` mode would, so the book build that follows
    finds every chapter executed (a page whose hash does not match is still executed by the
    build: nothing can go stale). Pages marked ``execution_mode: force`` (the scorecard) are
    left to the build, which runs them after the chapters. Returns the pages executed here.
    """
    from concurrent.futures import ProcessPoolExecutor

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import read_myst_markdown_notebook

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    cache = get_cache(str(cache_path))
    todo = []
    for md in pages:
        path = Path(md)
        text = path.read_text()
        header = text.split("\n---", 1)[0]
        if "ipynb,md:myst" not in header or "execution_mode: force" in header:
            continue
        try:
            cache.match_cache_notebook(read_myst_markdown_notebook(text, path=path.resolve()))
        except KeyError:
            todo.append(str(path))
    failed = []
    with ProcessPoolExecutor(max_workers=min(jobs, max(len(todo), 1))) as pool:
        futures = [pool.submit(_execute_page, md, timeout) for md in todo]
        for fut in futures:
            path, nb, seconds, error = fut.result()
            if error is not None:
                failed.append(f"{path}:\n{error}")
                continue
            cache.add_nb_to_project(path)
            cache.cache_notebook_bundle(
                CacheBundleIn(nb, path, data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            print(f"{Path(path).name}: executed in {seconds:.1f} s")
    if failed:
        raise RuntimeError("executing a page failed:\n" + "\n".join(failed))
    return todo


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "baseline":
        for md in argv[1:]:
            baseline(md)
        return 0
    if len(argv) >= 2 and argv[0] == "check-pair":
        problems = [p for p in map(pair_problem, argv[1:]) if p]
        for p in problems:
            print(f"error: {p}", file=sys.stderr)
        return 1 if problems else 0
    if len(argv) >= 2 and argv[0] == "canonical":
        for md in argv[1:]:
            text = canonical_text(md)
            if Path(md).read_text() != text:
                Path(md).write_text(text)
                print(f"{md}: rewritten in canonical jupytext form")
        return 0
    if len(argv) >= 2 and argv[0] == "format":
        for md in argv[1:]:
            if format_cells(md):
                print(f"{md}: code cells reformatted with ruff")
        return 0
    if len(argv) >= 3 and argv[0] == "fill-cache":
        jobs = int(os.environ.get("BOOK_JOBS", "2"))
        fill_execution_cache(argv[1], argv[2:], jobs=jobs)
        return 0
    if len(argv) == 2 and argv[0] == "lock":
        lock(argv[1])
        return 0
    print(
        "usage: python -m nnlearn.booktools baseline|check-pair|canonical|format BOOK/SLUG.md"
        " [...] | fill-cache CACHE BOOK/SLUG.md [...] | lock FILE",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
