"""What the `triage` command groups share: the Kafka connection flags, `--models`, the help
text of a settings default, and `settings_from`, which builds a service's settings from the
flags given over `TRIAGE_*` variables (with no cluster configured, the one `triage kafka start`
runs, and says so). The group modules (`models`, `pipeline`, `registry`, `data`, `ops`) import
these; `main` imports the groups, so nothing imports back up.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from triage.core.errors import ConfigError
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.local import cluster as local_cluster

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

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
