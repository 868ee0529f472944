"""The demo's development identity provider. DEVELOPMENT ONLY: it exists inside the demo alone.

A front-end or mobile engineer can try bearer authentication against `make
run` without an operator's setup: the demo signs short-lived ES256 access
tokens for its own demo users with a key generated in the demo's instance
folder (mode 0600, never committed), publishes the public half as a JWKS on
the demo's own port, and points the default workspace's bearer method at that
JWKS. The service verifies these tokens with its ordinary bearer
authenticator, fetching the JWKS over HTTP as it fetches a real IdP's.

Nothing here is reachable from `create_app`: the routes are on Pete's
blueprint, and the bearer method is added to the settings by `identity-service
demo` only (`with_demo_idp`). The bundled configuration itself has no bearer
method, so `identity-service serve` never trusts these tokens.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from identity_service.errors import SecretUnavailableError
from identity_service.secrets import ensure_dev_secret
from identity_service.settings import DEMO_IDP_ISSUER, BearerAuthSettings, Settings

# Not a URL anyone could host: these tokens are meaningful to this demo only.
ISSUER = DEMO_IDP_ISSUER
AUDIENCE = "identity-service-demo"
ALGORITHM = "ES256"
KEY_FILE = "demo-idp-key.pem"
JWKS_PATH = "/demo/idp/jwks.json"
TOKEN_PATH = "/demo/idp/token"
TOKEN_LIFETIME = 600  # seconds: an access token, fetched again for each Messenger token
REFUSED = "wrong email or password"
WARNING = (
    "DEVELOPMENT ONLY: a token from the demo's own identity provider "
    f"({ISSUER}); only `identity-service demo` accepts it"
)


def _new_private_key() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def signing_key(instance: Path) -> ec.EllipticCurvePrivateKey:
    """The demo IdP's private key, generated in `instance` (mode 0600) on first use."""
    path = instance / KEY_FILE
    try:
        ensure_dev_secret(path, _new_private_key)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SecretUnavailableError(
            f"the demo identity provider's key {path}: {exc.strerror}; make the instance "
            "folder writable or set IDENTITY_SERVICE_INSTANCE"
        ) from None
    except (ValueError, TypeError):  # not PEM, or encrypted: cryptography's texts, no key bytes
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SecretUnavailableError(
            f"{path} is not an unencrypted EC private key: delete it, the demo makes a new one"
        )
    return key


def key_id(key: ec.EllipticCurvePrivateKey) -> str:
    """A stable `kid`: the start of the SHA-256 of the public key."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


def jwks(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The JWK Set the service fetches: the public key only."""
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=key_id(key), use="sig", alg=ALGORITHM)
    return {"keys": [jwk]}


def issue(key: ec.EllipticCurvePrivateKey, user_id: str, email: str, name: str, now: int) -> str:
    """An access token for one demo user, as an IdP would issue it for the service."""
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "email": email,
        "name": name,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


def bearer_settings(jwks_url: str) -> BearerAuthSettings:
    """The bearer method that trusts the demo IdP (every option spelled out)."""
    return BearerAuthSettings(
        issuer=ISSUER,
        audience=(AUDIENCE,),
        algorithms=(ALGORITHM,),
        jwks_url=jwks_url,
        leeway=30,
        user_id_claim="sub",
    )


def with_demo_idp(settings: Settings, service_url: str) -> tuple[Settings, bool]:
    """`settings` whose default workspace also accepts the demo IdP's tokens, and whether it does.

    Added only when the workspace has no bearer method of its own (a `--config`
    with a real IdP keeps exactly that). Bearer comes first, so a failing
    bearer token is refused even when a valid session cookie came with it.
    """
    workspace = settings.workspace(None)
    if any(isinstance(method, BearerAuthSettings) for method in workspace.auth):
        return settings, False
    method = bearer_settings(service_url.rstrip("/") + JWKS_PATH)
    changed = dataclasses.replace(workspace, auth=(method, *workspace.auth))
    workspaces = {**settings.workspaces, workspace.key: changed}
    return dataclasses.replace(settings, workspaces=workspaces), True
