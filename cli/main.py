"""The `triage` command: one entry point for every service and tool.

Flags map one to one onto the fields of the service's settings class
(`triage/runtime/settings.py`); anything not given on the command line comes from `TRIAGE_*`
environment variables. With no cluster configured, commands use the one `triage kafka start`
runs, and say so. Operator
mistakes (a missing file, a bad flag, no broker) end with one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from triage.aggregator.settings import AggregatorSettings
from triage.consumers.settings import ClassifierSettings
from triage.core.errors import ConfigError, OperatorError
from triage.core.kafka import KafkaError, security
from triage.core.runtime.clock import now_ms
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.encoder.settings import EncoderSettings
from triage.gateway.settings import GatewaySettings
from triage.local import cli as kafka_cli
from triage.local import cluster as local_cluster
from triage.monitor.settings import MonitorSettings
from triage.producer.settings import ProducerSettings

log = logging.getLogger("triage")


def settings_from(cls: type[CommonSettings], args: argparse.Namespace) -> Any:
    """Flags given on the command line override `TRIAGE_*` variables and defaults; with no
    cluster configured, the one `triage kafka start` runs (logged)."""
    try:
        connection = ConnectionSettings(**_given(ConnectionSettings, args))
        if not connection.bootstrap_servers:
            connection = _local_cluster(connection)
        return cls(connection=connection, **_given(cls, args))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"invalid setting {field}: {err['msg']}") from None


def _given(cls: type[Any], args: argparse.Namespace) -> dict[str, Any]:
    fields = cls.model_fields.keys() - {"connection"}
    given = vars(args).items()
    return {name: value for name, value in given if name in fields and value is not None}


def _local_cluster(connection: ConnectionSettings) -> ConnectionSettings:
    bootstrap = local_cluster.read_bootstrap()
    if bootstrap is None:
        return connection  # the first client says what to do
    log.info("no TRIAGE_BOOTSTRAP_SERVERS: using the local cluster at %s", bootstrap)
    return connection.model_copy(update={"bootstrap_servers": bootstrap})


def _kafka_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Kafka connection (flags override TRIAGE_* variables)")
    g.add_argument(
        "--bootstrap-servers",
        help="host:port[,...] (TRIAGE_BOOTSTRAP_SERVERS); "
        "default: the broker `triage kafka start` runs",
    )
    g.add_argument("--topic-prefix", help="prefix for every topic and group (TRIAGE_TOPIC_PREFIX)")
    g.add_argument(
        "--security-protocol",
        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        help="(TRIAGE_SECURITY_PROTOCOL; default PLAINTEXT)",
    )
    g.add_argument(
        "--sasl-mechanism",
        choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
        help="(TRIAGE_SASL_MECHANISM)",
    )
    g.add_argument("--sasl-username", help="(TRIAGE_SASL_USERNAME)")
    # Never a password flag: command lines are visible to every user of the machine.
    g.add_argument(
        "--sasl-password-file",
        type=Path,
        help="file whose first line is the password (TRIAGE_SASL_PASSWORD_FILE); "
        "or set TRIAGE_SASL_PASSWORD",
    )
    g.add_argument(
        "--ssl-cafile", type=Path, help="CA certificate(s) to trust, PEM (TRIAGE_SSL_CAFILE)"
    )
    g.add_argument(
        "--ssl-certfile", type=Path, help="client certificate, PEM (TRIAGE_SSL_CERTFILE)"
    )
    g.add_argument(
        "--ssl-keyfile",
        type=Path,
        help="client key, PEM (TRIAGE_SSL_KEYFILE; its password only from TRIAGE_SSL_KEY_PASSWORD)",
    )
    g.add_argument(
        "--ssl-check-hostname",
        action=argparse.BooleanOptionalAction,
        help="check the broker certificate's host name (TRIAGE_SSL_CHECK_HOSTNAME; default: check)",
    )
    g.add_argument("--instance-id", help="stable id of this instance (default: host name)")
    g.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")


def _models_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        type=Path,
        action="append",
        default=[],
        help="models folder whose manifests give the offline figures and training score "
        "distributions (repeatable: one per folder of versions)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage",
        description="Route support messages on Kafka with independent binary classifiers.",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kafka_cli.add_parser(sub)

    p = sub.add_parser("train", help="train one binary classifier per class")
    p.add_argument("--data", type=Path, required=True, help="CSV with columns text,category")
    p.add_argument("--out", type=Path, required=True, help="models folder (one subfolder a class)")
    p.add_argument("--label", action="append", help="train only this class (repeatable)")
    p.add_argument(
        "--C", dest="c", type=float, help="inverse regularisation (10; 30 with --encoder)"
    )
    p.add_argument(
        "--calibration",
        choices=["none", "sigmoid", "isotonic"],
        default="none",
        help="calibrate each classifier out-of-fold (default none: with balanced "
        "class weights the winning probability is already calibrated)",
    )
    p.add_argument(
        "--class-weight",
        choices=["balanced", "none"],
        default="balanced",
        help="weigh a class's few positives against its many negatives",
    )
    p.add_argument("--seed", type=int, default=13, help="seed of the split and the models")
    p.add_argument(
        "--jobs", type=int, default=-1, help="classes fitted in parallel (-1: all cores)"
    )
    p.add_argument(
        "--encoder",
        metavar="NAME",
        help="heads also read this sentence encoder's embedding (`default`, or see "
        "`triage encoder --list`); they are then served by `triage encoder`'s features topic",
    )
    p.add_argument(
        "--embedding-weight",
        type=float,
        help="scale of the embedding block beside the TF-IDF blocks (with --encoder; 3)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate", help="per-classifier and ensemble metrics vs a multiclass baseline"
    )
    p.add_argument("--models", type=Path, required=True)
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="CSV with columns text,category; the models' training file means its held-out split",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--report", type=Path, metavar="DIR", help="also write DIR/index.html with tables and plots"
    )
    p.add_argument(
        "--label",
        action="append",
        help="evaluate only this class's model (repeatable); default: all",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="abstain below this winning probability, as the aggregator does",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "classifier",
        help="run classifier consumer(s) co-located in one process",
        description="Score every text with the hosted models and publish the scores. At start "
        "each model announces itself on the registry as <class>@<version>. In voting mode "
        "(the default) a class with no voter yet, or another one, gets this version as its "
        "voter from --switch-delay-s on. Restarting a version that was voting changes "
        "nothing: one demoted by `triage promote` stays a shadow.",
    )
    p.add_argument("--models", type=Path, required=True)
    p.add_argument(
        "--label",
        action="append",
        help="host only this class (repeatable); default: every model in the folder",
    )
    p.add_argument(
        "--shadow",
        action="store_true",
        help="score every text but do not claim the vote (its own consumer group, "
        "triage-classifier-<class>-v<version>); results carry its probability in "
        "shadow_scores; `triage promote` makes it vote without a restart",
    )
    p.add_argument(
        "--backfill",
        action="store_true",
        help="shadow, in a group of its own (suffix -backfill) that starts from the earliest "
        "retained text: scores history for `triage shadow-report`",
    )
    p.add_argument("--group", help="consumer group name (default from the hosted classes)")
    p.add_argument("--max-batch", type=int, help="records polled and scored at once")
    p.add_argument("--max-text-chars", type=int)
    p.add_argument("--max-record-bytes", type=int)
    p.add_argument("--heartbeat-s", type=float, help="seconds between registry heartbeats")
    p.add_argument(
        "--switch-delay-s",
        type=float,
        help="a claimed vote starts this long after it is written (TRIAGE_SWITCH_DELAY_S, "
        "default 5)",
    )
    _kafka_flags(p)
    p.set_defaults(func=cmd_classifier)

    p = sub.add_parser(
        "classifiers",
        help="list the registry: class, version, role, process, heartbeat",
        description="What the registry says: every announced class version with its role "
        "(voting since / votes from / shadow / retired), instance, since when it serves and "
        "its last heartbeat; STALE marks a process that missed three heartbeats "
        "(TRIAGE_HEARTBEAT_S) and a voter that no process announces.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    _kafka_flags(p)
    p.set_defaults(func=cmd_classifiers)

    p = sub.add_parser(
        "promote",
        help="make a running version its class's voter",
        description="Append a voting span to the class record: VERSION votes on texts "
        "published from now + --switch-delay-s on, and the previous version stops at that "
        "same instant. A version that has not announced itself, or whose heartbeat is stale, "
        "is refused unless --force.",
    )
    p.add_argument("--label", required=True, help="the class")
    p.add_argument("--version", required=True, help="the version to vote (as announced)")
    p.add_argument("--force", action="store_true", help="promote even if not running")
    p.add_argument("--switch-delay-s", type=float, help="(TRIAGE_SWITCH_DELAY_S, default 5)")
    _kafka_flags(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser(
        "retire",
        help="take a class (or one version) out",
        description="Tombstone the class record and every announcement of the class: the "
        "aggregator stops waiting for it at once and no later result names it. With "
        "--version, tombstone that version's announcement only (not the voting one). Stop "
        "the retired processes afterwards; a classifier started later adds the class again.",
    )
    p.add_argument("--label", required=True, help="the class")
    p.add_argument("--version", help="retire only this (non-voting) version")
    _kafka_flags(p)
    p.set_defaults(func=cmd_retire)

    p = sub.add_parser(
        "shadow-report",
        help="judge a shadow or backfill version on the scored traffic",
        description="Read the scores topic for CLASS@VERSION and the committed results: how "
        "many results it would have changed had it voted, and how often it agrees with them.",
    )
    p.add_argument("--label", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--threshold", type=float, default=0.0, help="the aggregator's threshold")
    p.add_argument("--json", action="store_true", help="one JSON object")
    _kafka_flags(p)
    p.set_defaults(func=cmd_shadow_report)

    p = sub.add_parser("aggregate", help="run the aggregator")
    p.add_argument("--join-timeout-s", type=float, help="wait this long for missing scores")
    p.add_argument("--threshold", type=float, help="abstain when the winner is below this")
    p.add_argument("--max-batch", type=int)
    _kafka_flags(p)
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser(
        "encoder",
        help="encode every text once, for the heads trained on an encoder's features",
        description="Reads texts, encodes each polled batch once and publishes one features "
        "record per text (text, int8 embedding, encoder identity) to the features topic, "
        "exactly once. Heads trained with `triage train --encoder NAME` read it. Several "
        "encoders may run side by side, each in its own group.",
    )
    p.add_argument("--encoder", metavar="NAME", help="which encoder (default: `default`)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: usable CPUs)")
    p.add_argument("--max-batch", type=int, help="texts polled at once (512)")
    p.add_argument(
        "--encode-batch",
        type=int,
        help="texts encoded at once and committed in one transaction, which commits while the "
        "next encode (128)",
    )
    p.add_argument("--list", action="store_true", help="list the encoders installed and exit")
    _kafka_flags(p)
    p.set_defaults(func=cmd_encoder)

    p = sub.add_parser(
        "monitor",
        help="join results with corrections: live quality per class version",
        description="Join the labels and corrections topics by message id, exactly once and "
        "restart-safe, and keep per class and version: live precision, recall, support, "
        "abstentions, calibration and score drift, over --quality-window-s and since the "
        "version's first result. Summaries go to the quality topic (`triage quality`), figures "
        "to Prometheus. A correction naming a class the registry does not know, one whose "
        "result never came within --correction-wait-s, or a second one for an id, is a dead "
        "letter (unknown_label, unknown_id, duplicate_correction).",
    )
    _models_flag(p)
    p.add_argument(
        "--correction-horizon-s",
        type=float,
        help="how long results wait for their correction (TRIAGE_CORRECTION_HORIZON_S, 86400)",
    )
    p.add_argument(
        "--correction-wait-s",
        type=float,
        help="how long a correction waits for its result (TRIAGE_CORRECTION_WAIT_S, 600)",
    )
    p.add_argument(
        "--quality-window-s", type=float, help="sliding window (TRIAGE_QUALITY_WINDOW_S, 3600)"
    )
    p.add_argument("--max-batch", type=int)
    _kafka_flags(p)
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser(
        "correct",
        help="publish a correction: the right class of a message",
        description="Publish a correction to the corrections topic, keyed by the message id. "
        "`triage monitor` joins it with the message's result.",
    )
    p.add_argument("--id", required=True, help="the message id")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--label", help="the class the message belongs to")
    which.add_argument(
        "--none-of-ours", action="store_true", help="the message belongs to none of our classes"
    )
    p.add_argument("--source", default="cli", help="who corrects (default: cli)")
    _kafka_flags(p)
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser(
        "quality",
        help="live quality per class version beside its offline metrics",
        description="Read the monitor's quality topic: per class and version the live "
        "precision, recall, support, abstentions, calibration error and drift (PSI), over the "
        "window and since the version's first result, beside the offline figures of its "
        "manifest (--models), and the worst confusions with example ids. `*` marks the "
        "version that votes now.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--label", help="only this class")
    _models_flag(p)
    p.add_argument("--quality-window-s", type=float, help="(TRIAGE_QUALITY_WINDOW_S, 3600)")
    _kafka_flags(p)
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser(
        "export-corrections",
        help="one class's corrections merged into its training CSV",
        description="Turn the corrections topic into labelled rows for one class: positives "
        "(corrected texts of the class) and hard negatives (texts routed to it that belonged "
        "elsewhere), merged with the training CSV without duplicates (a correction's class "
        "wins). Then `triage train --data OUT --label L` retrains that class alone; ship it "
        "with --shadow, then `triage promote`.",
    )
    p.add_argument("--label", required=True, help="the class to export for")
    p.add_argument("--data", type=Path, required=True, help="its training CSV (text,category)")
    p.add_argument("--out", type=Path, required=True, help="the merged CSV to write")
    _kafka_flags(p)
    p.set_defaults(func=cmd_export_corrections)

    p = sub.add_parser(
        "up",
        help="run every classifier, the encoders they read, the aggregator and the monitor "
        "until Ctrl-C",
    )
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--label", action="append", help="run only these classes")
    p.add_argument("--mode", choices=["per-process", "colocated"], default="per-process")
    p.add_argument(
        "--metrics-base-port",
        type=int,
        default=9400,
        help="aggregator serves metrics here, classifiers on the next ports, then the monitor "
        "(default 9400)",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("lag-exporter", help="export consumer-group lag as Prometheus metrics")
    p.add_argument("--interval-s", type=float, default=5.0, help="seconds between reads")
    _kafka_flags(p)
    p.set_defaults(func=cmd_lag_exporter)

    p = sub.add_parser("publish", help="publish texts; prints their ids in input order")
    p.add_argument("file", nargs="?", default="-", help="CSV, JSONL or one text a line; - = stdin")
    p.add_argument("--format", choices=["csv", "jsonl", "lines"], help="default: from the name")
    _kafka_flags(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("bench", help="end-to-end benchmark on a real broker")
    p.add_argument("--data", type=Path, required=True, help="CSV with columns text,category")
    p.add_argument("--classes", type=int, help="use the K alphabetically first classes")
    p.add_argument("--messages", type=int, default=5000, help="texts published per run")
    p.add_argument("--rate", type=float, help="texts/s (default: as fast as possible)")
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
        "--warmup",
        type=int,
        help="texts published (at --rate) and awaited before each measured run; "
        "default: 3 s of traffic, or 500 at full speed",
    )
    p.add_argument(
        "--via",
        choices=["kafka", "http"],
        default="kafka",
        help="http: send the texts as requests to a `triage serve` (32 concurrent clients) and "
        "report request latency beside the pipeline's own",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

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

    p = sub.add_parser(
        "serve",
        help="HTTP API and a page: publish a text, wait for its result",
        description="Serve POST /v1/classify (and /batch), GET /v1/results/{id}, "
        "/v1/classifiers, /healthz, /readyz, /metrics, the OpenAPI page at /docs and a page "
        "for people at /. Every instance reads every result, so any instance can answer.",
    )
    p.add_argument("--host", help="address to listen on (TRIAGE_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (TRIAGE_PORT; default 8080)")
    p.add_argument(
        "--token-file", type=Path, help="bearer tokens, one a line: required on /v1 when set"
    )
    p.add_argument("--tls-certfile", type=Path, help="serve HTTPS: certificate (PEM)")
    p.add_argument("--tls-keyfile", type=Path, help="serve HTTPS: private key (PEM)")
    p.add_argument("--max-body-bytes", type=int, help="larger request bodies get 413 (65536)")
    p.add_argument("--max-batch-texts", type=int, help="texts a batch request may hold (100)")
    _kafka_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("results", help="print committed labelled results")
    p.add_argument("--follow", action="store_true", help="keep reading new results")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    _kafka_flags(p)
    p.set_defaults(func=cmd_results)
    return parser


# -- commands ---------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    import time

    from triage.training.train import Options, read_dataset, train

    options = Options(
        c=args.c,
        class_weight=None if args.class_weight == "none" else args.class_weight,
        calibration=args.calibration,
        seed=args.seed,
        encoder=args.encoder,
        embedding_weight=args.embedding_weight,
    )
    started = time.monotonic()
    manifests = train(read_dataset(args.data), args.out, args.label, options, n_jobs=args.jobs)
    print(
        f"{'class':32} {'version':>7} {'train+':>6} {'precision':>9} {'recall':>6} "
        f"{'f1':>6} {'pr_auc':>6} {'brier':>6}"
    )
    for m in manifests:
        x = m.metrics
        print(
            f"{m.label[:32]:32} {m.version:>7} {m.training_data.positives:6d} "
            f"{x['precision']:9.3f} {x['recall']:6.3f} {x['f1']:6.3f} "
            f"{x.get('pr_auc', float('nan')):6.3f} {x['brier']:6.4f}"
        )
    print(
        f"wrote {len(manifests)} model(s) to {args.out} in {time.monotonic() - started:.1f}s "
        f"(calibration {options.calibration}, class weight {options.class_weight}, "
        f"seed {options.seed}); metrics on the held-out {options.test_size:.0%}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from triage.training.evaluation import evaluate, format_report

    evaluation = evaluate(args.models, args.data, args.threshold, args.label)
    report = evaluation.summary
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.report:
        from triage.training.report import write_report

        page = write_report(evaluation, args.report)
        print(f"report: {page}", file=sys.stderr)
    return 0


def cmd_classifier(args: argparse.Namespace) -> int:
    from triage.consumers.service import ClassifierUnit
    from triage.core.model.artifacts import load_models
    from triage.core.registry.store import check_label
    from triage.core.runtime.app import Application, stop_on_signals
    from triage.schemas.models import ClassifierMode

    settings = settings_from(ClassifierSettings, args)
    models = load_models(args.models, args.label, settings.model_signing_key)
    for model in models:
        check_label(model.label)
    mode = ClassifierMode.SHADOW if args.shadow or args.backfill else ClassifierMode.VOTING
    stop = stop_on_signals()
    unit = ClassifierUnit(settings, models, mode, args.group, args.backfill)
    Application(unit, settings).run(stop)
    return 0


def cmd_classifiers(args: argparse.Namespace) -> int:

    from triage.core.registry.lifecycle import classifier_rows, format_rows, row_json
    from triage.core.registry.store import read_registry

    settings = settings_from(ClassifierSettings, args)
    view = read_registry(settings)
    now = now_ms()
    rows = classifier_rows(view, now, settings.heartbeat_s)
    if args.json:
        for row in rows:
            print(json.dumps(row_json(row, now)))
    else:
        print("\n".join(format_rows(rows, now)))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from triage.core.registry.lifecycle import promote

    settings = settings_from(ClassifierSettings, args)
    print(promote(settings, args.label, args.version, args.force))
    return 0


def cmd_retire(args: argparse.Namespace) -> int:
    from triage.core.registry.lifecycle import retire

    settings = settings_from(ClassifierSettings, args)
    print(retire(settings, args.label, args.version))
    return 0


def cmd_shadow_report(args: argparse.Namespace) -> int:
    from triage.tools.results import read_labels
    from triage.tools.shadow import format_report, read_scores, shadow_report

    settings = settings_from(ClassifierSettings, args)
    report = shadow_report(
        read_scores(settings), read_labels(settings), args.label, args.version, args.threshold
    )
    print(json.dumps(report) if args.json else format_report(report))
    return 0


def cmd_encoder(args: argparse.Namespace) -> int:
    from triage.encoder.sentence import CATALOG, DEFAULT, EncoderError, SentenceEncoder, identity_of

    if args.list:
        for name, spec in CATALOG.items():
            try:
                state = identity_of(spec)
            except EncoderError:
                state = "not installed"
            mark = " (default)" if name == DEFAULT else ""
            print(f"{name}{mark}: {spec.summary}; {spec.licence}; {state}")
        return 0
    from triage.core.runtime.app import Application, stop_on_signals
    from triage.encoder.service import EncoderStage

    settings = settings_from(EncoderSettings, args)
    encoder = SentenceEncoder(settings.encoder, settings.threads)
    stop = stop_on_signals()
    Application(EncoderStage(settings, encoder), settings).run(stop)
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from triage.aggregator.service import Aggregator
    from triage.core.runtime.app import Application, stop_on_signals

    settings = settings_from(AggregatorSettings, args)
    stop = stop_on_signals()
    Application(Aggregator(settings), settings).run(stop)
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from triage.core.runtime.app import Application, stop_on_signals
    from triage.monitor.service import Monitor
    from triage.tools.quality import references

    settings = settings_from(MonitorSettings, args)
    refs = references(args.models)
    stop = stop_on_signals()
    Application(Monitor(settings, refs), settings).run(stop)
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    from triage.core.kafka.topics import ensure_topics
    from triage.producer.publisher import Publisher
    from triage.schemas.models import CorrectionRecord

    try:
        correction = CorrectionRecord(
            id=args.id,
            label=None if args.none_of_ours else args.label,
            source=args.source,
            corrected_at_ms=now_ms(),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--{err['loc'][0]}: {err['msg']}") from None
    settings = settings_from(ProducerSettings, args)
    ensure_topics(settings)
    with Publisher(settings) as publisher:
        publisher.correct([correction])
    print(f"{correction.id}\t{correction.label or '(none of our classes)'}")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    from triage.core.registry.store import read_registry
    from triage.tools.quality import format_report, quality_report, read_quality, references

    refs = references(args.models)  # a wrong folder is said before Kafka is asked
    settings = settings_from(MonitorSettings, args)
    report = quality_report(
        read_quality(settings),
        read_registry(settings),
        refs,
        now_ms(),
        int(settings.quality_window_s * 1000),
        args.label,
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_export_corrections(args: argparse.Namespace) -> int:
    from triage.tools.corrections import export

    settings = settings_from(CommonSettings, args)
    counts = export(settings, args.label, args.data, args.out)
    print(
        f"{args.out}: {counts['rows_after']} rows ({counts['rows_before']} before), "
        f"{counts['positives']} positives and {counts['hard_negatives']} hard negatives of "
        f"{args.label} from {counts['corrections']} corrections"
        + (f" ({counts['without_text']} without a retained text)" if counts["without_text"] else "")
    )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from triage.core.kafka.clients import bootstrap
    from triage.core.kafka.topics import ensure_topics
    from triage.core.model.artifacts import available_labels
    from triage.core.runtime.app import stop_on_signals
    from triage.tools import supervisor

    labels = args.label or available_labels(args.models)
    if not labels:
        raise ConfigError(f"{args.models}: no models; run `triage train` first")
    settings = settings_from(CommonSettings, args)
    log.info(
        "pipeline on %s: %d classifier(s), mode %s",
        bootstrap(settings.connection),
        len(labels),
        args.mode,
    )
    ensure_topics(settings)
    children = supervisor.plan(
        args.models,
        supervisor.inputs_of(args.models, labels),
        args.mode == "colocated",
        args.metrics_base_port,
        supervisor.connection_env(settings),
    )
    for line in supervisor.metrics_urls(children, settings.metrics_host):
        print(line, flush=True)
    return supervisor.supervise(children, stop_on_signals())


def cmd_lag_exporter(args: argparse.Namespace) -> int:
    from triage.core.runtime.app import stop_on_signals
    from triage.tools import lag_exporter

    settings = settings_from(CommonSettings, args)
    if settings.metrics_port is None:  # the exporter's only output: default to kafka_exporter's
        settings = settings.model_copy(update={"metrics_port": 9308})
    lag_exporter.run(settings, args.interval_s, stop_on_signals())
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from triage.core.kafka.topics import ensure_topics
    from triage.producer.publisher import Publisher
    from triage.producer.readers import guess_format, read_records

    if args.file == "-":
        content, name = sys.stdin.read(), "stdin"
    else:
        try:
            content, name = Path(args.file).read_text(encoding="utf-8"), args.file
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{args.file}: cannot read: {exc}") from None
    fmt = args.format or guess_format(name, content.split("\n", 1)[0])
    records = list(read_records(content, fmt, name))
    settings = settings_from(ProducerSettings, args)
    ensure_topics(settings)
    with Publisher(settings) as publisher:
        for message_id in publisher.publish(records):
            print(message_id)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from triage.tools.bench import bench, format_summary

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
        ),
    )
    if report is None:
        return 1
    print(json.dumps(report, indent=2) if args.json else format_summary(report))
    return 0 if report["missing"] == 0 and report["duplicates"] == 0 else 1


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


def _on_bench_cluster(
    name: str, args: argparse.Namespace, run: Callable[[CommonSettings], dict[str, Any]]
) -> dict[str, Any] | None:
    """`run`'s report on the configured cluster, or on a local one started for it and stopped
    after; None (the reason printed) when the pipeline did not start or keep up."""
    settings, started_broker = _bench_cluster(settings_from(CommonSettings, args))
    try:
        return run(settings)
    except TimeoutError as exc:  # the logs say which part did not start or keep up
        print(f"triage {name}: error: {exc}", file=sys.stderr)
        return None
    finally:
        if started_broker:
            local_cluster.stop()


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


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from triage.gateway.app import serve
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"triage serve needs {exc.name}: pip install 'triage[serve]' (make install does)"
        ) from None
    from triage.core.kafka.topics import ensure_topics

    settings = settings_from(GatewaySettings, args)
    ensure_topics(settings)
    serve(settings)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from triage.tools.results import read_labels

    settings = settings_from(CommonSettings, args)
    for result in read_labels(settings, follow=args.follow):
        if args.json:
            print(result.model_dump_json(), flush=True)
        else:
            label = result.label or "(abstained)"
            flag = "" if result.complete else f"  partial, missing {','.join(result.missing)}"
            print(f"{result.id}\t{label}\t{result.probability:.3f}{flag}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return args.func(args)
    except OperatorError as exc:
        print(f"triage {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"triage {args.command}: Kafka error: {security.describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
