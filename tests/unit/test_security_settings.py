"""Security settings, error messages and role ACLs: pure logic, no broker."""

import argparse
import ssl

import pytest
from kafka.admin import ACLOperation, ResourceType
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailedError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from triage.cli.main import build_parser
from triage.cli.options import settings_from
from triage.consumers.settings import ClassifierSettings
from triage.core.errors import ConfigError
from triage.core.kafka import security
from triage.core.settings import CommonSettings, ConnectionSettings
from triage.local import acls
from triage.local import secure as kafka_secure

SASL = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"}


def test_sasl_needs_mechanism_user_and_password():
    with pytest.raises(ConfigError, match="TRIAGE_SASL_MECHANISM"):
        security.check_settings(ConnectionSettings(security_protocol="SASL_SSL"))
    with pytest.raises(ConfigError, match="TRIAGE_SASL_USERNAME"):
        security.check_settings(ConnectionSettings(**SASL))
    with pytest.raises(ConfigError, match="TRIAGE_SASL_PASSWORD"):
        security.check_settings(ConnectionSettings(**SASL, sasl_username="u"))
    security.check_settings(ConnectionSettings(**SASL, sasl_username="u", sasl_password="p"))


def test_credentials_or_tls_files_without_the_protocol_to_use_them_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="security protocol is PLAINTEXT"):
        security.check_settings(ConnectionSettings(sasl_mechanism="PLAIN", sasl_username="u"))
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    with pytest.raises(ConfigError, match="does not use TLS"):
        security.check_settings(ConnectionSettings(ssl_cafile=ca))
    with pytest.raises(ConfigError, match="no such file"):
        security.check_settings(
            ConnectionSettings(security_protocol="SSL", ssl_cafile=tmp_path / "no")
        )


def test_password_from_a_file_unless_given_directly(tmp_path):
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    from_file = ConnectionSettings(**SASL, sasl_username="u", sasl_password_file=path)
    assert security.sasl_password(from_file).get_secret_value() == "from-file"
    direct = ConnectionSettings(**SASL, sasl_username="u", sasl_password="direct",
                            sasl_password_file=path)  # fmt: skip
    assert security.sasl_password(direct).get_secret_value() == "direct"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        security.sasl_password(from_file)


def test_secrets_stay_out_of_repr_and_validation_errors(monkeypatch):
    settings = ConnectionSettings(**SASL, sasl_username="u", sasl_password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)
    monkeypatch.setenv("TRIAGE_MODEL_SIGNING_KEY", "short-secret")
    with pytest.raises(ConfigError) as err:
        settings_from(ClassifierSettings, argparse.Namespace())
    assert "short-secret" not in str(err.value) and "16 characters" in str(err.value)


def test_help_offers_no_password_flag_and_shows_no_secret(monkeypatch):
    monkeypatch.setenv("TRIAGE_SASL_PASSWORD", "pw-in-env-123456")
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    for name in ("classifier", "aggregate", "publish", "results"):
        text = commands[name].format_help()
        assert "--sasl-password-file" in text and "--sasl-password " not in text
        assert "pw-in-env-123456" not in text


def test_authorization_errors_are_named_as_missing_acls():
    settings = ConnectionSettings(**SASL, sasl_username="classifier")
    line = security.describe(TopicAuthorizationFailedError("scores"), settings)
    assert line.startswith("principal User:classifier is not authorized for topic(s) scores")
    assert "missing ACL" in line
    group = security.describe(GroupAuthorizationFailedError("g"))
    assert "this client is not authorized for consumer group g" in group
    assert security.is_security_error(SaslAuthenticationFailedError())
    assert not security.is_security_error(KafkaConnectionError("down"))


def test_probe_failures_are_told_apart():
    conf = {"bootstrap_servers": ["h:1"], "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "u"}  # fmt: skip
    refused = security._diagnose(conf, SaslAuthenticationFailedError(), True)
    assert "refused to authenticate user 'u'" in refused
    # Closed right after the broker answered: how Kafka treats an unknown user.
    assert "refused to authenticate" in security._diagnose(conf, KafkaConnectionError(), True)
    untrusted = KafkaConnectionError("Handshake failed")
    untrusted.__context__ = ssl.SSLCertVerificationError(1, "verify failed")
    untrusted.__context__.verify_message = "self-signed certificate"
    assert "TRIAGE_SSL_CAFILE" in security._diagnose(conf, untrusted, False)
    untrusted.__context__.verify_message = "Hostname mismatch, certificate is not valid for 'h'"
    assert "TRIAGE_SSL_CHECK_HOSTNAME" in security._diagnose(conf, untrusted, False)
    # A broker that is down says nothing about security: the client's own retries handle it.
    down = {**conf, "bootstrap_servers": ["127.0.0.1:1"], "security_protocol": "PLAINTEXT"}
    assert security._diagnose(down, KafkaConnectionError("refused"), False) is None


def test_roles_cannot_do_each_others_jobs():
    settings = CommonSettings(topic_prefix="p-")

    def allowed(role):
        return {(g.resource, g.name, g.operation) for g in acls.grants(role, settings)}

    topic, read, write = ResourceType.TOPIC, ACLOperation.READ, ACLOperation.WRITE
    classifier, aggregator = allowed(acls.CLASSIFIER), allowed(acls.AGGREGATOR)
    assert {(topic, "p-texts", read), (topic, "p-scores", write)} <= classifier
    assert {(topic, "p-scores", read), (topic, "p-labels", write)} <= aggregator
    assert not {(topic, "p-scores", read), (topic, "p-labels", write)} & classifier
    assert not {(topic, "p-texts", read), (topic, "p-scores", write)} & aggregator
    reader = {(topic, "p-labels", read), (topic, "p-triage-dead-letters", read)}
    assert allowed(acls.READER) == reader
    gateway = reader | {(topic, "p-texts", write), (topic, "p-triage-registry", read)}
    assert allowed(acls.GATEWAY) == gateway
    monitor = allowed(acls.MONITOR)
    assert {(topic, "p-corrections", read), (topic, "p-triage-quality", write)} <= monitor
    assert not {(topic, "p-texts", read), (topic, "p-labels", write)} & monitor
    assert (topic, "p-corrections", write) in allowed(acls.PUBLISHER)
    every = set().union(*(allowed(r) for r in acls.ROLES))
    assert all(name.startswith("p-") for _, name, _ in every)
    assert not any(op in (ACLOperation.CREATE, ACLOperation.ALTER) for *_, op in every)


def test_groups_and_transactional_ids_match_what_services_use():
    settings = CommonSettings(topic_prefix="p-")
    by_resource = {(g.resource, g.name): g.pattern for g in acls.grants(acls.AGGREGATOR, settings)}
    assert (ResourceType.GROUP, "p-triage-aggregator") in by_resource
    assert (ResourceType.TRANSACTIONAL_ID, "p-triage-aggregator.") in by_resource
    classifier = {(g.resource, g.name) for g in acls.grants(acls.CLASSIFIER, settings)}
    assert (ResourceType.TRANSACTIONAL_ID, "p-triage-classifier-") in classifier


def test_scram_credentials_carry_a_salted_hash_not_the_password():
    arg = kafka_secure._scram_credential("SCRAM-SHA-512", "alice", "open-sesame")
    assert arg.startswith("SCRAM-SHA-512=[name=alice,salt=")
    assert "open-sesame" not in arg and "saltedpassword=" in arg


def test_signing_key_is_a_secret_in_settings(monkeypatch):
    monkeypatch.setenv("TRIAGE_MODEL_SIGNING_KEY", "a-long-enough-signing-key")
    key = ClassifierSettings().model_signing_key
    assert isinstance(key, SecretStr) and "a-long-enough" not in repr(ClassifierSettings())
