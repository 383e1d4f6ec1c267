"""The aggregator's settings, from flags and `TRIAGE_*` environment variables."""

from __future__ import annotations

from pydantic import Field

from triage.core.settings import POLL_TIMEOUT_MS, CommonSettings
from triage.core.topology import AGGREGATOR


class AggregatorSettings(CommonSettings):
    join_timeout_s: float = Field(default=10.0, gt=0, description="wait for missing scores")
    threshold: float = Field(default=0.0, ge=0.0, le=1.0, description="abstain below this")
    dedupe_horizon_s: float = Field(
        default=3600.0,
        gt=0,
        description="how long a decision missing a voter waits for its late score; older texts"
        " not pending are stale",
    )
    retry_window_s: float = Field(
        default=900.0,
        gt=0,
        description="how long a decided id is remembered (32 bytes), so a re-published text"
        " stays one result and another text under the id one dead letter",
    )
    max_batch: int = Field(default=2000, ge=1)
    poll_timeout_ms: int = Field(default=POLL_TIMEOUT_MS, ge=1)
    group_id: str = AGGREGATOR.group_id()
