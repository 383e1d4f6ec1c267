"""What the registry's protocol needs beyond the connection: heartbeats, the switch delay, and
the promotion gate's margins."""

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
    gate_max_drop: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="the promotion gate refuses a candidate that would lower another class's "
        "precision or recall on the judged texts by more than this",
    )
    gate_min_judged: int = Field(
        default=100,
        ge=0,
        description="the promotion gate refuses a candidate with fewer judged texts (scored by "
        "it, with a committed result and a correction) than this",
    )
