"""The monitor's step on plain records: results and corrections in, dead letters, quality
summaries and changelog out, without a broker (the registry view is filled by hand)."""

from __future__ import annotations

import pytest
from test_join import vote
from test_monitor_join import correction, result

from triage.core.model.quality import Reference
from triage.core.records import ConsumedRecord, batch_of
from triage.core.settings import ConnectionSettings
from triage.monitor.service import Monitor
from triage.monitor.settings import MonitorSettings
from triage.schemas.codec import Reason, encode
from triage.schemas.models import DeadLetter, QualityCounts

T0 = 10_000_000


@pytest.fixture
def monitor() -> Monitor:
    settings = MonitorSettings(
        connection=ConnectionSettings(bootstrap_servers="unused:9092"),
        topic_prefix="t-",
        instance_id="mon-1",
        correction_wait_s=5,
    )
    mon = Monitor(settings, {("a", "1"): Reference(0.9, 0.8, 0.85, [0.1] * 10)})
    vote(mon.view, "a")
    vote(mon.view, "b")
    return mon


def record(topic: str, offset: int, key: str, value: bytes, partition: int = 0):
    return ConsumedRecord(f"t-{topic}", partition, offset, T0, key.encode(), value)


def letters(outputs) -> list[DeadLetter]:
    return [
        DeadLetter.model_validate_json(o.value)
        for o in outputs
        if o.topic == "t-triage-dead-letters"
    ]


def test_a_result_and_its_correction_update_the_quality_topic_and_the_changelog(monitor):
    state = monitor.assign(0)
    labels = record("labels", 0, "m1", encode(result("m1", "a")))
    outputs = monitor.process(batch_of([labels]), T0)
    summaries = {o.key: QualityCounts.model_validate_json(o.value) for o in outputs}
    assert set(summaries) == {b"a@1/0", b"b@1/0"} and summaries[b"a@1/0"].total.results == 1
    fix = record("corrections", 0, "m1", encode(correction("m1", "a")))
    outputs = monitor.process(batch_of([fix]), T0 + 1)
    assert {o.topic for o in outputs} == {"t-triage-quality"}
    a = QualityCounts.model_validate_json(next(o.value for o in outputs if o.key == b"a@1/0"))
    assert a.total.tp == 1 and a.total.results == 1
    changelog = state.changes()
    assert b"r:m1" in changelog and b"\xffq:a@1" in changelog
    assert monitor._outcomes == ["counted"]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("m2", encode(correction("m2", "nope")), Reason.UNKNOWN_LABEL),
        ("m2", encode(correction("m2", "-")), Reason.UNKNOWN_LABEL),
        ("other", encode(correction("m2", "a")), Reason.INVALID_ID),
        ("m2", b"{not json", Reason.MALFORMED_JSON),
        ("m2", b'{"id": "m2", "corrected_at_ms": 1}', Reason.INVALID_FIELDS),  # no label: meant?
    ],
)
def test_an_unusable_correction_is_one_dead_letter(monitor, key, value, reason):
    monitor.assign(0)
    outputs = monitor.process(batch_of([record("corrections", 5, key, value)]), T0)
    [letter] = letters(outputs)
    assert letter.reason == reason and letter.source_offset == 5
    assert letter.refused_by == "monitor:mon-1"
    assert not monitor.joins[0].waiting


def test_a_held_correction_becomes_unknown_id_after_the_wait(monitor):
    monitor.assign(0)
    fix = record("corrections", 9, "m3", encode(correction("m3", None)))
    assert letters(monitor.process(batch_of([fix]), T0)) == []
    assert letters(monitor.process({}, T0 + 4_999)) == []
    [letter] = letters(monitor.process({}, T0 + 5_000))
    assert letter.reason == Reason.UNKNOWN_ID and letter.id == "m3"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "t-corrections",
        0,
        9,
    )
    assert monitor._outcomes == ["unknown_id"]


def test_the_quality_report_adds_partitions_and_names_the_voting_version(monitor):
    from triage.tools.quality import format_report, quality_report

    for partition, mid in [(0, "p0"), (1, "p1")]:
        monitor.assign(partition)
        monitor.process(
            batch_of([record("labels", 0, mid, encode(result(mid, "a")), partition)]), T0
        )
        label = "a" if partition == 0 else "b"
        fix = record("corrections", 0, mid, encode(correction(mid, label)), partition)
        monitor.process(batch_of([fix]), T0 + 1)
    counts: dict = {}
    for join in monitor.joins.values():
        for key, c in join.book.counts.items():
            counts.setdefault(key, []).append(c)
    report = quality_report(counts, monitor.view, monitor.references, T0 + 2, 60_000)
    a = report["per_class"]["a"]
    assert (a["version"], a["precision"], a["recall"], a["support"]) == ("1", 0.5, 1.0, 1)
    assert a["versions"]["1"]["offline"] == {"precision": 0.9, "recall": 0.8, "f1": 0.85}
    assert report["per_class"]["b"]["recall"] == 0.0
    [worst] = report["worst_confusions"]
    assert (worst["true"], worst["predicted"], worst["examples"]) == ("b", "a", ["p1"])
    assert "b → a@1  1  p1" in format_report(report)
    only_b = quality_report(counts, monitor.view, {}, T0 + 2, 60_000, label="b")
    assert list(only_b["per_class"]) == ["b"]


def test_the_gauges_follow_the_counts_and_leave_with_the_partition(monitor):
    from prometheus_client import REGISTRY

    def gauge(name, label="a", window="version"):
        labels = {"label": label, "version": "1", "window": window, "owner": "unowned"}
        return REGISTRY.get_sample_value(f"triage_quality_{name}", labels)

    monitor.assign(0)
    monitor.process(batch_of([record("labels", 0, "g1", encode(result("g1", "a")))]), T0)
    monitor.process(batch_of([record("corrections", 0, "g1", encode(correction("g1", "b")))]), T0)
    monitor._gauges_ms = 0  # (the test's clock is not the wall clock the gauges are paced by)
    monitor.committed()
    assert gauge("false_positives") == 1 and gauge("precision") == 0.0
    assert gauge("support", "b") == 1 and gauge("recall", "b") == 0.0
    assert REGISTRY.get_sample_value(
        "triage_quality_offline_precision", {"label": "a", "version": "1"}
    ) == pytest.approx(0.9)
    monitor.revoke(0)
    monitor._gauges_ms = 0
    monitor.committed()
    assert gauge("false_positives") is None and gauge("support", "b") is None
