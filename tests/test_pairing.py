"""Opening and saving an unchanged page in Jupyter (jupytext) must change nothing.

Each ``book/*.md`` is copied, with its paired ``.ipynb`` and the project's jupytext
configuration, into a temporary folder, opened and saved through jupytext's contents manager
(what Jupyter Lab does), and compared byte for byte with the original. A page that fails is not
in canonical jupytext form: ``python -m nnlearn.booktools canonical book/<slug>.md`` rewrites it
(review the diff; captions written as YAML block scalars ``|`` become quoted strings, a blank line
follows cell options such as ``:tags:``). Check one page with ``pytest tests/test_pairing.py -k
<slug>``.
"""

import difflib
import os
import shutil
from pathlib import Path

import jupytext
import pytest

from nnlearn.booktools import canonical_text

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "book").glob("*.md"))
CONFIGS = ("jupytext.toml", ".jupytext.toml", "pyproject.toml")


def _save_in_jupyter(md: Path, tmp: Path, text: str | None = None) -> str:
    """``md`` (or ``text`` in its place) after an open and a save in Jupyter."""
    from jupyter_server.services.contents.largefilemanager import LargeFileManager
    from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class

    (tmp / "book").mkdir()
    for name in CONFIGS:
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, tmp / name)
    copy = tmp / "book" / md.name
    shutil.copy(md, copy)
    if text is not None:
        copy.write_text(text)
    ipynb = md.with_suffix(".ipynb")
    if ipynb.is_file():
        shutil.copy(ipynb, copy.with_suffix(".ipynb"))
        stamp = copy.with_suffix(".ipynb").stat().st_mtime
        os.utime(copy, (stamp + 1, stamp + 1))  # the text file is the newer one, as after an edit
    manager = build_sync_jupytext_contents_manager_class(LargeFileManager)(root_dir=str(tmp))
    path = f"book/{md.name}"
    manager.save(manager.get(path, content=True, type="notebook"), path)
    return copy.read_text()


def _diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), "committed", "after a save", lineterm="", n=1
    )
    return "\n".join(list(lines)[:40])


@pytest.mark.parametrize("md", PAGES, ids=lambda p: p.stem)
def test_saving_an_unchanged_page_is_a_no_op(md, tmp_path):
    before = md.read_text()
    after = _save_in_jupyter(md, tmp_path)
    assert after == before, (
        f"book/{md.name} is not in canonical jupytext form: opening and saving it in Jupyter "
        "rewrites it. "
        f"Run `.venv/bin/python -m nnlearn.booktools canonical book/{md.name}` and review the "
        "diff:\n" + _diff(before, after)
    )


@pytest.mark.parametrize("md", PAGES, ids=lambda p: p.stem)
def test_canonical_helper_gives_a_page_a_save_keeps(md, tmp_path):
    """`booktools canonical` (the fix the message above suggests) leaves a page a save does not
    change, with the same cells and the same header metadata."""
    text = canonical_text(md)
    assert _save_in_jupyter(md, tmp_path, text) == text
    fmt = "md:" + jupytext.read(md).metadata["jupytext"].get("text_representation", {}).get(
        "format_name", "markdown"
    )
    old, new = jupytext.read(md), jupytext.reads(text, fmt=fmt)
    assert [(c.cell_type, c.source.strip()) for c in old.cells] == [
        (c.cell_type, c.source.strip()) for c in new.cells
    ]
    assert {k: v for k, v in old.metadata.items() if k != "jupytext"} == {
        k: v for k, v in new.metadata.items() if k != "jupytext"
    }


def test_scorecard_keeps_forced_execution(tmp_path):
    """The scorecard must re-execute on every build, and a Jupyter save must not drop that."""
    scorecard = ROOT / "book" / "scorecard.md"
    meta = jupytext.read(scorecard).metadata
    assert meta.get("mystnb", {}).get("execution_mode") == "force", (
        "book/scorecard.md lost `mystnb: execution_mode: force` from its header: the scorecard "
        "would be "
        "served from the execution cache and show stale results"
    )
    saved = jupytext.reads(_save_in_jupyter(scorecard, tmp_path), fmt="md:myst").metadata
    assert saved.get("mystnb", {}).get("execution_mode") == "force", (
        "a Jupyter save drops `mystnb: execution_mode: force` from book/scorecard.md: add "
        "`notebook_metadata_filter: mystnb` under `jupytext:` in its header"
    )


def test_fill_execution_cache_skips_forced_and_plain_pages(tmp_path):
    from nnlearn.booktools import fill_execution_cache

    header = (ROOT / "book" / "scorecard.md").read_text()
    assert "execution_mode: force" in header
    (tmp_path / "forced.md").write_text(header)
    (tmp_path / "plain.md").write_text("# A page without code\n")
    cache = tmp_path / "cache"
    pages = [tmp_path / "forced.md", tmp_path / "plain.md"]
    assert fill_execution_cache(cache, pages, jobs=1) == []
    with pytest.raises(ValueError, match="jobs"):
        fill_execution_cache(cache, pages, jobs=0)
