"""The book build as `make` runs it: fresh output after a package change, one results folder per
build, strict warnings, and the small Makefile targets around it.

Each test builds a tiny throwaway book in a temporary folder with the project's real Makefile,
``_config.yml`` and ``references.bib`` (and, where a package is needed, a tiny fake ``nnlearn``
that shadows the real one through ``PYTHONPATH``), so the Makefile's own logic is exercised in a
few seconds per build. Run them alone with ``pytest -m build tests/test_build.py``.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
pytestmark = pytest.mark.build

HEADER = """---
jupytext:
  formats: ipynb,md:myst
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
    jupytext_version: 1.19.6
kernelspec:
  display_name: Python 3
  language: python
  name: python3
{extra}---
"""

FAKE_PACKAGE = """import json, os
from pathlib import Path

VALUE = "{value}"


def record(slug, token):
    folder = Path(os.environ["NNLEARN_RESULTS"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{{slug}}.json").write_text(json.dumps({{"token": token}}))


def recorded(slug):
    return json.loads((Path(os.environ["NNLEARN_RESULTS"]) / f"{{slug}}.json").read_text())["token"]
"""


def _book(tmp, toc_files, pages, package=True):
    """A throwaway book in ``tmp`` using the project's Makefile and configuration.

    With ``package``, a fake ``nnlearn`` sits beside it (the Makefile hashes ``nnlearn/``); the
    builds import it through ``PYTHONPATH``.
    """
    if not (VENV / ".installed").is_file():
        pytest.skip("the project's .venv is not set up (run `make book` once)")
    for name in (
        "Makefile",
        "_config.yml",
        "references.bib",
        "requirements.lock",
        "pyproject.toml",
    ):
        shutil.copy(ROOT / name, tmp / name)
        os.utime(tmp / name, (0, 0))  # older than .venv/.installed: `make book` installs nothing
    (tmp / ".venv").symlink_to(VENV)
    (tmp / "book").mkdir()
    shutil.copytree(ROOT / "book" / "_static", tmp / "book" / "_static")
    toc = "format: jb-book\nroot: book/intro\n" + ("chapters:\n" if toc_files else "")
    toc += "".join(f"  - file: book/{f}\n" for f in toc_files)
    (tmp / "_toc.yml").write_text(toc)
    for name, text in {"intro": "# Intro\n", **pages}.items():
        (tmp / "book" / f"{name}.md").write_text(text)
    if package:
        (tmp / "nnlearn").mkdir()
        (tmp / "nnlearn" / "__init__.py").write_text(FAKE_PACKAGE.format(value="alpha-1"))
    return tmp


def _clean_env(**env):
    """The environment without what an outer `make` (e.g. `make test STRICT=0`) passes down."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "MAKEFLAGS",
            "MFLAGS",
            "MAKELEVEL",
            "MAKEOVERRIDES",
            "STRICT",
            "LAB_ARGS",
            "NNLEARN_RESULTS",
        )
    }
    return {**environ, **env}


def _make(tmp, *args, check=True, timeout=600, **env):
    environ = _clean_env(**{"PYTHONPATH": str(tmp), **env})
    run = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=tmp,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert run.returncode == 0, (
            f"make {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        )
    return run


def _page(tmp, name):
    return (tmp / "_build" / "html" / "book" / f"{name}.html").read_text()


def _token(html, what):
    found = re.findall(rf"{what} TOKEN=([0-9a-f]{{32}})", html)
    assert len(found) == 1, f"expected one {what} token on the page, found {found}"
    return found[0]


def test_fresh_numbers_and_one_results_folder_per_build(tmp_path):
    """make book -> make nbval -> make book -> change nnlearn -> make book.

    The chapter prints a value from ``nnlearn`` and records a fresh random token as its result;
    the scorecard (forced execution, read last) prints the token it finds in ``$NNLEARN_RESULTS``.
    After every build the scorecard must show the token of the chapter page beside it (not the
    one the nbval run wrote), and after ``nnlearn`` changes the chapter page must show the new
    value (it is re-read and re-executed, although its own source did not change).
    """
    chapter = HEADER.format(extra="") + (
        "\n# Chapter\n\n```{code-cell} ipython3\nimport uuid\nimport nnlearn\n\n"
        'token = uuid.uuid4().hex\nnnlearn.record("chapter", token)\n'
        'print(f"VALUE={nnlearn.VALUE} CHAPTER TOKEN={token}")\n```\n'
    )
    scorecard = HEADER.format(extra="mystnb:\n  execution_mode: force\n") + (
        "\n# Scorecard\n\n```{code-cell} ipython3\nimport nnlearn\n\n"
        "print(f\"SCORECARD TOKEN={nnlearn.recorded('chapter')}\")\n```\n"
    )
    tmp = _book(tmp_path, ["chapter", "scorecard"], {"chapter": chapter, "scorecard": scorecard})
    jupytext.write(
        jupytext.read(tmp / "book" / "chapter.md"), tmp / "book" / "chapter.ipynb", fmt="ipynb"
    )

    def agree(step):
        page, card = _page(tmp, "chapter"), _page(tmp, "scorecard")
        assert _token(card, "SCORECARD") == _token(page, "CHAPTER"), (
            f"after {step}: the scorecard shows results the chapter page beside it did not compute"
        )
        return page

    _make(tmp, "book")
    assert "VALUE=alpha-1" in agree("the first make book")
    _make(tmp, "nbval")  # executes book/chapter.ipynb: records a new token, in nbval's folder
    assert (tmp / "_build" / "results" / "chapter.json").is_file(), (
        "nbval did not write to _build/results"
    )
    _make(tmp, "book")
    agree("nbval, then make book")
    (tmp / "nnlearn" / "__init__.py").write_text(FAKE_PACKAGE.format(value="beta-2"))
    run = _make(tmp, "book")
    assert "re-read and re-executed" in run.stdout
    page = agree("a change to nnlearn, then make book")
    assert "VALUE=beta-2" in page, "the chapter page still shows the value of the old nnlearn"


def test_broken_reference_fails_the_strict_build(tmp_path):
    """A reference to a missing label warns with STRICT=0 and fails `make html` by default."""
    tmp = _book(
        tmp_path,
        ["page"],
        {"page": "# Page\n\nSee {numref}`fig-does-not-exist` and {ref}`no-such-label`.\n"},
    )
    loose = _make(tmp, "html", "STRICT=0")
    assert "no-such-label" in loose.stdout + loose.stderr, "the broken reference gave no warning"
    strict = _make(tmp, "html", check=False)  # STRICT=1 is the default
    out = strict.stdout + strict.stderr
    assert strict.returncode != 0, (
        f"a broken reference did not fail the strict build:\n{out[-2000:]}"
    )
    assert "no-such-label" in out and "fig-does-not-exist" in out, (
        "the failure does not name both broken references"
    )


def test_check_refuses_an_out_of_sync_pair(tmp_path):
    md = HEADER.format(extra="") + "\n# X\n\n```{code-cell} ipython3\nprint(1)\n```\n"
    tmp = _book(tmp_path, ["x"], {"x": md}, package=False)  # the real nnlearn.booktools runs
    nb = jupytext.read(tmp / "book" / "x.md")
    jupytext.write(nb, tmp / "book" / "x.ipynb", fmt="ipynb")
    ok = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "nnlearn.booktools", "check-pair", "book/x.md"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    (tmp / "book" / "x.md").write_text(md.replace("print(1)", "print(2)"))
    run = _make(tmp, "check", "CH=x", check=False, PYTHONPATH="")
    out = run.stdout + run.stderr
    assert run.returncode != 0, f"make check passed on an out-of-sync pair:\n{out[-2000:]}"
    assert "out of sync" in out and "make baseline CH=x" in out, out[-2000:]
    assert "passed" not in out, "nbval ran the stale baseline anyway"


def test_lab_allows_root_and_passes_lab_args():
    run = subprocess.run(
        ["make", "-n", "--no-print-directory", "lab", "LAB_ARGS=--no-browser --port 8899"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = [ln for ln in run.stdout.splitlines() if "jupyter lab" in ln]
    assert line, run.stdout + run.stderr
    assert "--no-browser --port 8899" in line[-1]
    assert ("--allow-root" in line[-1]) == (os.geteuid() == 0), line[-1]


def test_results_folders_are_separate():
    """The book build writes and reads its own results folder; everything else uses another."""
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "html", "check", "CH=toolkit-tour", "lab"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    build = [ln for ln in dry.splitlines() if "jupyter-book build" in ln]
    assert build and "NNLEARN_RESULTS=" in build[0], (
        "the book build does not get its own NNLEARN_RESULTS"
    )
    book_folder = re.search(r"NNLEARN_RESULTS=(\S+)", build[0])[1]
    assert Path(book_folder) != ROOT / "_build" / "results"
    env = subprocess.run(
        ["make", "-n", "--no-print-directory", "-p", "help"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    exported = re.search(r"^NNLEARN_RESULTS := (\S+)", env, flags=re.MULTILINE)
    assert exported and Path(exported[1]) != Path(book_folder), (
        "nbval, check and lab share the book's results folder"
    )
