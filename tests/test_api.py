"""The token endpoint end to end through the real HTTP layer (Flask test client)."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt as jose_jwt
from joserfc.jwk import OctKey

from identity_service import create_app
from identity_service.http.health import start_draining
from identity_service.observability.logs import JsonFormatter
from tests.support.service import (
    MESSENGER_SECRET,
    ORIGIN,
    SESSION_SECRET,
    ServiceFixture,
    make_service,
)

TOKEN_URL = "/v1/messenger/token"


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    svc = make_service(tmp_path)
    svc.add_profile("user-42", email="ada@pete.example", plan="enterprise", teammates=7,
                    last_order_at=1_700_000_000)  # fmt: skip
    return svc


class LogLines:
    """The service's log lines so far, rendered as JSON exactly as in production."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.formatter = JsonFormatter()

    def __iter__(self) -> Iterator[str]:
        return iter([self.formatter.format(r) for r in self.caplog.records])


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> LogLines:
    caplog.set_level(logging.DEBUG)
    return LogLines(caplog)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    return dict(body)


def assert_no_secrets(text: str, *extra: str) -> None:
    for secret in (MESSENGER_SECRET, SESSION_SECRET, *extra):
        assert secret not in text


# -- the happy paths -------------------------------------------------------------


def test_bearer_flow_mints_a_token_that_verifies_independently(
    client: FlaskClient, service: ServiceFixture, log_lines: LogLines
) -> None:
    idp_token = service.idp_token()
    response = client.post(TOKEN_URL, headers=bearer(idp_token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["app_id"] == "abc123"
    assert body["api_base"] == "https://api-iam.eu.intercom.io"
    assert body["user_id"] == "user-42"
    assert sorted(body["attributes"]) == ["email", "last_order_at", "plan", "teammates"]

    claims = jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"])
    # The profile row is the database of record: it wins over the IdP's plan claim.
    assert claims["plan"] == "enterprise"
    assert claims["teammates"] == 7
    assert claims["last_order_at"] == 1_700_000_000
    assert claims["user_id"] == "user-42"
    assert claims["exp"] == body["expires_at"] == claims["iat"] + 3600

    independent = jose_jwt.decode(body["token"], OctKey.import_key(MESSENGER_SECRET))
    assert independent.header == {"alg": "HS256", "typ": "JWT"}
    assert independent.claims == claims

    for line in log_lines:
        assert_no_secrets(line, idp_token, body["token"])
    audits = [json.loads(x) for x in log_lines if '"event":"mint"' in x]
    assert len(audits) == 1
    event = audits[0]
    assert event["user_id"] == "user-42" and event["method"] == "bearer"
    assert event["workspace"] == "main" and event["jti"] == claims["jti"]
    assert event["exp"] == claims["exp"]
    assert sorted(event["attributes"]) == ["email", "last_order_at", "plan", "teammates"]
    assert "enterprise" not in json.dumps(event)  # names, never values
    access = [json.loads(x) for x in log_lines if '"logger":"identity_service.access"' in x]
    assert [(a["path"], a["status"], a["workspace"], a["user_id"]) for a in access] == [
        (TOKEN_URL, 200, "main", "user-42")
    ]


def test_session_cookie_flow_from_an_allowed_origin(
    client: FlaskClient, service: ServiceFixture, log_lines: LogLines
) -> None:
    cookie = service.session_cookie({"user_id": "user-42", "_fresh": True})
    client.set_cookie("session", cookie)
    response = client.post(TOKEN_URL, json={"workspace": "main"}, headers={"Origin": ORIGIN})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    claims = jwt.decode(response.get_json()["token"], MESSENGER_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == "user-42"
    assert claims["email"] == "ada@pete.example"
    for line in log_lines:
        assert_no_secrets(line, cookie, response.get_json()["token"])


def test_user_without_profile_row_gets_identity_facts_only(
    client: FlaskClient, service: ServiceFixture
) -> None:
    response = client.post(TOKEN_URL, headers=bearer(service.idp_token(sub="nobody")))
    claims = jwt.decode(response.get_json()["token"], MESSENGER_SECRET, algorithms=["HS256"])
    assert claims["plan"] == "pro"  # from the IdP claim
    assert "teammates" not in claims


def test_invalid_profile_value_is_dropped_with_a_warning(
    client: FlaskClient, service: ServiceFixture
) -> None:
    service.add_profile("user-7", plan="x" * 256, teammates=3)
    response = client.post(TOKEN_URL, headers=bearer(service.idp_token(sub="user-7")))
    body = response.get_json()
    assert "plan" not in body["attributes"]
    assert any("plan" in w and "255" in w for w in body["warnings"])
    metrics = client.get("/metrics").get_data(as_text=True)
    assert (
        'identity_attributes_dropped_total{attribute="plan",reason="length",workspace="main"} 1.0'
        in metrics
    )
    assert "x" * 256 not in response.get_data(as_text=True)


# -- every error is problem+json ----------------------------------------------------


def test_401_without_credentials_names_the_challenge(client: FlaskClient) -> None:
    response = client.post(TOKEN_URL)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_failing_bearer_never_falls_through_to_the_cookie(
    client: FlaskClient, service: ServiceFixture
) -> None:
    client.set_cookie("session", service.session_cookie({"user_id": "user-42"}))
    forged = service.idp_token()[:-4] + "AAAA"
    response = client.post(TOKEN_URL, headers={**bearer(forged), "Origin": ORIGIN})
    body = assert_problem(response, 401)
    assert forged not in json.dumps(body)


def test_403_cookie_from_another_origin(client: FlaskClient, service: ServiceFixture) -> None:
    client.set_cookie("session", service.session_cookie({"user_id": "user-42"}))
    response = client.post(TOKEN_URL, headers={"Origin": "https://evil.example"})
    assert assert_problem(response, 403)["reason"] == "origin"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_404_unknown_workspace_and_route(client: FlaskClient, service: ServiceFixture) -> None:
    response = client.post(
        TOKEN_URL, json={"workspace": "nope"}, headers=bearer(service.idp_token())
    )
    assert_problem(response, 404)
    assert_problem(client.get("/v1/nothing-here"), 404)


@pytest.mark.parametrize(
    "framing",
    [
        {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
        {"wsgi.input_terminated": True},  # a server that de-chunked and dropped the header
    ],
)
def test_a_body_without_content_length_is_still_read(
    app: Flask, service: ServiceFixture, framing: dict[str, object]
) -> None:
    """The no-body shortcut must not skip a body the server vouches for."""
    body = b'{"workspace": "nope"}'
    environ: dict[str, object] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": TOKEN_URL,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {service.idp_token()}",
        **framing,
    }
    statuses: list[str] = []
    chunks = app.wsgi_app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["404 NOT FOUND"], b"".join(chunks)


@pytest.mark.parametrize("sub", ["a\ud800", "\udfff-user"])
def test_a_user_id_that_is_not_unicode_text_is_refused_as_a_credential(
    client: FlaskClient, service: ServiceFixture, sub: str
) -> None:
    """A lone surrogate (JSON's "\\ud800") can be neither looked up nor signed: 401, not 500."""
    response = client.post(TOKEN_URL, headers=bearer(service.idp_token(sub=sub)))
    problem = assert_problem(response, 401)
    assert problem["reason"] == "invalid_claim"


def test_a_non_ascii_user_id_is_fine(client: FlaskClient, service: ServiceFixture) -> None:
    response = client.post(TOKEN_URL, headers=bearer(service.idp_token(sub="usér-ü")))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["user_id"] == "usér-ü"


def test_content_length_zero_asks_for_the_default_workspace(
    client: FlaskClient, service: ServiceFixture
) -> None:
    response = client.post(
        TOKEN_URL, headers={**bearer(service.idp_token()), "Content-Length": "0"}
    )
    assert response.status_code == 200


def test_405_tokens_never_travel_by_get(client: FlaskClient) -> None:
    response = client.get(TOKEN_URL)
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_413_body_cap(client: FlaskClient, service: ServiceFixture) -> None:
    big = json.dumps({"workspace": "main", "pad": "x" * 5000})
    response = client.post(
        TOKEN_URL, data=big, content_type="application/json", headers=bearer(service.idp_token())
    )
    assert_problem(response, 413)


def test_415_wrong_content_type(client: FlaskClient, service: ServiceFixture) -> None:
    response = client.post(
        TOKEN_URL,
        data="workspace=main",
        content_type="text/plain",
        headers=bearer(service.idp_token()),
    )
    assert_problem(response, 415)


def test_400_malformed_json(client: FlaskClient, service: ServiceFixture) -> None:
    response = client.post(
        TOKEN_URL,
        data="{not json",
        content_type="application/json",
        headers=bearer(service.idp_token()),
    )
    # Our own fixed text: the parser's message (which quotes the body) stays in the server.
    assert assert_problem(response, 400)["detail"] == "the body is not valid JSON"


def test_400_json_nested_deeper_than_the_parser_goes(
    client: FlaskClient, service: ServiceFixture
) -> None:
    response = client.post(
        TOKEN_URL,
        data="[" * 1000,
        content_type="application/json",
        headers=bearer(service.idp_token()),
    )
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "body",
    [{"workspace": "main", "user_id": "admin"}, {"workspace": 7}, ["main"], {"workspace": "a b"}],
)
def test_422_body_that_does_not_match_the_schema(
    client: FlaskClient, service: ServiceFixture, body: Any
) -> None:
    response = client.post(TOKEN_URL, json=body, headers=bearer(service.idp_token()))
    problem = assert_problem(response, 422)
    assert problem["errors"]


def test_422_reject_policy_lists_every_invalid_attribute(tmp_path: Path) -> None:
    svc = make_service(tmp_path, on_invalid="reject")
    svc.add_profile("user-42", plan="x" * 300, teammates="many", last_order_at=1_700_000_000_000)
    client = create_app(svc.settings).test_client()
    response = client.post(TOKEN_URL, headers=bearer(svc.idp_token()))
    problem = assert_problem(response, 422)
    assert sorted(e["name"] for e in problem["errors"]) == ["last_order_at", "plan", "teammates"]
    assert "milliseconds" in problem["detail"]
    assert "x" * 300 not in response.get_data(as_text=True)


def _break_profile_db(svc: ServiceFixture) -> None:
    (svc.root / "profiles.db").unlink()
    (svc.root / "profiles.db").mkdir()  # a directory: SQLite cannot open it


def test_503_profile_database_down_with_fail_policy(tmp_path: Path) -> None:
    svc = make_service(tmp_path, on_unavailable="fail")
    _break_profile_db(svc)
    client = create_app(svc.settings).test_client()
    problem = assert_problem(client.post(TOKEN_URL, headers=bearer(svc.idp_token())), 503)
    assert "profiles.db" not in problem["detail"] or "password" not in problem["detail"]
    assert_problem(client.get("/readyz"), 503)


def test_profile_database_down_with_omit_policy_still_mints(tmp_path: Path) -> None:
    svc = make_service(tmp_path, on_unavailable="omit")
    _break_profile_db(svc)
    app = create_app(svc.settings)
    client = app.test_client()
    response = client.post(TOKEN_URL, headers=bearer(svc.idp_token()))
    assert response.status_code == 200
    body = response.get_json()
    assert body["warnings"] and "profile" in body["warnings"][0]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'identity_profile_unavailable_total{workspace="main"} 1.0' in metrics


def test_a_user_without_a_profile_row_is_warned_and_counted(
    client: FlaskClient, service: ServiceFixture
) -> None:
    response = client.post(TOKEN_URL, headers=bearer(service.idp_token(sub="nobody-7")))
    assert response.status_code == 200
    assert response.get_json()["warnings"] == [
        "no profile row for this user: attributes come from the identity's claims alone"
    ]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'identity_profile_no_row_total{workspace="main"} 1.0' in metrics


def test_a_row_that_is_not_the_users_is_left_out_warned_and_counted(tmp_path: Path) -> None:
    # A case-insensitive id column: the database finds user-42's row for "USER-42".
    with sqlite3.connect(tmp_path / "profiles.db") as db:
        db.execute(
            "CREATE TABLE users (id TEXT PRIMARY KEY COLLATE NOCASE, email TEXT, plan TEXT, "
            "teammates INTEGER, last_order_at INTEGER)"
        )
    db.close()
    svc = make_service(tmp_path)
    svc.add_profile("user-42", email="ada@pete.example", plan="enterprise", teammates=7)
    client = create_app(svc.settings).test_client()
    response = client.post(TOKEN_URL, headers=bearer(svc.idp_token(sub="USER-42")))
    assert response.status_code == 200
    body = response.get_json()
    assert body["warnings"] == ["profile row ignored: its id is not this user's id"]
    claims = jwt.decode(body["token"], svc.messenger_secret, algorithms=["HS256"])
    assert claims["plan"] == "pro"  # the claim, not user-42's "enterprise"
    assert "teammates" not in claims
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'identity_profile_mismatch_total{workspace="main"} 1.0' in metrics


def test_500_unexpected_errors_reveal_nothing(
    service: ServiceFixture, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(service.settings)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError(f"leaked {MESSENGER_SECRET}")

    response = app.test_client().get("/boom")
    problem = assert_problem(response, 500)
    # Operators still get the type and the stack; the autouse leak guard has
    # checked that no log line carries the message (it holds the secret).
    logged = [r for r in caplog.records if r.name == "identity_service.http.problems"]
    assert logged and logged[0].getMessage() == "unhandled error: RuntimeError"
    assert "in boom" in logged[0].fields["stack"]  # type: ignore[attr-defined]
    assert MESSENGER_SECRET not in json.dumps(problem)
    assert "RuntimeError" not in json.dumps(problem)


# -- headers, CORS, request ids -------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", TOKEN_URL, "/nope"])
def test_security_headers_on_every_response(client: FlaskClient, path: str) -> None:
    response = client.post(path) if path == TOKEN_URL else client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in response.headers


def test_hsts_when_configured(tmp_path: Path) -> None:
    svc = make_service(tmp_path)
    text = (
        (tmp_path / "service.toml").read_text().replace("[service]\n", "[service]\nhsts = true\n")
    )
    (tmp_path / "service.toml").write_text(text)
    from identity_service.config import load_settings

    settings = load_settings(tmp_path / "service.toml", environ={})
    response = create_app(settings).test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    del svc


def test_cors_preflight_only_for_listed_origins(client: FlaskClient) -> None:
    allowed = client.options(
        TOKEN_URL,
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )  # fmt: skip
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    denied = client.options(
        TOKEN_URL,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in denied.headers


def test_no_cors_headers_for_a_request_without_origin(
    client: FlaskClient, service: ServiceFixture
) -> None:
    # flask-cors's default would list the allowed origins to anyone who asks.
    response = client.post(TOKEN_URL, headers=bearer(service.idp_token()))
    assert response.status_code == 200
    assert not [name for name, _ in response.headers.items() if name.startswith("Access-Control")]


def test_request_id_is_honoured_or_generated(client: FlaskClient, log_lines: LogLines) -> None:
    assert (
        client.get(
            "/healthz", headers={"X-Request-ID": "0f8b6a4e-3c2d-4e1f-9a8b-7c6d5e4f3a2b"}
        ).headers["X-Request-ID"]
        == "0f8b6a4e-3c2d-4e1f-9a8b-7c6d5e4f3a2b"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id;<x>"}).headers[
        "X-Request-ID"
    ]
    assert generated != "bad id;<x>" and len(generated) == 16
    response = client.post(TOKEN_URL, headers={"X-Request-ID": "4d9f1a0c3b2e8d7f6a5b4c3d2e1f0a9b"})
    assert response.get_json()["request_id"] == "4d9f1a0c3b2e8d7f6a5b4c3d2e1f0a9b"
    access = [json.loads(x) for x in log_lines if "identity_service.access" in x]
    assert access[0]["request_id"] == "0f8b6a4e-3c2d-4e1f-9a8b-7c6d5e4f3a2b"
    assert (
        access[-1]["request_id"] == "4d9f1a0c3b2e8d7f6a5b4c3d2e1f0a9b"
        and access[-1]["status"] == 401
    )


def test_auth_failure_audit_event_and_metric(
    client: FlaskClient, service: ServiceFixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = service.idp_token(iss="https://other-idp.example/")
    client.post(TOKEN_URL, headers={**bearer(token), "X-Request-ID": "7b704e263195a5a1"})
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    audit = [x for x in lines if x.get("event") == "auth_failure"]
    assert len(audit) == 1
    assert audit[0]["method"] == "bearer" and audit[0]["request_id"] == "7b704e263195a5a1"
    assert audit[0]["reason"]
    access = [x for x in lines if x["logger"] == "identity_service.access"]
    assert access and access[0]["status"] == 401 and access[0]["request_id"] == "7b704e263195a5a1"
    for line in map(json.dumps, lines):
        assert token not in line
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "identity_auth_failures_total{" in metrics
    assert 'method="bearer"' in metrics


# -- operations -------------------------------------------------------------------


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_data(as_text=True)
    assert set(ready.get_json()["checks"].values()) == {"ok"}


def test_readiness_is_503_once_the_server_starts_draining(app: Flask) -> None:
    # What the gunicorn worker calls at SIGTERM (tests/test_sigterm_drain.py runs it for real).
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    start_draining(app)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.mimetype == "application/problem+json"
    assert ready.get_json()["checks"] == {"server": "draining"}
    assert client.get("/healthz").status_code == 200  # still alive while it drains


def test_metrics_count_mints_per_workspace(client: FlaskClient, service: ServiceFixture) -> None:
    for _ in range(2):
        client.post(TOKEN_URL, headers=bearer(service.idp_token()))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'identity_tokens_minted_total{platform="web",workspace="main"} 2.0' in text
    assert (
        'identity_request_seconds_count{endpoint="/v1/messenger/token",method="POST",status="200"}'
        " 2.0" in text
    )


def test_openapi_document_describes_the_real_endpoint(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    operation = doc["paths"]["/v1/messenger/token"]["post"]
    assert set(operation["responses"]) >= {"200", "401", "403", "413", "415", "422", "429", "503"}
    assert "get" not in doc["paths"]["/v1/messenger/token"]
    props = doc["components"]["schemas"]["TokenResponse"]["properties"]
    assert set(props) == {
        "token",
        "platform",
        "expires_at",
        "app_id",
        "api_base",
        "user_id",
        "attributes",
        "warnings",
    }
