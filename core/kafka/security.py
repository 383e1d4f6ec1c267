"""Kafka security as a triage client sees it: credentials, a connection probe, clear refusals.

A password comes from ``TRIAGE_SASL_PASSWORD`` or a file (``TRIAGE_SASL_PASSWORD_FILE``), never
from a flag, and stays a ``SecretStr`` until it is handed to kafka-python. kafka-python retries a
refused login or an untrusted certificate until its bootstrap timeout and then only says that it
could not bootstrap; so ``check_connection`` makes one connection itself and turns a definite
refusal (bad credentials, an untrusted certificate, TLS spoken to a plaintext client or the
reverse) into a ``SecurityError`` whose one line says what to do, while a broker that is merely
down stays the client's business (it retries). ``describe`` does the same for the authorization
errors a running service meets: a missing ACL is named as such, with the principal and resource.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)
from kafka.net.manager import KafkaConnectionManager
from kafka.net.selector import NetworkSelector
from pydantic import SecretStr

from triage.core.errors import ConfigError
from triage.core.settings import ConnectionSettings

_PROBE_TIMEOUT_S = 10.0
_TLS_SNIFF_TIMEOUT_S = 3.0


class SecurityError(ConfigError):
    """Kafka refused this client's credentials, certificate or permissions."""


# --- credentials -------------------------------------------------------------------------


def sasl_password(settings: ConnectionSettings) -> SecretStr | None:
    """The SASL password: ``TRIAGE_SASL_PASSWORD``, else the first line of the password file."""
    if settings.sasl_password is not None:
        return settings.sasl_password
    path = settings.sasl_password_file
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the SASL password file {path}: {exc.strerror}") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"the SASL password file {path} is empty")
    return SecretStr(lines[0].strip())


def check_settings(settings: ConnectionSettings) -> None:
    """Refuse security settings that cannot work together, before any connection."""
    protocol, mechanism = settings.security_protocol, settings.sasl_mechanism
    if protocol.startswith("SASL_"):
        if mechanism is None:
            raise ConfigError(f"{protocol} needs TRIAGE_SASL_MECHANISM (or --sasl-mechanism)")
        if not settings.sasl_username:
            raise ConfigError(f"{protocol} needs TRIAGE_SASL_USERNAME (or --sasl-username)")
        if settings.sasl_password is None and settings.sasl_password_file is None:
            raise ConfigError(
                f"{protocol} needs a password: set TRIAGE_SASL_PASSWORD or "
                "TRIAGE_SASL_PASSWORD_FILE (or --sasl-password-file)"
            )
    elif mechanism or settings.sasl_username:
        raise ConfigError(
            f"SASL credentials are set but the security protocol is {protocol}, which would "
            "not use them: set TRIAGE_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
        )
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and (
        settings.ssl_cafile or settings.ssl_certfile or settings.ssl_keyfile
    ):
        raise ConfigError(
            f"TLS files are set but the security protocol is {protocol}, which does not use "
            "TLS: set TRIAGE_SECURITY_PROTOCOL=SSL or SASL_SSL"
        )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"TRIAGE_{name.upper()}: no such file {path}")


# --- probing a connection ----------------------------------------------------------------


def check_connection(conf: dict[str, Any], timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
    """Connect once to the first bootstrap server and authenticate as ``conf`` says.

    Returns True when the broker accepted us, False when the outcome says nothing about
    security (the broker is down or slow), and raises ``SecurityError`` on a definite refusal.
    """
    failure, spoke_kafka = _attempt(conf, timeout_s)
    if _ambiguous(conf, failure, spoke_kafka):
        # Closed after the broker answered: an unknown user, or a broker going down. Only
        # the first happens twice in a row.
        failure, spoke_kafka = _attempt(conf, timeout_s)
    if failure is None:
        return True
    problem = _diagnose(conf, failure, spoke_kafka)
    if problem is not None:
        raise SecurityError(problem) from None
    return False


def _attempt(conf: dict[str, Any], timeout_s: float) -> tuple[Exception | None, bool]:
    """One connection with kafka-python's own machinery; (error or None, broker answered)."""
    net = NetworkSelector(**conf)
    manager = KafkaConnectionManager(net, **conf)
    node = manager.cluster.bootstrap_brokers()[0]
    conn = None

    async def connect() -> None:
        nonlocal conn
        conn = manager.get_connection(
            node.node_id,
            timeout_ms=int(timeout_s * 1000),
            pop_on_close=False,
            refresh_metadata_on_err=False,
        )
        await conn

    try:
        with _quiet_kafka_logs():
            net.run(connect)
        return None, True
    except Exception as exc:  # any failure is diagnosed by the caller
        return exc, conn is not None and conn.broker_version_data is not None
    finally:
        with _quiet_kafka_logs():
            manager.close()
            net.close()


def _ambiguous(conf: dict[str, Any], failure: Exception | None, spoke_kafka: bool) -> bool:
    sasl = str(conf.get("security_protocol", "")).startswith("SASL_")
    return sasl and spoke_kafka and type(failure) is KafkaConnectionError


def _diagnose(conf: dict[str, Any], failure: Exception, spoke_kafka: bool) -> str | None:
    """A one-line explanation of a failed probe, or None if it says nothing about security."""
    protocol = conf.get("security_protocol", "PLAINTEXT")
    where = conf["bootstrap_servers"][0]
    user = conf.get("sasl_plain_username")
    tls_error = _tls_cause(failure)
    if isinstance(failure, SaslAuthenticationFailedError) or _ambiguous(conf, failure, spoke_kafka):
        # A broker closes the connection instead of answering when the user is unknown.
        return (
            f"Kafka at {where} refused to authenticate user {user!r} with "
            f"{conf.get('sasl_mechanism')}: wrong user name or password"
        )
    if isinstance(failure, UnsupportedSaslMechanismError):
        return f"Kafka at {where}: {failure}; set TRIAGE_SASL_MECHANISM to one it offers"
    if isinstance(tls_error, ssl.SSLCertVerificationError) and "mismatch" in str(
        tls_error.verify_message
    ):
        return (
            f"the TLS certificate of Kafka at {where} is not valid for that host name "
            f"({tls_error.verify_message}): connect by a name the certificate lists (or, "
            "knowing the risk, set TRIAGE_SSL_CHECK_HOSTNAME=false)"
        )
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of Kafka at {where} is not trusted "
            f"({tls_error.verify_message}): set TRIAGE_SSL_CAFILE to the CA that signed it"
        )
    if isinstance(tls_error, ssl.SSLError):
        return (
            f"TLS handshake with Kafka at {where} failed ({tls_error.reason or tls_error}); "
            "does that listener speak TLS? check TRIAGE_SECURITY_PROTOCOL"
        )
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and not spoke_kafka and _speaks_tls(where):
        return (
            f"Kafka at {where} expects TLS but this client connects with {protocol}: set "
            "TRIAGE_SECURITY_PROTOCOL=SASL_SSL (or SSL) and the credentials it needs"
        )
    return None


def _tls_cause(exc: BaseException) -> BaseException | None:
    seen = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return None


def _speaks_tls(address: str) -> bool:
    """Whether a TLS handshake (no verification: we only ask what it speaks) succeeds."""
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host.strip("[]"), int(port)), _TLS_SNIFF_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=host.strip("[]")),
        ):
            return True
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _quiet_kafka_logs() -> Iterator[None]:
    # The probe's failures are reported once, by us; kafka-python would log each at ERROR.
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- authorization errors ----------------------------------------------------------------

_RESOURCE_KIND = {
    TopicAuthorizationFailedError: "topic(s)",
    GroupAuthorizationFailedError: "consumer group",
    TransactionalIdAuthorizationFailedError: "transactional id",
    ClusterAuthorizationFailedError: "cluster operation",
}


def is_security_error(exc: BaseException) -> bool:
    """An authentication or authorization refusal: retrying cannot help."""
    return isinstance(exc, SecurityError | SaslAuthenticationFailedError) or any(
        isinstance(exc, kind) for kind in _RESOURCE_KIND
    )


def describe(
    exc: BaseException, settings: ConnectionSettings | None = None, resource: str | None = None
) -> str:
    """One line for a Kafka error; a refused permission is named as a missing ACL.

    ``resource`` names what was refused when kafka-python's error does not (e.g. which
    transactional id).
    """
    if isinstance(exc, SecurityError):
        return str(exc)
    principal = _principal(settings)
    if isinstance(exc, SaslAuthenticationFailedError):
        return f"Kafka refused to authenticate {principal}: wrong user name or password"
    kind = next((k for t, k in _RESOURCE_KIND.items() if isinstance(exc, t)), None)
    if kind is None:
        return str(exc)
    what = " ".join(filter(None, [kind, resource or _detail(exc)]))
    return (
        f"{principal} is not authorized for {what}: a missing ACL; ask the Kafka administrator "
        "to grant it (local/acls.py lists what each role needs)"
    )


def _principal(settings: ConnectionSettings | None) -> str:
    if settings is None or not settings.sasl_username:
        return "this client"
    return f"principal User:{settings.sasl_username}"


def _detail(exc: BaseException) -> str:
    """The resource kafka-python's message names, without its "[Error 29] Name:" preamble."""
    text = re.sub(r"^\[Error -?\d+\]\s*", "", str(exc))
    return text.removeprefix(type(exc).__name__).strip(" :")
