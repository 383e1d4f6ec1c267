"""When an open loop's texts are due: evenly spaced, or as independent senders send them.

Evenly spaced texts (one every 1/rate s) never come together, which flatters a p99 and a stage
that gathers an interval's texts into one transaction. Customers writing in on their own come
as a Poisson process: the gaps between texts are exponential, and at 50 texts/s 22 % of them
are longer than 30 ms while 45 % are shorter than 12. The schedule is drawn from a fixed seed, so
every run of a series (and the code before and after a change) gets the same one.
"""

from __future__ import annotations

import random

ARRIVALS = ("even", "poisson")


def due_offsets(count: int, rate: float, arrivals: str = "even", seed: int = 0) -> list[float]:
    """Seconds from the start at which each of `count` texts is due, `rate` a second on average."""
    if rate <= 0:
        raise ValueError(f"rate must be above 0 texts/s, not {rate:g}")
    if arrivals == "even":
        return [i / rate for i in range(count)]
    if arrivals != "poisson":
        raise ValueError(f"arrivals: one of {', '.join(ARRIVALS)}, not {arrivals!r}")
    draw, at, offsets = random.Random(seed), 0.0, []
    for _ in range(count):
        offsets.append(at)
        at += draw.expovariate(rate)
    return offsets
