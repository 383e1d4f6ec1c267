"""`/readyz` and `/v2/health/ready` wait for every expected class to vote: those with a class
record in the registry, and those the deployment names (TRIAGE_EXPECTED_CLASSES, a models
folder). The registry view is set by hand here, as the follower would read it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from triage.core.runtime.clock import now_ms, when
from triage.core.settings import ConnectionSettings
from triage.gateway.app import create_app
from triage.gateway.service import Gateway
from triage.gateway.settings import GatewaySettings
from triage.schemas.models import Announcement, ClassifierMode, ClassRecord, VotingSpan

KAFKA = ConnectionSettings(bootstrap_servers="127.0.0.1:1")


def gateway(**settings) -> Gateway:
    g = Gateway(GatewaySettings(connection=KAFKA, **settings))
    g.follower.ready.set()  # as if it had read the registry and the results
    return g


def votes(g: Gateway, label: str, since_ms: int = 0) -> None:
    span = VotingSpan(version="1", since_ms=since_ms)
    g.follower.view.apply(label, ClassRecord(label=label, voting=[span]))
    g.follower.view.apply(
        f"{label}@1",
        Announcement(
            label=label,
            version="1",
            mode=ClassifierMode.VOTING,
            since_ms=0,
            heartbeat_ms=0,
            group_id="g",
            instance="i",
        ),
    )


def test_not_ready_until_every_named_class_votes():
    g = gateway(expected_classes=("a", "b"))
    c = TestClient(create_app(g.settings, g))
    votes(g, "a")
    ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
    assert ready.json()["missing"] == {"b": "not announced"}
    assert "1 expected class(es) do not vote yet: b (not announced)" in ready.json()["error"]
    v2 = c.get("/v2/health/ready")
    assert v2.status_code == 503 and "b (not announced)" in v2.json()["error"]
    votes(g, "b")
    assert c.get("/readyz").json() == {"status": "ready", "voting_classes": 2}
    assert c.get("/v2/health/ready").json() == {"ready": True}


def test_without_names_every_class_with_a_record_is_expected():
    g = gateway()
    c = TestClient(create_app(g.settings, g))
    assert c.get("/readyz").json() == {"error": "no classifier votes yet", "missing": {}}
    votes(g, "a")
    later = now_ms() + 60_000
    votes(g, "b", since_ms=later)  # announced, its first span not started yet
    assert c.get("/readyz").json()["missing"] == {"b": f"votes from {when(later)}"}


def test_expected_classes_from_the_environment_and_a_models_folder(tmp_path, monkeypatch):
    for label in ("c", "d"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "manifest.json").write_text("{}")
    monkeypatch.setenv("TRIAGE_EXPECTED_CLASSES", "a, b,")
    monkeypatch.setenv("TRIAGE_EXPECTED_MODELS", str(tmp_path))
    g = gateway()
    assert g.settings.expected_classes == ("a", "b")
    flags = GatewaySettings(connection=KAFKA, expected_classes=["a,b", " c"])  # as the flags
    assert flags.expected_classes == ("a", "b", "c")
    assert g.expected == {"a", "b", "c", "d"}
    assert len(g.missing()) == 4 and "4 expected class(es)" in (g.not_ready or "")


def test_a_long_list_of_missing_classes_is_named_in_part():
    g = gateway(expected_classes=tuple(f"c{i}" for i in range(8)))
    assert g.not_ready is not None and g.not_ready.endswith("c4 (not announced) and 3 more")
    assert len(g.missing()) == 8
