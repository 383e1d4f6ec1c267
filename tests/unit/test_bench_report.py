"""The bench's report via HTTP: the open loop's request latency beside the pipeline's, and the
closed loop's answers a second, medians over the runs."""

from __future__ import annotations

from triage.tools.bench.rates import Limits
from triage.tools.bench.reporting import Asked, Quality, format_summary, report
from triage.tools.bench.running import RunResult


def run(p99: float, request_p99: float, rate: float = float("nan")) -> RunResult:
    return RunResult(
        throughput=50.0,
        p50_ms=p99 / 2,
        p95_ms=p99,
        p99_ms=p99,
        cpu_s_per_1000=1.0,
        results=100,
        duplicates=0,
        missing=0,
        agreement=1.0,
        complete=1.0,
        warmup_p99_ms=p99,
        request_p50_ms=request_p99 / 2,
        request_p95_ms=request_p99,
        request_p99_ms=request_p99,
        request_rate=rate,
        cpu_s_per_1000_by_role={"gateway": 1.0},
    )


def test_a_closed_loop_series_reports_the_median_answers_a_second_of_its_clients():
    asked = Asked("http", "colocated", 20, 100, 50.0, 3, 10, clients=20)
    open_loop = [run(60, 70), run(80, 95), run(70, 90)]
    closed = [run(90, 100, rate=210.0), run(95, 120, rate=190.0), run(99, 110, rate=250.0)]
    quality = Quality(0.9, 0.9, {})
    summary = report(asked, open_loop, [], Limits(1000, 900, None), None, quality, closed)
    assert summary["request_p99_ms"] == 90 and summary["p99_ms"] == 70
    assert summary["closed_loop_answers_per_s"] == 210.0
    assert summary["closed_loop_request_p99_ms"] == 110 and summary["closed_loop_p99_ms"] == 95
    assert len(summary["closed_loop_runs"]) == 3
    assert "20 clients: 210 answers/s" in format_summary(summary)


def test_without_clients_there_is_no_closed_loop_line():
    asked = Asked("http", "colocated", 20, 100, 50.0, 1, 10)
    summary = report(asked, [run(60, 70)], [], Limits(1000, 900, None), None, Quality(1, 1, {}))
    assert "closed_loop_clients" not in summary
    assert "closed loop" not in format_summary(summary)
