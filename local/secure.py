"""Secure mode of the local Kafka cluster: TLS material, SCRAM users and broker settings.

With ``secure=True`` every node of ``local/cluster.py`` gets one SASL_SSL listener for
clients (SCRAM over TLS), a controller listener that only holders of the broker certificate can
use (mutual TLS), and the KRaft ``StandardAuthorizer`` with ``admin`` and the brokers as the only
super users: any other principal can do exactly what ACLs allow. The certificates are made at
start with openssl by a throw-away CA whose private key is deleted once the broker certificate
is signed. SCRAM credentials are written into the metadata log when storage is formatted, as
salted hashes, so no password appears on a command line. Every password is random and lives in
one file per user, mode 0600, under ``state_dir/secrets/``; nothing here logs one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"
BROKER_CN = "triage-broker"  # also the brokers' principal on the controller listener
PROTOCOL = "SASL_SSL"

_SCRAM_ITERATIONS = 8192
_SCRAM_MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_CERT_DAYS = 30
_OPENSSL_TIMEOUT_S = 60
_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
# Certificates name a principal by their CN alone (e.g. User:triage-broker), not the full DN.
_CN_RULE = "RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT"


class SecureSetupError(Exception):
    """TLS material or credentials could not be made; the message says what to do."""


def tls_dir(state_dir: Path) -> Path:
    return state_dir / "tls"


def ca_file(state_dir: Path) -> Path:
    """The CA certificate clients must trust (``TRIAGE_SSL_CAFILE``)."""
    return tls_dir(state_dir) / "ca.crt"


def secrets_dir(state_dir: Path) -> Path:
    return state_dir / "secrets"


def password_file(state_dir: Path, user: str) -> Path:
    """Where ``user``'s password is kept (``TRIAGE_SASL_PASSWORD_FILE``)."""
    return secrets_dir(state_dir) / f"{user}.password"


def prepare(state_dir: Path, users: Iterable[str]) -> list[str]:
    """Make the CA, the broker keystore and a password for ``admin`` and every user.

    Returns the users, ``admin`` first. Anything left from an earlier cluster is replaced.
    """
    remove(state_dir)
    names = [ADMIN, *dict.fromkeys(u for u in users if u != ADMIN)]
    _private_dir(secrets_dir(state_dir))
    for name in names:
        _write_private(password_file(state_dir, name), secrets.token_urlsafe(24))
    _write_private(_keystore_password_file(state_dir), secrets.token_urlsafe(24))
    make_tls(tls_dir(state_dir), keystore_password_file=_keystore_password_file(state_dir))
    return names


def remove(state_dir: Path) -> None:
    shutil.rmtree(tls_dir(state_dir), ignore_errors=True)
    shutil.rmtree(secrets_dir(state_dir), ignore_errors=True)


def read_password(state_dir: Path, user: str) -> str:
    try:
        return password_file(state_dir, user).read_text().strip()
    except FileNotFoundError:
        raise SecureSetupError(
            f"no password for user {user!r} under {secrets_dir(state_dir)}; was the cluster "
            "started with --secure?"
        ) from None


def broker_settings(state_dir: Path, port: int, controller_port: int) -> dict[str, object]:
    """Properties that turn a plaintext node of kafka_local into a secure one."""
    host = "127.0.0.1"
    admin_login = (
        f'{_SCRAM_LOGIN} required username="{ADMIN}" password="{read_password(state_dir, ADMIN)}";'
    )
    keystore_password = _keystore_password_file(state_dir).read_text().strip()
    return {
        "listeners": f"{PROTOCOL}://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"{PROTOCOL}://{host}:{port}",
        "listener.security.protocol.map": f"{PROTOCOL}:{PROTOCOL},CONTROLLER:SSL",
        "inter.broker.listener.name": PROTOCOL,
        "sasl.enabled.mechanisms": ",".join(_SCRAM_MECHANISMS),
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        **{
            f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config": admin_login
            for m in _SCRAM_MECHANISMS
        },
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": _CN_RULE,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": tls_dir(state_dir) / "broker.p12",
        "ssl.keystore.password": keystore_password,
        "ssl.key.password": keystore_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": ca_file(state_dir),
        "authorizer.class.name": _AUTHORIZER,
        "super.users": f"User:{ADMIN};User:{BROKER_CN}",
        "allow.everyone.if.no.acl.found": "false",
    }


def format_args(state_dir: Path, users: Iterable[str]) -> list[str]:
    """``kafka-storage format`` arguments adding every user's SCRAM credentials."""
    args = []
    for user in users:
        password = read_password(state_dir, user)
        for mechanism in _SCRAM_MECHANISMS:
            args += ["--add-scram", _scram_credential(mechanism, user, password)]
    return args


def client_config(state_dir: Path, user: str = ADMIN) -> dict[str, Any]:
    """kafka-python keyword arguments to connect as ``user`` (for the cluster's own probes)."""
    return {
        "security_protocol": PROTOCOL,
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": user,
        "sasl_plain_password": read_password(state_dir, user),
        "ssl_cafile": str(ca_file(state_dir)),
    }


def client_env(state_dir: Path, user: str) -> dict[str, str]:
    """``TRIAGE_*`` variables that make any triage command connect as ``user``."""
    if not password_file(state_dir, user).exists():
        raise SecureSetupError(f"the secure cluster of {state_dir} has no user {user!r}")
    return {
        "TRIAGE_SECURITY_PROTOCOL": PROTOCOL,
        "TRIAGE_SASL_MECHANISM": MECHANISM,
        "TRIAGE_SASL_USERNAME": user,
        "TRIAGE_SASL_PASSWORD_FILE": str(password_file(state_dir, user)),
        "TRIAGE_SSL_CAFILE": str(ca_file(state_dir)),
    }


# --- TLS ---------------------------------------------------------------------------------


def make_tls(folder: Path, keystore_password_file: Path) -> None:
    """A CA (``ca.crt``) and a broker key and certificate signed by it (``broker.p12``).

    The broker certificate is valid for ``localhost`` and ``127.0.0.1``, for servers and for
    clients (the brokers use it towards the controllers). The CA key is deleted afterwards, so
    no further certificate can be signed by this CA.
    """
    if shutil.which("openssl") is None:
        raise SecureSetupError(
            "openssl is not on PATH but is needed to make the TLS certificates of a secure "
            "cluster: install it (e.g. 'apt-get install openssl') and retry"
        )
    _private_dir(folder)
    ca_key, broker_key = folder / "ca.key", folder / "broker.key"
    try:
        _make_ca(folder, ca_key)
        _make_broker_certificate(folder, ca_key, broker_key)
        _openssl(
            "pkcs12", "-export", "-in", folder / "broker.crt", "-inkey", broker_key,
            "-certfile", folder / "ca.crt", "-name", "broker", "-out", folder / "broker.p12",
            "-passout", f"file:{keystore_password_file}",
        )  # fmt: skip
    finally:
        for leftover in (ca_key, broker_key, folder / "broker.csr", folder / "broker.ext"):
            leftover.unlink(missing_ok=True)
    (folder / "ca.crt").chmod(0o644)
    folder.chmod(0o755)  # the CA certificate is public; the keystore itself stays 0600
    (folder / "broker.p12").chmod(0o600)


def _make_ca(folder: Path, ca_key: Path) -> None:
    _openssl(
        "req", "-x509", *_new_ec_key(ca_key), "-out", folder / "ca.crt",
        "-days", str(_CERT_DAYS), "-subj", "/CN=triage local CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _make_broker_certificate(folder: Path, ca_key: Path, broker_key: Path) -> None:
    _openssl(
        "req", *_new_ec_key(broker_key), "-out", folder / "broker.csr",
        "-subj", f"/CN={BROKER_CN}",
    )  # fmt: skip
    extensions = folder / "broker.ext"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", folder / "broker.csr", "-CA", folder / "ca.crt",
        "-CAkey", ca_key, "-set_serial", f"0x{secrets.token_hex(16)}",
        "-days", str(_CERT_DAYS), "-extfile", extensions, "-out", folder / "broker.crt",
    )  # fmt: skip


def _new_ec_key(path: Path) -> list[object]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", path]  # fmt: skip


def _openssl(*args: object) -> None:
    cmd = ["openssl", *(str(a) for a in args)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_OPENSSL_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SecureSetupError(f"openssl {args[0]} took over {_OPENSSL_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SecureSetupError(f"openssl {args[0]} failed (exit {proc.returncode}): {detail[0]}")


# --- SCRAM and files ---------------------------------------------------------------------


def _scram_credential(mechanism: str, user: str, password: str) -> str:
    """A ``--add-scram`` value carrying a salted hash, never the password itself."""
    salt = secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac(
        _SCRAM_MECHANISMS[mechanism], password.encode(), salt, _SCRAM_ITERATIONS
    )
    return (
        f'{mechanism}=[name={user},salt="{_b64(salt)}",'
        f'saltedpassword="{_b64(salted)}",iterations={_SCRAM_ITERATIONS}]'
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _keystore_password_file(state_dir: Path) -> Path:
    return secrets_dir(state_dir) / "broker-keystore.pass"


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
