"""The encoder stage and the heads on its features, without a broker.

The encoder runs for real here, on the packaged weights `make install` brings (`encoder`
extra): they are small enough for a unit test (about 1 s to load, a few ms a text).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from test_training import synthetic

from triage.consumers import metrics as classifier_metrics
from triage.consumers.service import ClassifierUnit, reads_of
from triage.consumers.settings import ClassifierSettings
from triage.core.errors import ConfigError
from triage.core.model.artifacts import load_models
from triage.core.model.scoring import Scorer
from triage.core.records import ConsumedRecord, batch_of
from triage.core.settings import ConnectionSettings
from triage.encoder.sentence import DEFAULT, EncoderError, SentenceEncoder, resolve
from triage.encoder.service import EncoderStage
from triage.encoder.settings import EncoderSettings
from triage.schemas import embedding
from triage.schemas.codec import Reason, decode_features, decode_score, encode, fingerprint
from triage.schemas.models import FeatureRecord, TextRecord
from triage.tools import supervisor
from triage.training.embeddings import embed
from triage.training.train import Options, split, split_rows, train, with_embeddings

TEXTS = ["my card never arrived", "please refund the purchase", "pin locked", "card"]
CONNECTION = ConnectionSettings(bootstrap_servers="unused:9092")


# The transformer alone (384 dimensions): the default sets a second encoder beside it.
L6 = "minilm-l6-int8"


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(L6, threads=1)


@pytest.fixture(scope="module")
def heads(tmp_path_factory, encoder):
    """Heads trained on the synthetic data with MiniLM-L6's features."""
    out = tmp_path_factory.mktemp("heads")
    options = Options(encoder=L6, embedding_weight=2.0)
    train(synthetic(out), out / "m", options=options, n_jobs=1, progress=False)
    return load_models(out / "m")


# -- the wire form ----------------------------------------------------------------------------
def test_int8_round_trip_keeps_embeddings_to_a_cosine_above_0_9999():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q, scales = embedding.quantize(x)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    back = embedding.unpack([embedding.pack(row) for row in q], scales.tolist(), 384)
    assert np.allclose(back, embedding.round_trip(x))
    cosine = (back * x).sum(axis=1) / np.linalg.norm(back, axis=1)
    assert cosine.min() > 0.9999


def test_unpack_refuses_rows_of_the_wrong_width():
    rows = [embedding.pack(np.ones(384, np.int8)), embedding.pack(np.ones(381, np.int8))]
    with pytest.raises(ValueError, match="expected 384"):
        embedding.unpack(rows, [1.0, 1.0], 384)
    assert embedding.unpack([], [], 384).shape == (0, 384)


# -- the encoder ------------------------------------------------------------------------------
def test_the_default_encoder_is_named_and_fingerprinted(encoder):
    assert resolve("default").name == DEFAULT == "minilm-l6-use"
    assert encoder.name == L6 and re.fullmatch(r"minilm-l6-int8@[0-9a-f]{16}", encoder.identity)
    with pytest.raises(EncoderError, match="unknown encoder 'nope'; known: default"):
        resolve("nope")


def test_a_text_encodes_the_same_alone_or_in_any_batch(encoder):
    together = encoder.encode(TEXTS)
    alone = np.vstack([encoder.encode([t]) for t in TEXTS])
    assert together.shape == (4, encoder.dim) == (4, 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.abs(together - alone).max() < 1e-5
    # meaning, not spelling: the two card texts are nearer each other than to the refund
    cos = together @ together.T
    assert cos[0, 3] > cos[0, 1]


def test_a_companion_encoder_sits_beside_the_transformer(encoder):
    pair = SentenceEncoder(DEFAULT, threads=2)
    assert re.fullmatch(r"minilm-l6-use@[0-9a-f]{16}", pair.identity)
    together = pair.encode(TEXTS)
    alone = np.vstack([pair.encode([t]) for t in TEXTS])
    assert together.shape == (4, pair.dim) == (4, 384 + 512)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.abs(together - alone).max() < 1e-5
    # the first 384 are the transformer's own embedding, scaled with its companion's to norm 1
    assert np.abs(together[:, :384] * np.sqrt(2) - encoder.encode(TEXTS)).max() < 1e-5


def test_training_embeddings_are_cached_and_served_as_the_wire_sends_them(
    encoder, tmp_path, monkeypatch
):
    monkeypatch.setenv("TRIAGE_CACHE_DIR", str(tmp_path))
    first = embed(encoder, TEXTS, progress=False)
    assert len(list(Path(tmp_path).rglob("*.npy"))) == 1
    assert np.array_equal(first, embed(encoder, TEXTS, progress=False))
    assert np.array_equal(first, embedding.round_trip(encoder.encode(TEXTS)))


# -- the encoder stage ------------------------------------------------------------------------
def text_record(offset: int, message_id: str, body: str) -> ConsumedRecord:
    value = encode(TextRecord(id=message_id, text=body))
    return ConsumedRecord("t-texts", 0, offset, 1_000 + offset, message_id.encode(), value)


def stage(encoder) -> EncoderStage:
    settings = EncoderSettings(connection=CONNECTION, topic_prefix="t-", instance_id="e1")
    return EncoderStage(settings, encoder)


def test_the_stage_publishes_one_features_record_a_text_and_passes_refusals_on(encoder):
    records = [text_record(i, f"m{i}", t) for i, t in enumerate(TEXTS)]
    records.append(ConsumedRecord("t-texts", 0, 9, 5, b"bad", b'{"id": "bad", "text": '))
    outputs = stage(encoder).process(batch_of(records), now_ms=0)
    assert {o.topic for o in outputs} == {"t-features"}
    assert [o.key for o in outputs] == [b"m0", b"m1", b"m2", b"m3", b"bad"]
    decoded = [decode_features(o.value) for o in outputs]
    vectors = embedding.unpack(
        [d.embedding for d in decoded[:4]], [d.scale for d in decoded[:4]], 384
    )
    assert np.allclose(vectors, embedding.round_trip(encoder.encode(TEXTS)))
    for i, d in enumerate(decoded[:4]):
        assert d.encoder == encoder.identity and d.text == TEXTS[i]
        assert d.text_timestamp_ms == 1_000 + i and d.source == f"t-texts:0:{i}"
        assert d.fingerprint == fingerprint(TEXTS[i].encode()) and d.refusal is None
    bad = decoded[4]
    assert bad.refusal.reason == Reason.MALFORMED_JSON and bad.embedding is None
    assert bad.refusal.source_offset == 9 and bad.source == "t-texts:0:9"


def test_each_chunk_counts_its_own_texts_when_committed_after_the_next_was_encoded(encoder):
    from triage.encoder import metrics as encoder_metrics

    encoded = encoder_metrics.ENCODED.labels(encoder.name)
    service = stage(encoder)
    assert service.overlap_chunk == 128 and service.max_batch == 512
    before = encoded._value.get()
    service.process(batch_of([text_record(i, f"m{i}", t) for i, t in enumerate(TEXTS)]), 0)
    service.process(batch_of([text_record(9, "m9", "my card")]), 0)  # while the first commits
    service.committed()
    assert encoded._value.get() - before == len(TEXTS)
    service.committed()
    assert encoded._value.get() - before == len(TEXTS) + 1


# -- heads on features ------------------------------------------------------------------------
def features_record(offset: int, features: FeatureRecord) -> ConsumedRecord:
    return ConsumedRecord("t-features", 0, offset, 99, features.id.encode(), encode(features))


def served(encoder, texts: list[str], identity: str | None = None) -> list[ConsumedRecord]:
    q, scales = embedding.quantize(encoder.encode(texts))
    return [
        features_record(
            i,
            FeatureRecord(
                id=f"m{i}",
                text_timestamp_ms=1_000 + i,
                encoder=identity or encoder.identity,
                text=t,
                embedding=embedding.pack(q[i]),
                scale=float(scales[i]),
                fingerprint=fingerprint(t.encode()),
                source=f"t-texts:0:{i}",
            ),
        )
        for i, t in enumerate(texts)
    ]


def head_unit(heads) -> ClassifierUnit:
    settings = ClassifierSettings(
        connection=CONNECTION, topic_prefix="t-", instance_id="h1", heartbeat_s=3600
    )
    return ClassifierUnit(settings, heads)


def test_heads_read_the_features_topic_and_score_as_offline(heads, encoder):
    unit = head_unit(heads)
    assert unit.inputs == ("t-features",) and unit.encoder == encoder.identity
    assert all(m.manifest.reads == f"features:{encoder.identity}" for m in heads)
    outputs = [
        o for o in unit.process(batch_of(served(encoder, TEXTS)), 0) if o.topic == "t-scores"
    ]
    offline = Scorer(heads).score(TEXTS, embedding.round_trip(encoder.encode(TEXTS)))
    for i, out in enumerate(outputs):
        score = decode_score(out.value)
        assert score.id == f"m{i}" and score.text_timestamp_ms == 1_000 + i
        assert score.source == f"t-texts:0:{i}"  # the text's, not the features record's
        assert score.encoded_at_ms == 99  # the features record's Kafka timestamp
        assert score.scores == pytest.approx({k: float(v[i]) for k, v in offline.items()})


def test_features_of_another_encoder_are_skipped_counted_and_never_scored(heads, encoder, caplog):
    unit = head_unit(heads)
    other = "minilm-l3@" + "0" * 16
    before = classifier_metrics.FEATURES_SKIPPED.labels(other)._value.get()
    outputs = unit.process(batch_of(served(encoder, TEXTS, identity=other)), 0)
    assert [o for o in outputs if o.topic == "t-scores"] == []
    assert classifier_metrics.FEATURES_SKIPPED.labels(other)._value.get() == before + 4
    assert sum(other in r.message for r in caplog.records) == 1  # logged once, not per record


def test_refusals_and_broken_features_become_refusal_scores(heads, encoder):
    unit = head_unit(heads)
    [good] = served(encoder, ["pin locked"])
    refused = stage(encoder).process(
        batch_of([ConsumedRecord("t-texts", 0, 7, 5, None, b"plain text, no key")]), 0
    )
    passed = ConsumedRecord("t-features", 0, 1, 5, refused[0].key, refused[0].value)
    short = FeatureRecord.model_validate_json(good.value).model_copy(
        update={"id": "short", "embedding": base64.b64encode(b"\x01\x02").decode()}
    )
    garbage = ConsumedRecord("t-features", 0, 3, 5, b"g", b"not json")
    outputs = unit.process(batch_of([good, passed, features_record(2, short), garbage]), 0)
    scores = [decode_score(o.value) for o in outputs if o.topic == "t-scores"]
    assert [s.id for s in scores] == ["m0", "t-texts:0:7", "short", "g"]
    assert scores[0].refusal is None
    assert scores[1].refusal.reason == Reason.MISSING_ID  # the encoder's own reason, passed on
    assert scores[1].refusal.source_topic == "t-texts" and scores[1].source == "t-texts:0:7"
    assert scores[2].refusal.reason == Reason.INVALID_FEATURES
    assert scores[3].refusal.reason == Reason.INVALID_FEATURES
    assert all(s.versions == unit.versions for s in scores[1:])


def test_one_process_hosts_heads_of_one_input(heads, tmp_path):
    train(synthetic(tmp_path), tmp_path / "text", n_jobs=1, progress=False)
    text_heads = load_models(tmp_path / "text", ["card"])
    assert reads_of(text_heads) is None
    with pytest.raises(ConfigError, match="one classifier process hosts heads of one input"):
        reads_of([*text_heads, heads[1]])


# -- training and planning --------------------------------------------------------------------
def test_split_rows_is_the_split_of_the_texts(tmp_path):
    data = synthetic(tmp_path)
    x_train, x_val, _, _ = split(data)
    train_rows, val_rows = split_rows(data)
    assert [data.texts[i] for i in train_rows] == x_train
    assert [data.texts[i] for i in val_rows] == x_val


def test_scorer_equals_scikit_learn_on_the_weighted_blocks(heads, encoder):
    vectors = embedding.round_trip(encoder.encode(TEXTS))
    fast = Scorer(heads).score(TEXTS, vectors)
    for model in heads:
        tfidf = model.pipeline.named_steps["features"].transform(TEXTS)
        x = with_embeddings(tfidf, vectors, model.manifest.embedding_weight)
        clf: LogisticRegression = model.pipeline.named_steps["clf"]
        assert sparse.issparse(x) and x.shape[1] == clf.coef_.shape[1]
        assert fast[model.label] == pytest.approx(clf.predict_proba(x)[:, 1])
    with pytest.raises(ValueError, match="need one embedding a text"):
        Scorer(heads).score(TEXTS)


def test_up_starts_an_encoder_for_the_heads_that_read_one():
    reads = {"a": "text", "b": "features:minilm-l6-int8@" + "1" * 16, "c": "text"}
    children = supervisor.plan(Path("m"), reads, colocated=True, metrics_base=9400)
    names = [c.name for c in children]
    assert names == [
        "classifier (colocated, text)",
        "classifier (colocated, features:minilm-l6-int8@1111111111111111)",
        "encoder minilm-l6-int8",
        "aggregator",
        "monitor",
    ]
    assert children[2].argv[-3:] == ["encoder", "--encoder", "minilm-l6-int8"]
    ports = [c.env["TRIAGE_METRICS_PORT"] for c in children]
    assert len(set(ports)) == 5
    without = supervisor.plan(Path("m"), reads, colocated=True, metrics_base=None, monitor=False)
    assert [c.name for c in without][-1] == "aggregator"


# -- heads in the encoder's process (`triage classifier --with-encoder`) ---------------------
def fused_unit(heads, encoder, publish_features: bool = False) -> ClassifierUnit:
    settings = ClassifierSettings(
        connection=CONNECTION, topic_prefix="t-", instance_id="h1", heartbeat_s=3600
    )
    return ClassifierUnit(settings, heads, encoder=encoder, publish_features=publish_features)


def with_a_bad_one(texts: list[str]) -> list[ConsumedRecord]:
    records = [text_record(i, f"m{i}", t) for i, t in enumerate(texts)]
    return [*records, ConsumedRecord("t-texts", 0, 9, 5, None, b"plain text, no key")]


def test_fused_heads_score_exactly_what_they_would_read_from_the_features_topic(heads, encoder):
    texts = with_a_bad_one(TEXTS)
    unit = fused_unit(heads, encoder)
    assert unit.inputs == ("t-texts",) and unit.outputs == ("t-scores", "t-triage-registry")
    assert unit.overlap_chunk == 128  # encoding costs far more than a commit, as in the stage
    outputs = unit.process(batch_of(texts), 0)
    fused = [decode_score(o.value) for o in outputs if o.topic == "t-scores"]
    assert {o.topic for o in outputs} <= {"t-scores", "t-triage-registry"}  # no features
    # The same texts the other way: the stage's features records, read by the same heads.
    features = stage(encoder).process(batch_of(texts), 0)
    passed = [ConsumedRecord("t-features", 0, i, 7, o.key, o.value) for i, o in enumerate(features)]
    apart = [
        decode_score(o.value)
        for o in head_unit(heads).process(batch_of(passed), 0)
        if o.topic == "t-scores"
    ]
    assert [s.id for s in fused] == ["m0", "m1", "m2", "m3", "t-texts:0:9"]
    # Every field: scores, versions, fingerprint, source, refusal (the order within a poll aside).
    # (the time it was encoded aside: the features records' timestamp there, the unit's clock here)
    assert all(s.encoded_at_ms is not None for s in fused[:4])
    assert [s.encoded_at_ms for s in apart if s.refusal is None] == [7] * 4
    unstamped = [s.model_copy(update={"encoded_at_ms": None}) for s in fused]
    assert unstamped == sorted(
        (s.model_copy(update={"encoded_at_ms": None}) for s in apart),
        key=lambda s: [s.id for s in fused].index(s.id),
    )
    offline = Scorer(heads).score(TEXTS, embedding.round_trip(encoder.encode(TEXTS)))
    for i, score in enumerate(fused[:4]):
        assert score.scores == {k: float(v[i]) for k, v in offline.items()}
    assert fused[4].refusal.reason == Reason.MISSING_ID


def test_fused_heads_publish_the_stages_features_records_only_when_asked(heads, encoder):
    texts = with_a_bad_one(TEXTS)
    unit = fused_unit(heads, encoder, publish_features=True)
    assert unit.outputs == ("t-scores", "t-triage-registry", "t-features")
    outputs = unit.process(batch_of(texts), 0)
    features = [o for o in outputs if o.topic == "t-features"]
    assert features == stage(encoder).process(batch_of(texts), 0)
    assert len([o for o in outputs if o.topic == "t-scores"]) == len(texts)


def test_a_fused_unit_hosts_only_heads_of_the_encoder_it_runs(heads, encoder, tmp_path):
    class Other:  # an encoder of another identity: never loaded, refused before any text
        name, identity = "minilm-l3", "minilm-l3@" + "0" * 16

        def encode(self, texts: list[str]) -> np.ndarray:
            raise AssertionError("never called")

    with pytest.raises(ConfigError, match="not encoder minilm-l3"):
        fused_unit(heads, Other())
    text_heads = tmp_path / "text"
    train(synthetic(tmp_path), text_heads, n_jobs=1, progress=False)
    with pytest.raises(ConfigError, match="read the text alone"):
        fused_unit(load_models(text_heads), encoder)


def test_up_runs_an_encoders_heads_in_its_process_by_default():
    reads = {"a": "text", "b": "features:minilm-l6-int8@" + "1" * 16, "c": "text"}
    reads["d"] = reads["b"]
    fused = supervisor.plan(Path("m"), reads, colocated=False, metrics_base=9400, fused=True)
    assert [c.name for c in fused] == [
        "classifier (with its encoder, features:minilm-l6-int8@1111111111111111)",
        "classifier a",
        "classifier c",
        "aggregator",
        "monitor",
    ]
    assert fused[0].argv[-5:] == ["--label", "b", "--label", "d", "--with-encoder"]
    assert len({c.env["TRIAGE_METRICS_PORT"] for c in fused}) == 5
    apart = supervisor.plan(Path("m"), reads, colocated=False, metrics_base=None, fused=False)
    assert [c.name for c in apart][:5] == [
        "classifier a",
        "classifier b",
        "classifier c",
        "classifier d",
        "encoder minilm-l6-int8",
    ]
    assert not any("--with-encoder" in c.argv for c in apart)
