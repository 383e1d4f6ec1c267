"""Run a real Apache Kafka cluster on loopback for local development and tests.

The Kafka 4.3.1 broker jars are resolved once with Maven (``local/jars.py``) into a cache
directory; then one or more combined broker+controller nodes are started in KRaft mode as
detached JVMs (``local/nodes.py``), each with its own ``server.properties``, storage and
``server.log`` under ``state_dir/node-<id>/``. Ports, process ids and the cluster id are kept in
``state_dir/cluster.json`` (``local/state.py``) so that any later process (the CLI, another
test) can report on the cluster, stop it, or kill and restart single nodes for fault-injection
tests. With ``secure=True`` the nodes take clients only over SASL_SSL with SCRAM users and
enforce ACLs (``local/secure.py``). This is a throw-away development cluster: ``stop`` deletes
the data and the next ``start`` formats fresh storage. This module is the public API; the
names of the other three that callers use are re-exported here.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from triage.local.jars import KAFKA_VERSION, default_libs_dir, ensure_jars
from triage.local.nodes import (
    KILL_GRACE_S,
    describe_from_any,
    launch_cluster,
    start_node_unlocked,
    stop_unlocked,
    wait_exit,
    wait_until_ready,
)
from triage.local.state import (
    LocalCluster,
    LocalKafkaError,
    NodeInfo,
    PortTaken,
    cluster_from_record,
    default_state_dir,
    has_record,
    is_running,
    locked,
    no_cluster_error,
    properties_path,
    read_record,
    record_node,
    reset_state_dir,
    resolve_state_dir,
)

__all__ = [
    "KAFKA_VERSION",
    "LocalCluster",
    "LocalKafkaError",
    "NodeInfo",
    "default_libs_dir",
    "default_state_dir",
    "ensure_jars",
    "kill_node",
    "leader_of",
    "read_bootstrap",
    "start",
    "start_node",
    "status",
    "stop",
]

log = logging.getLogger(__name__)


def __getattr__(name: str) -> Path:
    # DEFAULT_LIBS_DIR is computed on access so that the environment and working directory
    # at call time apply, not those at import time.
    if name == "DEFAULT_LIBS_DIR":
        return default_libs_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def start(
    state_dir: Path | None = None,
    libs_dir: Path | None = None,
    nodes: int = 1,
    timeout_s: float = 120,
    secure: bool = False,
    users: Iterable[str] = (),
) -> LocalCluster:
    """Start a ``nodes``-node cluster from ``state_dir`` and wait until every broker answers.

    Idempotent: a cluster already running from ``state_dir`` is returned (after restarting
    any of its nodes that died). ``timeout_s`` bounds the wait for the nodes, not the one-time
    jar download. ``secure`` starts SASL_SSL listeners, the ACL authorizer and SCRAM users:
    ``admin`` (a super user) and ``users``, each with a random password (see kafka_secure).
    """
    if nodes < 1:
        raise LocalKafkaError(f"a cluster needs at least one node, not {nodes}")
    state_dir = resolve_state_dir(state_dir)
    with locked(state_dir):
        running = status(state_dir)
        if running is not None:
            return _resume(running, nodes, timeout_s, secure)
        libs = ensure_jars(libs_dir or default_libs_dir())
        started_at = time.monotonic()
        scram_users = list(users) if secure else None
        try:
            _start_fresh(state_dir, libs, nodes, started_at + timeout_s, scram_users)
        except PortTaken:
            # The free ports were found by binding and releasing them; another process can
            # take one before the broker binds it. Fresh ports almost surely work.
            log.warning("a port picked for the cluster was taken meanwhile; trying others")
            _start_fresh(state_dir, libs, nodes, started_at + timeout_s, scram_users)
        log.info("cluster ready in %.1f s", time.monotonic() - started_at)
        return _require_cluster(state_dir)


def stop(state_dir: Path | None = None, timeout_s: float = 30) -> bool:
    """Stop the cluster of ``state_dir`` and delete its data; True if a node was running.

    Every node gets SIGTERM (a controlled shutdown) at once; nodes still up after
    ``timeout_s`` get SIGKILL. The node logs are kept for post-mortems.
    """
    state_dir = resolve_state_dir(state_dir)
    if not has_record(state_dir):
        return False
    with locked(state_dir):
        return stop_unlocked(state_dir, timeout_s)


def status(state_dir: Path | None = None) -> LocalCluster | None:
    """The cluster started from ``state_dir``, or None when none of its nodes is running."""
    state_dir = resolve_state_dir(state_dir)
    record = read_record(state_dir)
    if record is None:
        return None
    cluster = cluster_from_record(state_dir, record)
    return cluster if any(node.alive for node in cluster.nodes) else None


def read_bootstrap(state_dir: Path | None = None) -> str | None:
    """Bootstrap servers of the cluster running from ``state_dir``, else None."""
    cluster = status(state_dir)
    return cluster.bootstrap if cluster is not None else None


def kill_node(state_dir: Path, node_id: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to one node (a no-op if it is not running).

    For SIGKILL, SIGTERM and SIGINT this returns once the process has exited, so a test can
    rely on the node being gone.
    """
    state_dir = resolve_state_dir(state_dir)
    node = _require_node(state_dir, node_id)
    props = properties_path(state_dir, node_id)
    if not is_running(node.pid, props):
        return
    log.info("sending signal %s to node %d (pid %d)", signal.Signals(sig).name, node_id, node.pid)
    os.kill(node.pid, sig)
    if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        grace = KILL_GRACE_S if sig == signal.SIGKILL else 60.0
        if wait_exit([(node.pid, props)], time.monotonic() + grace):
            raise LocalKafkaError(f"node {node_id} (pid {node.pid}) did not exit after {sig!r}")


def start_node(state_dir: Path, node_id: int, timeout_s: float = 120) -> None:
    """Restart one node with its existing storage and ports; return once it is a live broker."""
    state_dir = resolve_state_dir(state_dir)
    with locked(state_dir):
        start_node_unlocked(state_dir, node_id, time.monotonic() + timeout_s)


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    """Node id leading ``topic``/``partition`` as the cluster reports it now; -1 if leaderless.

    Asks each bootstrap server in turn: in a fault test some of them are down on purpose.
    """
    described = describe_from_any(bootstrap.split(","), topic)
    for info in described:
        if info["name"] != topic:
            continue
        if info["error_code"]:
            raise LocalKafkaError(
                f"cannot describe topic {topic!r} (error code {info['error_code']}); does it exist?"
            )
        for part in info["partitions"]:
            if part["partition_index"] == partition:
                return int(part["leader_id"])
    raise LocalKafkaError(f"topic {topic!r} has no partition {partition}")


def _start_fresh(
    state_dir: Path, libs_dir: Path, nodes: int, deadline: float, users: list[str] | None
) -> None:
    reset_state_dir(state_dir)
    try:
        launch_cluster(state_dir, libs_dir, nodes, users)
        wait_until_ready(state_dir, read_record(state_dir), None, deadline)
    except BaseException:
        stop_unlocked(state_dir, timeout_s=KILL_GRACE_S)
        raise


def _resume(running: LocalCluster, nodes: int, timeout_s: float, secure: bool) -> LocalCluster:
    state_dir = running.state_dir
    if len(running.nodes) != nodes or running.secure != secure:
        kind = "secure " if running.secure else ""
        raise LocalKafkaError(
            f"a {len(running.nodes)}-node {kind}cluster is already running from {state_dir}; "
            f"stop it first ('triage kafka stop --state-dir {state_dir}')"
        )
    deadline = time.monotonic() + timeout_s
    for node in running.nodes:
        if not node.alive:
            start_node_unlocked(state_dir, node.node_id, deadline)
    return _require_cluster(state_dir)


def _require_cluster(state_dir: Path) -> LocalCluster:
    cluster = status(state_dir)
    if cluster is None:
        raise LocalKafkaError(
            f"the Kafka nodes of {state_dir} exited right after starting; see their "
            f"server.log files under {state_dir}"
        )
    return cluster


def _require_node(state_dir: Path, node_id: int) -> NodeInfo:
    record = read_record(state_dir)
    if record is None:
        raise no_cluster_error(state_dir)
    record_node(record, node_id, state_dir)
    cluster = cluster_from_record(state_dir, record)
    return next(node for node in cluster.nodes if node.node_id == node_id)
