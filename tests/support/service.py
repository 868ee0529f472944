"""A complete service configuration for HTTP tests: RSA IdP key, session key, SQLite profiles."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from identity_service.config import load_settings
from identity_service.settings import Settings
from tests.support.product import product_cookie

ISSUER = "https://idp.pete.example/"
AUDIENCE = "identity-service"
ORIGIN = "https://app.pete.example"
# The shipped front-end files, read from the source tree (what the package serves).
STATIC_DIR = Path(__file__).resolve().parents[2] / "identity_service" / "frontend" / "static"
STATIC_JS = STATIC_DIR / "messenger.js"

MESSENGER_SECRET = "m" * 40 + "-messenger-secret-for-tests"
SESSION_SECRET = "s" * 40 + "-product-session-key"
MAX_BODY_BYTES = 1024  # the service's body cap in this configuration

CONFIG = """
[service]
cors_origins = ["{origin}"]
max_body_bytes = {max_body_bytes}
proxy_hops = {proxy_hops}

[workspaces.main]
app_id = "abc123"
region = "eu"
secret_file = "messenger.secret"
token_lifetime = 3600
on_invalid = "{on_invalid}"

[[workspaces.main.attributes]]
name = "email"
type = "string"
claim = "email"
profile = "email"

[[workspaces.main.attributes]]
name = "plan"
type = "string"
claim = "https://pete.example/plan"
profile = "plan"

[[workspaces.main.attributes]]
name = "teammates"
type = "integer"
profile = "teammates"

[[workspaces.main.attributes]]
name = "last_order_at"
type = "date"
profile = "last_order_at"

[[workspaces.main.auth]]
method = "bearer"
issuer = "{issuer}"
audience = "{audience}"
algorithms = ["RS256"]
key_file = "idp-public.pem"

[[workspaces.main.auth]]
method = "session"
secret_file = "session.secret"
allowed_origins = ["{origin}"]

[workspaces.main.profile]
url = "sqlite:///profiles.db"
query = "SELECT id, email, plan, teammates, last_order_at FROM users WHERE id = :user_id"
id_column = "id"
on_unavailable = "{on_unavailable}"
"""


@dataclass
class ServiceFixture:
    """Everything a test needs to call the service as a product would."""

    root: Path
    settings: Settings
    private_key: rsa.RSAPrivateKey

    @property
    def messenger_secret(self) -> str:
        return MESSENGER_SECRET

    def idp_token(self, claims: Mapping[str, Any] | None = None, **overrides: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-42",
            "iat": now,
            "exp": now + 300,
            "email": "ada@pete.example",
            "https://pete.example/plan": "pro",
        }
        payload.update(claims or {})
        payload.update(overrides)
        return jwt.encode(payload, self.private_key, algorithm="RS256")

    def bearer_headers(self, **overrides: Any) -> dict[str, str]:
        """`Authorization: Bearer` with a fresh `idp_token(**overrides)`."""
        return {"Authorization": f"Bearer {self.idp_token(**overrides)}"}

    def session_cookie(self, data: Mapping[str, Any], key: str = SESSION_SECRET) -> str:
        """A cookie made by Flask's own session machinery, as the product would set it."""
        return product_cookie(data, key)

    def add_profile(self, user_id: str, **row: Any) -> None:
        with sqlite3.connect(self.root / "profiles.db") as db:
            db.execute(
                "INSERT INTO users (id, email, plan, teammates, last_order_at) VALUES (?,?,?,?,?)",
                (
                    user_id,
                    row.get("email"),
                    row.get("plan"),
                    row.get("teammates"),
                    row.get("last_order_at"),
                ),
            )


def make_service(
    root: Path,
    on_invalid: str = "drop",
    on_unavailable: str = "omit",
    extra: str = "",
    proxy_hops: int = 0,
) -> ServiceFixture:
    """Write keys, secrets, a profile database and the configuration under `root`."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (root / "idp-public.pem").write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for name, value in (("messenger.secret", MESSENGER_SECRET), ("session.secret", SESSION_SECRET)):
        path = root / name
        path.write_text(value + "\n")
        path.chmod(0o600)
    with sqlite3.connect(root / "profiles.db") as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, email TEXT, plan TEXT, "
            "teammates INTEGER, last_order_at INTEGER)"
        )
    text = CONFIG.format(
        max_body_bytes=MAX_BODY_BYTES,
        origin=ORIGIN,
        issuer=ISSUER,
        audience=AUDIENCE,
        on_invalid=on_invalid,
        on_unavailable=on_unavailable,
        proxy_hops=proxy_hops,
    )
    config = root / "service.toml"
    config.write_text(text + extra)
    settings = load_settings(config, environ={"IDENTITY_SERVICE_INSTANCE": str(root / "instance")})
    return ServiceFixture(root=root, settings=settings, private_key=private_key)


def make_service_with_profile(root: Path) -> ServiceFixture:
    """`make_service`, plus a profile row for user-42 (the `sub` of `idp_token`)."""
    service = make_service(root)
    service.add_profile("user-42", email="ada@pete.example", plan="enterprise", teammates=7)
    return service


def padded_body(size: int) -> bytes:
    """A JSON body asking for the default workspace, padded with spaces to `size` bytes."""
    start = b'{"workspace": "main"'
    return start + b" " * (size - len(start) - 1) + b"}"
