"""Command line for the local Kafka cluster of local/cluster.py.

``add_parser`` plugs ``kafka start|stop|status`` into the main ``triage`` command; running this
module (``python -m triage.local.cli start|stop|status``) offers the same commands on their own.
``start`` prints only the bootstrap servers on stdout (its last line), so that scripts can do
``export TRIAGE_BOOTSTRAP_SERVERS=$(triage kafka start)``; progress goes to stderr.
``start --secure`` also creates triage's topics and the ACLs of every role as the cluster's
super user, and tells on stderr how to connect as a role; it never prints a password.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from triage.core.errors import ConfigError
from triage.core.kafka import clients as kafka_clients
from triage.core.kafka import security
from triage.core.kafka.topics import ensure_topics
from triage.core.settings import CommonSettings
from triage.local import acls
from triage.local import cluster as kafka_local
from triage.local import secure as kafka_secure
from triage.local.cluster import LocalCluster, LocalKafkaError

log = logging.getLogger("triage.local.cli")

_Command = Callable[[argparse.Namespace], int]

_STATE_DIR_HELP = (
    "directory holding the cluster's configs, data, logs and cluster.json "
    "(default: $TRIAGE_KAFKA_HOME, else ./.triage/kafka)"
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``kafka start|stop|status`` to the subcommands of the main ``triage`` parser."""
    parser = subparsers.add_parser(
        "kafka",
        help="run a local Apache Kafka cluster for development and tests",
        description=(
            f"Run a real Apache Kafka {kafka_local.KAFKA_VERSION} cluster (KRaft, combined "
            "broker+controller nodes) on 127.0.0.1 in the background. The jars are fetched "
            "once with Maven (cache: $TRIAGE_KAFKA_LIBS, else ./.triage/kafka-libs); Java 17+ "
            "is required."
        ),
    )
    add_commands(parser.add_subparsers(dest="kafka_command", metavar="COMMAND", required=True))


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``start``, ``stop`` and ``status`` subcommands to ``subparsers``."""
    start = subparsers.add_parser(
        "start",
        help="start a cluster (or return the running one) and print its bootstrap servers",
        description=(
            "Start a local cluster and wait until every broker answers. If one is already "
            "running from the state dir it is reused. The bootstrap servers are printed as "
            "the last line of stdout."
        ),
    )
    start.add_argument(
        "--nodes",
        type=_positive_int,
        default=1,
        help="number of broker+controller nodes; 3 gives replication factor 3 with "
        "min.insync.replicas=2 (default: 1)",
    )
    start.add_argument(
        "--secure",
        action="store_true",
        help="take clients only over SASL_SSL (SCRAM) with TLS certificates made now and ACLs "
        f"enforced; one user per role ({', '.join(acls.ROLES)}) plus the super user admin, "
        "passwords in <state dir>/secrets/; creates triage's topics and the roles' ACLs for "
        "$TRIAGE_TOPIC_PREFIX",
    )
    start.add_argument("--state-dir", type=Path, help=_STATE_DIR_HELP)
    start.set_defaults(func=_reporting_errors(_start))

    stop = subparsers.add_parser(
        "stop",
        help="stop the cluster and delete its data",
        description=(
            "Stop every node (controlled shutdown, then SIGKILL if it hangs) and delete the "
            "cluster's data; the node logs and the jar cache are kept."
        ),
    )
    stop.add_argument("--state-dir", type=Path, help=_STATE_DIR_HELP)
    stop.set_defaults(func=_reporting_errors(_stop))

    status = subparsers.add_parser(
        "status",
        help="show the nodes of the running cluster; exit 1 if none runs",
        description=(
            "Print one line per node (id, pid, port, alive) and the bootstrap servers as the "
            "last line. Exits with 1 when no cluster runs from the state dir."
        ),
    )
    status.add_argument("--state-dir", type=Path, help=_STATE_DIR_HELP)
    status.set_defaults(func=_reporting_errors(_status))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m triage.local.cli``."""
    parser = argparse.ArgumentParser(
        prog="python -m triage.local.cli",
        description="Run a local Apache Kafka cluster for development and tests.",
    )
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def _start(args: argparse.Namespace) -> int:
    elsewhere = os.environ.get("TRIAGE_BOOTSTRAP_SERVERS")
    if elsewhere:
        log.info(
            "note: TRIAGE_BOOTSTRAP_SERVERS=%s points elsewhere; starting a local cluster anyway",
            elsewhere,
        )
    users = acls.ROLES if args.secure else ()
    cluster = kafka_local.start(
        state_dir=args.state_dir, nodes=args.nodes, secure=args.secure, users=users
    )
    for node in cluster.nodes:
        log.info(
            "node %d: pid %d, port %d, log %s", node.node_id, node.pid, node.port, node.server_log
        )
    if cluster.secure:
        _set_up_roles(cluster)
        _explain_connecting(cluster)
    print(cluster.bootstrap)
    return 0


def admin_settings(cluster: LocalCluster) -> CommonSettings:
    """Settings of the super user of a secure local cluster (topic names from the environment)."""
    env = kafka_secure.client_env(cluster.state_dir, kafka_secure.ADMIN)
    fields: dict[str, Any] = {
        name.removeprefix("TRIAGE_").lower(): value for name, value in env.items()
    }
    # Explicit Nones: credentials of another user in the environment must not mix in.
    fields |= dict.fromkeys(["sasl_password", "ssl_certfile", "ssl_keyfile", "ssl_key_password"])
    fields["bootstrap_servers"] = cluster.bootstrap
    return CommonSettings(**fields)


def _set_up_roles(cluster: LocalCluster) -> None:
    """As admin: triage's topics, and ACLs so that every role can do its job and no more."""
    settings = admin_settings(cluster)
    try:
        ensure_topics(settings)
        with kafka_clients.admin(settings) as client:
            count = acls.grant_roles(client, settings)
    except (KafkaError, ConfigError, acls.AclError) as exc:
        raise LocalKafkaError(
            f"the secure cluster runs, but creating its topics and ACLs failed: "
            f"{security.describe(exc)}"
        ) from None
    prefix = f" (topic prefix {settings.topic_prefix!r})" if settings.topic_prefix else ""
    log.info("created triage's topics and %d ACLs for roles %s%s", count,
             ", ".join(acls.ROLES), prefix)  # fmt: skip


def _explain_connecting(cluster: LocalCluster) -> None:
    example = kafka_secure.client_env(cluster.state_dir, acls.CLASSIFIER)
    log.info(
        "secure: %s with %s, TLS CA %s; users admin (super user), %s; passwords in %s",
        kafka_secure.PROTOCOL,
        kafka_secure.MECHANISM,
        kafka_secure.ca_file(cluster.state_dir),
        ", ".join(acls.ROLES),
        kafka_secure.secrets_dir(cluster.state_dir),
    )
    log.info(
        "connect as a role, e.g. the classifier: export %s",
        " ".join(f"{name}={value}" for name, value in example.items()),
    )


def _stop(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    running = kafka_local.status(state_dir)
    if not kafka_local.stop(state_dir):
        print(f"no local Kafka cluster was running from {state_dir}")
        return 0
    node_ids = ", ".join(str(n.node_id) for n in running.nodes if n.alive) if running else "?"
    print(f"stopped local Kafka cluster from {state_dir} (nodes {node_ids})")
    return 0


def _status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    cluster = kafka_local.status(state_dir)
    if cluster is None:
        print(f"no local Kafka cluster is running from {state_dir}", file=sys.stderr)
        return 1
    for node in cluster.nodes:
        state = "alive" if node.alive else "dead"
        print(f"node {node.node_id}  pid {node.pid}  port {node.port}  {state}")
    if cluster.secure:
        ca = kafka_secure.ca_file(cluster.state_dir)
        print(f"secure  {kafka_secure.PROTOCOL} {kafka_secure.MECHANISM}  CA {ca}")
    print(cluster.bootstrap)
    return 0


def _reporting_errors(command: _Command) -> _Command:
    """Turn a LocalKafkaError into an error line on stderr (details indented below), exit 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        _configure_logging()
        try:
            return command(args)
        except LocalKafkaError as exc:
            # One error line; details such as a broker's last log lines follow, indented.
            summary, *details = str(exc).splitlines() or [""]
            print(f"triage kafka: error: {summary}", file=sys.stderr)
            for line in details:
                print(f"    {line}", file=sys.stderr)
            return 1

    return run


def _configure_logging() -> None:
    # Progress must reach stderr even when the caller configured no logging; a caller that
    # did keeps its own setup.
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="triage kafka: %(message)s", stream=sys.stderr
        )
        # kafka-python reports every refused connection while brokers come up.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


def _state_dir(args: argparse.Namespace) -> Path:
    return args.state_dir.resolve() if args.state_dir else kafka_local.default_state_dir()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
