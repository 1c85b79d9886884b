"""Project-level checks: pins agree, chapter sources and baselines stay paired, baselines stay
image-free.
"""

import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from nnlearn.booktools import code_sources, strip_outputs, toc_slugs

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PAIRED = sorted(p for p in BOOK.glob("*.md") if "ipynb,md:myst" in p.read_text()[:600])


def _pins(lines):
    return {
        m[1].lower(): m[2]
        for m in (re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", ln) for ln in lines)
        if m
    }


def test_environment_yml_repeats_the_lock():
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    env = _pins((ROOT / "environment.yml").read_text().splitlines())
    assert lock["torch"] == "2.13.0"
    required = {
        "torch",
        "jupyter-book",
        "jupytext",
        "nbval",
        "ipywidgets",
        "matplotlib",
        "numpy",
        "scipy",
        "scikit-learn",
        "tqdm",
        "pooch",
        "pytest",
        "playwright",
        "sphinxcontrib-bibtex",
        "pyyaml",
    }
    assert required <= set(env), f"environment.yml lacks pins for {required - set(env)}"
    disagree = {k: (v, lock.get(k)) for k, v in env.items() if lock.get(k) != v}
    assert not disagree, f"environment.yml and requirements.lock disagree: {disagree}"


def test_every_toc_page_exists_and_every_chapter_is_listed():
    listed = toc_slugs(ROOT / "_toc.yml")
    assert listed[0] == "intro" and {"scorecard", "toolkit-tour", "references"} <= set(listed)
    assert len(set(listed)) == len(listed), f"a page is listed twice in _toc.yml: {listed}"
    for page in listed:
        assert (BOOK / f"{page}.md").is_file(), f"book/{page}.md is in _toc.yml but missing"
    for md in PAIRED:
        assert md.stem in listed, f"{md.name} is not in _toc.yml"


def test_toc_slugs_reads_parts_and_sections(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: A\n    chapters:\n      - file: "
        "book/a\n"
        "        sections:\n          - file: book/a-1\n      - url: https://example.org\n"
        "  - caption: B\n    chapters:\n      - file: book/b.md\n"
    )
    assert toc_slugs(toc) == ["intro", "a", "a-1", "b"]
    (tmp_path / "bad.yml").write_text("chapters: []\n")
    with pytest.raises(ValueError, match="toc_path"):
        toc_slugs(tmp_path / "bad.yml")


def test_chapters_sort_before_scorecard():
    # Sphinx reads (and so executes) pages in sorted order; the scorecard must come last.
    chapters = [p.stem for p in PAIRED if p.stem not in ("toolkit-tour", "scorecard")]
    assert all(c < "scorecard" for c in chapters), chapters
    # Every other page that sorts after the scorecard must have no code to run.
    for slug in toc_slugs(ROOT / "_toc.yml"):
        if slug > "scorecard" and slug != "toolkit-tour":
            assert "{code-cell}" not in (BOOK / f"{slug}.md").read_text(), (
                f"{slug} runs code after the scorecard"
            )


def test_bibliography_is_configured_and_append_friendly():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config.get("bibtex_bibfiles") == ["references.bib"], (
        "_config.yml must list references.bib in bibtex_bibfiles"
    )
    bib = (ROOT / "references.bib").read_text()
    assert bib.endswith("\n"), (
        "references.bib must end with a newline (chapters append to it with `cat >>`)"
    )
    keys = re.findall(r"^@\w+\{\s*([^,\s]+)\s*,", bib, flags=re.MULTILINE)
    dupes = {k for k in keys if keys.count(k) > 1}
    assert keys and not dupes, f"references.bib: duplicate keys {sorted(dupes)}"
    assert "lesswrong.com/search" not in bib and "google.com/search" not in bib, (
        "cite the post itself, not a search page"
    )
    assert "{bibliography}" in (BOOK / "references.md").read_text()


def test_mathjax_ships_with_the_book():
    """Formulas render offline: Sphinx loads the MathJax copy in book/_static, never a CDN."""
    import yaml

    path = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"].get(
        "mathjax_path", ""
    )
    assert path and "://" not in path, (
        f"mathjax_path must be a path under book/_static, got {path!r}"
    )
    script = BOOK / "_static" / path
    assert script.is_file() and script.stat().st_size > 100_000, f"{script} is missing"
    fonts = list((script.parent / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) >= 20, "the CommonHTML fonts are missing beside the MathJax script"


@pytest.mark.parametrize("md", PAIRED, ids=lambda p: p.stem)
def test_baseline_is_paired_and_current(md):
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run `make baseline CH={md.stem}`"
    src, base = jupytext.read(md), nbformat.read(ipynb, as_version=4)
    assert code_sources(src) == code_sources(base), (
        f"{ipynb.name} is stale: run `make baseline CH={md.stem}`"
    )
    executed = [c for c in base.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in executed), f"{ipynb.name} has unexecuted cells"
    raw = ipynb.read_text()
    assert '"image/png"' not in raw and "image/svg" not in raw, (
        f"{ipynb.name} carries image payloads"
    )


def test_strip_outputs_keeps_text_only():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": "AAA", "text/plain": "<Figure>"}),
        nbformat.v4.new_output(
            "display_data", data={"text/html": '<img src="data:image/png;base64,AAA">'}
        ),
        nbformat.v4.new_output(
            "display_data", data={"text/html": "<table></table>", "text/plain": "t"}
        ),
        nbformat.v4.new_output("stream", name="stdout", text="1.23\n"),
    ]
    nb.cells = [cell]
    out = strip_outputs(nb).cells[0].outputs
    assert [sorted(o["data"]) for o in out if "data" in o] == [
        ["text/plain"],
        ["text/html", "text/plain"],
    ]
    assert out[-1]["text"] == "1.23\n" and json.dumps(out).count("image/png") == 0


def test_a_failing_cell_fails_the_build(tmp_path):
    """The book's own _config.yml must turn an exception in any cell into a failed build."""
    import shutil
    import subprocess
    import sys

    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/bad\n"
    )
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    header = (ROOT / "book" / "toolkit-tour.md").read_text().split("---", 2)[1]
    (tmp_path / "book" / "bad.md").write_text(
        f"---{header}---\n\n# Bad\n\n```{{code-cell}} ipython3\nraise RuntimeError('boom')\n```\n"
    )
    jb = Path(sys.executable).parent / "jupyter-book"
    run = subprocess.run(
        [str(jb), "build", ".", "--path-output", ".", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0, "a cell raised, yet the build succeeded"
    assert "boom" in run.stdout + run.stderr or "CellExecutionError" in run.stdout + run.stderr
