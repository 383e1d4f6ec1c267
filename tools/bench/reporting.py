"""The bench's report: medians over the repeated runs of what each measured (latency, CPU per
text and at rest by role, the warm-up's length), set beside the limits measured in process (the
ratios), the correctness of every run (the worst of them), the accuracy of the labels, and the
rate sweep when one ran; `format_summary` prints it for a person, every block under this
machine's in-process rate so figures from two machines compare; the CLI's `--json` as is.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from triage.core.runtime.metrics import HOPS
from triage.encoder.sentence import SentenceEncoder
from triage.tools.bench.costs import format_roles, role_medians
from triage.tools.bench.rates import Limits
from triage.tools.bench.running import RunResult
from triage.tools.bench.sweep import format_sweep, sweep_part


@dataclass(frozen=True)
class Asked:
    """What the bench was asked to run, as the report repeats it."""

    via: str
    mode: str
    classes: int
    messages: int
    rate: float | None
    repeat: int
    warmup: int | None  # texts before each run; None: rounds until the latency settles
    clients: int | None = None  # --via http: the closed loop's clients
    monitor: bool = True  # the stack as `triage up` starts it, monitor included
    arrivals: str = "even"  # at a rate: evenly spaced texts, or Poisson (tools/arrivals.py)


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
    sweep: Mapping[float, list[RunResult]] | None = None,
) -> dict[str, Any]:
    """The report of a series of `runs` (and `half`, the runs at half the encoder's rate;
    `closed`, the closed-loop runs of `asked.clients` clients; `sweep`, the runs at each rate
    of a sweep, `runs` among them)."""
    sweep = sweep or {}
    swept = [r for rate, each in sweep.items() if rate != asked.rate for r in each]
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
            "arrivals": asked.arrivals,
            "repeat": asked.repeat,
            "monitor": asked.monitor,
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
        | sweep_part(asked.via, sweep)
        | _correctness(runs + half + list(closed) + swept)
        | {"runs": [asdict(r) for r in runs], "half_rate_runs": [asdict(r) for r in half]}
        | {"closed_loop_runs": [asdict(r) for r in closed]}
        | (
            {"sweep_runs": {str(k): [asdict(r) for r in v] for k, v in sweep.items()}}
            if sweep
            else {}
        )
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
        # the stack's CPU per text (the broker's when `broker_counted`), every role apart
        "cpu_ms_per_text": statistics.median(r.cpu_ms_per_text for r in runs),
        "cpu_ms_per_text_by_role": role_medians([r.cpu_ms_per_text_by_role for r in runs]),
        "broker_counted": all(r.broker_counted for r in runs),
        # the stack at rest, no texts: percent of one core
        "rest_s": runs[0].rest_s,
        "rest_cpu_pct": statistics.median(r.rest_cpu_pct for r in runs),
        "rest_cpu_pct_by_role": role_medians([r.rest_cpu_pct_by_role for r in runs]),
        "warmup_s": statistics.median(r.warmup_s for r in runs),
        "warmup_settled": all(r.warmup_settled for r in runs),
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


def _rate(report: dict) -> str:
    """The asked rate as the summary names it: "max", "50.0", or "50.0 (poisson arrivals)"."""
    if not report["rate"]:
        return "max"
    arrivals = report["arrivals"]
    return f"{report['rate']}" + ("" if arrivals == "even" else f" ({arrivals} arrivals)")


def format_summary(report: dict) -> str:
    lines = [
        machine_line(report),
        f"mode {report['mode']}, {report['classes']} classes, {report['messages']} texts, "
        f"rate {_rate(report)}, {_runs(report['repeat'])} (medians), "
        + ("monitor included, as `triage up` runs it:" if report["monitor"] else "no monitor:"),
        f"  throughput        {report['throughput']:.0f} texts/s end to end",
        f"  latency           p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, "
        f"p99 {report['p99_ms']:.0f} ms",
        _hop_line(report),
        *_http_lines(report),
        *_cost_lines(report),
        f"  in-process limit  {report['inprocess_throughput']:.0f} texts/s on one core "
        f"(ratio {report['ratio']:.2f}; {report['cores_ratio']:.2f} of it times "
        f"{report['cores']} cores)",
        *_encoder_lines(report),
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
        warmup_line(report),
    ]
    if "sweep" in report:
        lines += ["", machine_line(report), *format_sweep(report)]
    return "\n".join(lines)


def machine_line(report: Mapping[str, Any]) -> str:
    """This machine's speed, beside every block of figures: they compare across machines."""
    return (
        f"machine: {report['inprocess_throughput']:.0f} texts/s in process (one core), "
        f"{report['cores']} cores"
    )


def _http_lines(report: Mapping[str, Any]) -> list[str]:
    lines = []
    if report.get("via") == "http":
        lines.append(
            f"  via HTTP          request p50 {report['request_p50_ms']:.0f} ms, p95 "
            f"{report['request_p95_ms']:.0f} ms, p99 {report['request_p99_ms']:.0f} ms "
            f"(send to answer; the latency above is the pipeline's own, text to result); "
            f"{report['request_failures']} failed"
        )
    if "closed_loop_clients" in report:
        lines.append(
            f"  closed loop       {report['closed_loop_clients']} clients: "
            f"{report['closed_loop_answers_per_s']:.0f} answers/s, request p50 "
            f"{report['closed_loop_request_p50_ms']:.0f} ms, p99 "
            f"{report['closed_loop_request_p99_ms']:.0f} ms (pipeline p99 "
            f"{report['closed_loop_p99_ms']:.0f} ms)"
        )
    return lines


def _cost_lines(report: Mapping[str, Any]) -> list[str]:
    """CPU per text while texts flow, and the stack at rest, by role."""
    broker = (
        "broker included"
        if report["broker_counted"]
        else "broker not counted: its processes are not known here"
    )
    lines = [
        f"  CPU per text      {report['cpu_ms_per_text']:.2f} ms, every process of the stack "
        f"({broker}): " + format_roles(report["cpu_ms_per_text_by_role"])
    ]
    if report["rest_cpu_pct_by_role"]:
        lines.append(
            f"  at rest           {report['rest_cpu_pct']:.1f} % of one core over "
            f"{report['rest_s']:g} s, no texts: "
            + format_roles(report["rest_cpu_pct_by_role"], " %")
        )
    return lines


def _encoder_lines(report: Mapping[str, Any]) -> list[str]:
    if not report.get("encoder"):
        return []
    lines = [
        f"  encoder           {report['encoder']}: {report['encoder_inprocess_throughput']:.0f}"
        f" texts/s in process on {report['encoder_threads']} thread(s), the limit; end to "
        f"end {report['encoder_ratio']:.2f} of it"
    ]
    if "half_rate" in report:
        lines.append(
            f"  at half of it     {report['half_rate']:.0f} texts/s offered: "
            f"{report['half_rate_throughput']:.0f} texts/s, "
            f"p50 {report['half_rate_p50_ms']:.0f} ms, p99 {report['half_rate_p99_ms']:.0f} ms"
        )
    return lines


def warmup_line(report: Mapping[str, Any]) -> str:
    """How long the warm-up before each measured run took, and the first run's rounds."""
    if report["warmup"] is not None:
        return (
            f"  warm-up           {report['warmup']} texts before each measured run "
            f"({report['warmup_s']:.1f} s)"
        )
    first = report["runs"][0]
    p99s = first["warmup_round_p99_ms"]
    jit = first.get("warmup_round_jit_pct") or []
    jit_part = "; the broker's JIT " + " → ".join(f"{j:.0f}" for j in jit) + " % of a core"
    settled = "settled" if report["warmup_settled"] else "NOT settled (cap reached)"
    return (
        f"  warm-up           {settled} in {report['warmup_s']:.1f} s (median); first run: "
        f"{len(p99s)} rounds, {first['warmup_texts']} texts, p99 "
        + " → ".join(f"{p:.0f}" for p in p99s)
        + " ms"
        + (jit_part if jit else "")
    )


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"
