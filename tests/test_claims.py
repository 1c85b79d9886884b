"""The claims protocol: every rule type passes and fails where it should, verdicts by kind,
robustness bands, rule changes, controls, results files and the scorecard."""

import json
import os

import numpy as np
import pytest

from nnlearn.claims import (
    KINDS,
    VERDICTS,
    Claims,
    R,
    load_results,
    rows_html,
    scorecard,
    scorecard_html,
    scorecard_summary,
)
from nnlearn.stats import Estimate

RUNS = np.array([0.30, 0.32, 0.28, 0.31, 0.29, 0.33])  # mean 0.305, small spread

# (rule, evidence that passes, evidence that fails, source_value)
CASES = {
    "interval_above": (R.interval_above(0.2), RUNS, RUNS - 0.3, None),
    "interval_below": (R.interval_below(0.4), RUNS, RUNS + 0.3, None),
    "interval_within": (R.interval_within(0.2, 0.4), RUNS, RUNS + 0.2, None),
    "interval_excludes": (R.interval_excludes(0.0), RUNS - 0.6, RUNS - 0.3, None),
    "source_in_prediction": (R.source_in_prediction(), RUNS, RUNS + 1.0, 0.31),
    "share_at_least": (R.share_at_least(0.6), (8, 10), (3, 10), None),
    "share_at_least_lower": (R.share_at_least(0.6, on="lower"), (95, 100), (8, 10), None),
    "share_at_most": (R.share_at_most(0.2), (1, 10), (5, 10), None),
    "share_in_range": (R.share_in_range(0.6, 0.8), (7, 10), (2, 10), None),
    "at_least": (R.at_least(1.0), 1.5, 0.5, None),
    "at_most": (R.at_most(1e-9), 1e-12, 1e-3, None),
    "between": (R.between(4, 6), 5, 7, None),
    "close_to_source": (R.close_to_source(0.05), 0.72, 0.9, 0.7),
    "holds": (R.holds(), True, False, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_rule_passes_and_fails(name):
    rule, good, bad, sv = CASES[name]
    assert rule.passes(good, sv) is True
    assert rule.passes(bad, sv) is False
    assert isinstance(rule.describe(), str) and rule.describe()
    assert isinstance(rule.statistic_text(good, sv), str)


def test_evidence_forms_agree():
    est = Estimate(0.3, 0.25, 0.35, 6)
    rule = R.interval_above(0.2)
    assert rule.passes(est) and rule.passes((0.3, 0.25, 0.35)) and rule.passes(list(RUNS))
    bools = np.array([True] * 7 + [False] * 3)
    assert R.share_at_least(0.7).passes(bools) and not R.share_at_least(0.71).passes(bools)


def test_bad_rules_and_evidence_are_named():
    with pytest.raises(TypeError, match="threshold"):
        R.at_least("high")
    with pytest.raises(ValueError, match="threshold"):
        R.at_least(float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        R.share_at_least(1.5)
    with pytest.raises(ValueError, match="threshold"):
        R.between(3, 1)
    with pytest.raises(ValueError, match="threshold"):
        R.source_in_prediction(1.0)
    with pytest.raises(TypeError, match="evidence"):
        R.interval_above(0.0).passes("lots")
    with pytest.raises(ValueError, match="evidence"):
        R.at_least(0.0).passes(float("nan"))
    with pytest.raises(TypeError, match="evidence"):
        R.share_at_least(0.5).passes(np.array([0.2, 0.9]))
    with pytest.raises(TypeError, match="evidence"):
        R.holds().passes(1)
    with pytest.raises(ValueError, match="source_value"):
        R.source_in_prediction().passes(RUNS)
    with pytest.raises(ValueError, match="on"):
        R.share_at_least(0.5, on="upper")


def _chapter():
    C = Claims("demo", title="Demo", primary="main", reasons="closest", varies="init")
    C.declare(
        "ctl",
        "shuffled labels show no correlation",
        kind="control",
        rule=R.interval_below(0.2, band=(0.1, 0.3)),
    )
    C.declare(
        "src",
        "weights correlate",
        kind="source",
        source="r > 0",
        where="section 1",
        rule=R.interval_above(0.0, band=(-0.05, 0.1)),
        controls=["ctl"],
    )
    C.declare(
        "edge",
        "a share near its threshold",
        kind="source",
        source="about 70%",
        rule=R.share_at_least(0.7, band=(0.6, 0.8)),
        partly=R.share_at_least(0.5),
    )
    C.declare("id", "conservation", kind="identity", rule=R.at_most(1e-9))
    C.declare("ours", "our question", kind="beyond", rule=R.at_least(1.0))
    return C


def test_verdicts_by_kind_robustness_and_controls():
    C = _chapter()
    assert "ctl (control)" in repr(C.declared())
    C.judge("ctl", RUNS - 0.3)  # passes: no effect in the control
    C.judge("src", RUNS)
    assert C.judge("edge", (7, 10)) == "replicated"
    C.judge("id", 0.0)
    C.judge("ours", None)
    rows = {r["id"]: r for r in C.rows()}
    assert rows["ctl"]["verdict"] == "passed" and rows["src"]["verdict"] == "replicated"
    assert rows["src"]["robust"] is True
    # 0.7 passes at 0.6 and 0.7 but not 0.8: fragile, and the band says so
    assert rows["edge"]["robust"] is False and "partly" in rows["edge"]["band_verdicts"]
    assert rows["id"]["verdict"] == "passed" and rows["ours"]["verdict"] == "open"
    assert "(fragile)" in repr(C.table())
    for r in rows.values():
        assert r["verdict"] in VERDICTS[r["kind"]] and r["kind"] in KINDS


def test_a_failed_control_blocks_replication():
    C = _chapter()
    C.judge("ctl", RUNS)  # the control shows the effect too
    C.judge("src", RUNS)
    rows = {r["id"]: r for r in C.rows()}
    assert rows["ctl"]["verdict"] == "failed"
    assert rows["src"]["verdict"] == "not replicated" and "ctl" in rows["src"]["note"]
    assert rows == {r["id"]: r for r in C.rows()}  # idempotent


def test_rule_change_keeps_both_verdicts():
    C = _chapter()
    C.judge("edge", (6, 10))
    C.change_rule("edge", R.share_at_least(0.6), why="wrong threshold first")
    change = C.rule_changes[0]
    assert change["verdict_old"] == "partly" and change["verdict_new"] == "replicated"
    assert "wrong threshold first" in repr(C.changes())


def test_source_claims_only_in_the_primary_setting():
    C = _chapter()
    with pytest.raises(ValueError, match="primary"):
        C.judge("src", RUNS, setting="other")
    assert C.sensitivity("src", "other", RUNS - 0.3) == "not replicated"


def test_declare_and_judge_refuse_nonsense():
    C = _chapter()
    with pytest.raises(ValueError, match="kind"):
        C.declare("x", "x", kind="guess", rule=R.holds())
    with pytest.raises(ValueError, match="declared already"):
        C.declare("src", "x", kind="beyond", rule=R.holds())
    with pytest.raises(ValueError, match="source"):
        C.declare("y", "y", kind="source", rule=R.holds())
    with pytest.raises(TypeError, match="rule"):
        C.declare("z", "z", kind="beyond", rule=0.5)
    with pytest.raises(ValueError, match="controls"):
        C.declare("w", "w", kind="source", source="s", rule=R.holds(), controls=["src"])
    with pytest.raises(KeyError, match="never declared"):
        C.judge("nope", 1.0)
    with pytest.raises(ValueError, match="must be tested"):
        C.judge("id", None)
    with pytest.raises(ValueError, match="not judged"):
        C.record()
    with pytest.raises(ValueError, match="slug"):
        Claims("a/b", title="t", primary="p")
    with pytest.raises(TypeError, match="title"):
        Claims("a", title=3, primary="p")


def test_record_load_and_scorecard(tmp_path):
    C = _chapter()
    for cid, ev in (
        ("ctl", RUNS - 0.3),
        ("src", RUNS),
        ("edge", (6, 10)),
        ("id", 0.0),
        ("ours", 2.0),
    ):
        C.judge(cid, ev)
    path = C.record(tmp_path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    data = json.loads(path.read_text())
    for key in (
        "id",
        "claim",
        "kind",
        "source",
        "source_where",
        "ours",
        "rule",
        "verdict",
        "robust",
        "setting",
    ):
        assert all(key in r for r in data["rows"])
    summaries, detail, missing = scorecard(["demo", "absent"], tmp_path)
    assert missing == ["absent"] and list(detail) == ["demo"]
    header, rows = scorecard_summary(summaries)
    assert rows[-1][0] == "all chapters" and "identities passed" in header
    assert '<a href="demo.html">' in scorecard_html(summaries)
    assert "kind-control" in rows_html(detail["demo"], "control")
    with pytest.raises(TypeError, match="chapters"):
        scorecard("demo", tmp_path)


def test_titles_are_escaped(tmp_path):
    C = Claims("x", title="<b>bold</b>", primary="p")
    C.declare("a", "<script>", kind="beyond", rule=R.holds())
    C.judge("a", True)
    C.record(tmp_path)
    summaries, detail, _ = scorecard(["x"], tmp_path)
    assert "<b>" not in scorecard_html(summaries) and "<script>" not in rows_html(
        detail["x"], "beyond"
    )
    assert "<script>" not in C.table()._repr_html_()


def test_corrupt_results_file_is_named(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_results(tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"slug": "b", "rows": [{"kind": "x"}]}))
    with pytest.raises(ValueError, match="broken.json"):
        load_results(tmp_path)


def test_log_change_late_claims_and_capped_sensitivity():
    C = _chapter()
    C.declare("late1", "added after a first look", kind="control", rule=R.at_most(1.0), late=True)
    C.judge("late1", 0.5)
    rows = {r["id"]: r for r in C.rows() if r["id"] == "late1"}
    assert rows["late1"]["late"] is True
    C.judge("edge", (7, 10))
    C.log_change("edge", old_rule="per-cell test at 0.05", old_verdict="partly", why="joint test")
    assert C.rule_changes[-1]["verdict_old"] == "partly"
    assert C.rule_changes[-1]["verdict_new"] == "replicated"
    with pytest.raises(ValueError, match="old_verdict"):
        C.log_change("edge", old_rule="x", old_verdict="passed", why="y")
    C.sensitivity("ctl", "lr 0.1", RUNS)  # the control shows the effect in that setting
    assert C.sensitivity("src", "lr 0.1", RUNS) == "not replicated"
    assert C.claims["src"].sensitivity[-1]["capped_by"] == ["ctl"]
    with pytest.raises(TypeError, match="late"):
        C.declare("z", "z", kind="beyond", rule=R.holds(), late="yes")
    C.judge("ctl", RUNS)  # the control fails in the primary setting too: src is capped
    C.judge("src", RUNS)
    C.judge("id", 0.0)
    C.judge("ours", None)
    rows = {r["id"]: r for r in C.rows()}
    assert rows["src"]["verdict"] == "not replicated" and rows["src"]["robust"] is True
    text = repr(C.table())
    assert "(declared late)" in text and "ctl" in text
    assert "in lr 0.1: not replicated" in text  # sensitivity verdicts are in the baseline text
    assert "note: the effect appears in control(s) ctl" in text
