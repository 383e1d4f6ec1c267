import json

from hypothesis import given
from hypothesis import strategies as st

from triage.schemas.codec import (
    Reason,
    Rejected,
    TextLimits,
    decode_class_record,
    decode_score,
    decode_text,
    encode,
    fingerprint,
    parse_registry_key,
    registry_key,
)
from triage.schemas.models import ClassRecord, ScoreRecord, TextRecord, VotingSpan


def test_json_text_record_with_id_in_body():
    value = json.dumps({"id": "m1", "text": "where is my card", "metadata": {"x": 1}}).encode()
    record = decode_text(None, value)
    assert record == TextRecord(id="m1", text="where is my card", metadata={"x": 1})


def test_json_text_takes_id_from_key_when_body_has_none():
    record = decode_text(b"k7", b'{"text": "hello"}')
    assert isinstance(record, TextRecord) and record.id == "k7"


def test_plain_utf8_text_with_key():
    record = decode_text(b"k1", "my card was eaten by the ATM €".encode())
    assert isinstance(record, TextRecord)
    assert record.id == "k1" and record.text.endswith("€")


def test_plain_text_without_key_is_rejected():
    assert decode_text(None, b"hello").reason == Reason.MISSING_ID


DEFAULT_LIMITS = TextLimits()


def reason(key, value, limits=DEFAULT_LIMITS):
    result = decode_text(key, value, limits)
    assert isinstance(result, Rejected), result
    return result.reason


def test_rejections_name_the_reason():
    assert reason(b"k", b"\xff\xfe bad") == Reason.INVALID_UTF8
    assert reason(b"k", b'{"text": ') == Reason.MALFORMED_JSON
    assert reason(b"k", b'{"id": "x"}') == Reason.MISSING_TEXT
    assert reason(b"k", b'{"text": "   "}') == Reason.EMPTY_TEXT
    assert reason(b"k", b"   ") == Reason.EMPTY_TEXT
    assert reason(b"k", b"") == Reason.EMPTY_RECORD
    assert reason(b"k", None) == Reason.EMPTY_RECORD
    assert reason(b"k", b'{"text": 5}') == Reason.INVALID_FIELDS
    assert reason(b"k", b'{"schema_version": 9, "text": "a"}') == Reason.UNKNOWN_SCHEMA_VERSION
    assert reason(b"k", b"x" * 101, TextLimits(max_record_bytes=100)) == Reason.RECORD_TOO_LARGE
    assert reason(b"k", b"x" * 11, TextLimits(max_text_chars=10)) == Reason.TEXT_TOO_LONG


def test_rejection_keeps_the_id_when_readable():
    assert decode_text(b"abc", b'{"text": ""}').id == "abc"


def test_score_round_trip():
    score = ScoreRecord(id="m", text_timestamp_ms=5, scores={"a": 0.5}, versions={"a": "1"})
    assert decode_score(encode(score)) == score


def test_score_with_unknown_schema_version_is_rejected():
    value = json.dumps({"schema_version": 2, "id": "m", "text_timestamp_ms": 1}).encode()
    assert decode_score(value).reason == Reason.UNKNOWN_SCHEMA_VERSION


@given(st.one_of(st.none(), st.binary(max_size=64)), st.binary(max_size=512))
def test_text_decoder_never_raises(key, value):
    result = decode_text(key, value)
    assert isinstance(result, TextRecord | Rejected)
    if isinstance(result, TextRecord):
        assert result.text.strip() and result.id


@given(st.binary(max_size=512))
def test_score_decoder_never_raises(value):
    assert isinstance(decode_score(value), ScoreRecord | Rejected)


@given(
    st.dictionaries(
        st.sampled_from(["id", "text", "metadata", "schema_version"]),
        st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())),
    )
)
def test_json_objects_decode_or_are_rejected(obj):
    assert isinstance(decode_text(b"k", json.dumps(obj).encode()), TextRecord | Rejected)


def test_class_record_round_trip():
    record = ClassRecord(
        label="refund",
        voting=[VotingSpan(version="1", since_ms=5), VotingSpan(version="2", since_ms=9)],
    )
    assert decode_class_record(encode(record)) == record


def test_class_record_needs_a_span_and_a_label_without_at():
    assert decode_class_record(b'{"label": "a", "voting": []}').reason == Reason.INVALID_FIELDS
    bad = b'{"label": "a@1", "voting": [{"version": "1", "since_ms": 0}]}'
    assert decode_class_record(bad).reason == Reason.INVALID_FIELDS


def test_registry_keys_name_a_class_or_a_version():
    assert registry_key("refund") == "refund" and registry_key("refund", "2") == "refund@2"
    assert parse_registry_key("refund") == ("refund", None)
    assert parse_registry_key("refund@2") == ("refund", "2")
    assert parse_registry_key("refund@2@x") == ("refund", "2@x")


@given(st.binary(max_size=512))
def test_class_record_decoder_never_raises(value):
    assert isinstance(decode_class_record(value), ClassRecord | Rejected)


@given(
    st.dictionaries(
        st.sampled_from(["label", "voting", "schema_version"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(),
            st.lists(
                st.dictionaries(
                    st.sampled_from(["version", "since_ms"]),
                    st.one_of(st.none(), st.integers(), st.text()),
                )
            ),
        ),
    )
)
def test_class_record_objects_decode_or_are_rejected(obj):
    result = decode_class_record(json.dumps(obj).encode())
    assert isinstance(result, ClassRecord | Rejected)
    if isinstance(result, ClassRecord):
        assert result.voting and "@" not in result.label


def test_every_json_type_of_id_has_one_outcome():
    def outcome(id_value, key=None):
        return decode_text(key, json.dumps({"id": id_value, "text": "hi"}).encode())

    assert outcome(42).id == "42"  # an integer is its decimal string
    assert outcome(None, key=b"k").id == "k"  # null: the key, as when there is no field
    assert outcome(None).reason == Reason.MISSING_ID
    for value, kind in [(1.5, "a fractional number"), (True, "a boolean"), ([1], "an array")]:
        refused = outcome(value, key=b"k")
        assert (refused.reason, refused.id) == (Reason.INVALID_ID, "k")
        assert refused.detail == f"`id` is {kind}, not a string or integer"
    assert outcome({"a": 1}).detail.startswith("`id` is an object")


def test_a_null_value_is_an_empty_record_under_its_key():
    refused = decode_text(b"k", None)
    assert (refused.reason, refused.id) == (Reason.EMPTY_RECORD, "k")
    keyless = decode_text(None, None)  # the classifier names it by its offset
    assert (keyless.reason, keyless.id) == (Reason.EMPTY_RECORD, None)


def test_fingerprints_tell_texts_apart():
    assert fingerprint(b"a") == fingerprint(b"a") != fingerprint(b"b")
    assert len(fingerprint(b"a")) == 16


def test_a_score_with_a_malformed_fingerprint_or_source_is_refused_not_a_crash():
    for field, value in [("fingerprint", "zz"), ("source", "texts:0:-1")]:
        bad = json.dumps({"id": "m", "text_timestamp_ms": 1, field: value}).encode()
        assert decode_score(bad).reason == Reason.INVALID_FIELDS
