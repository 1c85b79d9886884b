"""The claims protocol: declare each claim before the experiment, judge it by a standard rule.

A chapter declares every claim near its top, with its kind, the statistic that tests it and
the rule (with a band of reasonable alternative thresholds), runs its experiments, hands each
claim its evidence, and records the judged table for the scorecard::

    from nnlearn.claims import Claims, rules as R

    C = Claims("node-removal", title="...", primary="Keras defaults, 20 epochs",
               reasons="closest to the printed code")
    C.declare("lognormal", "Losses over random masks are log-normal", kind="source",
              source="roughly log-normal", where="section 2",
              statistic="D'Agostino p-value of log-losses", rule=R.at_least(0.05, band=(0.01, 0.1)))
    C.declared()                       # the table of declared claims (shown in the chapter)
    ...                                # experiments
    C.judge("lognormal", p_value)      # evidence goes to the rule; verdict is computed
    C.table(); C.record()              # verdict table, and _build/results/<slug>.json

Kinds
-----
``source``   a claim the source makes; only these count as replications
             (verdicts: replicated / partly / not replicated / not testable)
``identity`` true by construction or algebra: a check (passed / failed), never a replication
``control``  what must not show the effect (or must): passed / failed. A source claim that
             names a control which failed cannot be ``replicated`` as the source read it.
``beyond``   our own question: supported / not supported / open

Rules
-----
Every rule in :mod:`nnlearn.claims.rules` (the ``R`` namespace) takes its evidence in one
documented form, describes itself in plain words, and re-judges itself over its ``band`` of
alternative thresholds; a verdict that changes inside the band is *fragile* (``robust: false``).
"""

from nnlearn.claims.protocol import KINDS, VERDICTS, Claim, Claims, ClaimsTable, RuleChanges
from nnlearn.claims.records import (
    SUMMARY_COLUMNS,
    find_book_root,
    load_results,
    results_dir,
    rows_html,
    rule_changes_html,
    scorecard,
    scorecard_html,
    scorecard_summary,
    settings_html,
    summarise,
    write_results,
)
from nnlearn.claims.rules import (
    AtLeast,
    AtMost,
    Between,
    CloseToSource,
    Holds,
    IntervalAbove,
    IntervalBelow,
    IntervalExcludes,
    IntervalWithin,
    R,
    Rule,
    ShareAtLeast,
    ShareAtMost,
    ShareInRange,
    SourceInPrediction,
    rules,
)

__all__ = [
    "KINDS",
    "SUMMARY_COLUMNS",
    "VERDICTS",
    "AtLeast",
    "AtMost",
    "Between",
    "Claim",
    "Claims",
    "ClaimsTable",
    "CloseToSource",
    "Holds",
    "IntervalAbove",
    "IntervalBelow",
    "IntervalExcludes",
    "IntervalWithin",
    "R",
    "Rule",
    "RuleChanges",
    "ShareAtLeast",
    "ShareAtMost",
    "ShareInRange",
    "SourceInPrediction",
    "find_book_root",
    "load_results",
    "results_dir",
    "rows_html",
    "rule_changes_html",
    "rules",
    "scorecard",
    "scorecard_html",
    "scorecard_summary",
    "settings_html",
    "summarise",
    "write_results",
]
