"""The encoder stage's settings, from flags and `TRIAGE_*` environment variables."""

from __future__ import annotations

from pydantic import Field

from triage.core.settings import POLL_TIMEOUT_MS, CommonSettings
from triage.schemas.codec import DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_TEXT_CHARS, TextLimits


class EncoderSettings(CommonSettings):
    """`triage encoder`: texts in, one embedding a text out on the features topic."""

    encoder: str = Field(default="default", description="which encoder (`triage encoder --list`)")
    threads: int | None = Field(
        default=None, ge=1, description="ONNX Runtime threads (default: the CPUs we may use)"
    )
    # Encoded 128 at a time, each 128 one transaction that commits while the next encode (a
    # service's `overlap_chunk`). Measured, `triage bench`, 77 heads, 2 threads: end to end 0.76
    # and 0.83 of the in-process rate at 128, 0.67 to 0.73 at 64 (fewer transactions: the
    # broker's CPU a text fell from 1.0-1.8 ms to 0.7). A small poll is one transaction.
    max_batch: int = Field(default=512, ge=1, description="texts polled at once")
    encode_batch: int = Field(
        default=128, ge=1, description="texts encoded at once, and committed in one transaction"
    )
    poll_timeout_ms: int = Field(default=POLL_TIMEOUT_MS, ge=1)
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, ge=1)
    max_text_chars: int = Field(default=DEFAULT_MAX_TEXT_CHARS, ge=1)

    @property
    def limits(self) -> TextLimits:
        return TextLimits(self.max_record_bytes, self.max_text_chars)
