"""The gateway's bounded index of outcomes and its waiters."""

from __future__ import annotations

from triage.core.records import ConsumedRecord
from triage.gateway.results import ResultIndex, TextOutcome
from triage.schemas.models import DeadLetter, LabelRecord, Refusal


def result(message_id: str, label: str = "a") -> TextOutcome:
    return TextOutcome(
        result=LabelRecord(
            id=message_id,
            label=label,
            probability=0.9,
            scores={label: 0.9},
            complete=True,
            missing=[],
            versions={label: "1"},
            text_timestamp_ms=1,
            decided_at_ms=2,
        )
    )


def test_waiters_are_woken_by_their_id_only_and_the_first_outcome_stands():
    index: ResultIndex[str] = ResultIndex(10)
    assert index.wait("m1", "w1") is None and index.wait("m1", "w2") is None
    assert index.wait("m2", "w3") is None
    assert index.add(result("m1")) == ["w1", "w2"]
    assert index.add(result("m1", "b")) == []  # a second result of an id changes nothing
    assert index.get("m1").result.label == "a"
    assert index.wait("m1", "late") is not None  # known: answered, not registered
    assert index.waiting("m2") and not index.waiting("m1")
    index.forget("m2", "w3")
    assert not index.waiting("m2")


def test_memory_is_bounded_oldest_out_first_and_recent_is_newest_first():
    index: ResultIndex[str] = ResultIndex(3)
    for i in range(5):
        index.add(result(f"m{i}"))
    text = ConsumedRecord("texts", 0, 1, 1, b"bad", b"")
    refusal = Refusal.of_record(text, "empty_record", "the record has no value")
    letter = DeadLetter.from_refusal(refusal, "bad", "classifier", 3)
    index.add(TextOutcome(refused=letter))
    assert len(index) == 3 and index.get("m0") is None and index.get("m1") is None
    assert [r.id for r in index.recent(10)] == ["m4", "m3"]  # refusals are not results
