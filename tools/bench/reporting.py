"""The bench's report: medians over the repeated runs of what each measured, set beside the
limits measured in process (the ratios), the correctness of every run (the worst of them), and
the accuracy of the labels; `format_summary` prints it for a person, the CLI's `--json` as is.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from triage.core.runtime.metrics import HOPS
from triage.encoder.sentence import SentenceEncoder
from triage.tools.bench.rates import Limits
from triage.tools.bench.running import RunResult


@dataclass(frozen=True)
class Asked:
    """What the bench was asked to run, as the report repeats it."""

    via: str
    mode: str
    classes: int
    messages: int
    rate: float | None
    repeat: int
    warmup: int
    clients: int | None = None  # --via http: the closed loop's clients


@dataclass(frozen=True)
class Quality:
    """The labels' accuracy through the pipeline and through scikit-learn's default path, and
    the aggregator join's cost per record by the number of joins pending."""

    accuracy: float
    default_path_accuracy: float
    join_us_per_record_by_pending: dict[str, float]


def report(
    asked: Asked,
    runs: list[RunResult],
    half: list[RunResult],
    limits: Limits,
    encoder: SentenceEncoder | None,
    quality: Quality,
    closed: Sequence[RunResult] = (),
) -> dict[str, Any]:
    """The report of a series of `runs` (and `half`, the runs at half the encoder's rate;
    `closed`, the closed-loop runs of `asked.clients` clients)."""
    throughput = statistics.median(r.throughput for r in runs)
    gateway = _request_medians(runs) if asked.via == "http" else {}
    return (
        gateway
        | _encoder_part(encoder, limits.encoding, throughput, half)
        | {
            "via": asked.via,
            "mode": asked.mode,
            "classes": asked.classes,
            "messages": asked.messages,
            "rate": asked.rate,
            "repeat": asked.repeat,
        }
        | _medians(runs, throughput)
        | {
            "inprocess_throughput": round(limits.inprocess, 1),
            "warmup": asked.warmup,
            # The pipeline's labels equal `fast` (`agreement`); the default path is
            # scikit-learn's own predict_proba of every model, as training evaluated them.
            "accuracy": quality.accuracy,
            "default_path_accuracy": quality.default_path_accuracy,
            "join_us_per_record_by_pending": quality.join_us_per_record_by_pending,
            "ratio": round(throughput / limits.inprocess, 3),
            # against the limit times every core (the broker shares them), and against the
            # same processes scoring with no Kafka in between
            "cores_ratio": round(throughput / (limits.inprocess * (os.cpu_count() or 1)), 3),
            "no_kafka_throughput": round(limits.no_kafka, 1),
            "no_kafka_ratio": round(throughput / limits.no_kafka, 3),
            "cores": os.cpu_count(),
        }
        | _closed_loop_part(asked.clients, list(closed))
        | _correctness(runs + half + list(closed))
        | {"runs": [asdict(r) for r in runs], "half_rate_runs": [asdict(r) for r in half]}
        | {"closed_loop_runs": [asdict(r) for r in closed]}
    )


def _request_medians(runs: list[RunResult]) -> dict[str, Any]:
    return {
        f"request_{k}": statistics.median(getattr(r, f"request_{k}") for r in runs)
        for k in ("p50_ms", "p95_ms", "p99_ms")
    } | {"request_failures": sum(r.request_failures for r in runs)}


def _closed_loop_part(clients: int | None, closed: list[RunResult]) -> dict[str, Any]:
    """Answers a second that `clients` clients got, each sending when answered, and their
    request latency beside the pipeline's own in the same runs."""
    if not closed:
        return {}
    return {
        "closed_loop_clients": clients,
        "closed_loop_answers_per_s": statistics.median(r.request_rate for r in closed),
        "closed_loop_request_p50_ms": statistics.median(r.request_p50_ms for r in closed),
        "closed_loop_request_p99_ms": statistics.median(r.request_p99_ms for r in closed),
        "closed_loop_p99_ms": statistics.median(r.p99_ms for r in closed),
    }


def _encoder_part(
    encoder: SentenceEncoder | None,
    encoding: float | None,
    throughput: float,
    half: list[RunResult],
) -> dict[str, Any]:
    if encoder is None or encoding is None:
        return {}
    encoded: dict[str, Any] = {
        "encoder": encoder.identity,
        "encoder_threads": encoder.threads,
        "encoder_inprocess_throughput": round(encoding, 1),
        "encoder_ratio": round(throughput / encoding, 3),
    }
    if half:
        encoded |= {
            "half_rate": round(encoding / 2, 1),
            "half_rate_throughput": statistics.median(r.throughput for r in half),
            "half_rate_p50_ms": statistics.median(r.p50_ms for r in half),
            "half_rate_p99_ms": statistics.median(r.p99_ms for r in half),
        }
    return encoded


def _medians(runs: list[RunResult], throughput: float) -> dict[str, Any]:
    return {
        "throughput": throughput,
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p95_ms": statistics.median(r.p95_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "cpu_s_per_1000": statistics.median(r.cpu_s_per_1000 for r in runs),
        "cpu_s_per_1000_by_role": {
            role: statistics.median(r.cpu_s_per_1000_by_role[role] for r in runs)
            for role in runs[0].cpu_s_per_1000_by_role
        },
        "hop_p50_ms": _hop_medians(runs, "hop_p50_ms"),
        "hop_p99_ms": _hop_medians(runs, "hop_p99_ms"),
    }


def _hop_medians(runs: list[RunResult], field: str) -> dict[str, float]:
    """Each hop's median over the runs that saw it, in the order of the hops of a text."""
    seen = [getattr(r, field) for r in runs]
    return {
        hop: statistics.median(each[hop] for each in seen if hop in each)
        for hop in HOPS
        if any(hop in each for each in seen)
    }


def _hop_line(report: dict) -> str:
    """`published → scored 12/40, scored → decided 30/90 ms (p50/p99)`, hop by hop."""
    p99 = report.get("hop_p99_ms", {})
    hops = ", ".join(
        f"{hop.replace('_to_', ' → ')} {ms:.0f}/{p99.get(hop, float('nan')):.0f}"
        for hop, ms in report.get("hop_p50_ms", {}).items()
    )
    return f"  where time goes   {hops} ms (p50/p99)" if hops else "  where time goes   unknown"


def _correctness(everything: list[RunResult]) -> dict[str, Any]:
    return {
        "duplicates": sum(r.duplicates for r in everything),
        "missing": sum(r.missing for r in everything),
        "agreement": min(r.agreement for r in everything),
        "complete": min(r.complete for r in everything),
    }


def format_summary(report: dict) -> str:
    lines = [
        f"mode {report['mode']}, {report['classes']} classes, {report['messages']} texts, "
        f"rate {report['rate'] or 'max'}, {report['repeat']} runs (medians):",
        f"  throughput        {report['throughput']:.0f} texts/s end to end",
        f"  latency           p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, "
        f"p99 {report['p99_ms']:.0f} ms",
        f"  CPU               {report['cpu_s_per_1000']:.2f} s per 1,000 texts (pipeline); "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["cpu_s_per_1000_by_role"].items()),
        f"  in-process limit  {report['inprocess_throughput']:.0f} texts/s on one core "
        f"(ratio {report['ratio']:.2f}; {report['cores_ratio']:.2f} of it times "
        f"{report['cores']} cores)",
        f"  without Kafka     {report['no_kafka_throughput']:.0f} texts/s: the same classifier "
        f"processes scoring at once (ratio {report['no_kafka_ratio']:.2f})",
        "  aggregator join   "
        + ", ".join(
            f"{v} us/record at {k} pending"
            for k, v in report["join_us_per_record_by_pending"].items()
        ),
        f"  correctness       {report['missing']} missing, {report['duplicates']} duplicates, "
        f"agreement with offline {report['agreement']:.2%}, complete {report['complete']:.2%}",
        f"  accuracy          {report['accuracy']:.2%} through the pipeline, "
        f"{report['default_path_accuracy']:.2%} through scikit-learn's default path",
        f"  warm-up           {report['warmup']} texts before each measured run",
    ]
    if report.get("encoder"):
        lines.insert(
            5,
            f"  encoder           {report['encoder']}: {report['encoder_inprocess_throughput']:.0f}"
            f" texts/s in process on {report['encoder_threads']} thread(s), the limit; end to "
            f"end {report['encoder_ratio']:.2f} of it",
        )
        if "half_rate" in report:
            lines.insert(
                6,
                f"  at half of it     {report['half_rate']:.0f} texts/s offered: "
                f"{report['half_rate_throughput']:.0f} texts/s, "
                f"p50 {report['half_rate_p50_ms']:.0f} ms, p99 {report['half_rate_p99_ms']:.0f} ms",
            )
    if report.get("via") == "http":
        lines.insert(
            3,
            f"  via HTTP          request p50 {report['request_p50_ms']:.0f} ms, p95 "
            f"{report['request_p95_ms']:.0f} ms, p99 {report['request_p99_ms']:.0f} ms "
            f"(send to answer; the latency above is the pipeline's own, text to result); "
            f"{report['request_failures']} failed",
        )
    if "closed_loop_clients" in report:
        lines.insert(
            4,
            f"  closed loop       {report['closed_loop_clients']} clients: "
            f"{report['closed_loop_answers_per_s']:.0f} answers/s, request p50 "
            f"{report['closed_loop_request_p50_ms']:.0f} ms, p99 "
            f"{report['closed_loop_request_p99_ms']:.0f} ms (pipeline p99 "
            f"{report['closed_loop_p99_ms']:.0f} ms)",
        )
    lines.insert(3, _hop_line(report))  # after the latency it splits
    return "\n".join(lines)
