"""The token endpoint against a real JWKS server on 127.0.0.1, through the HTTP layer."""

from __future__ import annotations

from pathlib import Path

import jwt
from flask.testing import FlaskClient

from identity_service import create_app
from identity_service.config import load_settings
from tests.support.jwks_server import FakeClock, running
from tests.support.keys import NOW, make_claims, rsa_key
from tests.support.service import MESSENGER_SECRET

TOKEN_URL = "/v1/messenger/token"


def jwks_config(root: Path, jwks_url: str) -> Path:
    claims = make_claims()
    (root / "messenger.secret").write_text(MESSENGER_SECRET)
    (root / "service.toml").write_text(
        f"""
[workspaces.main]
app_id = "abc123"
region = "au"
secret_file = "messenger.secret"

[[workspaces.main.attributes]]
name = "plan"
type = "string"
claim = "app_metadata.plan"

[[workspaces.main.auth]]
method = "bearer"
issuer = "{claims["iss"]}"
audience = "{claims["aud"]}"
algorithms = ["RS256"]
jwks_url = "{jwks_url}"
jwks_refetch_interval = 1
"""
    )
    return root / "service.toml"


def post(client: FlaskClient, token: str) -> tuple[int, dict[str, object]]:
    response = client.post(TOKEN_URL, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.get_json(force=True)


def test_jwks_flow_and_key_rotation_through_http(tmp_path: Path) -> None:
    old, new = rsa_key("old-key"), rsa_key("new-key")
    with running(old) as idp:
        settings = load_settings(jwks_config(tmp_path, idp.url), environ={})
        cache_clock = FakeClock()
        client = create_app(settings, clock=lambda: NOW, monotonic=cache_clock).test_client()

        status, body = post(client, old.sign(app_metadata={"plan": "pro"}))
        assert status == 200, body
        claims = jwt.decode(
            str(body["token"]),
            MESSENGER_SECRET,
            algorithms=["HS256"],
            options={"verify_exp": False},
        )
        assert claims["iat"] == int(NOW)
        assert claims["plan"] == "pro"
        assert body["api_base"] == "https://api-iam.au.intercom.io"
        fetches = idp.requests

        # The IdP rotates: a token from the new key is accepted after one refetch.
        idp.publish(old, new)
        cache_clock.advance(2)  # past jwks_refetch_interval
        status, body = post(client, new.sign())
        assert status == 200, body
        assert idp.requests == fetches + 1
        assert client.get("/readyz").status_code == 200

        # The IdP goes down: cached keys keep working, with no further fetch.
        idp.mode = "error"
        status, _ = post(client, old.sign())
        assert status == 200
        status, problem = post(client, rsa_key("stranger").sign())
        assert status == 401 and problem["reason"] == "unknown_key"
