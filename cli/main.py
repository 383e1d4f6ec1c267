"""The `triage` command: one entry point for every service and tool.

This module assembles the parser from the command groups (`models`, `pipeline`, `registry`,
`data`, `ops` beside it, and `kafka` from local/cli.py), each of which adds its own
subcommands and holds their handlers; here are only what they share: the Kafka connection
flags, the log level, `settings_from` and `main`. Flags map one to one onto the fields of the
service's settings class; anything not given on the command line comes from `TRIAGE_*`
environment variables. With no cluster configured, commands use the one `triage kafka start`
runs, and say so. Operator mistakes (a missing file, a bad flag, no broker) end with one line
saying what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from triage.core.errors import ConfigError, OperatorError
from triage.core.kafka import KafkaError, security
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.local import cli as kafka_cli
from triage.local import cluster as local_cluster

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

log = logging.getLogger("triage")

# The order `triage --help` lists the subcommands in: as it was before they moved into groups.
_ORDER = (
    "kafka",
    "train",
    "evaluate",
    "compare",
    "classifier",
    "classifiers",
    "promote",
    "retire",
    "shadow-report",
    "gate",
    "aggregate",
    "encoder",
    "monitor",
    "correct",
    "quality",
    "export-corrections",
    "up",
    "lag-exporter",
    "transactions",
    "publish",
    "bench",
    "bench-state",
    "serve",
    "results",
)


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


def default_of(cls: type[BaseSettings], field: str) -> str:
    """A settings field's default as a help text shows it (86400.0 as 86400), so that help
    never retypes a default the settings class defines."""
    value = cls.model_fields[field].default
    return f"{value:g}" if isinstance(value, float) else str(value)


def kafka_flags(p: argparse.ArgumentParser) -> None:
    """The connection and security flags every command that talks to Kafka takes."""
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
        help="(TRIAGE_SECURITY_PROTOCOL; default "
        f"{default_of(ConnectionSettings, 'security_protocol')})",
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


def models_flag(p: argparse.ArgumentParser) -> None:
    """`--models`, repeatable: the manifests `monitor` and `quality` set live figures beside."""
    p.add_argument(
        "--models",
        type=Path,
        action="append",
        default=[],
        help="models folder whose manifests give the offline figures and training score "
        "distributions (repeatable: one per folder of versions)",
    )


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not above: each group module imports the shared options from this one.
    from triage.cli import data, models, ops, pipeline, registry

    parser = argparse.ArgumentParser(
        prog="triage",
        description="Route support messages on Kafka with independent binary classifiers.",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, Callable[[Subparsers], None]] = {"kafka": kafka_cli.add_parser}
    for group in (models, pipeline, registry, data, ops):
        commands |= group.COMMANDS
    for name in sorted(commands, key=_ORDER.index):  # a command missing from _ORDER: ValueError
        commands[name](sub)
    return parser


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
