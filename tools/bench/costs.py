"""What the stack costs in CPU, the way its users pay it: every process of a run read from
/proc by role (classifiers or the encoder, aggregator, monitor, gateway, the broker when its pids
are known, and the bench's own clients), as milliseconds of CPU per text while texts flow and as
percent of one core at rest. The stack's total counts every role but the bench's: the bench's
publishing and reading stand in for the users, whose own CPU is not the stack's.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH = "bench"  # the bench's own process: reported, never counted in the stack's total
ROLE_ORDER = ("encoder", "classifiers", "aggregator", "monitor", "gateway", "broker", BENCH)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU seconds of `pids` so far (a process gone counts nothing)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total / CLK_TCK


def jit_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds the JVMs among `pids` spent in their JIT compiler threads so far (HotSpot
    names them `C1 CompilerThread<n>` and `C2 CompilerThread<n>`, cut to 15 characters)."""
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            try:
                if "CompilerThre" not in (task / "comm").read_text():
                    continue
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return total / CLK_TCK


def role_of(child_name: str) -> str:
    """`classifier (colocated, text)` → classifiers; `aggregator` → aggregator."""
    role = child_name.split()[0]
    return "classifiers" if role == "classifier" else role


def roles(
    named_pids: Sequence[tuple[str, int]], broker_pids: Sequence[int]
) -> dict[str, list[int]]:
    """Role → pids, in `ROLE_ORDER`: the children (name, pid), the broker when its pids are
    known, and this process as the bench's."""
    found: dict[str, list[int]] = {}
    for name, pid in named_pids:
        found.setdefault(role_of(name), []).append(pid)
    if broker_pids:
        found["broker"] = list(broker_pids)
    found[BENCH] = [os.getpid()]
    ordered = [r for r in ROLE_ORDER if r in found] + [r for r in found if r not in ROLE_ORDER]
    return {role: found[role] for role in ordered}


class CpuMeter:
    """CPU seconds each role used since the meter was made."""

    def __init__(self, by_role: Mapping[str, Sequence[int]]) -> None:
        self.by_role = dict(by_role)
        self.before = {role: cpu_seconds(pids) for role, pids in self.by_role.items()}

    def used(self) -> dict[str, float]:
        return {role: cpu_seconds(pids) - self.before[role] for role, pids in self.by_role.items()}


def per_text_ms(used_s: Mapping[str, float], texts: int) -> dict[str, float]:
    """Each role's CPU milliseconds per text (CPU seconds per 1,000 texts, the same number)."""
    return {role: round(s * 1000 / max(texts, 1), 3) for role, s in used_s.items()}


def percent_of_core(used_s: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Each role's CPU over `seconds` of wall clock, as percent of one core."""
    return {role: round(s / seconds * 100, 2) for role, s in used_s.items()}


def less_rest(
    used_s: Mapping[str, float], rest_pct: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """`used_s` less what each role spends at rest (`rest_pct`, % of one core) over `seconds`
    of it, never below zero."""
    return {
        role: max(0.0, s - rest_pct.get(role, 0.0) / 100 * seconds) for role, s in used_s.items()
    }


def stack_total(by_role: Mapping[str, float]) -> float:
    """The stack's figure: every role's but the bench's own."""
    return round(sum(v for role, v in by_role.items() if role != BENCH), 3)


def role_medians(each_run: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each role's median over the runs that have it, in the order the first run lists them."""
    order = list(dict.fromkeys(role for run in each_run for role in run))
    return {role: statistics.median(run[role] for run in each_run if role in run) for role in order}


def format_roles(by_role: Mapping[str, float], unit: str = "") -> str:
    """`classifiers 3.10, aggregator 2.00; bench's clients 1.10 (not counted)`."""
    counted = ", ".join(f"{r} {v:.2f}{unit}" for r, v in by_role.items() if r != BENCH)
    if BENCH not in by_role:
        return counted
    return f"{counted}; the bench's clients {by_role[BENCH]:.2f}{unit} (not counted)"
