"""`triage bench --via http`: texts sent to `triage serve` at a fixed rate by concurrent clients.

A pacing thread releases each request when it is due, one every 1/rate seconds or at Poisson
times averaging `rate` a second (`tools/arrivals.py`) (an open loop), or all at once (a closed
loop: each of the `clients` sends its next request when its last is answered) into a queue that
`clients` threads drain, each over its own keep-alive connection, so a slow answer holds one
client, not the schedule. A request whose connection fails before its answer (a keep-alive
connection the server closed while idle) is sent once more on a new one: its id makes that
safe, as any client's retry. In the open loop a request's latency runs from when the schedule
released it to when its answer (the label record, after the pipeline decided) arrived: a
request that waited for a free client, or for a pacer that fell behind, counts that wait too
(measured from the send alone, an overloaded run hid its queueing: 5,000 texts asked at 20/s
took 340 s, and their p99 looked like the pipeline's). In the closed loop it runs from the send.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from triage.schemas.models import TextRecord
from triage.tools.arrivals import due_offsets


@dataclass
class HttpLoad:
    base_url: str
    clients: int = 32
    wait_s: float = 30.0
    token: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    failed_ids: set[str] = field(default_factory=set)  # answered other than 200, or not at all
    elapsed_s: float = 0.0  # of the last `run`: its answers a second are len(latencies_ms) / it

    def run(self, records: list[TextRecord], rate: float | None, arrivals: str = "even") -> None:
        """Send every record (paced at `rate` a second, `arrivals` spaced) and wait for every
        answer."""
        work: queue.Queue[tuple[TextRecord, float | None] | None] = queue.Queue()
        lock = threading.Lock()
        workers = [
            threading.Thread(target=self._client, args=(work, lock), daemon=True)
            for _ in range(self.clients)
        ]
        for worker in workers:
            worker.start()
        offsets = due_offsets(len(records), rate, arrivals) if rate else None
        started = time.perf_counter()
        for i, record in enumerate(records):
            due = None
            if offsets is not None:
                due = started + offsets[i]
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            work.put((record, due))
        for _ in workers:
            work.put(None)
        for worker in workers:
            worker.join()
        self.elapsed_s = time.perf_counter() - started

    def _client(self, work: queue.Queue, lock: threading.Lock) -> None:
        url = urlsplit(self.base_url)
        host = url.hostname or "127.0.0.1"
        connection = http.client.HTTPConnection(host, url.port, timeout=self.wait_s + 10)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        while (item := work.get()) is not None:
            record, due = item
            body = json.dumps({"id": record.id, "text": record.text}).encode()
            sent = time.perf_counter() if due is None else due
            path = f"/v1/classify?wait={self.wait_s}"
            status, reason = _post(connection, path, body, headers)
            if status == 0:  # once more on a new connection: the id makes a repeat safe
                status, reason = _post(connection, path, body, headers)
            elapsed_ms = (time.perf_counter() - sent) * 1000
            with lock:
                if status == 200:
                    self.latencies_ms.append(elapsed_ms)
                else:
                    self.failures.append(f"{record.id}: {status or reason}")
                    self.failed_ids.add(record.id)
        connection.close()


def _post(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    """The answer's status (0: none, the connection failed, and closed for a new one)."""
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        response.read()
        return response.status, ""
    except (OSError, http.client.HTTPException) as exc:
        connection.close()  # the next request opens a new one
        return 0, repr(exc)
