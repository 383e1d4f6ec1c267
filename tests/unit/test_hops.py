"""Where the time goes: the stage timestamps every result carries and the per-hop histogram each
service observes, on plain records without a broker."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import REGISTRY
from test_aggregator_step import T0, by_topic
from test_classifier_step import TEXTS, models, text, unit  # noqa: F401  (the models fixture)
from test_gateway_results import result
from test_join import vote

from triage.aggregator.service import Aggregator
from triage.aggregator.settings import AggregatorSettings
from triage.core.records import ConsumedRecord, batch_of
from triage.core.runtime.metrics import HOP_SECONDS, HOPS, result_hops
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.gateway.follower import Follower
from triage.schemas.codec import decode_label, decode_score, encode
from triage.schemas.models import LabelRecord, ScoreRecord
from triage.tools.bench.reporting import _hop_line, _hop_medians
from triage.tools.bench.running import RunResult, _hop_percentiles

RUN = RunResult(*[0] * 11)  # (the fields every run has; the hops set per test)

CONNECTION = ConnectionSettings(bootstrap_servers="unused:9092")


def observed(hop: str) -> float:
    """How many times `hop` was observed so far in this process."""
    return REGISTRY.get_sample_value("triage_hop_seconds_count", {"hop": hop}) or 0.0


def label(**stages: int | None) -> LabelRecord:
    """A result decided at 1,300 ms of a text published at 1,000, with `stages` set."""
    first = result("m").result
    assert first is not None
    return first.model_copy(update={"text_timestamp_ms": 1_000, "decided_at_ms": 1_300} | stages)


def test_a_results_hops_are_the_differences_of_its_stage_times():
    assert result_hops(label(scored_at_ms=1_100)) == {
        "published_to_scored": 100,
        "scored_to_decided": 200,
    }
    with_encoder = label(encoded_at_ms=1_040, scored_at_ms=1_100)
    assert result_hops(with_encoder, read_ms=1_310) == {
        "published_to_encoded": 40,
        "encoded_to_scored": 60,
        "scored_to_decided": 200,
        "decided_to_read": 10,
    }
    # a result of an aggregator from before the stages: only the reader's own hop
    assert result_hops(label(), read_ms=1_350) == {"decided_to_read": 50}
    # another host's clock ahead of ours: a hop is never negative
    assert result_hops(label(scored_at_ms=1_400)) == {
        "published_to_scored": 400,
        "scored_to_decided": 0,
    }
    assert set(result_hops(with_encoder, read_ms=0)) == set(HOPS) - {"published_to_scored"}


def aggregator() -> Aggregator:
    settings = AggregatorSettings(
        connection=CONNECTION, topic_prefix="t-", instance_id="agg-1", join_timeout_s=1
    )
    agg = Aggregator(settings)
    vote(agg.view, "a")
    vote(agg.view, "b")
    return agg


def scored(offset: int, at_ms: int, encoded_ms: int | None = None, **scores) -> ConsumedRecord:
    record = ScoreRecord(
        id="m1",
        text_timestamp_ms=T0,
        scores=scores,
        versions=dict.fromkeys(scores, "1"),
        encoded_at_ms=encoded_ms,
    )
    return ConsumedRecord("t-scores", 0, offset, at_ms, b"m1", encode(record))


def test_a_result_carries_its_last_score_records_time_also_after_a_restore():
    agg = aggregator()
    state = agg.assign(0)
    # b's score record was produced first but arrives last: the latest time stands
    assert agg.process(batch_of([scored(0, T0 + 50, T0 + 20, a=0.9)]), T0 + 60) == []
    restored = aggregator()
    again = restored.assign(0)
    for key, value in state.changes().items():  # the pending join, through its changelog
        again.restore(key, value)
    before = observed("scored_to_decided")
    outputs = restored.process(batch_of([scored(1, T0 + 40, T0 + 30, b=0.2)]), T0 + 90)
    result = decode_label(by_topic(outputs, "t-labels")[0].value)
    assert (result.text_timestamp_ms, result.encoded_at_ms) == (T0, T0 + 30)
    assert (result.scored_at_ms, result.decided_at_ms) == (T0 + 50, T0 + 90)
    assert observed("scored_to_decided") == before  # counted once committed
    restored.committed()
    assert observed("scored_to_decided") == before + 1


def test_a_text_heads_scores_carry_no_encoder_time_and_observe_published_to_scored(models):  # noqa: F811
    before = observed("published_to_scored")
    outputs = unit(models).process(batch_of([text(0, "m0", TEXTS[0])]), 5_000)
    [score] = [decode_score(o.value) for o in outputs if o.topic == "t-scores"]
    assert score.encoded_at_ms is None
    assert observed("published_to_scored") == before + 1


def test_the_gateway_observes_decided_to_read_for_results_only():
    settings = CommonSettings(connection=CONNECTION, topic_prefix="t-")
    follower = Follower(settings, lambda outcomes: None)
    before = observed("decided_to_read")
    assert follower._take("t-labels", encode(label(scored_at_ms=1_100))) is not None
    assert follower._take("t-labels", b"not a label") is None
    assert observed("decided_to_read") == before + 1


def test_the_hop_buckets_span_1_ms_to_10_s():
    HOP_SECONDS.labels("published_to_scored")
    family = next(f for f in REGISTRY.collect() if f.name == "triage_hop_seconds")
    buckets = [
        float(s.labels["le"])
        for s in family.samples
        if s.name.endswith("_bucket") and s.labels["hop"] == "published_to_scored"
    ]
    assert buckets[0] == 0.001 and buckets[-2] == 10 and buckets[-1] == float("inf")


def test_the_bench_splits_its_latency_by_hop_and_says_so():
    runs = [
        [{"published_to_scored": 10, "scored_to_decided": 30}, {"published_to_scored": 20}],
        [{"published_to_scored": 14, "scored_to_decided": 50, "decided_to_read": 4}],
    ]
    per_run = [_hop_percentiles(hops) for hops in runs]
    assert per_run[0] == {
        50: {"published_to_scored": 10.0, "scored_to_decided": 30.0},
        99: {"published_to_scored": 20.0, "scored_to_decided": 30.0},
    }
    results = [replace(RUN, hop_p50_ms=p[50], hop_p99_ms=p[99]) for p in per_run]
    report = {"hop_p50_ms": _hop_medians(results, "hop_p50_ms")}
    # in a text's order; a hop only some runs saw is the median of those
    assert report["hop_p50_ms"] == {
        "published_to_scored": 12.0,
        "scored_to_decided": 40.0,
        "decided_to_read": 4.0,
    }
    report["hop_p99_ms"] = _hop_medians(results, "hop_p99_ms")
    assert _hop_line(report) == (
        "  where time goes   published → scored 12/17, scored → decided 40/40,"
        " decided → read 4/4 ms (p50/p99)"
    )
