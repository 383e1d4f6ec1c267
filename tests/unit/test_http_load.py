"""The open loop counts the wait for a free client in a request's latency; the closed loop not."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from triage.schemas.models import TextRecord
from triage.tools.http_load import HttpLoad

ANSWER_S = 0.2


class _SlowGateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(ANSWER_S)
        body = json.dumps({"label": "x"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def texts(n: int) -> list[TextRecord]:
    return [TextRecord(id=f"t{i}", text="my card has not arrived") for i in range(n)]


def test_an_open_loop_request_waits_from_its_scheduled_time(gateway):
    # One client, 5 requests released every 50 ms, each answered in 200 ms: the last one is
    # released at 0.2 s but sent only at 0.8 s, answered at 1.0 s.
    load = HttpLoad(gateway, clients=1)
    load.run(texts(5), rate=20)
    assert load.failures == []
    assert max(load.latencies_ms) > 700
    assert min(load.latencies_ms) >= ANSWER_S * 1000


def test_a_closed_loop_request_waits_from_its_send(gateway):
    load = HttpLoad(gateway, clients=1)
    load.run(texts(5), rate=None)
    assert load.failures == []
    assert max(load.latencies_ms) < 2 * ANSWER_S * 1000


class _ClosingGateway(_SlowGateway):
    """Answers, then closes the connection without saying so: as a server does with a
    keep-alive connection idle past its timeout, just as the client reuses it."""

    def do_POST(self) -> None:  # noqa: N802
        super().do_POST()
        self.close_connection = True


def test_a_request_on_a_connection_the_server_closed_is_sent_again():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosingGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        load = HttpLoad(f"http://127.0.0.1:{server.server_address[1]}", clients=1)
        load.run(texts(3), rate=None)
    finally:
        server.shutdown()
    # every request after the first finds its connection closed, and gets its answer anyway
    assert load.failures == [] and load.failed_ids == set()
    assert len(load.latencies_ms) == 3
