"""HMAC signatures of model manifests: which models a classifier holding the key will load.

A manifest vouches for its artifact with the artifact's sha256; a signature vouches for the
manifest. It is HMAC-SHA256, keyed with ``TRIAGE_MODEL_SIGNING_KEY``, over the canonical JSON
(sorted keys, no whitespace, UTF-8) of the manifest's JSON object without its ``signature``
field, exactly as stored, so fields a newer triage adds are covered too. Whoever can write to
a models folder but does not hold the key can neither change a signed manifest nor make one for
their own file, so with the key set the only code ``joblib.load`` runs is code someone with the
key trained.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any

from pydantic import AfterValidator, SecretStr
from pydantic_settings import BaseSettings

from triage.core.settings import ENV_CONFIG

SCHEME = "hmac-sha256"
FIELD = "signature"


def _long_enough(key: SecretStr) -> SecretStr:
    if len(key.get_secret_value()) < 16:
        raise ValueError("a signing key needs at least 16 characters")
    return key


SigningKey = Annotated[SecretStr, AfterValidator(_long_enough)]


class SigningSettings(BaseSettings):
    """The model signing key alone, for `triage train` and any other code that saves models."""

    model_config = ENV_CONFIG

    model_signing_key: SigningKey | None = None


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes that are signed: the manifest object without its signature, canonically."""
    unsigned = {k: v for k, v in manifest.items() if k != FIELD}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(manifest: dict[str, Any], key: SecretStr) -> str:
    """The signature of ``manifest``: ``hmac-sha256:<hex digest>``."""
    digest = hmac.new(key.get_secret_value().encode(), canonical(manifest), hashlib.sha256)
    return f"{SCHEME}:{digest.hexdigest()}"


def verify(manifest: dict[str, Any], key: SecretStr) -> str | None:
    """None when ``manifest`` carries a valid signature by ``key``, else why it does not."""
    signature = manifest.get(FIELD)
    if not signature:
        return "the manifest is not signed"
    if not isinstance(signature, str) or not signature.startswith(SCHEME + ":"):
        return f"the manifest's signature is not {SCHEME}"
    if not hmac.compare_digest(signature, sign(manifest, key)):
        return "the manifest's signature does not match (changed, or signed with another key)"
    return None
