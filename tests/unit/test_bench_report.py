"""The bench's report: via HTTP the open loop's request latency beside the pipeline's, and the
closed loop's answers a second, medians over the runs; CPU per text and at rest by role, the
warm-up, the rate sweep and its bend, every block under the machine's in-process rate."""

from __future__ import annotations

import math

from triage.tools.bench.rates import Limits
from triage.tools.bench.reporting import Asked, Quality, format_summary, report
from triage.tools.bench.running import RunResult
from triage.tools.bench.sweep import format_sweep, sweep_part


def run(
    p99: float, request_p99: float, rate: float = float("nan"), cpu: float = 1.0, **more
) -> RunResult:
    return RunResult(
        throughput=50.0,
        p50_ms=p99 / 2,
        p95_ms=p99,
        p99_ms=p99,
        cpu_ms_per_text=cpu,
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
        cpu_ms_per_text_by_role={"classifiers": cpu / 2, "broker": cpu / 2, "bench": 1.0},
        broker_counted=True,
        **more,
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


def test_a_sweep_reports_each_rates_medians_and_where_the_request_p99_bends():
    by_rate = {
        10.0: [run(50, 60, cpu=30), run(52, 64, cpu=32)],
        50.0: [run(60, 80, cpu=12), run(62, 90, cpu=14)],
        200.0: [run(150, 200, cpu=4), run(170, 220, cpu=6)],
    }
    part = sweep_part("http", by_rate)
    assert [row["rate"] for row in part["sweep"]] == [10.0, 50.0, 200.0]
    assert part["sweep"][0]["request_p99_ms"] == 62 and part["sweep"][1]["cpu_ms_per_text"] == 13
    assert part["sweep"][2]["cpu_ms_per_text_by_role"]["broker"] == 2.5
    assert part["sweep_bend_rate"] == 200.0 and part["sweep_bend_on"] == "request_p99_ms"
    table = format_sweep(part | {"repeat": 2})
    assert "bend: at 200/s" in table[-1] and "62 ms" in table[-1]
    assert len(table) == 2 + 3 + 1  # title, head, a line a rate, the bend


def test_a_sweep_without_a_bend_says_none_up_to_its_highest_rate():
    part = sweep_part("kafka", {10.0: [run(50, math.nan)], 100.0: [run(70, math.nan)]})
    assert part["sweep_bend_rate"] is None and part["sweep_bend_on"] == "p99_ms"
    assert "bend: none up to 100/s" in format_sweep(part | {"repeat": 1})[-1]


def summary(asked: Asked, runs: list[RunResult], **more) -> dict:
    limits, quality = Limits(4270, 3000, None), Quality(0.9, 0.9, {})
    return report(asked, runs, [], limits, None, quality, **more)


def test_every_block_of_figures_is_headed_by_the_machines_in_process_rate():
    rest = {"rest_s": 10.0, "rest_cpu_pct": 12.0, "cpu": 10.0}
    runs = [
        run(60, 70, rest_cpu_pct_by_role={"monitor": 2.0, "broker": 10.0, "bench": 1.0}, **rest),
        run(80, 90, rest_cpu_pct_by_role={"monitor": 4.0, "broker": 8.0, "bench": 1.0}, **rest),
    ]
    asked = Asked("http", "colocated", 20, 100, 10.0, 2, None)
    text = format_summary(summary(asked, runs, sweep={10.0: runs, 50.0: runs}))
    machine = "machine: 4270 texts/s in process (one core)"
    assert text.count(machine) == 2 and text.startswith(machine)
    assert "rate sweep" in text.split(machine)[2]
    assert "CPU per text      10.00 ms, every process of the stack (broker included)" in text
    assert "the bench's clients 1.00 (not counted)" in text
    assert "at rest           12.0 % of one core over 10 s" in text
    assert "monitor 3.00 %" in text


def test_the_report_says_when_the_broker_is_not_counted_and_how_the_warm_up_went():
    each = run(60, 70, warmup_s=6.2, warmup_texts=300, warmup_round_p99_ms=[400.0, 150, 140])
    each.broker_counted = False
    each.cpu_ms_per_text_by_role = {"classifiers": 5.0, "bench": 1.0}
    asked = Asked("kafka", "colocated", 20, 100, 50.0, 1, None, monitor=False)
    result = summary(asked, [each])
    text = format_summary(result)
    assert result["warmup_s"] == 6.2 and result["monitor"] is False
    assert "broker not counted" in text and "no monitor" in text
    assert (
        "settled in 6.2 s (median); first run: 3 rounds, 300 texts, p99 400 → 150 → 140 ms" in text
    )
    assert "at rest" not in text  # not measured


def test_an_asked_warm_up_count_is_reported_as_such():
    asked = Asked("kafka", "colocated", 20, 100, 50.0, 1, 20)
    text = format_summary(summary(asked, [run(60, 70, warmup_s=0.4, warmup_texts=20)]))
    assert "20 texts before each measured run (0.4 s)" in text
