"""The rate sweep (`--rates`): the same series at each rate, and where the latency bends. Each
rate's row holds the medians of its runs (request and pipeline p50 and p99, CPU per text in all
and by role); the bend is the first rate whose p99 (the request's via HTTP, else the
pipeline's) exceeds `BEND_FACTOR` times the lowest rate's.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from triage.tools.bench.costs import BENCH, role_medians
from triage.tools.bench.running import RunResult

BEND_FACTOR = 1.5


def bend_rate(
    p99_by_rate: Sequence[tuple[float, float]], factor: float = BEND_FACTOR
) -> float | None:
    """The first rate (lowest first) whose p99 exceeds `factor` times the lowest rate's, or None
    when none does."""
    ordered = sorted(p99_by_rate)
    if not ordered:
        return None
    lowest = ordered[0][1]
    return next((rate for rate, p99 in ordered[1:] if p99 > factor * lowest), None)


def sweep_part(via: str, runs_by_rate: Mapping[float, list[RunResult]]) -> dict[str, Any]:
    """The sweep's rows, lowest rate first, and its bend (empty without a sweep)."""
    if not runs_by_rate:
        return {}
    rows = [_row(via, rate, runs) for rate, runs in sorted(runs_by_rate.items())]
    on = "request_p99_ms" if via == "http" else "p99_ms"
    return {
        "sweep": rows,
        "sweep_bend_on": on,
        "sweep_bend_factor": BEND_FACTOR,
        "sweep_bend_rate": bend_rate([(row["rate"], row[on]) for row in rows]),
    }


def _row(via: str, rate: float, runs: list[RunResult]) -> dict[str, Any]:
    fields = ["p50_ms", "p99_ms", "cpu_ms_per_text", "throughput"]
    if via == "http":
        fields = ["request_p50_ms", "request_p99_ms", *fields]
    return (
        {"rate": rate}
        | {f: statistics.median(getattr(r, f) for r in runs) for f in fields}
        | {"cpu_ms_per_text_by_role": role_medians([r.cpu_ms_per_text_by_role for r in runs])}
    )


def format_sweep(report: Mapping[str, Any]) -> list[str]:
    """The sweep as a table, one line a rate, and the bend under it."""
    rows = report["sweep"]
    http = "request_p99_ms" in rows[0]
    roles = list(dict.fromkeys(r for row in rows for r in row["cpu_ms_per_text_by_role"]))
    head = f"  {'rate/s':>7}"
    head += f" {'request p50':>11} {'p99':>6}" if http else ""
    head += f" {'pipeline p50':>12} {'p99':>6} {'CPU ms/text':>11}"
    head += "".join(f" {_role_title(r):>{max(8, len(_role_title(r)))}}" for r in roles)
    lines = [
        f"rate sweep ({report['repeat']} run(s) a rate, medians; latencies in ms; CPU ms per text,"
        " the stack's total counting every role but the bench's clients):",
        head,
    ]
    for row in rows:
        line = f"  {row['rate']:>7g}"
        if http:
            line += f" {row['request_p50_ms']:>11.0f} {row['request_p99_ms']:>6.0f}"
        line += f" {row['p50_ms']:>12.0f} {row['p99_ms']:>6.0f} {row['cpu_ms_per_text']:>11.2f}"
        by_role = row["cpu_ms_per_text_by_role"]
        line += "".join(
            f" {by_role.get(r, float('nan')):>{max(8, len(_role_title(r)))}.2f}" for r in roles
        )
        lines.append(line)
    lines.append("  " + bend_line(report))
    return lines


def bend_line(report: Mapping[str, Any]) -> str:
    rows = report["sweep"]
    which = "request" if report["sweep_bend_on"] == "request_p99_ms" else "pipeline"
    lowest = rows[0][report["sweep_bend_on"]]
    bend = report["sweep_bend_rate"]
    if bend is None:
        return (
            f"bend: none up to {rows[-1]['rate']:g}/s ({which} p99 within "
            f"{report['sweep_bend_factor']:g}× the lowest rate's {lowest:.0f} ms)"
        )
    return (
        f"bend: at {bend:g}/s, the first rate whose {which} p99 exceeds "
        f"{report['sweep_bend_factor']:g}× the lowest rate's {lowest:.0f} ms"
    )


def _role_title(role: str) -> str:
    return "bench clients" if role == BENCH else role
