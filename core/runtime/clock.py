"""Wall-clock time in the unit of Kafka timestamps, in one place so pure logic can take it as
an argument and tests can pass their own."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of Kafka timestamps and registry times."""
    return int(time.time() * 1000)


def when(ms: int | None) -> str:
    """A time for people: UTC, to the second."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
