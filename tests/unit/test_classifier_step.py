"""The classifier's step on plain records: scores, refusals and heartbeats, without a broker."""

from __future__ import annotations

import pytest
from test_training import synthetic

from triage.consumers.service import ClassifierUnit
from triage.consumers.settings import ClassifierSettings
from triage.core.model.artifacts import load_models
from triage.core.model.scoring import Scorer
from triage.core.records import ConsumedRecord, batch_of
from triage.core.settings import ConnectionSettings
from triage.schemas.codec import Reason, decode_announcement, decode_score, encode, fingerprint
from triage.schemas.models import ClassifierMode, TextRecord
from triage.training.train import train

TEXTS = ["my card never arrived", "please refund the purchase", "pin locked"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    train(synthetic(out), out / "m", n_jobs=1, progress=False)
    return load_models(out / "m")


def unit(models, mode=ClassifierMode.VOTING) -> ClassifierUnit:
    settings = ClassifierSettings(
        connection=ConnectionSettings(bootstrap_servers="unused:9092"),
        topic_prefix="t-",
        instance_id="host-1",
        heartbeat_s=3600,
    )
    return ClassifierUnit(settings, models, mode)


def text(offset: int, message_id: str, body: str, partition: int = 0) -> ConsumedRecord:
    value = encode(TextRecord(id=message_id, text=body))
    return ConsumedRecord("t-texts", partition, offset, 1_000 + offset, message_id.encode(), value)


def test_one_score_record_per_text_with_every_class_and_the_offline_scores(models):
    u = unit(models)
    records = [text(i, f"m{i}", body) for i, body in enumerate(TEXTS)]
    records.append(text(0, "m9", TEXTS[0], partition=1))
    outputs = u.process(batch_of(records), now_ms=5_000)
    scores = [o for o in outputs if o.topic == "t-scores"]
    assert [o.key for o in scores] == [b"m0", b"m1", b"m2", b"m9"]
    offline = Scorer(models).score(TEXTS)
    for i, out in enumerate(scores[:3]):
        record = decode_score(out.value)
        assert record.id == f"m{i}" and record.text_timestamp_ms == 1_000 + i
        assert record.versions == {m.label: m.version for m in models}
        assert record.scores == pytest.approx({k: float(v[i]) for k, v in offline.items()})
        assert record.refusal is None and record.instance == "host-1"
        assert record.fingerprint == fingerprint(TEXTS[i].encode())
        assert record.source == f"t-texts:0:{i}"
    assert decode_score(scores[3].value).fingerprint == decode_score(scores[0].value).fingerprint


def test_a_record_that_cannot_be_read_becomes_a_refusal_with_its_bytes(models):
    u = unit(models)
    bad = ConsumedRecord("t-texts", 2, 41, 7, None, b"\xff\xfe not utf-8")
    no_id = ConsumedRecord("t-texts", 2, 42, 7, None, b"plain text without a key")
    outputs = [o for o in u.process(batch_of([bad, no_id]), 0) if o.topic == "t-scores"]
    first, second = (decode_score(o.value) for o in outputs)
    assert first.id == "t-texts:2:41" and first.refusal.reason == Reason.INVALID_UTF8
    assert first.refusal.source_offset == 41 and first.refusal.original_key_b64 is None
    assert second.refusal.reason == Reason.MISSING_ID and outputs[1].key == b"t-texts:2:42"
    assert second.versions == {m.label: m.version for m in models}  # who refused it


def test_heartbeats_ride_in_a_batch_only_when_due(models):
    u = unit(models, ClassifierMode.SHADOW)
    first = [o for o in u.process({}, 0) if o.topic == "t-triage-registry"]
    assert sorted(o.key for o in first) == sorted(f"{m.label}@{m.version}".encode() for m in models)
    announcement = decode_announcement(first[0].value)
    assert announcement.mode is ClassifierMode.SHADOW and announcement.group_id == u.group_id
    assert u.process({}, 0) == []  # the next one is an hour away


def test_a_shadow_unit_reads_in_a_group_of_its_own(models):
    voting, shadow = unit(models), unit(models, ClassifierMode.SHADOW)
    assert voting.group_id.startswith("t-triage-classifier-colocated-")
    assert shadow.group_id != voting.group_id
    assert voting.inputs == ("t-texts",) and "t-scores" in voting.outputs
