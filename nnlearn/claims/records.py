"""Results files (one JSON per chapter, per build) and the scorecard built from them."""

from __future__ import annotations

import json
import os
import tempfile
from html import escape
from pathlib import Path

import numpy as np

KINDS = ("source", "identity", "control", "beyond")
VERDICTS = {
    "source": ("replicated", "partly", "not replicated", "not testable"),
    "identity": ("passed", "failed"),
    "control": ("passed", "failed"),
    "beyond": ("supported", "not supported", "open"),
}


def _verdict_cell(row: dict) -> str:
    v = row["verdict"]
    if row.get("robust") is False:
        v += " (fragile)"
    if row.get("late"):
        v += " (declared late)"
    return v


# ------------------------------------------------------------------------- results files
def find_book_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return None


def results_dir() -> Path:
    """``$NNLEARN_RESULTS`` if set, else ``_build/results`` under the book's root."""
    env = os.environ.get("NNLEARN_RESULTS")
    if env:
        return Path(env)
    root = find_book_root()
    return (root if root is not None else Path.cwd()) / "_build" / "results"


def write_results(slug: str, payload: dict, folder=None) -> Path:
    """Write ``payload`` as ``<folder>/<slug>.json`` atomically (mode 0644)."""
    out_dir = Path(folder) if folder is not None else results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{slug}.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, default=_json_default)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_dir / f"{slug}.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_dir / f"{slug}.json"


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_results(folder=None) -> dict[str, dict]:
    """Every recorded chapter in the results folder: ``{slug: payload}``. A file that is not
    a valid results file is an error naming it."""
    out_dir = Path(folder) if folder is not None else results_dir()
    found = {}
    for path in sorted(out_dir.glob("*.json")) if out_dir.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            rows = data["rows"]
            for r in rows:
                if r["kind"] not in KINDS or r["verdict"] not in VERDICTS[r["kind"]]:
                    raise ValueError(f"bad kind/verdict {r['kind']!r}/{r['verdict']!r}")
            found[data["slug"]] = data
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"results file {path} is not a valid claims record ({err}); "
                "re-run its chapter or delete the file"
            ) from None
    return found


def summarise(payload: dict) -> dict:
    """Counts for the scorecard: source verdicts (robust / fragile), identities and controls
    passed / failed, beyond-source findings by verdict, rule changes."""
    rows = payload["rows"]
    out = {}
    for kind in KINDS:
        for v in VERDICTS[kind]:
            sel = [r for r in rows if r["kind"] == kind and r["verdict"] == v]
            out[(kind, v)] = len(sel)
            if kind == "source":
                out[(kind, v, "fragile")] = sum(r.get("robust") is False for r in sel)
    out["rule_changes"] = len(payload.get("rule_changes", []))
    return out


def scorecard(chapters, folder=None):
    """``(summaries, detail, missing)`` for the chapter slugs ``chapters`` (a list of str):
    summaries is a list of (slug, title, counts) for chapters that recorded results."""
    if isinstance(chapters, str) or not all(isinstance(s, str) for s in chapters):
        raise TypeError("chapters must be a list of chapter slugs (str), not a single str")
    found = load_results(folder)
    summaries, missing = [], []
    for slug in chapters:
        if slug in found:
            summaries.append((slug, found[slug]["title"], summarise(found[slug])))
        else:
            missing.append(slug)
    return summaries, {s: found[s] for s in chapters if s in found}, missing


# ------------------------------------------------------------------------------ scorecard
SUMMARY_COLUMNS = (
    ("replicated", lambda c: _robust_split(c, "replicated")),
    ("partly", lambda c: _robust_split(c, "partly")),
    ("not replicated", lambda c: _robust_split(c, "not replicated")),
    ("not testable", lambda c: str(c[("source", "not testable")])),
    ("identities passed", lambda c: _of(c, "identity", "passed")),
    ("controls passed", lambda c: _of(c, "control", "passed")),
    (
        "beyond: supported / not / open",
        lambda c: " / ".join(str(c[("beyond", v)]) for v in VERDICTS["beyond"]),
    ),
    ("rule changes", lambda c: str(c["rule_changes"])),
)


def _robust_split(c: dict, verdict: str) -> str:
    n, fragile = c[("source", verdict)], c[("source", verdict, "fragile")]
    return f"{n}" + (f" ({fragile} fragile)" if fragile else "")


def _of(c: dict, kind: str, good: str) -> str:
    total = sum(c[(kind, v)] for v in VERDICTS[kind])
    return f"{c[(kind, good)]} of {total}"


def _add_counts(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + v for k, v in b.items()}


def scorecard_summary(summaries) -> tuple[list[str], list[list[str]]]:
    """Header and rows (text cells) of the per-chapter summary, with an all-chapters row."""
    header = ["chapter"] + [name for name, _ in SUMMARY_COLUMNS]
    rows, total = [], {}
    for slug, title, counts in summaries:
        rows.append([title] + [fn(counts) for _, fn in SUMMARY_COLUMNS])
        total = _add_counts(total, counts)
    if summaries:
        rows.append(["all chapters"] + [fn(total) for _, fn in SUMMARY_COLUMNS])
    return header, rows


def scorecard_html(summaries) -> str:
    """The summary table as HTML, chapter titles linking to their pages."""
    header, rows = scorecard_summary(summaries)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = ""
    for i, row in enumerate(rows):
        if i < len(summaries):
            slug = summaries[i][0]
            first = f'<td><a href="{escape(slug)}.html">{escape(row[0])}</a></td>'
        else:
            first = f"<th>{escape(row[0])}</th>"
        body += "<tr>" + first + "".join(f"<td>{escape(c)}</td>" for c in row[1:]) + "</tr>"
    return f'<table class="scorecard"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def rows_html(payload: dict, kind: str) -> str:
    """One chapter's rows of one kind as an HTML table ('' when it has none)."""
    rows = [r for r in payload["rows"] if r["kind"] == kind]
    if not rows:
        return ""
    cols = ("id", "claim", "source", "ours", "rule", "verdict")
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = ""
    for r in rows:
        cells = []
        for c in cols:
            text = _verdict_cell(r) if c == "verdict" else str(r.get(c, ""))
            if c == "source" and r.get("source_where"):
                text += f" ({r['source_where']})"
            cells.append(f"<td>{escape(text)}</td>")
        body += f'<tr class="kind-{escape(kind)}">' + "".join(cells) + "</tr>"
    return (
        f'<table class="verdict-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def settings_html(detail: dict) -> str:
    """Each chapter's primary setting and its reasons, as an HTML list."""
    items = ""
    for slug, d in detail.items():
        why = f" (why: {escape(d['setting_reasons'])})" if d.get("setting_reasons") else ""
        items += (
            f'<li><a href="{escape(slug)}.html">{escape(d["title"])}</a>: '
            f"{escape(d['primary_setting'])}{why}</li>"
        )
    return f"<ul>{items}</ul>"


def rule_changes_html(detail: dict) -> str:
    """Every chapter's logged rule changes, with the verdict under both rules, as HTML."""
    out = ""
    for slug, d in detail.items():
        for c in d.get("rule_changes", []):
            out += (
                f'<p><a href="{escape(slug)}.html">{escape(d["title"])}</a>, '
                f'<code>{escape(c["id"])}</code>: "{escape(c["old_rule"])}" became '
                f'"{escape(c["new_rule"])}"; verdict {escape(str(c["verdict_old"]))} under the '
                f"old rule, {escape(str(c['verdict_new']))} under the new; why: "
                f"{escape(c['why'])}</p>"
            )
    return out or "<p>No chapter changed a rule after seeing its numbers.</p>"
