"""A bearer workspace whose `plan` comes from a profile table: the fixture of the tests that
serve a real profile database (ownership of rows, faults of the database)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from tests.support.keys import rsa_key

ISSUER = "https://idp.pete.example/"
AUDIENCE = "identity-service"


def bearer_profile_workspace(
    key: str,
    url: str,
    table: str,
    *,
    on_unavailable: str = "fail",
    claim: str | None = None,
    profile_options: str = "",
) -> str:
    """The TOML of workspace `key`: bearer tokens from `idp-public.pem` (see `write_idp_key`),
    its `plan` attribute from `table` at `url` (and from `claim`, when given)."""
    claim_line = f'claim = "{claim}"\n' if claim else ""
    query = f"SELECT id, plan FROM {table} WHERE id = :user_id"  # noqa: S608 - the test's table
    return f"""
[workspaces.{key}]
app_id = "abc123"
region = "eu"
secret_file = "messenger.secret"

[[workspaces.{key}.attributes]]
name = "plan"
type = "string"
{claim_line}profile = "plan"

[[workspaces.{key}.auth]]
method = "bearer"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
algorithms = ["RS256"]
key_file = "idp-public.pem"

[workspaces.{key}.profile]
url = "{url}"
query = "{query}"
id_column = "id"
{profile_options}on_unavailable = "{on_unavailable}"
"""


def write_idp_key(root: Path) -> None:
    """The IdP's public key where `bearer_profile_workspace` expects it."""
    (root / "idp-public.pem").write_bytes(
        rsa_key()
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def idp_bearer(sub: Any) -> str:
    """An IdP access token for `sub`, valid for five minutes, that those workspaces accept."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300}
    return jwt.encode(claims, rsa_key().private, algorithm="RS256")
