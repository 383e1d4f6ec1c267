"""`triage bench` end to end on the test run's broker: correctness of what it reports, not speed."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest
from conftest import DEMO_TRAIN

from triage.encoder.sentence import DEFAULT

# A bench run does fixed work besides the pipeline (the in-process limit, the no-Kafka rate, the
# join cost with 100,000 pending joins): on a slow hour of this 2-core machine the per-process
# case took over 300 s, the suite's default limit. The command's own timeout is 600 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPORT_KEYS = {"throughput", "p50_ms", "p95_ms", "p99_ms", "inprocess_throughput", "ratio"} | {
    "cores_ratio",
    "no_kafka_throughput",
    "no_kafka_ratio",
    "cpu_ms_per_text",
    "warmup_s",
}


HOPS_WITHOUT_ENCODER = ("published_to_scored", "scored_to_decided", "decided_to_read")


@pytest.mark.parametrize(("mode", "rate"), [("colocated", None), ("per-process", 100)])
def test_bench_reports_every_text_once_with_offline_labels(env, demo_models, mode, rate):
    args = ["--data", str(DEMO_TRAIN), "--classes", "3", "--messages", "60", "--repeat", "2"]
    args += ["--warmup", "20", "--mode", mode, "--models", str(demo_models), "--json"]
    args += ["--rest-s", "0"]
    if rate:
        args += ["--rate", str(rate)]
    report = run_bench(env, *args)
    assert set(report) >= REPORT_KEYS
    assert (report["mode"], report["classes"], report["warmup"]) == (mode, 3, 20)
    assert len(report["runs"]) == 2
    for run in report["runs"]:
        assert (run["results"], run["missing"], run["duplicates"]) == (60, 0, 0)
        assert run["agreement"] == 1.0 and run["complete"] == 1.0
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]
        assert run["throughput"] > 0 and run["cpu_ms_per_text"] > 0
        assert run["warmup_texts"] == 20 and run["warmup_s"] > 0
        # where the time goes, hop by hop, from the results' stage timestamps
        assert list(run["hop_p50_ms"]) == [*HOPS_WITHOUT_ENCODER]
        assert all(0 <= run["hop_p50_ms"][h] <= run["hop_p99_ms"][h] for h in run["hop_p50_ms"])
    assert report["throughput"] == statistics.median(r["throughput"] for r in report["runs"])
    assert report["accuracy"] == report["default_path_accuracy"]
    assert report["ratio"] == round(report["throughput"] / report["inprocess_throughput"], 3)
    assert report["no_kafka_throughput"] > 0
    assert list(report["hop_p50_ms"]) == [*HOPS_WITHOUT_ENCODER]
    # the stack as `triage up` starts it, monitor included; a broker it cannot see is not counted
    roles = report["cpu_ms_per_text_by_role"]
    assert report["monitor"] is True and "monitor" in roles and "broker" not in roles
    assert report["broker_counted"] is False and not report["rest_cpu_pct_by_role"]
    bench_cpu = roles["bench"]
    assert report["cpu_ms_per_text"] == pytest.approx(sum(roles.values()) - bench_cpu, abs=0.01)


def test_bench_via_http_reports_request_latency_beside_the_pipelines(env, demo_models, kafka_home):
    # no --warmup: rounds until the latency settles; the broker's pids found, so counted
    args = ["--data", str(DEMO_TRAIN), "--classes", "3", "--messages", "60", "--repeat", "1"]
    args += ["--models", str(demo_models), "--rate", "50", "--via", "http", "--rest-s", "1"]
    report = run_bench(env | {"TRIAGE_KAFKA_HOME": str(kafka_home)}, *args, "--json")
    (run,) = report["runs"]
    assert (run["results"], run["missing"], run["duplicates"]) == (60, 0, 0)
    assert run["agreement"] == 1.0 and run["request_failures"] == 0
    assert 0 < run["request_p50_ms"] <= run["request_p95_ms"] <= run["request_p99_ms"]
    assert run["p50_ms"] > 0
    assert report["request_p99_ms"] == run["request_p99_ms"] and report["via"] == "http"
    # the warm-up: rounds of 2 s at 50/s, two at least, its length reported
    assert report["warmup"] is None and len(run["warmup_round_p99_ms"]) >= 2
    assert run["warmup_texts"] == 100 * len(run["warmup_round_p99_ms"])
    assert run["warmup_s"] >= 2 * 2
    # the broker's JIT share of every round, read from its compiler threads
    jit = run["warmup_round_jit_pct"]
    assert len(jit) == len(run["warmup_round_p99_ms"]) and all(j >= 0 for j in jit)
    assert not run["warmup_settled"] or jit[-1] <= 5
    # every role of the stack, the broker and the monitor among them, per text and at rest
    roles = report["cpu_ms_per_text_by_role"]
    assert {"classifiers", "aggregator", "monitor", "gateway", "broker", "bench"} <= set(roles)
    assert report["broker_counted"] is True and roles["broker"] > 0
    rest = report["rest_cpu_pct_by_role"]
    assert set(rest) == set(roles) and report["rest_s"] == 1
    assert report["rest_cpu_pct"] == pytest.approx(sum(rest.values()) - rest["bench"], abs=0.01)


def run_bench(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "triage.cli", "--log-level", "WARNING", "bench", *args],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_bench_with_an_encoder_reports_its_limit_and_half_rate_latency(env, tmp_path):
    args = ["--data", str(DEMO_TRAIN), "--classes", "3", "--messages", "60", "--repeat", "1"]
    args += ["--warmup", "20", "--encoder", "default", "--threads", "1", "--json", "--rest-s", "0"]
    report = run_bench(env | {"TRIAGE_CACHE_DIR": str(tmp_path)}, *args)
    assert report["encoder"].startswith(DEFAULT + "@") and report["encoder_threads"] == 1
    assert report["encoder_inprocess_throughput"] > 0
    # (the rate is reported to 0.1 texts/s, the ratio computed before that rounding)
    assert report["encoder_ratio"] == pytest.approx(
        report["throughput"] / report["encoder_inprocess_throughput"], abs=2e-3
    )
    assert abs(report["half_rate"] - report["encoder_inprocess_throughput"] / 2) <= 0.1
    for run in report["runs"] + report["half_rate_runs"]:
        assert (run["results"], run["missing"], run["duplicates"]) == (60, 0, 0)
        assert run["agreement"] == 1.0 and run["complete"] == 1.0
    # the heads run in the encoder's process, as `triage up` runs them: no encoder process
    assert report["heads_with_encoder"] is True
    roles = report["cpu_ms_per_text_by_role"]
    assert "encoder" not in roles and roles["classifiers"] > 0
    assert report["accuracy"] == report["default_path_accuracy"]
