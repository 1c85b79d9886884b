"""Verdict rows: what each chapter claims to have checked, written for the replication scorecard.

A chapter builds its rows from computed values, shows them with :func:`verdict_table` and
saves them with :func:`record_results` to ``<results dir>/<chapter-slug>.json``. The results
folder is ``$NNLEARN_RESULTS`` if set, else ``_build/results`` under the book's root (the
nearest folder above the working directory holding ``_toc.yml``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path

VERDICTS = ("replicated", "partly", "not replicated", "not testable")


@dataclass(frozen=True)
class Row:
    """One claim: the source's value or statement, ours (with uncertainty) and the verdict."""

    claim: str
    source: str
    ours: str
    verdict: str

    def __post_init__(self):
        for name in ("claim", "source", "ours", "verdict"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Row.{name} must be a str, got {type(getattr(self, name)).__name__}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"Row.verdict must be one of {VERDICTS}, got {self.verdict!r}")


class VerdictTable:
    """Rows rendered as HTML in the book and as fixed text for regression baselines."""

    columns = ("claim", "source", "ours", "verdict")

    def __init__(self, rows):
        self.rows = [r if isinstance(r, Row) else Row(**r) for r in rows]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(getattr(r, c))}</td>" for c in self.columns) + "</tr>" for r in self.rows
        )
        return f'<table class="verdict-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        return "\n".join(f"[{r.verdict}] {r.claim} | source: {r.source} | ours: {r.ours}" for r in self.rows)


def verdict_table(rows) -> VerdictTable:
    """Display object for a list of :class:`Row` (or dicts with the same keys)."""
    return VerdictTable(rows)


def find_book_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return None


def results_dir() -> Path:
    """Where verdict rows are written and read (see module docstring)."""
    env = os.environ.get("NNLEARN_RESULTS")
    if env:
        return Path(env)
    root = find_book_root()
    return (root if root is not None else Path.cwd()) / "_build" / "results"


def record_results(slug: str, rows, *, title: str | None = None, folder: str | os.PathLike | None = None) -> Path:
    """Write ``rows`` for chapter ``slug`` as JSON, atomically; returns the file's path."""
    if not isinstance(slug, str) or not slug or "/" in slug:
        raise ValueError(f"slug must be a non-empty file-name-safe str, got {slug!r}")
    table = VerdictTable(rows)
    if not table.rows:
        raise ValueError("rows must not be empty")
    out_dir = Path(folder) if folder is not None else results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"slug": slug, "title": title or slug, "rows": [asdict(r) for r in table.rows]}
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{slug}.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, out_dir / f"{slug}.json")
    return out_dir / f"{slug}.json"


def load_results(folder: str | os.PathLike | None = None) -> dict[str, dict]:
    """Every recorded chapter in the results folder: ``{slug: {"title", "rows"}}``."""
    out_dir = Path(folder) if folder is not None else results_dir()
    found = {}
    for path in sorted(out_dir.glob("*.json")) if out_dir.is_dir() else []:
        data = json.loads(path.read_text())
        data["rows"] = [Row(**r) for r in data["rows"]]
        found[data["slug"]] = data
    return found


def toc_chapters(toc_path: str | os.PathLike, skip=("intro", "toolkit-tour", "scorecard")) -> list[str]:
    """Chapter slugs listed in a Jupyter Book ``_toc.yml``, in order, without the shell pages."""
    import re

    text = Path(toc_path).read_text()
    slugs = [Path(m).stem for m in re.findall(r"^\s*-?\s*(?:file|root):\s*(\S+)", text, flags=re.M)]
    return [s for s in slugs if s not in skip]


def scorecard(chapters: list[str], folder: str | os.PathLike | None = None):
    """Summary and rows for every chapter: ``(summary_rows, detail, missing)``.

    summary_rows : list of (slug, title, counts per verdict) for chapters that recorded results
    detail : {slug: recorded data}
    missing : chapters in ``chapters`` with no recorded results (not run yet)
    """
    found = load_results(folder)
    summary, missing = [], []
    for slug in chapters:
        if slug not in found:
            missing.append(slug)
            continue
        counts = {v: sum(r.verdict == v for r in found[slug]["rows"]) for v in VERDICTS}
        summary.append((slug, found[slug]["title"], counts))
    return summary, {s: found[s] for s in chapters if s in found}, missing
