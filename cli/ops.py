"""Operations tooling: the `bench` and `bench-state` benchmarks and the `lag-exporter`.

The benchmarks run the whole pipeline on the configured cluster, or on a local one they start
and stop when none is configured, and exit non-zero when a text went missing or was doubled.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from triage.cli.options import kafka_flags, settings_from
from triage.core.errors import ConfigError, OperatorError
from triage.core.settings import CommonSettings
from triage.local import cluster as local_cluster
from triage.tools.arrivals import ARRIVALS

if TYPE_CHECKING:
    from triage.cli.options import Subparsers

log = logging.getLogger("triage")


def _add_bench(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="end-to-end benchmark on a real broker")
    p.add_argument("--data", type=Path, required=True, help="CSV with columns text,category")
    p.add_argument("--classes", type=int, help="use the K alphabetically first classes")
    p.add_argument("--messages", type=int, default=5000, help="texts published per run")
    p.add_argument("--rate", type=float, help="texts/s (default: as fast as possible)")
    p.add_argument(
        "--rates",
        type=_rates,
        metavar="R1,R2,...",
        help="a sweep: the series at each of these texts/s; prints a table of latency and CPU "
        "per text by rate, and the first rate whose p99 exceeds 1.5x the lowest rate's",
    )
    p.add_argument(
        "--arrivals",
        choices=ARRIVALS,
        default="even",
        help="at a rate, how texts are spaced: even (one every 1/rate s) or poisson (random "
        "gaps averaging 1/rate s, as independent senders; the same seeded schedule every run)",
    )
    p.add_argument("--mode", choices=["colocated", "per-process"], default="colocated")
    p.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    p.add_argument("--models", type=Path, help="reuse trained models instead of training")
    p.add_argument(
        "--encoder",
        metavar="NAME",
        help="train heads on this encoder's features (ignored with --models: theirs counts); "
        "the pipeline then includes `triage encoder`",
    )
    p.add_argument("--threads", type=int, help="the encoder's threads (default: usable CPUs)")
    p.add_argument(
        "--separate-encoder",
        action="store_true",
        help="run `triage encoder` and the heads apart, through the features topic (default, as "
        "`triage up`: the heads in the encoder's process)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        metavar="N",
        help="texts published (at --rate) and awaited before each measured run; default: rounds "
        "of 2 s of traffic (500 texts at full speed) until a round's p99 is within 25%% of the "
        "round before's and the broker's JIT used at most 5%% of a core in it (2 rounds at "
        "least, 90 s at most); the report says how long it took",
    )
    p.add_argument(
        "--rest-s",
        type=float,
        default=10.0,
        metavar="S",
        help="after each run's texts have settled, measure the stack's CPU at rest for S "
        "seconds, no texts (default %(default)s; 0: skip)",
    )
    p.add_argument(
        "--no-monitor",
        action="store_true",
        help="run the pipeline without the monitor (default: as `triage up` starts it, monitor "
        "included)",
    )
    p.add_argument(
        "--via",
        choices=["kafka", "http"],
        default="kafka",
        help="http: send the texts as requests to a `triage serve` (an open loop at --rate, 64 "
        "concurrent clients) and report request latency beside the pipeline's own",
    )
    p.add_argument(
        "--clients",
        type=int,
        metavar="N",
        help="with --via http: also a closed-loop series at full speed, N clients each sending "
        "its next text when answered; reports their answers a second",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)


def _add_bench_state(sub: Subparsers) -> None:
    p = sub.add_parser(
        "bench-state",
        help="aggregator memory and kill -9 restart time as traffic accumulates",
        description="Publish texts as fast as the co-located pipeline takes them; at each"
        " point: the aggregator's RSS and changelog size, then kill -9 it, restart it and time"
        " the first new result.",
    )
    p.add_argument("--data", type=Path, required=True, help="CSV with columns text,category")
    p.add_argument("--classes", type=int, default=20, help="use the K alphabetically first")
    p.add_argument(
        "--points",
        default="100000,300000,1000000",
        help="comma-separated totals of texts at which to measure and crash (default: %(default)s)",
    )
    p.add_argument("--models", type=Path, help="reuse trained models instead of training")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_state)


def _add_lag_exporter(sub: Subparsers) -> None:
    p = sub.add_parser("lag-exporter", help="export consumer-group lag as Prometheus metrics")
    p.add_argument("--interval-s", type=float, default=5.0, help="seconds between reads")
    kafka_flags(p)
    p.set_defaults(func=cmd_lag_exporter)


def _add_transactions(sub: Subparsers) -> None:
    p = sub.add_parser(
        "transactions",
        help="list the transactions open on triage's topics; abort hung ones",
        description="Every transaction open on a partition of this deployment's topics: its"
        " producer, transactional id (when a coordinator still knows it) and first offset, which"
        " holds back every read_committed reader of the partition. With --abort, those whose"
        " producer last wrote there at least --older-than seconds ago are aborted the way"
        " `kafka-transactions.sh abort` does. Triage's own transactions last at most 10 s.",
    )
    p.add_argument("--abort", action="store_true", help="abort the ones open too long")
    p.add_argument(
        "--older-than",
        type=float,
        default=60.0,
        metavar="S",
        help="with --abort: only those whose producer last wrote there S seconds ago or more",
    )
    kafka_flags(p)
    p.set_defaults(func=cmd_transactions)


def cmd_transactions(args: argparse.Namespace) -> int:
    from triage.tools.transactions import abort_older_than, open_transactions

    settings = settings_from(CommonSettings, args)
    found = open_transactions(settings)
    if not found:
        print("no transaction open on triage's topics")
        return 0
    for txn in found:
        print(txn.describe())
    if args.abort:
        aborted = abort_older_than(settings, found, args.older_than)
        print(f"aborted {len(aborted)} of {len(found)} (open at least {args.older_than:.0f}s)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from triage.tools.bench import bench, format_summary

    if args.clients is not None and (args.via != "http" or args.clients < 1):
        raise OperatorError("--clients N (N ≥ 1) needs --via http: it counts HTTP clients")
    if args.rates and args.rate is not None:
        raise OperatorError("--rate or --rates, not both: a sweep's lowest rate is its --rate")
    if args.arrivals != "even" and args.rate is None and not args.rates:
        raise OperatorError(f"--arrivals {args.arrivals} needs --rate or --rates: it spaces texts")
    if args.rest_s < 0:
        raise OperatorError(f"--rest-s {args.rest_s:g}: seconds at rest, 0 or more")
    report = _on_bench_cluster(
        "bench",
        args,
        lambda settings: bench(
            settings,
            args.data,
            args.classes,
            args.messages,
            args.rate,
            args.mode,
            args.repeat,
            args.models,
            warmup=args.warmup,
            via=args.via,
            broker_pids=_local_broker_pids(settings),
            encoder_name=args.encoder,
            threads=args.threads,
            clients=args.clients,
            fused=not args.separate_encoder,
            monitor=not args.no_monitor,
            rest_s=args.rest_s,
            rates=args.rates or (),
            arrivals=args.arrivals,
        ),
    )
    if report is None:
        return 1
    print(json.dumps(report, indent=2) if args.json else format_summary(report))
    return 0 if report["missing"] == 0 and report["duplicates"] == 0 else 1


def _rates(text: str) -> list[float]:
    """`10,50,100` → [10.0, 50.0, 100.0]: positive texts/s, each once, lowest first."""
    try:
        rates = sorted({float(r) for r in text.split(",") if r.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of texts/s: {text!r}") from None
    if not rates or rates[0] <= 0:
        raise argparse.ArgumentTypeError(f"rates must be above 0 texts/s: {text!r}")
    return rates


def cmd_bench_state(args: argparse.Namespace) -> int:
    from triage.tools.state_bench import format_report, state_bench

    try:
        points = sorted({int(p) for p in args.points.split(",")})
    except ValueError:
        raise ConfigError(f"--points: not a list of integers: {args.points!r}") from None
    report = _on_bench_cluster(
        "bench-state",
        args,
        lambda settings: state_bench(settings, args.data, args.classes, points, args.models),
    )
    if report is None:
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["results"] == report["expected"] and not report["duplicates"] else 1


def cmd_lag_exporter(args: argparse.Namespace) -> int:
    from triage.core.runtime.app import stop_on_signals
    from triage.tools import lag_exporter

    settings = settings_from(CommonSettings, args)
    if settings.metrics_port is None:  # the exporter's only output: default to kafka_exporter's
        settings = settings.model_copy(update={"metrics_port": 9308})
    lag_exporter.run(settings, args.interval_s, stop_on_signals())
    return 0


def _on_bench_cluster(
    name: str, args: argparse.Namespace, run: Callable[[CommonSettings], dict[str, Any]]
) -> dict[str, Any] | None:
    """`run`'s report on the configured cluster, or on a local one started for it and stopped
    after; None (the reason printed) when the pipeline did not start or keep up."""
    # SIGTERM ends a benchmark as Ctrl-C does: its pipeline's processes (and a cluster started
    # for it) are stopped on the way out, not left running.
    signal.signal(signal.SIGTERM, _interrupt)
    settings, started_broker = _bench_cluster(settings_from(CommonSettings, args))
    try:
        return run(settings)
    except TimeoutError as exc:  # the logs say which part did not start or keep up
        print(f"triage {name}: error: {exc}", file=sys.stderr)
        return None
    finally:
        if started_broker:
            local_cluster.stop()


def _interrupt(signum: int, _frame: object) -> None:
    log.info("received %s: stopping", signal.Signals(signum).name)
    raise KeyboardInterrupt


def _local_broker_pids(settings: CommonSettings) -> list[int]:
    """The pids of the `triage kafka start` cluster when the settings point at it."""
    cluster = local_cluster.status()
    if cluster is None or cluster.bootstrap != settings.connection.bootstrap_servers:
        return []
    return [node.pid for node in cluster.nodes]


def _bench_cluster(settings: CommonSettings) -> tuple[CommonSettings, bool]:
    """The settings' cluster, or a local one started for a benchmark (and whether we did)."""
    if settings.connection.bootstrap_servers:
        return settings, False
    log.info("no Kafka cluster configured: starting a local one for the benchmark")
    started_broker = local_cluster.status() is None
    connection = settings.connection.model_copy(
        update={"bootstrap_servers": local_cluster.start().bootstrap}
    )
    return settings.model_copy(update={"connection": connection}), started_broker


COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "bench": _add_bench,
    "bench-state": _add_bench_state,
    "transactions": _add_transactions,
    "lag-exporter": _add_lag_exporter,
}
