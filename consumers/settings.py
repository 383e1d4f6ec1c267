"""The classifier's settings, from flags and `TRIAGE_*` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from triage.core.model.signing import SigningKey
from triage.core.registry.settings import RegistrySettings
from triage.core.settings import POLL_TIMEOUT_MS
from triage.schemas.codec import DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_TEXT_CHARS, TextLimits


class ClassifierSettings(RegistrySettings):
    """`triage classifier`: texts in, one score record a text out."""

    max_batch: int = Field(default=500, ge=1, description="records polled and scored at once")
    poll_timeout_ms: int = Field(default=POLL_TIMEOUT_MS, ge=1)
    # With the heads' encoder in this process (`--with-encoder`): texts encoded and committed in
    # one transaction at a time, as `triage encoder` does (see its settings for the measurement).
    threads: int | None = Field(
        default=None, ge=1, description="with --with-encoder: ONNX Runtime threads"
    )
    encode_batch: int = Field(
        default=128, ge=1, description="with --with-encoder: texts encoded at once, one commit"
    )
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, ge=1)
    max_text_chars: int = Field(default=DEFAULT_MAX_TEXT_CHARS, ge=1)
    start_from: Literal["since", "earliest", "latest"] = "earliest"
    model_signing_key: SigningKey | None = Field(
        default=None,
        description="HMAC key: when set, only models whose manifest it signed are loaded",
    )

    @property
    def limits(self) -> TextLimits:
        return TextLimits(self.max_record_bytes, self.max_text_chars)
