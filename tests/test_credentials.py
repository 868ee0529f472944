"""Which credential decides a token request, and how one the workspace cannot use is refused.

frontend.md: an `Authorization` header that is present decides, whatever
else came with it; a credential the workspace does not accept is a 401 that
says so, never "no credentials" and never a fall-through to the cookie.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from identity_service import create_app
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.http.state import service_state
from tests.support.served import serving
from tests.support.service import ORIGIN, ServiceFixture, make_service

TOKEN_URL = "/v1/messenger/token"
USER = {"user_id": "user-42"}

# Beside "main" (bearer, then session): a session-only workspace like the demo's,
# a bearer-only one, and one that lists the session method first.
WORKSPACES = """
[workspaces.cookies]
app_id = "abc123"
secret_file = "messenger.secret"

[[workspaces.cookies.auth]]
method = "session"
secret_file = "session.secret"
allowed_origins = ["{origin}"]

[workspaces.bearers]
app_id = "abc123"
secret_file = "messenger.secret"

[[workspaces.bearers.auth]]
method = "bearer"
issuer = "https://idp.pete.example/"
audience = "identity-service"
algorithms = ["RS256"]
key_file = "idp-public.pem"

[workspaces.session_first]
app_id = "abc123"
secret_file = "messenger.secret"

[[workspaces.session_first.auth]]
method = "session"
secret_file = "session.secret"
allowed_origins = ["{origin}"]

[[workspaces.session_first.auth]]
method = "bearer"
issuer = "https://idp.pete.example/"
audience = "identity-service"
algorithms = ["RS256"]
key_file = "idp-public.pem"
"""


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    svc = make_service(tmp_path)
    config = tmp_path / "service.toml"
    text = 'default_workspace = "main"\n' + config.read_text() + WORKSPACES.format(origin=ORIGIN)
    config.write_text(text)
    svc.settings = load_settings(config, {INSTANCE_ENV: str(tmp_path / "instance")})
    return svc


@pytest.fixture
def client(service: ServiceFixture) -> FlaskClient:
    return create_app(service.settings).test_client(use_cookies=False)


def post(
    client: FlaskClient,
    workspace: str,
    authorization: str | None = None,
    cookie: str | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Origin": ORIGIN}
    if authorization is not None:
        headers["Authorization"] = authorization
    if cookie is not None:
        headers["Cookie"] = f"session={cookie}"
    response = client.post(TOKEN_URL, json={"workspace": workspace}, headers=headers)
    body = response.get_json()
    if response.status_code != 200:
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    return response.status_code, body


def test_control_each_workspace_mints_with_the_credential_it_accepts(
    client: FlaskClient, service: ServiceFixture
) -> None:
    cookie = service.session_cookie(USER)
    bearer = f"Bearer {service.idp_token()}"
    assert post(client, "main", bearer)[0] == 200
    assert post(client, "main", cookie=cookie)[0] == 200
    assert post(client, "cookies", cookie=cookie)[0] == 200
    assert post(client, "bearers", bearer)[0] == 200
    assert post(client, "session_first", bearer)[0] == 200
    assert post(client, "session_first", cookie=cookie)[0] == 200


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer abc", "Bearer", "Bearer ", "bearer x.y.z", "VALID"],
)
def test_a_bearer_sent_to_a_workspace_without_bearer_is_refused_as_such(
    client: FlaskClient, service: ServiceFixture, authorization: str
) -> None:
    if authorization == "VALID":
        authorization = f"Bearer {service.idp_token()}"  # genuine, but not for this workspace
    for cookie in (None, service.session_cookie(USER)):  # a valid cookie does not rescue it
        status, body = post(client, "cookies", authorization, cookie)
        assert status == 401
        assert body["reason"] == "method_not_accepted"
        assert body["detail"] == (
            "this workspace does not accept bearer tokens: send the session cookie, "
            "without an Authorization header"
        )


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Token abc.def.ghi", "Digest username=admin", "Bearer=x.y.z", "x.y.z"],
)
@pytest.mark.parametrize("workspace", ["main", "cookies", "bearers", "session_first"])
def test_another_authorization_scheme_is_refused_even_with_a_valid_cookie(
    client: FlaskClient, service: ServiceFixture, authorization: str, workspace: str
) -> None:
    status, body = post(client, workspace, authorization, service.session_cookie(USER))
    assert status == 401
    assert body["reason"] == "unsupported_scheme"
    assert authorization not in body["detail"]  # the header may hold a credential


@pytest.mark.parametrize("workspace", ["main", "session_first"])
@pytest.mark.parametrize("authorization", ["Bearer garbage", "Bearer", "Bearer ", "FORGED"])
def test_a_failing_bearer_decides_whatever_the_configured_order(
    client: FlaskClient, service: ServiceFixture, workspace: str, authorization: str
) -> None:
    if authorization == "FORGED":
        authorization = f"Bearer {service.idp_token()[:-4]}AAAA"
    status, body = post(client, workspace, authorization, service.session_cookie(USER))
    assert status == 401
    assert body["reason"] in {"malformed", "bad_signature"}


@pytest.mark.parametrize("workspace", ["main", "session_first"])
def test_a_valid_bearer_decides_over_a_broken_cookie(
    client: FlaskClient, service: ServiceFixture, workspace: str
) -> None:
    status, body = post(client, workspace, f"Bearer {service.idp_token()}", "not.a.cookie")
    assert status == 200, body


@pytest.mark.parametrize("authorization", ["", "   "])
def test_an_empty_authorization_header_carries_no_credential(
    client: FlaskClient, service: ServiceFixture, authorization: str
) -> None:
    assert post(client, "cookies", authorization, service.session_cookie(USER))[0] == 200
    status, body = post(client, "bearers", authorization)
    assert (status, body["reason"]) == (401, "missing_credentials")


def test_the_session_cookie_sent_to_a_workspace_without_session_is_refused_as_such(
    client: FlaskClient, service: ServiceFixture
) -> None:
    status, body = post(client, "bearers", cookie=service.session_cookie(USER))
    assert status == 401
    assert body["reason"] == "method_not_accepted"
    assert body["detail"] == (
        "this workspace does not accept the session cookie sent: send a bearer token"
    )


@pytest.mark.parametrize(
    ("workspace", "detail"),
    [
        ("main", "no credentials: send a bearer token or the session cookie"),
        ("cookies", "no credentials: send the session cookie"),
        ("bearers", "no credentials: send a bearer token"),
    ],
)
def test_no_credentials_names_what_this_workspace_accepts(
    client: FlaskClient, workspace: str, detail: str
) -> None:
    status, body = post(client, workspace)
    assert (status, body["reason"], body["detail"]) == (401, "missing_credentials", detail)


def test_the_failure_metric_names_the_credential_that_was_sent(
    service: ServiceFixture,
) -> None:
    app = create_app(service.settings)
    client = app.test_client(use_cookies=False)
    post(client, "cookies", "Bearer abc", service.session_cookie(USER))
    post(client, "main", "Basic dXNlcjpwYXNz", service.session_cookie(USER))
    registry = service_state(app).runtime.metrics.registry
    assert registry is not REGISTRY

    def failures(workspace: str, method: str, reason: str) -> float | None:
        return registry.get_sample_value(
            "identity_auth_failures_total",
            {"workspace": workspace, "platform": "web", "method": method, "reason": reason},
        )

    assert failures("cookies", "bearer", "method_not_accepted") == 1
    assert failures("main", "other", "unsupported_scheme") == 1


def test_under_serve_a_bearer_beside_a_valid_cookie_is_refused_in_a_session_only_workspace(
    service: ServiceFixture,
) -> None:
    # The demo's situation, against the real server (gunicorn, the lean token route).
    cookie = service.session_cookie(USER)
    with serving(service.root / "service.toml", service.root, workers=1, threads=2) as server:
        answers = {
            sent: served_post(server.port, "cookies", sent, cookie)
            for sent in ("Bearer garbage", "Basic dXNlcjpwYXNz", None)
        }
    assert answers["Bearer garbage"] == (401, "method_not_accepted")
    assert answers["Basic dXNlcjpwYXNz"] == (401, "unsupported_scheme")
    assert answers[None] == (200, None)


def served_post(
    port: int, workspace: str, authorization: str | None, cookie: str
) -> tuple[int, str | None]:
    headers = {"Origin": ORIGIN, "Cookie": f"session={cookie}", "Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", TOKEN_URL, json.dumps({"workspace": workspace}), headers)
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    return response.status, body.get("reason")
