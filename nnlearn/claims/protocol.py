"""Declared claims, their verdicts by kind, and the display of claims and rule changes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from nnlearn.claims.records import _verdict_cell, write_results
from nnlearn.claims.rules import Rule, _number

KINDS = ("source", "identity", "control", "beyond")
VERDICTS = {
    "source": ("replicated", "partly", "not replicated", "not testable"),
    "identity": ("passed", "failed"),
    "control": ("passed", "failed"),
    "beyond": ("supported", "not supported", "open"),
}


# ------------------------------------------------------------------------------- claims
@dataclass
class Claim:
    """One declared claim and, once judged, its verdict."""

    id: str
    claim: str
    kind: str
    rule: Rule
    source: str = ""
    source_where: str = ""
    source_value: float | None = None
    statistic: str = ""
    partly: Rule | None = None
    controls: tuple = ()
    runs: str = ""
    late: bool = False
    # filled by judge()
    judged: bool = False
    evidence: object = None
    ours: str = ""
    verdict: str = ""
    band_verdicts: list = field(default_factory=list)
    robust: bool | None = None
    setting: str = ""
    note: str = ""
    sensitivity: list = field(default_factory=list)
    old_rules: list = field(default_factory=list)

    def row(self) -> dict:
        return {
            "id": self.id,
            "claim": self.claim,
            "kind": self.kind,
            "source": self.source,
            "source_where": self.source_where,
            "statistic": self.statistic,
            "ours": self.ours,
            "rule": self.rule.describe(),
            "verdict": self.verdict,
            "robust": self.robust,
            "band_verdicts": list(self.band_verdicts),
            "setting": self.setting,
            "runs": self.runs,
            "note": self.note,
            "controls": list(self.controls),
            "late": self.late,
            "sensitivity": list(self.sensitivity),
        }


def _text(name: str, value, *, empty_ok: bool = True) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


class Claims:
    """A chapter's declared claims, their verdicts and the rule changes.

    Parameters
    ----------
    slug : the chapter's file name without ``.md`` (results go to ``<results>/<slug>.json``)
    title : the chapter's title, for the scorecard
    primary : the primary setting, in words (every ``source`` claim is judged there)
    reasons : why that setting is primary (closest to the source's own description)
    varies : what varies between independent runs (initialisation, data order, data sample)
    """

    def __init__(self, slug: str, *, title: str, primary: str, reasons: str = "", varies: str = ""):
        _text("slug", slug, empty_ok=False)
        if "/" in slug or slug.startswith("."):
            raise ValueError(f"slug must be a file-name-safe chapter slug, got {slug!r}")
        self.slug = slug
        self.title = _text("title", title, empty_ok=False)
        self.primary = _text("primary", primary, empty_ok=False)
        self.reasons = _text("reasons", reasons)
        self.varies = _text("varies", varies)
        self.claims: dict[str, Claim] = {}
        self.rule_changes: list[dict] = []

    # -- declaring
    def declare(
        self,
        id: str,
        claim: str,
        *,
        kind: str,
        rule: Rule,
        source: str = "",
        where: str = "",
        source_value=None,
        statistic: str = "",
        partly: Rule | None = None,
        controls=(),
        runs: str = "",
        late: bool = False,
    ) -> Claim:
        """Declare a claim before its experiment runs. Returns the :class:`Claim`.

        ``source``/``where`` quote the source's value or statement and where it stands;
        ``source_value`` is the source's number, for rules that compare with it; ``partly`` is
        an optional weaker rule (source claims only) that gives *partly*; ``controls`` names
        control claims that must pass for a *replicated* verdict. ``late=True`` marks a claim
        declared after some of its numbers were seen (shown as such in every table).
        """
        if not isinstance(late, bool):
            raise TypeError(f"late must be a bool, got {type(late).__name__}")
        _text("id", id, empty_ok=False)
        if id in self.claims:
            raise ValueError(f"id {id!r} is declared already")
        _text("claim", claim, empty_ok=False)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if not isinstance(rule, Rule):
            raise TypeError(
                f"rule must be a rule from nnlearn.claims.rules, got {type(rule).__name__}"
            )
        if partly is not None and not isinstance(partly, Rule):
            raise TypeError(f"partly must be a rule or None, got {type(partly).__name__}")
        if partly is not None and kind != "source":
            raise ValueError("partly: only source claims have a 'partly' verdict")
        if kind == "source" and not source.strip():
            raise ValueError(f"source: a source claim ({id!r}) must quote what the source says")
        if source_value is not None:
            source_value = _number("source_value", source_value)
        controls = tuple(controls)
        for c in controls:
            if c not in self.claims or self.claims[c].kind != "control":
                raise ValueError(f"controls: {c!r} is not a control claim declared before {id!r}")
        c = Claim(
            id=id,
            claim=claim,
            kind=kind,
            rule=rule,
            source=_text("source", source),
            source_where=_text("where", where),
            source_value=source_value,
            statistic=_text("statistic", statistic),
            partly=partly,
            controls=controls,
            runs=_text("runs", runs),
            late=late,
        )
        self.claims[id] = c
        return c

    def _get(self, id: str) -> Claim:
        if id not in self.claims:
            raise KeyError(f"id {id!r} was never declared; declared: {list(self.claims)}")
        return self.claims[id]

    # -- judging
    def _verdict(self, c: Claim, passed: bool, partly: bool) -> str:
        if c.kind == "source":
            return "replicated" if passed else "partly" if partly else "not replicated"
        if c.kind == "beyond":
            return "supported" if passed else "not supported"
        return "passed" if passed else "failed"

    def _judge_with(self, c: Claim, rule: Rule, evidence) -> tuple[str, list[str]]:
        passed = rule.passes(evidence, c.source_value)
        part = c.partly.passes(evidence, c.source_value) if c.partly is not None else False
        verdict = self._verdict(c, passed, part)
        band = [
            self._verdict(c, p, part if not p else False)
            for p in rule.passes_band(evidence, c.source_value)
        ]
        return verdict, band

    def judge(
        self,
        id: str,
        evidence,
        *,
        ours: str | None = None,
        note: str = "",
        setting: str | None = None,
    ) -> str:
        """Judge claim ``id`` on ``evidence`` (the form its rule documents); returns the
        verdict. ``evidence=None`` means the claim could not be tested (*not testable* /
        *open*; identities and controls must be tested). ``setting`` defaults to the primary
        one; source claims can only be judged there (use :meth:`sensitivity` for others)."""
        c = self._get(id)
        setting = self.primary if setting is None else _text("setting", setting)
        if c.kind == "source" and setting != self.primary:
            raise ValueError(
                f"setting: source claim {id!r} must be judged in the primary setting "
                f"({self.primary!r}); report other settings with Claims.sensitivity"
            )
        if evidence is None:
            if c.kind in ("identity", "control"):
                raise ValueError(f"evidence: {c.kind} claim {id!r} must be tested")
            c.verdict = "not testable" if c.kind == "source" else "open"
            c.band_verdicts, c.robust, c.ours = [], True, ours or "not tested"
        else:
            c.verdict, c.band_verdicts = self._judge_with(c, c.rule, evidence)
            c.robust = all(v == c.verdict for v in c.band_verdicts)
            c.ours = (
                _text("ours", ours)
                if ours is not None
                else c.rule.statistic_text(evidence, c.source_value)
            )
        c.judged, c.evidence, c.note, c.setting = True, evidence, _text("note", note), setting
        for change in self.rule_changes:
            if change["id"] == id:
                self._fill_change(change, c)
        return c.verdict

    def sensitivity(self, id: str, setting: str, evidence, *, ours: str | None = None) -> str:
        """The verdict claim ``id``'s rule gives in another ``setting`` (reported beside the
        primary verdict, never replacing it)."""
        c = self._get(id)
        _text("setting", setting, empty_ok=False)
        verdict, band = self._judge_with(c, c.rule, evidence)
        failed = [
            k
            for k in c.controls
            for s in self.claims[k].sensitivity
            if s["setting"] == setting and s["verdict"] == "failed"
        ]
        if c.kind == "source" and failed and verdict in ("replicated", "partly"):
            verdict, band = "not replicated", ["not replicated"] * len(band)
        text = ours if ours is not None else c.rule.statistic_text(evidence, c.source_value)
        c.sensitivity.append(
            {
                "setting": setting,
                "verdict": verdict,
                "ours": _text("ours", text),
                "robust": all(v == verdict for v in band),
                "capped_by": sorted(set(failed)),
            }
        )
        return verdict

    def log_change(self, id: str, *, old_rule: str, old_verdict: str, why: str) -> None:
        """Log a change made after the numbers were seen that :meth:`change_rule` cannot
        replay, such as a new statistic: ``old_rule`` describes the old rule and statistic, and
        ``old_verdict`` is the verdict it gave (computed by the chapter from the old statistic).
        The new verdict is the claim's current one."""
        c = self._get(id)
        _text("old_rule", old_rule, empty_ok=False)
        _text("why", why, empty_ok=False)
        if old_verdict not in VERDICTS[c.kind]:
            raise ValueError(f"old_verdict must be one of {VERDICTS[c.kind]}, got {old_verdict!r}")
        self.rule_changes.append(
            {
                "id": id,
                "old_rule": old_rule,
                "new_rule": c.rule.describe(),
                "why": why,
                "verdict_old": old_verdict,
                "verdict_new": c.verdict or None,
                "_fixed_old": True,
            }
        )

    def change_rule(self, id: str, new_rule: Rule, *, why: str) -> None:
        """Replace claim ``id``'s rule after its numbers were seen. The old rule stays on
        record: the chapter's "Rule changes" list shows both rules and the verdict under each.
        """
        c = self._get(id)
        if not isinstance(new_rule, Rule):
            raise TypeError(f"new_rule must be a rule, got {type(new_rule).__name__}")
        _text("why", why, empty_ok=False)
        change = {
            "id": id,
            "old_rule": c.rule.describe(),
            "new_rule": new_rule.describe(),
            "why": why,
            "verdict_old": None,
            "verdict_new": None,
            "_old": c.rule,
        }
        c.old_rules.append(c.rule)
        c.rule = new_rule
        self.rule_changes.append(change)
        if c.judged and c.evidence is not None:
            self.judge(id, c.evidence, note=c.note, setting=c.setting)

    def _fill_change(self, change: dict, c: Claim) -> None:
        if change.get("_fixed_old"):
            change["verdict_new"] = c.verdict
            return
        if c.evidence is None:
            change["verdict_old"] = change["verdict_new"] = c.verdict
            return
        change["verdict_old"], _ = self._judge_with(c, change["_old"], c.evidence)
        change["verdict_new"] = c.verdict

    # -- resolving controls and reporting
    def rows(self) -> list[dict]:
        """Every claim as a results row, with source claims capped by failed controls."""
        out = []
        for c in self.claims.values():
            r = c.row()
            failed = [
                k
                for k in c.controls
                if self.claims[k].judged and self.claims[k].verdict == "failed"
            ]
            if c.kind == "source" and failed and r["verdict"] in ("replicated", "partly"):
                extra = (
                    f"the effect appears in control(s) {', '.join(failed)} too, so it is "
                    "not replicated as the source read it"
                )
                r["note"] = f"{r['note']}; {extra}" if r["note"] else extra
                r["verdict"] = "not replicated"
                r["band_verdicts"] = ["not replicated"] * len(r["band_verdicts"])
                r["robust"] = True  # the cap holds at every threshold in the band
            out.append(r)
        return out

    def unjudged(self) -> list[str]:
        return [c.id for c in self.claims.values() if not c.judged]

    def declared(self):
        """Display object: the table of declared claims (id, kind, claim, source, rule)."""
        return ClaimsTable(self, judged=False)

    def table(self):
        """Display object: the verdict table (every claim must have been judged)."""
        missing = self.unjudged()
        if missing:
            raise ValueError(f"claims not judged yet: {missing}")
        return ClaimsTable(self, judged=True)

    def changes(self):
        """Display object: the "Rule changes" list."""
        return RuleChanges(self.rule_changes)

    def payload(self) -> dict:
        rows = self.rows()
        return {
            "slug": self.slug,
            "title": self.title,
            "primary_setting": self.primary,
            "setting_reasons": self.reasons,
            "varies": self.varies,
            "rows": rows,
            "rule_changes": [
                {k: v for k, v in ch.items() if not k.startswith("_")} for ch in self.rule_changes
            ],
        }

    def record(self, folder: str | os.PathLike | None = None) -> Path:
        """Write the judged claims to ``<results>/<slug>.json`` atomically; returns the path."""
        missing = self.unjudged()
        if missing:
            raise ValueError(f"claims not judged yet: {missing}")
        return write_results(self.slug, self.payload(), folder)


# ------------------------------------------------------------------------------ display
class ClaimsTable:
    """HTML in the book, fixed plain text for regression baselines."""

    def __init__(self, claims: Claims, *, judged: bool):
        self.claims, self.judged = claims, judged

    def _rows(self):
        if self.judged:
            return self.claims.rows()
        return [
            {
                "id": c.id,
                "kind": c.kind,
                "claim": c.claim,
                "source": c.source + (f" ({c.source_where})" if c.source_where else ""),
                "statistic": c.statistic,
                "rule": c.rule.describe()
                + (f"; partly if {c.partly.describe()}" if c.partly else ""),
            }
            for c in self.claims.claims.values()
        ]

    def _repr_html_(self) -> str:
        if self.judged:
            cols = ("id", "kind", "claim", "ours", "rule", "verdict")
        else:
            cols = ("id", "kind", "claim", "source", "statistic", "rule")
        head = "".join(f"<th>{c}</th>" for c in cols)
        body = ""
        for r in self._rows():
            cells = []
            for c in cols:
                text = _verdict_cell(r) if c == "verdict" else str(r.get(c, ""))
                if c == "verdict" and r.get("note"):
                    text += f" — {r['note']}"
                cells.append(f"<td>{escape(text)}</td>")
            cls = f' class="kind-{escape(r["kind"])}"'
            body += f"<tr{cls}>" + "".join(cells) + "</tr>"
        kind = "verdict-table" if self.judged else "claims-table"
        return f'<table class="{kind}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        lines = []
        for r in self._rows():
            if self.judged:
                lines.append(f"[{_verdict_cell(r)}] {r['id']} ({r['kind']}): {r['ours']}")
                if r.get("note"):
                    lines.append(f"    note: {r['note']}")
                for s in r.get("sensitivity", []):
                    fragile = "" if s["robust"] else " (fragile)"
                    lines.append(f"    in {s['setting']}: {s['verdict']}{fragile}: {s['ours']}")
            else:
                lines.append(f"{r['id']} ({r['kind']}): {r['rule']}")
        return "\n".join(lines)


class RuleChanges:
    def __init__(self, changes: list[dict]):
        self.changes = changes

    def _lines(self):
        if not self.changes:
            return ["No rule was changed after its numbers were seen."]
        return [
            f"{c['id']}: '{c['old_rule']}' -> '{c['new_rule']}' (verdict {c['verdict_old']} -> "
            f"{c['verdict_new']}); why: {c['why']}"
            for c in self.changes
        ]

    def _repr_html_(self):
        return (
            '<ul class="rule-changes">'
            + "".join(f"<li>{escape(t)}</li>" for t in self._lines())
            + "</ul>"
        )

    def __repr__(self):
        return "\n".join(self._lines())
