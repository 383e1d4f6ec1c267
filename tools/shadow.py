"""`triage shadow-report` and `triage gate`: how a shadow or backfill version would have changed
the results, and whether it may vote.

Its scores (from the scores topic, and the results' `shadow_scores`) against the committed
results and the corrections (the first correction of an id counts, as in the monitor): how many
winners it would have changed, the flow of those changes (from class → to class, how many, how
many right and wrong by the corrections), each class's precision and recall on the judged texts
before and after, and the gate's reasons to refuse, all from `triage.core.model.impact`, the
module `triage compare` uses offline. The report is a pure function (`shadow_report`); the
reading is the runtime's topic reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from triage.core.kafka.reader import read_topic
from triage.core.model.decision import decide
from triage.core.model.impact import NONE, ClassImpact, Impact, Outcome, gate_reasons, impact
from triage.core.model.quality import NONE_LABEL
from triage.core.settings import CommonSettings
from triage.schemas.codec import Rejected, decode_score
from triage.schemas.models import LabelRecord, ScoreRecord
from triage.tools.corrections import read_corrections
from triage.tools.results import read_labels

FIGURES = ("precision_before", "precision_after", "recall_before", "recall_after")


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """`label@version` against the committed results: the counts only the live side has, and
    the `Impact` (flows, per-class figures) that `triage compare` computes offline too."""

    label: str
    version: str
    scored: int
    predicted_positive: int
    agrees_with_result: int
    impact: Impact

    def as_dict(self) -> dict[str, Any]:
        """The JSON of `shadow-report` and of `gate --json`'s "impact": the impact's one
        vocabulary (docs/impact.md), figures null where undefined, only the classes a judged
        text names, and the counts only the live side has."""
        impact = self.impact.as_dict(undefined_as_null=True)
        impact["per_class"] = {
            name: figures
            for name, figures in impact["per_class"].items()
            if _judged(self.impact.per_class[name])
        }
        return {
            "label": self.label,
            "candidate_version": self.version,
            "scored": self.scored,
            "predicted_positive": self.predicted_positive,
            "agrees_with_result": self.agrees_with_result,
            **impact,
        }


def _judged(c: ClassImpact) -> bool:
    """Named by a judged text (its winner before or after, or its truth)."""
    return any(s.tp + s.fp + s.fn for s in (c.before, c.after))


def shadow_report(
    scores: Iterable[ScoreRecord],
    results: Iterable[LabelRecord],
    label: str,
    version: str,
    threshold: float = 0.0,
    corrections: Mapping[str, str | None] | None = None,
) -> ShadowReport:
    """How `label@version` would have changed the committed results, had it voted; judged
    against `corrections` (message id → its class, None: none of ours)."""
    corrections = corrections or {}
    results = list(results)
    mine = shadow_probabilities(scores, results, label, version)
    outcomes, positive, agree = [], 0, 0
    for result in results:
        p = mine.get(result.id)
        if p is None:
            continue
        before = decide(result.scores, threshold).label
        after = decide({**result.scores, label: p}, threshold).label
        truth = (corrections[result.id] or NONE) if result.id in corrections else None
        outcomes.append(Outcome(before, after, truth))
        positive += p >= 0.5
        agree += (p >= 0.5) == (result.label == label)
    return ShadowReport(label, version, len(mine), positive, agree, impact(outcomes))


def shadow_probabilities(
    scores: Iterable[ScoreRecord], results: list[LabelRecord], label: str, version: str
) -> dict[str, float]:
    """Message id → `label@version`'s probability: from the scores topic (a backfill's scores
    of texts decided long ago too) and the results' shadow scores."""
    key = f"{label}@{version}"
    mine = {
        s.id: s.scores[label]
        for s in scores
        if label in s.scores and s.versions.get(label) == version
    }
    for result in results:
        if key in result.shadow_scores:
            mine.setdefault(result.id, result.shadow_scores[key])
    return mine


def gate(report: ShadowReport, max_drop: float, min_judged: int) -> dict[str, Any]:
    """The gate's verdict on a `shadow_report`: passed, and the reasons to refuse."""
    reasons = gate_reasons(report.impact, report.label, max_drop, min_judged)
    return {
        "label": report.label,
        "candidate_version": report.version,
        "passed": not reasons,
        "reasons": reasons,
        "max_drop": max_drop,
        "min_judged": min_judged,
        "judged": report.impact.judged,
    }


def read_report(
    settings: CommonSettings, label: str, version: str, threshold: float
) -> ShadowReport:
    """`shadow_report` of what the scores, results and corrections topics hold now."""
    corrections = read_corrections(settings)
    return shadow_report(
        read_scores(settings), read_labels(settings), label, version, threshold, corrections
    )


def read_scores(settings: CommonSettings) -> Iterator[ScoreRecord]:
    for record in read_topic(settings, settings.topics.scores):
        score = decode_score(record.value)
        if not isinstance(score, Rejected):
            yield score


def format_report(shadow: ShadowReport) -> str:
    report = shadow.as_dict()
    n = report["texts"]
    share = f" ({report['changed'] / n:.1%})" if n else ""
    lines = [
        f"{report['label']}@{report['candidate_version']}: {report['scored']} texts scored, "
        f"{n} with a committed result; would have changed the winner of "
        f"{report['changed']}{share}; p >= 0.5 on {report['predicted_positive']}; "
        f"agrees with the result (p >= 0.5 iff labelled {report['label']}) on "
        f"{report['agrees_with_result']}; {report['judged']} of them judged (corrected), "
        f"{report['changed_judged']} of the changed"
    ]
    if report["flows"]:
        lines += ["", f"{'changed from':28} {'to':28} {'texts':>6} {'judged':>6} {'right':>6} "
                  f"{'wrong':>6} {'was right':>9}"]  # fmt: skip
        lines += [
            f"{_name(f['from']):28} {_name(f['to']):28} {f['changed']:>6} {f['judged']:>6} "
            f"{f['right']:>6} {f['wrong']:>6} {f['was_right']:>9}"
            for f in report["flows"]
        ]
        lines.append(
            "(right: the new winner is the correction's class; was right: the old one was)"
        )
    if report["judged"]:
        lines += ["", f"per class on the {report['judged']} judged texts (* moved):"]
        lines.append(f"  {'class':28} {'precision':>15} {'recall':>15} {'support':>8}")
        for name, m in report["per_class"].items():
            moved = m[FIGURES[0]] != m[FIGURES[1]] or m[FIGURES[2]] != m[FIGURES[3]]
            lines.append(
                f"{'*' if moved else ' '} {name[:28]:28} "
                f"{_move(m['precision_before'], m['precision_after']):>15} "
                f"{_move(m['recall_before'], m['recall_after']):>15} {m['support']:>8}"
            )
    return "\n".join(lines)


def format_gate(verdict: dict) -> str:
    head = f"gate {verdict['label']}@{verdict['candidate_version']}: "
    if verdict["passed"]:
        return head + (
            f"passes (no other class drops more than {verdict['max_drop']:g} on "
            f"{verdict['judged']} judged texts, --min-judged {verdict['min_judged']})"
        )
    return head + f"refused for {len(verdict['reasons'])} reason(s)"


def _name(label: str | None) -> str:
    return (label or f"{NONE_LABEL} (abstain)")[:28]


def _move(before: float | None, after: float | None) -> str:
    def show(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    return f"{show(before)} → {show(after)}"
