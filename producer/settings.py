"""The publisher's settings, from flags and `TRIAGE_*` environment variables."""

from __future__ import annotations

from pydantic import Field

from triage.core.settings import CommonSettings


class ProducerSettings(CommonSettings):
    """`triage publish` and every other writer of texts or corrections."""

    linger_ms: int = Field(default=5, ge=0)
