"""Run a real Apache Kafka cluster on loopback for local development and tests.

The Kafka 4.3.1 broker jars are resolved once with Maven (``triage/local/kafka_pom.xml``) into a
cache directory; then one or more combined broker+controller nodes are started in KRaft mode as
detached JVMs, each with its own ``server.properties``, storage and ``server.log`` under
``state_dir/node-<id>/``. Ports, process ids and the cluster id are kept in
``state_dir/cluster.json`` so that any later process (the CLI, another test) can report on the
cluster, stop it, or kill and restart single nodes for fault-injection tests. With
``secure=True`` the nodes take clients only over SASL_SSL with SCRAM users and enforce ACLs
(``triage/kafka_secure.py``). This is a throw-away development cluster: ``stop`` deletes the
data and the next ``start`` formats fresh storage.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from triage.core.errors import OperatorError
from triage.local import secure as kafka_secure

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

KAFKA_VERSION = "4.3.1"

_PACKAGE_DIR = Path(__file__).resolve().parent
_POM = _PACKAGE_DIR / "kafka_pom.xml"
_LOG4J_CONFIG = _PACKAGE_DIR / "kafka_log4j2.properties"
_JARS_MARKER = ".kafka-version"
_MAVEN_TIMEOUT_S = 900

_HOST = "127.0.0.1"
_MAIN_CLASS = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"
_BROKER_JVM_FLAGS = ("-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
# The storage tool runs for a second; a cheap JIT and GC make that second shorter.
_TOOL_JVM_FLAGS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

_STATE_FILE = "cluster.json"
_LOCK_FILE = ".lock"
_KILL_GRACE_S = 10.0
# A controller that loses its quorum while stopping waits about 5 s before giving up cleanly.
_NO_QUORUM_GRACE_S = 8.0
_LOG_TAIL_LINES = 20
_PROBE_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)

# Brokers started by this process, so that their exit is noticed (and reaped) instead of
# lingering as zombies whose pid still answers os.kill(pid, 0).
_children: dict[int, subprocess.Popen[bytes]] = {}


class LocalKafkaError(OperatorError):
    """The local cluster could not be set up, started or reached; the message says what to do."""


class _PortTaken(LocalKafkaError):
    """A node could not bind one of the ports picked for it."""


@dataclass(frozen=True)
class NodeInfo:
    """One combined broker+controller node; ``log_dir`` is its Kafka data dir (``log.dirs``)."""

    node_id: int
    port: int
    controller_port: int
    pid: int
    log_dir: Path
    alive: bool

    @property
    def server_log(self) -> Path:
        """The node's own log file (JVM output and log4j messages)."""
        return self.log_dir.parent / "server.log"


@dataclass(frozen=True)
class LocalCluster:
    """A cluster started from ``state_dir``; ``bootstrap`` lists every node, dead or alive."""

    state_dir: Path
    bootstrap: str
    nodes: tuple[NodeInfo, ...]
    secure: bool = False


def default_libs_dir() -> Path:
    """Where the Kafka jars are cached: ``$TRIAGE_KAFKA_LIBS``, else ``./.triage/kafka-libs``."""
    return Path(os.environ.get("TRIAGE_KAFKA_LIBS") or ".triage/kafka-libs").resolve()


def default_state_dir() -> Path:
    """Where a cluster keeps its state: ``$TRIAGE_KAFKA_HOME``, else ``./.triage/kafka``."""
    return Path(os.environ.get("TRIAGE_KAFKA_HOME") or ".triage/kafka").resolve()


def __getattr__(name: str) -> Path:
    # DEFAULT_LIBS_DIR is computed on access so that the environment and working directory
    # at call time apply, not those at import time.
    if name == "DEFAULT_LIBS_DIR":
        return default_libs_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- jars -------------------------------------------------------------------------------


def ensure_jars(libs_dir: Path) -> Path:
    """Make sure ``libs_dir`` holds the Kafka jars, running Maven only if they are missing."""
    libs_dir = Path(libs_dir).resolve()
    if _jars_ready(libs_dir):
        return libs_dir
    # Only a directory this function filled before (it has the marker) is ever replaced.
    if libs_dir.exists() and any(libs_dir.iterdir()) and not (libs_dir / _JARS_MARKER).exists():
        raise LocalKafkaError(
            f"{libs_dir} is not empty and holds no jars fetched by triage; point "
            "TRIAGE_KAFKA_LIBS (or libs_dir) at a new directory, or empty this one"
        )
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Maven ('mvn') is not on PATH but is needed once to fetch the Kafka "
            f"{KAFKA_VERSION} jars: install it (e.g. 'apt-get install maven') and retry"
        )
    log.info("fetching Kafka %s jars with Maven into %s", KAFKA_VERSION, libs_dir)
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    # Download next to the target and rename, so an interrupted or concurrent download never
    # leaves a half-filled directory that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{libs_dir.name}-", dir=libs_dir.parent))
    try:
        _run_maven(mvn, staging)
        (staging / _JARS_MARKER).write_text(KAFKA_VERSION + "\n")
        staging.chmod(0o755)  # mkdtemp made it private; the cache is meant to be shared
        _install_dir(staging, libs_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return libs_dir


def _jars_ready(libs_dir: Path) -> bool:
    marker = libs_dir / _JARS_MARKER
    broker_jar = libs_dir / f"kafka_2.13-{KAFKA_VERSION}.jar"
    return marker.is_file() and marker.read_text().strip() == KAFKA_VERSION and broker_jar.is_file()


def _run_maven(mvn: str, output_dir: Path) -> None:
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(_POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_MAVEN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalKafkaError(
            f"Maven did not finish fetching the Kafka jars within {_MAVEN_TIMEOUT_S} s; "
            "check network access to Maven Central and retry"
        ) from exc
    if proc.returncode != 0:
        raise LocalKafkaError(
            f"Maven failed (exit {proc.returncode}) to fetch the Kafka jars with {_POM}; "
            "check network access to Maven Central and retry. Last lines of its output:\n"
            + _tail(proc.stdout + proc.stderr)
        )


def _install_dir(staging: Path, target: Path) -> None:
    if target.exists():
        if _jars_ready(target):  # another process finished first
            return
        shutil.rmtree(target)
    try:
        staging.rename(target)
    except OSError:
        if not _jars_ready(target):
            raise


# --- public cluster operations ----------------------------------------------------------


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
    state_dir = _resolve_state_dir(state_dir)
    with _locked(state_dir):
        running = status(state_dir)
        if running is not None:
            return _resume(running, nodes, timeout_s, secure)
        libs = ensure_jars(libs_dir or default_libs_dir())
        started_at = time.monotonic()
        scram_users = list(users) if secure else None
        try:
            _start_fresh(state_dir, libs, nodes, started_at + timeout_s, scram_users)
        except _PortTaken:
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
    state_dir = _resolve_state_dir(state_dir)
    if not (state_dir / _STATE_FILE).exists():
        return False
    with _locked(state_dir):
        return _stop_unlocked(state_dir, timeout_s)


def status(state_dir: Path | None = None) -> LocalCluster | None:
    """The cluster started from ``state_dir``, or None when none of its nodes is running."""
    state_dir = _resolve_state_dir(state_dir)
    record = _read_record(state_dir)
    if record is None:
        return None
    cluster = _cluster_from_record(state_dir, record)
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
    state_dir = _resolve_state_dir(state_dir)
    node = _require_node(state_dir, node_id)
    props = _properties_path(state_dir, node_id)
    if not _is_running(node.pid, props):
        return
    log.info("sending signal %s to node %d (pid %d)", signal.Signals(sig).name, node_id, node.pid)
    os.kill(node.pid, sig)
    if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        grace = _KILL_GRACE_S if sig == signal.SIGKILL else 60.0
        if _wait_exit([(node.pid, props)], time.monotonic() + grace):
            raise LocalKafkaError(f"node {node_id} (pid {node.pid}) did not exit after {sig!r}")


def start_node(state_dir: Path, node_id: int, timeout_s: float = 120) -> None:
    """Restart one node with its existing storage and ports; return once it is a live broker."""
    state_dir = _resolve_state_dir(state_dir)
    with _locked(state_dir):
        _start_node_unlocked(state_dir, node_id, time.monotonic() + timeout_s)


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    """Node id leading ``topic``/``partition`` as the cluster reports it now; -1 if leaderless.

    Asks each bootstrap server in turn: in a fault test some of them are down on purpose.
    """
    described = _describe_from_any(bootstrap.split(","), topic)
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


# --- starting ---------------------------------------------------------------------------


def _describe_from_any(
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


def _start_fresh(
    state_dir: Path, libs_dir: Path, nodes: int, deadline: float, users: list[str] | None
) -> None:
    _reset_state_dir(state_dir)
    try:
        _launch_cluster(state_dir, libs_dir, nodes, users)
        _wait_until_ready(state_dir, _read_record(state_dir), None, deadline)
    except BaseException:
        _stop_unlocked(state_dir, timeout_s=_KILL_GRACE_S)
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
            _start_node_unlocked(state_dir, node.node_id, deadline)
    return _require_cluster(state_dir)


def _launch_cluster(state_dir: Path, libs_dir: Path, count: int, users: list[str] | None) -> None:
    """Configure, format and launch the nodes; ``users`` (None: plaintext) makes them secure."""
    java = _find_java()
    ports = _free_ports(2 * count)
    node_ids = list(range(1, count + 1))
    listeners = {nid: (ports[2 * i], ports[2 * i + 1]) for i, nid in enumerate(node_ids)}
    voters = ",".join(f"{nid}@{_HOST}:{cport}" for nid, (_, cport) in listeners.items())
    secure = users is not None
    scram_users = _prepare_security(state_dir, users)
    for nid, (port, cport) in listeners.items():
        node_dir = state_dir / f"node-{nid}"
        node_dir.mkdir(parents=True)
        settings = _broker_settings(node_dir, nid, port, cport, voters, count)
        if secure:
            settings |= kafka_secure.broker_settings(state_dir, port, cport)
        _write_properties(_properties_path(state_dir, nid), settings)
    cluster_id = _new_cluster_id()
    log.info("formatting storage of %d node(s), cluster id %s", count, cluster_id)
    _format_storage(
        java,
        libs_dir,
        [_properties_path(state_dir, nid) for nid in node_ids],
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
        _write_record(state_dir, record)
        log.info("started node %d (pid %d) on %s:%d", nid, pid, _HOST, port)


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
        "listeners": f"PLAINTEXT://{_HOST}:{port},CONTROLLER://{_HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{_HOST}:{port}",
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
        # The default 128 MiB dedupe buffer is allocated up front and only wastes heap here.
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
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
            failures.append(f"{props}:\n{_tail(output.decode(errors='replace'))}")
    if failures:
        raise LocalKafkaError("formatting Kafka storage failed for " + "\n".join(failures))


def _launch_node(java: str, libs_dir: Path, state_dir: Path, node_id: int, append_log: bool) -> int:
    node_dir = state_dir / f"node-{node_id}"
    cmd = _java_command(java, libs_dir, _BROKER_JVM_FLAGS, _MAIN_CLASS)
    cmd.append(str(_properties_path(state_dir, node_id)))
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
    _children[proc.pid] = proc
    return proc.pid


def _start_node_unlocked(state_dir: Path, node_id: int, deadline: float) -> None:
    record = _read_record(state_dir)
    if record is None:
        raise _no_cluster_error(state_dir)
    entry = _record_node(record, node_id, state_dir)
    if not _is_running(entry["pid"], _properties_path(state_dir, node_id)):
        libs_dir = Path(record["libs_dir"])
        entry["pid"] = _launch_node(record["java"], libs_dir, state_dir, node_id, append_log=True)
        _write_record(state_dir, record)
        log.info("restarted node %d (pid %d)", node_id, entry["pid"])
    _wait_until_ready(state_dir, record, {node_id}, deadline)


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
            sock.bind((_HOST, 0))
        return [sock.getsockname()[1] for sock in socks]


def _new_cluster_id() -> str:
    # Same shape as Kafka's Uuid.randomUuid(): 22 URL-safe base64 characters; Kafka rejects
    # ids starting with "-" because they read as command-line flags.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# --- waiting ----------------------------------------------------------------------------


def _wait_until_ready(
    state_dir: Path, record: dict[str, Any] | None, node_ids: set[int] | None, deadline: float
) -> None:
    """Wait until the given nodes (all when None) answer and are unfenced brokers."""
    if record is None:
        raise _no_cluster_error(state_dir)
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
        with contextlib.suppress(OSError), socket.create_connection((_HOST, entry["port"]), 0.5):
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
            with _admin(f"{_HOST}:{entry['port']}", attempt_s, security) as admin:
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
    if not _is_running(entry["pid"], _properties_path(state_dir, node_id)):
        server_log = state_dir / f"node-{node_id}" / "server.log"
        excerpt = _log_excerpt(server_log)
        error = _PortTaken if "Address already in use" in excerpt else LocalKafkaError
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
            f"From its log:\n{_log_excerpt(server_log)}"
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


# --- stopping ---------------------------------------------------------------------------


def _stop_unlocked(state_dir: Path, timeout_s: float) -> bool:
    record = _read_record(state_dir)
    if record is None:
        return False
    running = [
        (n["pid"], _properties_path(state_dir, n["node_id"]))
        for n in record["nodes"]
        if _is_running(n["pid"], _properties_path(state_dir, n["node_id"]))
    ]
    # All at once: one by one is no better, as the last nodes lose their controller quorum
    # either way; _await_shutdown bounds how long they may then hang.
    _signal_all(running, signal.SIGTERM)
    stuck = _await_shutdown(running, len(record["nodes"]), time.monotonic() + timeout_s)
    if stuck:
        log.warning("%d node(s) still up after SIGTERM; killing them", len(stuck))
        _signal_all(stuck, signal.SIGKILL)
        stuck = _wait_exit(stuck, time.monotonic() + _KILL_GRACE_S)
    if stuck:
        raise LocalKafkaError(f"could not stop Kafka processes {[pid for pid, _ in stuck]}")
    _remove_data(state_dir)
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
        pending = [p for p in pending if _is_running(*p)]
        if len(pending) < majority:
            deadline = min(deadline, time.monotonic() + _NO_QUORUM_GRACE_S)
    return pending


def _wait_exit(processes: list[tuple[int, Path]], deadline: float) -> list[tuple[int, Path]]:
    """Poll until the processes exit; returns those still running at ``deadline``."""
    pending = list(processes)
    while pending:
        pending = [p for p in pending if _is_running(*p)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return pending


def _is_running(pid: int, properties: Path) -> bool:
    child = _children.get(pid)
    if child is not None:
        # Our own unreaped child cannot have a reused pid, and right after Popen returns its
        # /proc cmdline can still be empty while execve finishes.
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process; the command line below tells whether it is ours
    # The pid may have been reused since the node started; only our broker has this cmdline.
    cmdline = _cmdline(pid)
    return _MAIN_CLASS in cmdline and str(properties) in cmdline


def _cmdline(pid: int) -> str:
    proc_file = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self").exists():
        try:
            return proc_file.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout


# --- state directory --------------------------------------------------------------------


def _resolve_state_dir(state_dir: Path | None) -> Path:
    return Path(state_dir).resolve() if state_dir is not None else default_state_dir()


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialize start/stop/restart of one state dir across processes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / _LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _properties_path(state_dir: Path, node_id: int) -> Path:
    return state_dir / f"node-{node_id}" / "server.properties"


def _read_record(state_dir: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads((state_dir / _STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LocalKafkaError(
            f"{state_dir / _STATE_FILE} is unreadable ({exc}); stop any Kafka it started and "
            "delete the file"
        ) from exc
    return record


def _write_record(state_dir: Path, record: dict[str, Any]) -> None:
    path = state_dir / _STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # atomic: readers never see half a file


def _record_node(record: dict[str, Any], node_id: int, state_dir: Path) -> dict[str, Any]:
    for entry in record["nodes"]:
        if entry["node_id"] == node_id:
            return entry  # type: ignore[no-any-return]
    known = [n["node_id"] for n in record["nodes"]]
    raise LocalKafkaError(f"the cluster in {state_dir} has no node {node_id} (nodes: {known})")


def _cluster_from_record(state_dir: Path, record: dict[str, Any]) -> LocalCluster:
    nodes = tuple(
        NodeInfo(
            node_id=n["node_id"],
            port=n["port"],
            controller_port=n["controller_port"],
            pid=n["pid"],
            log_dir=state_dir / f"node-{n['node_id']}" / "data",
            alive=_is_running(n["pid"], _properties_path(state_dir, n["node_id"])),
        )
        for n in record["nodes"]
    )
    bootstrap = ",".join(f"{_HOST}:{node.port}" for node in nodes)
    secure = bool(record.get("secure"))
    return LocalCluster(state_dir=state_dir, bootstrap=bootstrap, nodes=nodes, secure=secure)


def _require_cluster(state_dir: Path) -> LocalCluster:
    cluster = status(state_dir)
    if cluster is None:
        raise LocalKafkaError(
            f"the Kafka nodes of {state_dir} exited right after starting; see their "
            f"server.log files under {state_dir}"
        )
    return cluster


def _require_node(state_dir: Path, node_id: int) -> NodeInfo:
    record = _read_record(state_dir)
    if record is None:
        raise _no_cluster_error(state_dir)
    _record_node(record, node_id, state_dir)
    cluster = _cluster_from_record(state_dir, record)
    return next(node for node in cluster.nodes if node.node_id == node_id)


def _no_cluster_error(state_dir: Path) -> LocalKafkaError:
    return LocalKafkaError(
        f"no local Kafka cluster in {state_dir}; start one with "
        f"'triage kafka start --state-dir {state_dir}'"
    )


def _reset_state_dir(state_dir: Path) -> None:
    """Forget a cluster whose nodes are all gone, so a fresh one can be formatted."""
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    for node_dir in state_dir.glob("node-*"):
        shutil.rmtree(node_dir)
    kafka_secure.remove(state_dir)


def _remove_data(state_dir: Path) -> None:
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    for data_dir in state_dir.glob("node-*/data"):
        shutil.rmtree(data_dir, ignore_errors=True)
    # Keys and passwords of a stopped cluster are of no use to anyone.
    kafka_secure.remove(state_dir)
    for props in state_dir.glob("node-*/server.properties"):
        props.unlink(missing_ok=True)


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _log_excerpt(path: Path) -> str:
    """The last lines of a node log, preceded by its first error when that scrolled off."""
    try:
        with open(path, "rb") as fh:
            # The end of the file is enough: node logs can grow large.
            fh.seek(max(fh.seek(0, os.SEEK_END) - 256 * 1024, 0))
            lines = fh.read().decode(errors="replace").rstrip().splitlines()
    except OSError:
        return "(no log)"
    tail_start = max(len(lines) - _LOG_TAIL_LINES, 0)
    first_error = next((i for i, line in enumerate(lines[:tail_start]) if " ERROR " in line), None)
    if first_error is None:
        return "\n".join(lines[tail_start:])
    # The cause (e.g. a port already in use) is usually the first error, not the shutdown
    # noise that follows it.
    return "\n".join([*lines[first_error : first_error + 2], "...", *lines[tail_start:]])
