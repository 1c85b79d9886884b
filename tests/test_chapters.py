"""Chapters read like papers: formatted code in short cells, no visible test bookkeeping,
no raw reprs in printed output, and the claims protocol in every chapter."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PAGES = sorted(p for p in BOOK.glob("*.md") if "ipynb,md:myst" in p.read_text()[:600])
CHAPTERS = [p for p in PAGES if p.stem not in ("toolkit-tour", "scorecard")]
MAX_CELL_LINES = 30
MAX_LINE = 100


def _code_cells(md: Path):
    return [c for c in jupytext.read(md).cells if c.cell_type == "code"]


def _python(source: str) -> str:
    """A cell's source without IPython magics and shell escapes (ruff cannot parse them)."""
    return "\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!")))


@pytest.mark.parametrize("md", PAGES, ids=lambda p: p.stem)
def test_cells_are_short_and_lines_fit(md):
    for i, cell in enumerate(_code_cells(md)):
        lines = cell.source.splitlines()
        assert len(lines) <= MAX_CELL_LINES, (
            f"{md.name}: code cell {i} has {len(lines)} lines (> {MAX_CELL_LINES}); move logic "
            "into functions in the chapter's study module"
        )
        long = [ln for ln in lines if len(ln) > MAX_LINE]
        assert not long, (
            f"{md.name}: code cell {i} has lines over {MAX_LINE} characters: {long[:2]}"
        )


@pytest.mark.parametrize("md", PAGES, ids=lambda p: p.stem)
def test_cells_are_ruff_formatted(md):
    for i, cell in enumerate(_code_cells(md)):
        src = _python(cell.source).rstrip() + "\n"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                "format",
                "--line-length",
                "100",
                "--stdin-filename",
                "cell.py",
                "-",
            ],
            input=src,
            text=True,
            capture_output=True,
        )
        assert out.returncode == 0, f"{md.name}: cell {i} does not parse: {out.stderr[:300]}"
        assert out.stdout == src, f"{md.name}: code cell {i} is not ruff-formatted:\n{src[:400]}"


@pytest.mark.parametrize("md", PAGES, ids=lambda p: p.stem)
def test_no_visible_nbval_markers(md):
    for i, cell in enumerate(_code_cells(md)):
        assert "NBVAL_" not in cell.source, (
            f"{md.name}: cell {i} carries an nbval comment marker; use the cell tag "
            "nbval-check-output (readers do not see tags)"
        )


@pytest.mark.parametrize("md", PAGES, ids=lambda p: p.stem)
def test_no_raw_reprs_in_printed_output(md):
    nb = json.loads(md.with_suffix(".ipynb").read_text())
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            assert not re.search(r"np\.(str_|float64|int64|bool_)\(", text), (
                f"{md.name}: cell {i} prints a numpy repr: {text[:200]}"
            )


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_declares_and_records_claims(md):
    text = md.read_text()
    assert "Claims(" in text and ".declared()" in text and ".record(" in text, (
        f"{md.name}: a chapter declares its claims (Claims(...), .declared()) and records them"
    )
    assert "nnlearn.results" not in text, f"{md.name}: still uses the retired nnlearn.results"
    assert re.search(r"^#+ .*[Rr]ule changes", text, re.MULTILINE), (
        f"{md.name}: no 'Rule changes' section"
    )
    assert re.search(r"^#+ .*[Rr]elated work", text, re.MULTILINE), (
        f"{md.name}: no 'Related work' section"
    )
    assert "{cite" in text, f"{md.name}: cites nothing with {{cite}} roles"
