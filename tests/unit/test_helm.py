"""deploy/helm/triage: lint clean, renders with default and secured values, every object valid.

Kubernetes' own kinds are validated against kubernetes-validate's bundled schemas (strict: an
unknown field fails), KEDA's ScaledObject and TriggerAuthentication and the ServiceMonitor
against the JSON Schemas vendored from their CRDs (deploy/helm/schemas/). All offline. The
ScaledObjects must name the consumer groups core/topology.py gives the services.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from triage.core.settings import CommonSettings
from triage.core.topology import AGGREGATOR, CLASSIFIER, ENCODER, MONITOR

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "triage"
SCHEMAS = ROOT / "deploy" / "helm" / "schemas"
SECURED = CHART / "ci" / "secured-values.yaml"
CUSTOM = {
    "ScaledObject": "scaledobject-keda-v1alpha1.json",
    "TriggerAuthentication": "triggerauthentication-keda-v1alpha1.json",
    "ServiceMonitor": "servicemonitor-monitoring-v1.json",
}
K8S_VERSION = "1.31.0"


@pytest.fixture(scope="module")
def helm() -> str:
    """helm from PATH, else the one `make .triage/bin/helm` builds (cached) from the Go proxy."""
    found = shutil.which("helm") or ROOT / ".triage" / "bin" / "helm"
    if not Path(found).exists():
        subprocess.run(["make", "-s", ".triage/bin/helm"], cwd=ROOT, check=True, timeout=900)
    return str(found)


def helm_run(helm: str, *args: str) -> str:
    done = subprocess.run([helm, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def render(helm: str, *args: str) -> list[dict]:
    out = helm_run(helm, "template", "triage", str(CHART), *args)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def values(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_helm_lint_passes_with_default_and_secured_values(helm):
    assert "0 chart(s) failed" in helm_run(helm, "lint", str(CHART))
    assert "0 chart(s) failed" in helm_run(helm, "lint", str(CHART), "-f", str(SECURED))


@pytest.mark.parametrize("extra", [[], ["-f", str(SECURED)]], ids=["default", "secured"])
def test_every_rendered_object_validates_against_its_schema(helm, extra):
    objects = render(helm, *extra)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget", "ScaledObject"} <= kinds
    for obj in objects:
        if obj["kind"] in CUSTOM:
            schema = json.loads((SCHEMAS / CUSTOM[obj["kind"]]).read_text())
            jsonschema.validate(obj, schema)
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_a_misspelt_field_fails_the_check():
    """The checks above could pass vacuously if the validators accepted anything."""
    scaled = json.loads((SCHEMAS / CUSTOM["ScaledObject"]).read_text())
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            bad | {"spec": {"scaleTargetRef": {"name": "x"}, "maxReplica": 3}}, scaled
        )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replica": 1, "selector": {}, "template": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "values_file", [CHART / "values.yaml", SECURED], ids=["default", "secured"]
)
def test_scaled_objects_watch_each_groups_topic_capped_at_the_partitions(helm, values_file):
    given = values(CHART / "values.yaml") | values(values_file)
    prefix = given["kafka"]["topicPrefix"]
    topics = CommonSettings(topic_prefix=prefix).topics
    expected = {
        f"{prefix}{CLASSIFIER.group_id(c['label'])}": topics[c.get("topic", "texts")]
        for c in given["classifiers"]
    }
    expected |= {f"{prefix}{ENCODER.group_id(e['name'])}": topics.texts for e in given["encoders"]}
    expected[prefix + AGGREGATOR.group_id()] = topics.scores
    expected[prefix + MONITOR.group_id()] = topics.labels

    scaled = by_kind(render(helm, "-f", str(values_file)), "ScaledObject").values()
    triggers = {t["metadata"]["consumerGroup"]: t for s in scaled for t in s["spec"]["triggers"]}
    assert {g: t["metadata"]["topic"] for g, t in triggers.items()} == expected
    cap = min(given["autoscaling"]["maxReplicaCount"], given["kafka"]["partitions"])
    assert {s["spec"]["maxReplicaCount"] for s in scaled} == {cap}


def test_statefulset_pods_name_their_instance_and_secured_pods_read_the_secrets(helm):
    objects = render(helm, "-f", str(SECURED))
    for name in ("triage-aggregator", "triage-monitor"):
        pod = by_kind(objects, "StatefulSet")[name]["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["TRIAGE_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["TRIAGE_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        assert env["TRIAGE_SASL_PASSWORD_FILE"]["value"] == "/etc/triage/sasl/password"
        secrets = {v["secret"]["secretName"] for v in pod["volumes"]}
        assert secrets == {"triage-kafka-sasl", "triage-kafka-ca"}
    auth = by_kind(objects, "TriggerAuthentication")["triage-kafka"]["spec"]["secretTargetRef"]
    assert {a["parameter"] for a in auth} == {"username", "password", "ca"}
    gateway = by_kind(objects, "Deployment")["triage-gateway"]["spec"]["template"]["spec"]
    assert gateway["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/healthz"
