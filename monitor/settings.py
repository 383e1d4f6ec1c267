"""The monitor's settings, from flags and `TRIAGE_*` environment variables."""

from __future__ import annotations

from pydantic import Field

from triage.core.settings import POLL_TIMEOUT_MS, CommonSettings
from triage.core.topology import MONITOR


class MonitorSettings(CommonSettings):
    """`triage monitor`: results joined with corrections, live quality per class version."""

    correction_horizon_s: float = Field(
        default=86400.0,
        gt=0,
        description="how long a result is kept waiting for its correction; a correction for"
        " a result older than this finds nothing (unknown_id)",
    )
    correction_wait_s: float = Field(
        default=600.0,
        gt=0,
        description="how long a correction that arrived before its result waits for it, then"
        " unknown_id",
    )
    quality_window_s: float = Field(
        default=3600.0, gt=0, description="the sliding window of the live figures"
    )
    max_batch: int = Field(default=2000, ge=1)
    poll_timeout_ms: int = Field(default=POLL_TIMEOUT_MS, ge=1)
    # Off the answer's path: nothing waits for the monitor's outputs, so it commits at most once
    # a second instead of once a poll (at 50 texts/s that was a transaction every 20 ms, and
    # most of the monitor's CPU).
    commit_interval_ms: int = Field(
        default=1000,
        ge=0,
        le=60_000,
        description="at most one transaction this often: results polled sooner wait for the"
        " rest of it (0: one transaction a poll)",
    )
    group_id: str = MONITOR.group_id()
