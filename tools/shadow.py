"""`triage shadow-report`: how a shadow or backfill version would have changed the results.

Its scores from the scores topic against the committed results; the report is a pure function
(`shadow_report`), the reading is the runtime's topic reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from triage.core.kafka.reader import read_topic
from triage.core.model.decision import would_change_winner
from triage.core.settings import CommonSettings
from triage.schemas.codec import Rejected, decode_score
from triage.schemas.models import LabelRecord, ScoreRecord


def shadow_report(
    scores: Iterable[ScoreRecord],
    results: Iterable[LabelRecord],
    label: str,
    version: str,
    threshold: float = 0.0,
) -> dict:
    """How `label@version` would have changed the committed results, had it voted."""
    mine = {
        s.id: s.scores[label]
        for s in scores
        if label in s.scores and s.versions.get(label) == version
    }
    judged = changed = positive = agree = 0
    for result in results:
        p = mine.get(result.id)
        if p is None:
            continue
        judged += 1
        changed += would_change_winner(result.scores, label, p, threshold)
        positive += p >= 0.5
        agree += (p >= 0.5) == (result.label == label)
    return {
        "label": label,
        "version": version,
        "scored": len(mine),
        "with_result": judged,
        "would_change_winner": changed,
        "predicted_positive": positive,
        "agrees_with_result": agree,
    }


def read_scores(settings: CommonSettings) -> Iterator[ScoreRecord]:
    for record in read_topic(settings, settings.topics.scores):
        score = decode_score(record.value)
        if not isinstance(score, Rejected):
            yield score


def format_report(report: dict) -> str:
    n = report["with_result"]
    share = f" ({report['would_change_winner'] / n:.1%})" if n else ""
    return (
        f"{report['label']}@{report['version']}: {report['scored']} texts scored, "
        f"{n} with a committed result; would have changed the winner of "
        f"{report['would_change_winner']}{share}; p >= 0.5 on {report['predicted_positive']}; "
        f"agrees with the result (p >= 0.5 iff labelled {report['label']}) on "
        f"{report['agrees_with_result']}"
    )
