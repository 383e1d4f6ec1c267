"""The pipeline's processes: `classifier`, `aggregate`, `encoder`, `monitor`, `serve` and `up`.

Each runs one service of the pipeline until SIGTERM or Ctrl-C, configured by its settings class
(flags over `TRIAGE_*` variables); `up` supervises all of them as child processes for a whole
pipeline on one machine. Their help names the settings' defaults, taken from those classes.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from triage.aggregator.settings import AggregatorSettings
from triage.cli.options import default_of, kafka_flags, models_flag, settings_from
from triage.consumers.settings import ClassifierSettings
from triage.core.errors import ConfigError
from triage.core.settings import CommonSettings
from triage.encoder.settings import EncoderSettings
from triage.gateway.settings import GatewaySettings
from triage.monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from triage.cli.options import Subparsers
    from triage.core.model.artifacts import LoadedModel
    from triage.encoder.sentence import SentenceEncoder

log = logging.getLogger("triage")


def _add_classifier(sub: Subparsers) -> None:
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
    p.add_argument(
        "--with-encoder",
        action="store_true",
        help="heads trained with --encoder: run their encoder in this process, read the texts "
        "and score the embeddings where they are computed (no features topic between)",
    )
    p.add_argument(
        "--publish-features",
        action="store_true",
        help="with --with-encoder: also publish the features records, for heads elsewhere",
    )
    p.add_argument("--threads", type=int, help="with --with-encoder: the encoder's threads")
    p.add_argument("--max-batch", type=int, help="records polled and scored at once")
    p.add_argument("--max-text-chars", type=int)
    p.add_argument("--max-record-bytes", type=int)
    p.add_argument("--heartbeat-s", type=float, help="seconds between registry heartbeats")
    p.add_argument(
        "--switch-delay-s",
        type=float,
        help="a claimed vote starts this long after it is written (TRIAGE_SWITCH_DELAY_S, "
        f"default {default_of(ClassifierSettings, 'switch_delay_s')})",
    )
    kafka_flags(p)
    p.set_defaults(func=cmd_classifier)


def _add_aggregate(sub: Subparsers) -> None:
    p = sub.add_parser("aggregate", help="run the aggregator")
    p.add_argument("--join-timeout-s", type=float, help="wait this long for missing scores")
    p.add_argument("--threshold", type=float, help="abstain when the winner is below this")
    p.add_argument("--max-batch", type=int)
    kafka_flags(p)
    p.set_defaults(func=cmd_aggregate)


def _add_encoder(sub: Subparsers) -> None:
    p = sub.add_parser(
        "encoder",
        help="encode every text once, for the heads trained on an encoder's features",
        description="Reads texts, encodes each polled batch once and publishes one features "
        "record per text (text, int8 embedding, encoder identity) to the features topic, "
        "exactly once. Heads trained with `triage train --encoder NAME` read it. Several "
        "encoders may run side by side, each in its own group.",
    )
    p.add_argument(
        "--encoder",
        metavar="NAME",
        help=f"which encoder (default: `{default_of(EncoderSettings, 'encoder')}`)",
    )
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (default: usable CPUs)")
    p.add_argument(
        "--max-batch",
        type=int,
        help=f"texts polled at once ({default_of(EncoderSettings, 'max_batch')})",
    )
    p.add_argument(
        "--encode-batch",
        type=int,
        help="texts encoded at once and committed in one transaction, which commits while the "
        f"next encode ({default_of(EncoderSettings, 'encode_batch')})",
    )
    p.add_argument("--list", action="store_true", help="list the encoders installed and exit")
    kafka_flags(p)
    p.set_defaults(func=cmd_encoder)


def _add_monitor(sub: Subparsers) -> None:
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
    models_flag(p)
    p.add_argument(
        "--correction-horizon-s",
        type=float,
        help="how long results wait for their correction (TRIAGE_CORRECTION_HORIZON_S, "
        f"{default_of(MonitorSettings, 'correction_horizon_s')})",
    )
    p.add_argument(
        "--correction-wait-s",
        type=float,
        help="how long a correction waits for its result (TRIAGE_CORRECTION_WAIT_S, "
        f"{default_of(MonitorSettings, 'correction_wait_s')})",
    )
    p.add_argument(
        "--quality-window-s",
        type=float,
        help="sliding window (TRIAGE_QUALITY_WINDOW_S, "
        f"{default_of(MonitorSettings, 'quality_window_s')})",
    )
    p.add_argument("--max-batch", type=int)
    kafka_flags(p)
    p.set_defaults(func=cmd_monitor)


def _add_up(sub: Subparsers) -> None:
    p = sub.add_parser(
        "up",
        help="run every classifier, the encoders they read, the aggregator and the monitor "
        "until Ctrl-C",
        description="Run the pipeline's processes and restart any that exits. Logs one line "
        "once every class votes (`triage ready` waits for the same in a script).",
    )
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--label", action="append", help="run only these classes")
    p.add_argument("--mode", choices=["per-process", "colocated"], default="per-process")
    p.add_argument(
        "--separate-encoder",
        action="store_true",
        help="run `triage encoder` beside the heads that read it, through the features topic "
        "(default: an encoder's heads run in its process, `classifier --with-encoder`)",
    )
    p.add_argument(
        "--metrics-base-port",
        type=int,
        default=9400,
        help="aggregator serves metrics here, classifiers on the next ports, then the monitor "
        "(default %(default)s)",
    )
    p.set_defaults(func=cmd_up)


def _add_serve(sub: Subparsers) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP API and a page: publish a text, wait for its result",
        description="Serve POST /v1/classify (and /batch), GET /v1/results/{id}, "
        "/v1/classifiers, /healthz, /readyz, /metrics, the OpenAPI page at /docs and a page "
        "for people at /. Every instance reads every result, so any instance can answer. "
        "/readyz is ready once every expected class votes: those with a class record in the "
        "registry, and those named by --expected-classes and --expected-models.",
    )
    p.add_argument(
        "--host",
        help=f"address to listen on (TRIAGE_HOST; default {default_of(GatewaySettings, 'host')})",
    )
    p.add_argument(
        "--port",
        type=int,
        help=f"port (TRIAGE_PORT; default {default_of(GatewaySettings, 'port')})",
    )
    p.add_argument(
        "--token-file", type=Path, help="bearer tokens, one a line: required on /v1 when set"
    )
    p.add_argument("--tls-certfile", type=Path, help="serve HTTPS: certificate (PEM)")
    p.add_argument("--tls-keyfile", type=Path, help="serve HTTPS: private key (PEM)")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        help=f"larger request bodies get 413 ({default_of(GatewaySettings, 'max_body_bytes')})",
    )
    p.add_argument(
        "--max-batch-texts",
        type=int,
        help=f"texts a batch request may hold ({default_of(GatewaySettings, 'max_batch_texts')})",
    )
    p.add_argument(
        "--expected-classes",
        dest="expected_classes",
        action="append",
        metavar="CLASS",
        help="classes /readyz waits for besides those with a class record, comma-separated "
        "or repeated (TRIAGE_EXPECTED_CLASSES)",
    )
    p.add_argument(
        "--expected-models",
        dest="expected_models",
        type=Path,
        metavar="DIR",
        help="/readyz waits for every class of this models folder (TRIAGE_EXPECTED_MODELS)",
    )
    kafka_flags(p)
    p.set_defaults(func=cmd_serve)


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
    encoder = _hosted_encoder(models, settings.threads) if args.with_encoder else None
    if args.publish_features and encoder is None:
        raise ConfigError("--publish-features needs --with-encoder")
    stop = stop_on_signals()
    unit = ClassifierUnit(
        settings, models, mode, args.group, args.backfill, encoder, args.publish_features
    )
    Application(unit, settings).run(stop)
    return 0


def _hosted_encoder(models: list[LoadedModel], threads: int | None) -> SentenceEncoder:
    """The encoder the heads were trained on, loaded here (`--with-encoder`)."""
    from triage.consumers.service import reads_of
    from triage.encoder.sentence import SentenceEncoder

    identity = reads_of(models)
    if identity is None:
        raise ConfigError("--with-encoder: these heads read the text alone; no encoder to host")
    return SentenceEncoder(identity.partition("@")[0], threads)


def cmd_aggregate(args: argparse.Namespace) -> int:
    from triage.aggregator.service import Aggregator
    from triage.core.runtime.app import Application, stop_on_signals

    settings = settings_from(AggregatorSettings, args)
    stop = stop_on_signals()
    Application(Aggregator(settings), settings).run(stop)
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


def cmd_monitor(args: argparse.Namespace) -> int:
    from triage.core.runtime.app import Application, stop_on_signals
    from triage.monitor.service import Monitor
    from triage.tools.quality import references

    settings = settings_from(MonitorSettings, args)
    refs = references(args.models)
    stop = stop_on_signals()
    Application(Monitor(settings, refs), settings).run(stop)
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
        fused=not args.separate_encoder,
    )
    for line in supervisor.metrics_urls(children, settings.metrics_host):
        print(line, flush=True)
    stop = stop_on_signals()
    supervisor.tell_when_voting(settings, set(labels), stop)
    return supervisor.supervise(children, stop)


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


COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "classifier": _add_classifier,
    "aggregate": _add_aggregate,
    "encoder": _add_encoder,
    "monitor": _add_monitor,
    "up": _add_up,
    "serve": _add_serve,
}
