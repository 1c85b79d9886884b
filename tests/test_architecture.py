"""The folder layout is a map: the core never imports a study, a study never imports another.

Core: every module of ``nnlearn`` outside ``nnlearn/studies``. Studies: one module per chapter,
``nnlearn/studies/<slug>.py`` for ``book/<slug>.md`` (hyphens become underscores), each with
its tests in ``tests/studies/test_<slug>*.py``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "nnlearn"
STUDIES = PKG / "studies"


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute; relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel_parts = path.relative_to(ROOT).with_suffix("").parts
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel_parts[: len(rel_parts) - node.level])
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def _core_modules():
    return sorted(p for p in PKG.rglob("*.py") if STUDIES not in p.parents)


def _study_modules():
    return sorted(p for p in STUDIES.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_a_study(path):
    bad = sorted(
        n for n in _imports(path) if n == "nnlearn.studies" or n.startswith("nnlearn.studies.")
    )
    assert not bad, f"{path.relative_to(ROOT)} (core) imports study code: {bad}"


@pytest.mark.parametrize("path", _study_modules(), ids=lambda p: p.stem)
def test_study_imports_only_the_core(path):
    own = f"nnlearn.studies.{path.stem}"
    bad = sorted(
        n
        for n in _imports(path)
        if n.startswith("nnlearn.studies.") and not n.startswith(own) and n != "nnlearn.studies"
    )
    assert not bad, f"study {path.stem} imports another study: {bad}"


def test_every_study_serves_one_chapter_and_has_tests():
    chapters = {p.stem.replace("-", "_") for p in (ROOT / "book").glob("*.md")}
    for path in _study_modules():
        assert path.stem in chapters, f"nnlearn/studies/{path.name} is named after no chapter"
        tests = list((ROOT / "tests" / "studies").glob(f"test_{path.stem}*.py"))
        assert tests, f"study {path.stem} has no tests in tests/studies/"


def test_the_import_rule_check_can_fail(tmp_path, monkeypatch):
    fake = PKG / "studies" / "_probe.py"
    assert not fake.exists()
    src = tmp_path / "mod.py"
    src.write_text("from nnlearn.studies.node_removal import x\nimport nnlearn.studies.a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    names = _imports(src)
    assert "nnlearn.studies.node_removal" in names and "nnlearn.studies.a" in names
