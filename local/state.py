"""What a local cluster's state directory holds and what of it is running: ``cluster.json`` (the
Kafka version, cluster id, Java, jars and, per node, its ports and process id, written atomically
and read by any later process), one ``node-<id>/`` folder per node with its
``server.properties``, data and ``server.log``, the lock that serialises starting and stopping,
whether a recorded process is still our broker (not a reused pid), and the errors that tell the
operator what to do, with an excerpt of the node's log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triage.core.errors import OperatorError
from triage.local import secure as kafka_secure

HOST = "127.0.0.1"
# The broker's main class: only a JVM running it with a node's properties is that node.
MAIN_CLASS = "kafka.Kafka"

_STATE_FILE = "cluster.json"
_LOCK_FILE = ".lock"
_LOG_TAIL_LINES = 20

# Brokers started by this process, so that their exit is noticed (and reaped) instead of
# lingering as zombies whose pid still answers os.kill(pid, 0).
launched: dict[int, subprocess.Popen[bytes]] = {}


class LocalKafkaError(OperatorError):
    """The local cluster could not be set up, started or reached; the message says what to do."""


class PortTaken(LocalKafkaError):
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


def default_state_dir() -> Path:
    """Where a cluster keeps its state: ``$TRIAGE_KAFKA_HOME``, else ``./.triage/kafka``."""
    return Path(os.environ.get("TRIAGE_KAFKA_HOME") or ".triage/kafka").resolve()


def resolve_state_dir(state_dir: Path | None) -> Path:
    return Path(state_dir).resolve() if state_dir is not None else default_state_dir()


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialize start/stop/restart of one state dir across processes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / _LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def properties_path(state_dir: Path, node_id: int) -> Path:
    return state_dir / f"node-{node_id}" / "server.properties"


def read_record(state_dir: Path) -> dict[str, Any] | None:
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


def write_record(state_dir: Path, record: dict[str, Any]) -> None:
    path = state_dir / _STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # atomic: readers never see half a file


def record_node(record: dict[str, Any], node_id: int, state_dir: Path) -> dict[str, Any]:
    for entry in record["nodes"]:
        if entry["node_id"] == node_id:
            return entry  # type: ignore[no-any-return]
    known = [n["node_id"] for n in record["nodes"]]
    raise LocalKafkaError(f"the cluster in {state_dir} has no node {node_id} (nodes: {known})")


def cluster_from_record(state_dir: Path, record: dict[str, Any]) -> LocalCluster:
    nodes = tuple(
        NodeInfo(
            node_id=n["node_id"],
            port=n["port"],
            controller_port=n["controller_port"],
            pid=n["pid"],
            log_dir=state_dir / f"node-{n['node_id']}" / "data",
            alive=is_running(n["pid"], properties_path(state_dir, n["node_id"])),
        )
        for n in record["nodes"]
    )
    bootstrap = ",".join(f"{HOST}:{node.port}" for node in nodes)
    secure = bool(record.get("secure"))
    return LocalCluster(state_dir=state_dir, bootstrap=bootstrap, nodes=nodes, secure=secure)


def no_cluster_error(state_dir: Path) -> LocalKafkaError:
    return LocalKafkaError(
        f"no local Kafka cluster in {state_dir}; start one with "
        f"'triage kafka start --state-dir {state_dir}'"
    )


def reset_state_dir(state_dir: Path) -> None:
    """Forget a cluster whose nodes are all gone, so a fresh one can be formatted."""
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    for node_dir in state_dir.glob("node-*"):
        shutil.rmtree(node_dir)
    kafka_secure.remove(state_dir)


def remove_data(state_dir: Path) -> None:
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    for data_dir in state_dir.glob("node-*/data"):
        shutil.rmtree(data_dir, ignore_errors=True)
    # Keys and passwords of a stopped cluster are of no use to anyone.
    kafka_secure.remove(state_dir)
    for props in state_dir.glob("node-*/server.properties"):
        props.unlink(missing_ok=True)


def is_running(pid: int, properties: Path) -> bool:
    child = launched.get(pid)
    if child is not None:
        # Our own unreaped child cannot have a reused pid, and right after Popen returns its
        # /proc cmdline can still be empty while execve finishes.
        if child.poll() is None:
            return True
        del launched[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process; the command line below tells whether it is ours
    # The pid may have been reused since the node started; only our broker has this cmdline.
    cmdline = _cmdline(pid)
    return MAIN_CLASS in cmdline and str(properties) in cmdline


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


def tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def log_excerpt(path: Path) -> str:
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


def has_record(state_dir: Path) -> bool:
    """Whether ``state_dir`` records a cluster (running or not)."""
    return (state_dir / _STATE_FILE).exists()
