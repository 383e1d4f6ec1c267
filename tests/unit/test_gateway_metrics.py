"""The gateway's request metrics middleware on a tiny FastAPI app (no Kafka): every answer is
counted and timed under its route template and status, a path no route matches as "other", and a
request whose handler raised as the 500 it was answered with."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from triage.core.settings import ConnectionSettings
from triage.gateway.app import RequestMetrics, create_app
from triage.gateway.service import Gateway
from triage.gateway.settings import GatewaySettings


def counted(route: str, code: str) -> float:
    labels = {"route": route, "code": code}
    return REGISTRY.get_sample_value("triage_gateway_requests_total", labels) or 0.0


def timed(route: str) -> float:
    labels = {"route": route}
    return REGISTRY.get_sample_value("triage_gateway_request_seconds_count", labels) or 0.0


def tiny_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestMetrics)

    @app.exception_handler(Exception)  # as create_app's: ServerErrorMiddleware answers it
    async def _crash(_request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": type(exc).__name__}, 500)

    @app.get("/tiny/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    @app.get("/tiny/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return app


def test_answers_are_counted_by_route_template_and_status():
    c = TestClient(tiny_app(), raise_server_exceptions=False)
    before = {
        "item": counted("/tiny/items/{item}", "200"),
        "item_timed": timed("/tiny/items/{item}"),
        "missing": counted("other", "404"),
        "boom": counted("/tiny/boom", "500"),
        "boom_timed": timed("/tiny/boom"),
    }
    assert c.get("/tiny/items/a").status_code == 200
    assert c.get("/tiny/items/b").status_code == 200
    assert c.get("/tiny/nowhere").status_code == 404
    crashed = c.get("/tiny/boom")
    assert crashed.status_code == 500 and crashed.json() == {"error": "RuntimeError"}
    assert counted("/tiny/items/{item}", "200") == before["item"] + 2  # the template, not a path
    assert timed("/tiny/items/{item}") == before["item_timed"] + 2
    assert counted("other", "404") == before["missing"] + 1
    assert counted("/tiny/boom", "500") == before["boom"] + 1
    assert timed("/tiny/boom") == before["boom_timed"] + 1


def test_the_gateway_counts_its_own_answers_and_its_413s():
    settings = GatewaySettings(
        connection=ConnectionSettings(bootstrap_servers="127.0.0.1:1"), max_body_bytes=100
    )
    c = TestClient(create_app(settings, Gateway(settings)), raise_server_exceptions=False)
    results, health, big = (
        counted("/v1/results/{message_id}", "404"),
        counted("/healthz", "200"),
        counted("other", "413"),
    )
    assert c.get("/v1/results/nope").status_code == 404  # a route's own 404: its template
    assert c.get("/healthz").status_code == 200
    assert c.post("/v1/classify", json={"text": "x" * 200}).status_code == 413
    assert counted("/v1/results/{message_id}", "404") == results + 1
    assert counted("/healthz", "200") == health + 1
    assert counted("other", "413") == big + 1  # refused before routing: BodyLimit is inside
