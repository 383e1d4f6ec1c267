"""The nodes of a local cluster as JVMs: configuring, formatting and launching combined
broker+controller nodes in KRaft mode (detached, each in its own session, so that they outlive
this process), restarting one with its storage and ports, waiting until the nodes answer and are
unfenced brokers (or reporting, from its log, why one exited), asking the cluster who leads a
partition, and stopping the nodes within a bound even when the last ones have lost their quorum.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from triage.local import secure as kafka_secure
from triage.local.jars import KAFKA_VERSION
from triage.local.state import (
    HOST,
    MAIN_CLASS,
    LocalKafkaError,
    PortTaken,
    is_running,
    launched,
    log_excerpt,
    no_cluster_error,
    properties_path,
    read_record,
    record_node,
    remove_data,
    tail,
    write_record,
)

_LOG4J_CONFIG = Path(__file__).resolve().parent / "kafka_log4j2.properties"
_STORAGE_TOOL = "kafka.tools.StorageTool"
# JDK 17's code cache sweeper flushes compiled methods that a quiet broker has not run lately,
# and the next text has them compiled again: at tens of texts a second a broker 30 minutes up had
# made 23,000 compilations and still made 7 a second, its C2 thread taking 24 % of a core
# under one-record transactions (more than its request handlers). The cache holds everything the
# broker compiles (30 of its 240 MiB), so nothing needs flushing.
_BROKER_JVM_FLAGS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:-UseCodeCacheFlushing",
    "-Djava.awt.headless=true",
)
# The storage tool runs for a second; a cheap JIT and GC make that second shorter.
_TOOL_JVM_FLAGS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

KILL_GRACE_S = 10.0
# A controller that loses its quorum while stopping waits about 5 s before giving up cleanly.
_NO_QUORUM_GRACE_S = 8.0
_PROBE_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


# --- starting ---------------------------------------------------------------------------


def launch_cluster(state_dir: Path, libs_dir: Path, count: int, users: list[str] | None) -> None:
    """Configure, format and launch the nodes; ``users`` (None: plaintext) makes them secure."""
    java = _find_java()
    ports = _free_ports(2 * count)
    node_ids = list(range(1, count + 1))
    listeners = {nid: (ports[2 * i], ports[2 * i + 1]) for i, nid in enumerate(node_ids)}
    voters = ",".join(f"{nid}@{HOST}:{cport}" for nid, (_, cport) in listeners.items())
    secure = users is not None
    scram_users = _prepare_security(state_dir, users)
    for nid, (port, cport) in listeners.items():
        node_dir = state_dir / f"node-{nid}"
        node_dir.mkdir(parents=True)
        settings = _broker_settings(node_dir, nid, port, cport, voters, count)
        if secure:
            settings |= kafka_secure.broker_settings(state_dir, port, cport)
        _write_properties(properties_path(state_dir, nid), settings)
    cluster_id = _new_cluster_id()
    log.info("formatting storage of %d node(s), cluster id %s", count, cluster_id)
    _format_storage(
        java,
        libs_dir,
        [properties_path(state_dir, nid) for nid in node_ids],
        cluster_id,
        kafka_secure.format_args(state_dir, scram_users),
    )
    record: dict[str, Any] = {
        "kafka_version": KAFKA_VERSION,
        "cluster_id": cluster_id,
        "java": java,
        "libs_dir": str(libs_dir),
        "secure": secure,
        "users": scram_users,
        "nodes": [],
    }
    for nid, (port, cport) in listeners.items():
        pid = _launch_node(java, libs_dir, state_dir, nid, append_log=False)
        record["nodes"].append({"node_id": nid, "port": port, "controller_port": cport, "pid": pid})
        # Saved after every launch so that a failure midway can still stop what runs.
        write_record(state_dir, record)
        log.info("started node %d (pid %d) on %s:%d", nid, pid, HOST, port)


def _prepare_security(state_dir: Path, users: list[str] | None) -> list[str]:
    """TLS material and passwords of a secure cluster; returns its SCRAM users."""
    if users is None:
        return []
    try:
        return kafka_secure.prepare(state_dir, users)
    except kafka_secure.SecureSetupError as exc:
        raise LocalKafkaError(str(exc)) from None


def _broker_settings(
    node_dir: Path, node_id: int, port: int, controller_port: int, voters: str, count: int
) -> dict[str, object]:
    replication = min(count, 3)
    min_isr = 2 if replication >= 3 else 1
    return {
        "process.roles": "broker,controller",
        "node.id": node_id,
        # Static voters: the storage tool then needs neither --standalone nor
        # --initial-controllers, and every node is formatted the same way.
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": node_dir / "data",
        "group.initial.rebalance.delay.ms": 0,
        "auto.create.topics.enable": "false",
        "num.partitions": 3,
        "default.replication.factor": replication,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Internal topics with few partitions are created and led much faster on small hosts.
        "offsets.topic.num.partitions": 6,
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.num.partitions": 3,
        # The default 128 MiB dedupe buffer is allocated up front and only wastes heap here, and
        # the cleaner zeroes all of it before every log it cleans: with the changelogs' 60 s
        # segments (core/topology.py) that was 23 % of the broker's CPU samples under a steady
        # 50 texts/s (a JFR recording). 2 MiB still holds 78,000 keys a pass (24 bytes each,
        # 90 % full); a log with more distinct keys is cleaned in more passes.
        "log.cleaner.dedupe.buffer.size": 2 * 1024 * 1024,
        # A broker killed -9 keeps leading its partitions (and coordinating its groups and
        # transactions) until the controller fences it: Kafka's default is 9 s without a
        # heartbeat (every 2 s). Every transaction step of every service that touches it waits
        # that long, and steps in a row add up: measured with the defaults, a leader kill cost a
        # classifier unit 58 s before its first new score. 5 s (heartbeats every 1 s) still
        # leaves a busy 2-core machine four missed heartbeats before a live broker is fenced.
        "broker.heartbeat.interval.ms": 1000,
        "broker.session.timeout.ms": 5000,
        # The active controller appends a no-op record to the metadata log this often when
        # nothing else changes (Kafka's default 500 ms), only so that the metadata's age can be
        # monitored (KIP-835); each goes through the KRaft log, the controller and every node's
        # metadata loader. Measured on a fresh local broker with no client, alternating: 3.05 and
        # 2.81 % of a core at 500 ms, 2.25 and 1.96 % at 5 s.
        "metadata.max.idle.interval.ms": 5000,
        # Kafka's default, kept on purpose: the partition leader asks the transaction
        # coordinator whether a transactional produce's partition is in the transaction before
        # it appends (KIP-890), so that a late produce cannot leave a transaction hanging and
        # stall every read_committed consumer of its partition. It is a quarter of what a
        # transaction costs this broker: one-record transactions back to back, alternating,
        # warm: 3.05, 2.99 ms of broker CPU each with it, 1.96, 2.57 without (2026-12-07).
        "transaction.partition.verification.enable": "true",
    }


def _write_properties(path: Path, settings: dict[str, object]) -> None:
    # Private: a secure node's properties hold its keystore and inter-broker passwords.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_format_properties(settings))


def _format_properties(settings: dict[str, object]) -> str:
    return "".join(f"{key}={_escape_value(value)}\n" for key, value in settings.items())


def _escape_value(value: object) -> str:
    # Backslashes are escapes in .properties files; nothing else in our values needs quoting.
    return str(value).replace("\\", "\\\\")


def _format_storage(
    java: str, libs_dir: Path, properties: list[Path], cluster_id: str, extra: list[str]
) -> None:
    # One JVM per node, run side by side: formatting is pure start-up cost.
    procs = [
        subprocess.Popen(
            _java_command(java, libs_dir, _TOOL_JVM_FLAGS, _STORAGE_TOOL)
            + ["format", "--cluster-id", cluster_id, "--config", str(props), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for props in properties
    ]
    failures = []
    for props, proc in zip(properties, procs, strict=True):
        output, _ = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{props}:\n{tail(output.decode(errors='replace'))}")
    if failures:
        raise LocalKafkaError("formatting Kafka storage failed for " + "\n".join(failures))


def _launch_node(java: str, libs_dir: Path, state_dir: Path, node_id: int, append_log: bool) -> int:
    node_dir = state_dir / f"node-{node_id}"
    cmd = _java_command(java, libs_dir, _BROKER_JVM_FLAGS, MAIN_CLASS)
    cmd.append(str(properties_path(state_dir, node_id)))
    with open(node_dir / "server.log", "ab" if append_log else "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=node_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: the broker outlives this process and ignores its terminal.
            start_new_session=True,
        )
    launched[proc.pid] = proc
    return proc.pid


def start_node_unlocked(state_dir: Path, node_id: int, deadline: float) -> None:
    record = read_record(state_dir)
    if record is None:
        raise no_cluster_error(state_dir)
    entry = record_node(record, node_id, state_dir)
    if not is_running(entry["pid"], properties_path(state_dir, node_id)):
        libs_dir = Path(record["libs_dir"])
        entry["pid"] = _launch_node(record["java"], libs_dir, state_dir, node_id, append_log=True)
        write_record(state_dir, record)
        log.info("restarted node %d (pid %d)", node_id, entry["pid"])
    wait_until_ready(state_dir, record, {node_id}, deadline)


def _java_command(java: str, libs_dir: Path, flags: Iterable[str], main_class: str) -> list[str]:
    return [
        java,
        *flags,
        f"-Dlog4j2.configurationFile={_LOG4J_CONFIG}",
        "-cp",
        str(libs_dir / "*"),
        main_class,
    ]


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError(
            "Java is not on PATH: install a Java 17+ runtime "
            "(e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME"
        )
    return java


def _free_ports(count: int) -> list[int]:
    # All sockets stay bound until every port is known, so the ports are distinct.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]


def _new_cluster_id() -> str:
    # Same shape as Kafka's Uuid.randomUuid(): 22 URL-safe base64 characters; Kafka rejects
    # ids starting with "-" because they read as command-line flags.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# --- waiting ----------------------------------------------------------------------------


def wait_until_ready(
    state_dir: Path, record: dict[str, Any] | None, node_ids: set[int] | None, deadline: float
) -> None:
    """Wait until the given nodes (all when None) answer and are unfenced brokers."""
    if record is None:
        raise no_cluster_error(state_dir)
    entries = [n for n in record["nodes"] if node_ids is None or n["node_id"] in node_ids]
    wanted = {n["node_id"] for n in entries}
    # A plain TCP probe first: kafka-python logs an error for every refused connection.
    for entry in entries:
        _wait_for_port(state_dir, entry, deadline)
    for entry in entries:
        _wait_for_brokers(state_dir, record, entry, wanted, deadline)


def _wait_for_port(state_dir: Path, entry: dict[str, Any], deadline: float) -> None:
    while True:
        _check_alive(state_dir, entry)
        with contextlib.suppress(OSError), socket.create_connection((HOST, entry["port"]), 0.5):
            return
        _sleep_or_timeout(state_dir, entry, deadline, 0.1)


def _wait_for_brokers(
    state_dir: Path,
    record: dict[str, Any],
    entry: dict[str, Any],
    wanted: set[int],
    deadline: float,
) -> None:
    """Bootstrap through this node, then poll until every wanted broker is unfenced."""
    while True:
        _check_alive(state_dir, entry)
        # Short attempts, so that a node that dies (say on a port taken meanwhile) is
        # noticed even while another process answers on its port.
        attempt_s = min(max(deadline - time.monotonic(), 1.0), _PROBE_TIMEOUT_S)
        try:
            security = _security(state_dir, record)
            with _admin(f"{HOST}:{entry['port']}", attempt_s, security) as admin:
                while True:
                    brokers = admin.describe_cluster()["brokers"]
                    live = {b["broker_id"] for b in brokers if not b.get("is_fenced")}
                    if wanted <= live:
                        return
                    _check_alive(state_dir, entry)
                    _sleep_or_timeout(state_dir, entry, deadline, 0.2)
        except (KafkaError, OSError) as exc:
            log.debug("node %d not ready yet: %s", entry["node_id"], exc)
        _sleep_or_timeout(state_dir, entry, deadline, 0.3)


def _check_alive(state_dir: Path, entry: dict[str, Any]) -> None:
    node_id = entry["node_id"]
    if not is_running(entry["pid"], properties_path(state_dir, node_id)):
        server_log = state_dir / f"node-{node_id}" / "server.log"
        excerpt = log_excerpt(server_log)
        error = PortTaken if "Address already in use" in excerpt else LocalKafkaError
        raise error(
            f"Kafka node {node_id} exited during startup; see {server_log}. "
            f"From its log:\n{excerpt}"
        )


def _sleep_or_timeout(
    state_dir: Path, entry: dict[str, Any], deadline: float, pause_s: float
) -> None:
    if time.monotonic() >= deadline:
        server_log = state_dir / f"node-{entry['node_id']}" / "server.log"
        raise LocalKafkaError(
            f"Kafka node {entry['node_id']} (port {entry['port']}) was not ready in time; "
            f"retry with a longer timeout or see {server_log}. "
            f"From its log:\n{log_excerpt(server_log)}"
        )
    time.sleep(pause_s)


@contextlib.contextmanager
def _admin(
    bootstrap: str, timeout_s: float, security: dict[str, Any] | None = None
) -> Iterator[KafkaAdminClient]:
    timeout_ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="triage-kafka-local",
        bootstrap_timeout_ms=timeout_ms,
        request_timeout_ms=min(timeout_ms, 10_000),
        **(security or {}),
    )
    try:
        yield admin
    finally:
        admin.close()


def _security(state_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Connection settings of the super user, for the probes of a secure cluster."""
    return kafka_secure.client_config(state_dir) if record.get("secure") else {}


def describe_from_any(
    servers: list[str], topic: str, deadline_s: float = 90
) -> list[dict[str, Any]]:
    """Every server in turn, round after round until `deadline_s`: seen in CI, right after a
    node was killed on a busy machine, neither live node answered within 15 s once."""
    last: Exception | None = None
    deadline = time.monotonic() + deadline_s
    while True:
        for server in servers:
            try:
                with _admin(server, timeout_s=15) as admin:
                    return admin.describe_topics([topic])
            except (OSError, KafkaError, LocalKafkaError) as exc:
                last = exc
        if time.monotonic() > deadline:
            raise LocalKafkaError(f"no server of {','.join(servers)} answered: {last}")
        time.sleep(1)


# --- stopping ---------------------------------------------------------------------------


def stop_unlocked(state_dir: Path, timeout_s: float) -> bool:
    record = read_record(state_dir)
    if record is None:
        return False
    running = [
        (n["pid"], properties_path(state_dir, n["node_id"]))
        for n in record["nodes"]
        if is_running(n["pid"], properties_path(state_dir, n["node_id"]))
    ]
    # All at once: one by one is no better, as the last nodes lose their controller quorum
    # either way; _await_shutdown bounds how long they may then hang.
    _signal_all(running, signal.SIGTERM)
    stuck = _await_shutdown(running, len(record["nodes"]), time.monotonic() + timeout_s)
    if stuck:
        log.warning("%d node(s) still up after SIGTERM; killing them", len(stuck))
        _signal_all(stuck, signal.SIGKILL)
        stuck = wait_exit(stuck, time.monotonic() + KILL_GRACE_S)
    if stuck:
        raise LocalKafkaError(f"could not stop Kafka processes {[pid for pid, _ in stuck]}")
    remove_data(state_dir)
    if running:
        log.info("stopped %d node(s) from %s", len(running), state_dir)
    return bool(running)


def _signal_all(processes: list[tuple[int, Path]], sig: int) -> None:
    for pid, _ in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _await_shutdown(
    processes: list[tuple[int, Path]], voters: int, deadline: float
) -> list[tuple[int, Path]]:
    """Wait for nodes sent SIGTERM; returns those still running when it gives up.

    Once most controllers are gone, the survivors have no quorum: their raft client keeps
    campaigning and their shutdown may never finish, so they get only a short grace.
    """
    majority = voters // 2 + 1
    pending = list(processes)
    while pending and time.monotonic() < deadline:
        time.sleep(0.1)
        pending = [p for p in pending if is_running(*p)]
        if len(pending) < majority:
            deadline = min(deadline, time.monotonic() + _NO_QUORUM_GRACE_S)
    return pending


def wait_exit(processes: list[tuple[int, Path]], deadline: float) -> list[tuple[int, Path]]:
    """Poll until the processes exit; returns those still running at ``deadline``."""
    pending = list(processes)
    while pending:
        pending = [p for p in pending if is_running(*p)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return pending
