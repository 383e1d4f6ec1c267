"""What the registry's protocol needs beyond the connection: heartbeats and the switch delay."""

from __future__ import annotations

from pydantic import Field

from triage.core.settings import CommonSettings


class RegistrySettings(CommonSettings):
    """A classifier's announcements and a promotion's timing, shared by every registry writer."""

    heartbeat_s: float = Field(default=10.0, gt=0)
    switch_delay_s: float = Field(
        default=5.0,
        ge=0,
        description="a new voter (new class, promote) votes on texts published this long after "
        "it is written to the registry, so every aggregator has read it before such a text",
    )
