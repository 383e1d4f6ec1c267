"""Encoding and decoding of every triage record, in one place.

Decoders never raise on bad input: they return a `Rejected` value naming the reason, so the
calling service can route the record to the dead-letter topic and move on (errors are data).
Limits on record size are checked before any decoding work is done.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from triage.schemas.models import (
    SCHEMA_VERSION,
    Announcement,
    ClassRecord,
    CorrectionRecord,
    FeatureRecord,
    LabelRecord,
    ScoreRecord,
    TextRecord,
)

M = TypeVar("M", bound=BaseModel)

DEFAULT_MAX_RECORD_BYTES = 64 * 1024
DEFAULT_MAX_TEXT_CHARS = 10_000


class Reason:
    """Dead-letter reasons: stable strings that dashboards and alerts group by."""

    RECORD_TOO_LARGE = "record_too_large"
    EMPTY_RECORD = "empty_record"
    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    MISSING_ID = "missing_id"
    INVALID_ID = "invalid_id"
    DUPLICATE_ID = "duplicate_id"
    MISSING_TEXT = "missing_text"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    INVALID_FIELDS = "invalid_fields"
    UNKNOWN_CLASSIFIER = "unknown_classifier"
    INVALID_FEATURES = "invalid_features"
    UNKNOWN_ID = "unknown_id"
    UNKNOWN_LABEL = "unknown_label"
    DUPLICATE_CORRECTION = "duplicate_correction"


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record could not be used; `id` is the message id when it could still be read."""

    reason: str
    detail: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class TextLimits:
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS


def encode(record: BaseModel) -> bytes:
    return record.model_dump_json(exclude_none=False).encode()


def fingerprint(data: bytes) -> str:
    """What a score was computed from, as 16 hex digits (BLAKE2b-64: ~1 µs a short text)."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def decode_key(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_text(
    key: bytes | None, value: bytes | None, limits: TextLimits = TextLimits()
) -> TextRecord | Rejected:
    """A `texts` record: a JSON TextRecord, or plain UTF-8 text with the id in the key."""
    key_id = decode_key(key)
    if not value:
        return Rejected(Reason.EMPTY_RECORD, "the record has no value", key_id)
    size, limit = len(value), limits.max_record_bytes
    if size > limit:
        return _over_limit(Reason.RECORD_TOO_LARGE, size, limit, "bytes", key_id)
    try:
        raw = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(Reason.INVALID_UTF8, str(exc), key_id)
    if raw.lstrip().startswith("{"):
        return _decode_json_text(raw, key_id, limits)
    if key_id is None:
        return Rejected(Reason.MISSING_ID, "plain-text record without a message id in its key")
    return _checked_text(key_id, raw, None, limits)


def _decode_json_text(raw: str, key_id: str | None, limits: TextLimits) -> TextRecord | Rejected:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Rejected(Reason.MALFORMED_JSON, str(exc), key_id)
    if not isinstance(obj, dict):
        return Rejected(Reason.NOT_AN_OBJECT, "JSON value is not an object", key_id)
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        return Rejected(Reason.UNKNOWN_SCHEMA_VERSION, f"schema_version {version!r}", key_id)
    record_id = _json_id(obj.get("id"), key_id)
    if isinstance(record_id, Rejected):
        return record_id
    text = obj.get("text")
    if text is None:
        return Rejected(Reason.MISSING_TEXT, "JSON object has no `text` field", record_id)
    if not isinstance(text, str):
        return Rejected(Reason.INVALID_FIELDS, "`text` is not a string", record_id)
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return Rejected(Reason.INVALID_FIELDS, "`metadata` is not an object", record_id)
    return _checked_text(record_id, text, metadata, limits)


def _json_id(value: object, key_id: str | None) -> str | Rejected:
    """The message id of a JSON text: its `id` field, else the key.

    A string is the id as it is; an integer is taken as its decimal string (`42` and `"42"`
    are one id); `null` or no field falls back to the key; any other JSON type is refused as
    `invalid_id`, naming the type, never as a missing id.
    """
    if value is None:
        if not key_id:
            return Rejected(Reason.MISSING_ID, "no message id in the key or the `id` field")
        return key_id
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = _JSON_TYPES.get(type(value), type(value).__name__)
        return Rejected(Reason.INVALID_ID, f"`id` is {kind}, not a string or integer", key_id)
    record_id = str(value)
    if not record_id:
        return Rejected(Reason.MISSING_ID, "`id` is an empty string", key_id)
    return record_id


_JSON_TYPES = {bool: "a boolean", float: "a fractional number", list: "an array", dict: "an object"}


def _checked_text(
    record_id: str, text: str, metadata: dict | None, limits: TextLimits
) -> TextRecord | Rejected:
    if not text.strip():
        return Rejected(Reason.EMPTY_TEXT, "the text is empty", record_id)
    if len(text) > limits.max_text_chars:
        return _over_limit(
            Reason.TEXT_TOO_LONG, len(text), limits.max_text_chars, "characters", record_id
        )
    try:
        return TextRecord(id=record_id, text=text, metadata=metadata)
    except ValidationError as exc:
        return Rejected(Reason.INVALID_FIELDS, _first_error(exc), record_id)


def _over_limit(reason: str, size: int, limit: int, unit: str, record_id: str | None) -> Rejected:
    return Rejected(reason, f"{size} {unit} exceeds the limit of {limit}", record_id)


def _decode_model(model: type[M], value: bytes | None, max_bytes: int) -> M | Rejected:
    if not value:
        return Rejected(Reason.EMPTY_RECORD, "the record has no value")
    if len(value) > max_bytes:
        return Rejected(Reason.RECORD_TOO_LARGE, f"{len(value)} bytes exceeds {max_bytes}")
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        return _rejection_for(exc)


def _rejection_for(exc: ValidationError) -> Rejected:
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        return Rejected(Reason.MALFORMED_JSON, _first_error(exc))
    if any(e["loc"] == ("schema_version",) for e in errors):
        return Rejected(Reason.UNKNOWN_SCHEMA_VERSION, _first_error(exc))
    return Rejected(Reason.INVALID_FIELDS, _first_error(exc))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "record"
    return f"{where}: {err['msg']}"


def decode_score(value: bytes | None, max_bytes: int = 1024 * 1024) -> ScoreRecord | Rejected:
    return _decode_model(ScoreRecord, value, max_bytes)


def decode_features(value: bytes | None, max_bytes: int = 1024 * 1024) -> FeatureRecord | Rejected:
    return _decode_model(FeatureRecord, value, max_bytes)


def decode_announcement(value: bytes | None) -> Announcement | Rejected:
    return _decode_model(Announcement, value, 64 * 1024)


def decode_class_record(value: bytes | None) -> ClassRecord | Rejected:
    return _decode_model(ClassRecord, value, 1024 * 1024)


def registry_key(label: str, version: str | None = None) -> str:
    """`<label>` keys a class record, `<label>@<version>` a running version's announcement."""
    return label if version is None else f"{label}@{version}"


def parse_registry_key(key: str) -> tuple[str, str | None]:
    """(label, version) of an announcement key, (label, None) of a class record key."""
    label, at, version = key.partition("@")
    return label, (version if at else None)


def decode_label(value: bytes | None) -> LabelRecord | Rejected:
    return _decode_model(LabelRecord, value, 1024 * 1024)


def decode_correction(value: bytes | None) -> CorrectionRecord | Rejected:
    return _decode_model(CorrectionRecord, value, 64 * 1024)
