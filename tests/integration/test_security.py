"""The pipeline on a secure cluster: SASL_SSL with SCRAM users, ACLs, signed models.

One cluster for the module, started with the real `triage kafka start --secure` in its own
state dir, next to (not instead of) the test run's plaintext broker. Every process connects as
one role with the `TRIAGE_*` variables an operator would set; the negative cases check that
each refusal ends the command quickly with one line that says what is wrong and never shows a
password.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DEMO_STREAM, Processes, wait_until
from kafka import TopicPartition
from kafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from triage.core.kafka import clients as kafka_clients
from triage.core.model import signing
from triage.core.model.artifacts import MANIFEST, available_labels
from triage.core.registry.store import wait_for_classifiers
from triage.core.settings import CommonSettings
from triage.local import acls
from triage.local import cluster as kafka_local
from triage.local import secure as kafka_secure
from triage.producer.publisher import Publisher
from triage.producer.settings import ProducerSettings
from triage.schemas.models import TextRecord
from triage.tools.results import read_dead_letters, read_labels
from triage.training.train import read_dataset

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SIGNING_KEY = "integration-signing-key-0123456789"
MAX_RECORD_BYTES = 4096
# A refusal must end the command about this fast, not after retrying for a bootstrap timeout.
FAST_S = 20


@dataclass(frozen=True)
class SecureCluster:
    state_dir: Path
    bootstrap: str
    prefix: str

    def env(self, role: str) -> dict[str, str]:
        """What an operator sets to run a triage command as ``role``."""
        return {
            **kafka_secure.client_env(self.state_dir, role),
            "TRIAGE_BOOTSTRAP_SERVERS": self.bootstrap,
            "TRIAGE_TOPIC_PREFIX": self.prefix,
            "TRIAGE_TOPIC_PARTITIONS": "3",
        }

    def settings(self, role: str, cls: type[CommonSettings] = CommonSettings) -> CommonSettings:
        fields = {k.removeprefix("TRIAGE_").lower(): v for k, v in self.env(role).items()}
        return cls(**fields)

    def password(self, role: str) -> str:
        return kafka_secure.read_password(self.state_dir, role)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[SecureCluster]:
    state = tmp_path_factory.mktemp("secure-kafka")
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    env = clean_env() | {
        "TRIAGE_TOPIC_PREFIX": prefix,
        "TRIAGE_TOPIC_PARTITIONS": "3",
        "TRIAGE_KAFKA_LIBS": str(kafka_local.default_libs_dir()),
    }
    started = subprocess.run(
        [sys.executable, "-m", "triage.cli", "kafka", "start", "--secure", "--state-dir",
         str(state)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        secrets = [kafka_secure.read_password(state, u) for u in ("admin", *acls.ROLES)]
        assert not any(s in started.stdout + started.stderr for s in secrets)
        yield SecureCluster(state, started.stdout.split()[-1], prefix)
    finally:
        kafka_local.stop(state)


@pytest.fixture(scope="module")
def signed_models(demo_models, tmp_path_factory) -> Path:
    """The demo models with manifests signed by SIGNING_KEY (as `triage train` would)."""
    out = tmp_path_factory.mktemp("signed") / "models"
    shutil.copytree(demo_models, out)
    for manifest in out.glob(f"*/{MANIFEST}"):
        data = json.loads(manifest.read_text())
        data["signature"] = signing.sign(data, SecretStr(SIGNING_KEY))
        manifest.write_text(json.dumps(data, indent=2))
    return out


def clean_env() -> dict[str, str]:
    """This process's environment without any TRIAGE_* setting of the plaintext tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}


def run_cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "triage.cli", *args],
        env=clean_env() | env, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def assert_refused(result: subprocess.CompletedProcess, *expected: str, secrets=()) -> str:
    """Non-zero exit; the last stderr line is the explanation; no secret anywhere."""
    assert result.returncode != 0, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    for text in expected:
        assert text in line, result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
    return line


def stream_records(n: int) -> list[TextRecord]:
    texts = read_dataset(DEMO_STREAM).texts[:n]
    return [TextRecord(id=f"sec{i:03d}", text=t) for i, t in enumerate(texts)]


def wait_for_registry(settings: CommonSettings, labels: set[str], timeout_s: float = 60) -> None:
    wait_for_classifiers(settings, labels, timeout_s)


# --- the whole pipeline ----------------------------------------------------------------


def test_pipeline_end_to_end_over_sasl_ssl_with_acls(cluster, signed_models, tmp_path):
    procs = Processes({}, tmp_path)
    procs.env = clean_env()  # each process gets exactly its role's settings, below
    limits = {"TRIAGE_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES)}
    key = {"TRIAGE_MODEL_SIGNING_KEY": SIGNING_KEY} | limits
    try:
        procs.start("classifier", "classifier", "--models", str(signed_models),
                    extra_env=cluster.env(acls.CLASSIFIER) | key)  # fmt: skip
        procs.start("aggregator", "aggregate", "--join-timeout-s", "60",
                    extra_env=cluster.env(acls.AGGREGATOR))  # fmt: skip
        labels = set(available_labels(signed_models))
        wait_for_registry(cluster.settings(acls.AGGREGATOR), labels)

        records = stream_records(40)
        with Publisher(cluster.settings(acls.PUBLISHER, ProducerSettings)) as publisher:
            ids = publisher.publish(records)
            publisher.send_raw(b"huge", b"x" * (MAX_RECORD_BYTES + 1))

        reader = cluster.settings(acls.READER)
        results = wait_until(lambda: complete_results(reader, ids), 120, "a result per text")
        assert all(r.complete and set(r.scores) == labels for r in results)
        letters = wait_until(lambda: list(read_dead_letters(reader)), 60, "a dead letter")
        assert [(d.id, d.reason) for d in letters] == [("huge", "record_too_large")]
    finally:
        procs.stop_all()
    logs = procs.log("classifier") + procs.log("aggregator")
    for secret in (cluster.password(acls.CLASSIFIER), cluster.password(acls.AGGREGATOR),
                   SIGNING_KEY):  # fmt: skip
        assert secret not in logs


def complete_results(settings: CommonSettings, ids: list[str]):
    results = [r for r in read_labels(settings) if r.id in set(ids)]
    return results if len(results) == len(ids) else None


# --- refused connections -----------------------------------------------------------------


def test_wrong_password_is_one_line_and_a_quick_exit(cluster, demo_models):
    env = cluster.env(acls.CLASSIFIER) | {"TRIAGE_SASL_PASSWORD": "not-the-password-42"}
    started = time.monotonic()
    result = run_cli(env, "classifier", "--models", str(demo_models))
    assert time.monotonic() - started < FAST_S
    assert_refused(result, "refused to authenticate user 'classifier'", "wrong user name or "
                   "password", secrets=["not-the-password-42"])  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_unknown_user_is_refused_like_a_wrong_password(cluster):
    env = cluster.env(acls.PUBLISHER) | {"TRIAGE_SASL_USERNAME": "mallory"}
    result = run_cli(env, "publish", "-", stdin="hello\n")
    assert_refused(result, "refused to authenticate user 'mallory'",
                   secrets=[cluster.password(acls.PUBLISHER)])  # fmt: skip


def test_plaintext_client_is_told_to_use_tls(cluster):
    env = {"TRIAGE_BOOTSTRAP_SERVERS": cluster.bootstrap, "TRIAGE_TOPIC_PREFIX": cluster.prefix}
    started = time.monotonic()
    result = run_cli(env, "results")
    assert time.monotonic() - started < FAST_S
    assert_refused(result, "expects TLS", "TRIAGE_SECURITY_PROTOCOL=SASL_SSL")


def test_untrusted_certificate_is_refused(cluster, tmp_path):
    other_ca = tmp_path / "other-ca"
    password = tmp_path / "pw"
    password.write_text("store-password")
    kafka_secure.make_tls(other_ca, password)
    env = cluster.env(acls.READER) | {"TRIAGE_SSL_CAFILE": str(other_ca / "ca.crt")}
    started = time.monotonic()
    result = run_cli(env, "results")
    assert time.monotonic() - started < FAST_S
    assert_refused(result, "certificate of Kafka at", "is not trusted", "TRIAGE_SSL_CAFILE",
                   secrets=[cluster.password(acls.READER)])  # fmt: skip


def test_credentials_without_tls_settings_are_a_config_error(cluster):
    env = cluster.env(acls.READER) | {"TRIAGE_SECURITY_PROTOCOL": "PLAINTEXT"}
    result = run_cli(env, "results")
    assert_refused(result, "security protocol is PLAINTEXT")
    assert result.returncode == 2


# --- missing ACLs --------------------------------------------------------------------------


def test_classifier_principal_cannot_run_the_aggregator(cluster):
    started = time.monotonic()
    result = run_cli(cluster.env(acls.CLASSIFIER), "aggregate")
    assert time.monotonic() - started < FAST_S
    line = assert_refused(result, "User:classifier is not authorized for transactional id",
                          "missing ACL", secrets=[cluster.password(acls.CLASSIFIER)])  # fmt: skip
    assert f"{cluster.prefix}triage-aggregator." in line


def test_reader_principal_cannot_publish(cluster):
    result = run_cli(cluster.env(acls.READER), "publish", "-", stdin="hello\n")
    assert_refused(result, f"not authorized for topic(s) {cluster.prefix}texts", "missing ACL")


def test_results_for_a_principal_that_may_not_read_them_is_an_error_not_silence(cluster):
    result = run_cli(cluster.env(acls.CLASSIFIER), "results")
    assert_refused(result, f"not authorized for topic(s) {cluster.prefix}labels", "missing ACL")


def test_no_role_can_do_another_roles_job(cluster):
    classifier = cluster.settings(acls.CLASSIFIER)
    aggregator = cluster.settings(acls.AGGREGATOR)
    assert_cannot_write(aggregator, aggregator.topics.scores)
    assert_cannot_write(aggregator, aggregator.topics.texts)
    assert_cannot_write(classifier, classifier.topics.labels)
    assert_cannot_read(classifier, classifier.topics.scores)  # it may write there, so it sees it
    assert_cannot_read(classifier, classifier.topics.labels)  # it may not even see this one
    assert_cannot_read(aggregator, aggregator.topics.texts)


def assert_cannot_write(settings: CommonSettings, topic: str) -> None:
    producer = kafka_clients.producer(settings)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic, key=b"k", value=b"{}").get(timeout=30)
    finally:
        producer.close(timeout=5)


def assert_cannot_read(settings: CommonSettings, topic: str) -> None:
    consumer = kafka_clients.consumer(settings, group_id=None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        with pytest.raises(TopicAuthorizationFailedError, match=topic):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=500)
    finally:
        consumer.close()


# --- model artifacts ---------------------------------------------------------------------


def test_classifier_with_a_key_refuses_unsigned_models(cluster, demo_models):
    env = cluster.env(acls.CLASSIFIER) | {"TRIAGE_MODEL_SIGNING_KEY": SIGNING_KEY}
    result = run_cli(env, "classifier", "--models", str(demo_models))
    assert_refused(result, "not signed", "refusing to load", secrets=[SIGNING_KEY])
    assert result.returncode == 2


def test_classifier_with_a_key_refuses_a_tampered_model(cluster, signed_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(signed_models, models)
    label = available_labels(models)[0]
    manifest = models / label / MANIFEST
    data = json.loads(manifest.read_text())
    other = available_labels(models)[1]
    # Swap in another class's artifact and make the sha256 match it: only the key notices.
    shutil.copy(models / other / "model.joblib", models / label / "model.joblib")
    data["sha256"] = json.loads((models / other / MANIFEST).read_text())["sha256"]
    manifest.write_text(json.dumps(data, indent=2))
    env = cluster.env(acls.CLASSIFIER) | {"TRIAGE_MODEL_SIGNING_KEY": SIGNING_KEY}
    result = run_cli(env, "classifier", "--models", str(models), "--label", label)
    assert_refused(result, "signature does not match", secrets=[SIGNING_KEY])
