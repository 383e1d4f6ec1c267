"""How long a run warms up before it is measured. A fresh stack is slow for a while after its
consumer groups joined: the broker's JIT compiles its request paths, the clients fetch metadata,
the interpreter's caches fill. Unless a count of texts is asked, the bench sends warm-up
traffic at the run's rate in rounds and stops once a round's p99 latency is within a quarter of
the round before's and, when the broker's processes are known, its JIT compiler threads used at
most `JIT_SETTLED` of one core in the round (at least two rounds, and at most `MAX_S` of them);
the rounds' p99s, the broker's JIT share of each and the time it took are reported with the run.
Measured on a fresh local broker at 50 texts/s: its compiler threads took 24 % of a core in the
first minute, and a broker still compiling cost a text twice the CPU of a settled one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

ROUND_S = 2.0  # a round's traffic at the run's rate
FULL_SPEED_ROUND = 500  # a round's texts when the run publishes as fast as it can
MIN_ROUNDS = 2
MAX_S = 90.0  # rounds stop here even if the latency or the JIT still moves (the report says so)
TOLERANCE = 0.25
JIT_SETTLED = 0.05  # the broker's compiler threads' share of one core in a settled round


@dataclass
class WarmUp:
    """What one run's warm-up took: its texts, seconds, each round's p99 (ms) and whether the
    latency settled (an asked count of texts is one round, settled by definition)."""

    texts: int = 0
    seconds: float = 0.0
    round_p99_ms: list[float] = field(default_factory=list)
    round_jit_pct: list[float] = field(default_factory=list)  # broker's JIT, % of one core
    settled: bool = True


def round_size(rate: float | None) -> int:
    """Texts in a round: `ROUND_S` of traffic at `rate`, or `FULL_SPEED_ROUND` at full speed."""
    return max(1, round(rate * ROUND_S)) if rate else FULL_SPEED_ROUND


def settled(
    round_p99_ms: Sequence[float],
    round_jit_pct: Sequence[float] = (),
    tolerance: float = TOLERANCE,
) -> bool:
    """Whether the last round's p99 is within `tolerance` of the one before (two rounds at
    least; a round without a p99 never settles) and the broker's JIT, when measured, used at
    most `JIT_SETTLED` of a core in it."""
    if len(round_p99_ms) < MIN_ROUNDS:
        return False
    if round_jit_pct and round_jit_pct[-1] > JIT_SETTLED * 100:
        return False
    last, before = round_p99_ms[-1], round_p99_ms[-2]
    if math.isnan(last) or math.isnan(before):
        return False
    return abs(last - before) <= tolerance * before


def another_round(
    round_p99_ms: Sequence[float],
    elapsed_s: float,
    round_jit_pct: Sequence[float] = (),
    max_s: float = MAX_S,
) -> bool:
    """Whether to send one more round: not settled yet, and time left (`MIN_ROUNDS` always)."""
    if len(round_p99_ms) < MIN_ROUNDS:
        return True
    return not settled(round_p99_ms, round_jit_pct) and elapsed_s < max_s
