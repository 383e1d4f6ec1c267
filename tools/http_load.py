"""`triage bench --via http`: texts sent to `triage serve` at a fixed rate by concurrent clients.

A pacing thread releases one request every 1/rate seconds (an open loop) or all at once (a closed
loop: each of the `clients` sends its next request when its last is answered) into a queue that
`clients` threads drain, each over its own keep-alive connection, so a slow answer holds one
client, not the schedule. Every request's latency is measured from when it was sent
to when its answer (the label record, after the pipeline decided) arrived.
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


@dataclass
class HttpLoad:
    base_url: str
    clients: int = 32
    wait_s: float = 30.0
    token: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0  # of the last `run`: its answers a second are len(latencies_ms) / it

    def run(self, records: list[TextRecord], rate: float | None) -> None:
        """Send every record (paced at `rate` a second) and wait for every answer."""
        work: queue.Queue[TextRecord | None] = queue.Queue()
        lock = threading.Lock()
        workers = [
            threading.Thread(target=self._client, args=(work, lock), daemon=True)
            for _ in range(self.clients)
        ]
        for worker in workers:
            worker.start()
        started = time.monotonic()
        for i, record in enumerate(records):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            work.put(record)
        for _ in workers:
            work.put(None)
        for worker in workers:
            worker.join()
        self.elapsed_s = time.monotonic() - started

    def _client(self, work: queue.Queue, lock: threading.Lock) -> None:
        url = urlsplit(self.base_url)
        host = url.hostname or "127.0.0.1"
        connection = http.client.HTTPConnection(host, url.port, timeout=self.wait_s + 10)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        while (record := work.get()) is not None:
            body = json.dumps({"id": record.id, "text": record.text}).encode()
            sent = time.perf_counter()
            try:
                connection.request("POST", f"/v1/classify?wait={self.wait_s}", body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                status, reason = 0, repr(exc)
            elapsed_ms = (time.perf_counter() - sent) * 1000
            with lock:
                if status == 200:
                    self.latencies_ms.append(elapsed_ms)
                else:
                    self.failures.append(f"{record.id}: {status or reason}")
        connection.close()
