"""The aggregator's step on plain records: joins, dead letters and its changelog state,
without a broker (the registry view is filled by hand, as its reader would)."""

from __future__ import annotations

import pytest
from test_join import vote

from triage.aggregator.retry_window import BLOCK_PREFIX
from triage.aggregator.service import Aggregator
from triage.aggregator.settings import AggregatorSettings
from triage.core.records import ConsumedRecord, batch_of
from triage.core.settings import ConnectionSettings
from triage.schemas.codec import Reason, decode_label, encode
from triage.schemas.models import DeadLetter, Refusal, ScoreRecord

T0 = 1_000_000


@pytest.fixture
def aggregator() -> Aggregator:
    settings = AggregatorSettings(
        connection=ConnectionSettings(bootstrap_servers="unused:9092"),
        topic_prefix="t-",
        instance_id="agg-1",
        join_timeout_s=1,
    )
    agg = Aggregator(settings)
    vote(agg.view, "a")
    vote(agg.view, "b")
    return agg


def score(offset: int, message_id: str, partition: int = 0, **probabilities) -> ConsumedRecord:
    value = encode(
        ScoreRecord(
            id=message_id,
            text_timestamp_ms=T0,
            scores=probabilities,
            versions=dict.fromkeys(probabilities, "1"),
        )
    )
    return ConsumedRecord("t-scores", partition, offset, T0, message_id.encode(), value)


def by_topic(outputs, topic):
    return [o for o in outputs if o.topic == topic]


def test_a_result_once_every_voter_answered_and_its_state_in_the_changelog(aggregator):
    state = aggregator.assign(0)
    first = aggregator.process(batch_of([score(0, "m1", a=0.9)]), T0 + 10)
    assert first == [] and len(aggregator.tables[0].pending) == 1
    pending = state.changes()
    assert list(pending) == [b"m1"] and pending[b"m1"] is not None
    outputs = aggregator.process(batch_of([score(1, "m1", b=0.2)]), T0 + 20)
    (result,) = by_topic(outputs, "t-labels")
    label = decode_label(result.value)
    assert result.key == b"m1" and label.label == "a" and label.complete
    assert label.scores == {"a": 0.9, "b": 0.2}
    assert aggregator.process(batch_of([score(2, "m1", b=0.3)]), T0 + 30) == []  # decided once

    restored = Aggregator(aggregator.settings)
    vote(restored.view, "a")
    vote(restored.view, "b")
    again = restored.assign(0)
    decided = state.changes()
    assert decided[b"m1"] is None  # its pending record goes; the decision is in one block
    [block] = [key for key in decided if key.startswith(BLOCK_PREFIX)]
    for key, value in [*pending.items(), *decided.items()]:  # changelog order
        again.restore(key, value)
    table = restored.tables[0]
    assert not table.pending and not table.decided and len(table.done) == 1
    # a late or repeated score of m1 after the restore is still no result
    assert restored.process(batch_of([score(3, "m1", a=0.1)]), T0 + 40) == []
    assert table.counts["late_scores"] == 1 and decided[block] is not None


def test_a_join_times_out_with_the_missing_classes(aggregator):
    aggregator.assign(0)
    aggregator.process(batch_of([score(0, "m2", a=0.7)]), T0)
    (result,) = aggregator.process({}, T0 + 1_500)
    label = decode_label(result.value)
    assert not label.complete and label.missing == ["b"]


def test_refusals_and_undecodable_scores_become_one_dead_letter_each(aggregator):
    aggregator.assign(0)
    text = ConsumedRecord("t-texts", 0, 5, T0, None, b"\xff")
    refusal = Refusal.of_record(text, Reason.INVALID_UTF8, "bad bytes")
    refused = ScoreRecord(id="t-texts:0:5", text_timestamp_ms=T0, refusal=refusal)
    twice = [
        ConsumedRecord("t-scores", 0, i, T0, b"t-texts:0:5", encode(refused)) for i in range(2)
    ]
    garbage = ConsumedRecord("t-scores", 0, 2, T0, b"x", b"not json")
    outputs = aggregator.process(batch_of([*twice, garbage]), T0)
    letters = [
        DeadLetter.model_validate_json(o.value) for o in by_topic(outputs, "t-triage-dead-letters")
    ]
    assert [(d.id, d.reason, d.refused_by) for d in letters] == [
        ("t-texts:0:5", Reason.INVALID_UTF8, "classifier"),
        (None, Reason.MALFORMED_JSON, "aggregator:agg-1"),
    ]
    assert letters[0].source_offset == 5 and letters[1].source_topic == "t-scores"
    aggregator.committed()  # counts them; the next batch starts empty
    assert aggregator._dead_reasons == []


def test_scores_of_classes_nobody_registered_are_refused(aggregator):
    aggregator.assign(0)
    outputs = aggregator.process(batch_of([score(0, "m3", zzz=0.5)]), T0)
    (letter,) = by_topic(outputs, "t-triage-dead-letters")
    assert DeadLetter.model_validate_json(letter.value).reason == Reason.UNKNOWN_CLASSIFIER
