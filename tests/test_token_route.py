"""The token endpoint (a WSGI app of its own) answers exactly as the Flask view did.

Every request in the other test modules already goes through the endpoint;
here the same requests are also sent to the Flask view it replaced, with
flask-cors (`tests/support/flask_view.py`), and the two answers are compared:
status, headers and body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask, abort, request_started
from werkzeug.test import Client, TestResponse

from identity_service import create_app
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.http import problems
from identity_service.http.paths import CONFIG_PATH, MODULE_PATH, SCRIPT_PATH, TOKEN_PATH
from identity_service.http.state import service_state
from tests.support.flask_view import flask_view
from tests.support.service import (
    MAX_BODY_BYTES,
    MESSENGER_SECRET,
    ORIGIN,
    ServiceFixture,
    make_service_with_profile,
    padded_body,
)


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    return make_service_with_profile(tmp_path)


@pytest.fixture
def app(service: ServiceFixture) -> Flask:
    # A frozen clock, so that both answers to a request carry the same iat and
    # exp; a little ahead, so that credentials made during the test are not
    # dated in its future.
    now = time.time() + 5
    return create_app(service.settings, clock=lambda: now)


def comparable(response: TestResponse) -> tuple[int, list[tuple[str, str]], str | None, Any]:
    """Status, headers in order, Content-Length, and body; a token by its claims minus its
    (random) jti.

    The request id is random too (and a file's `Date` the wall clock's), and
    `Allow` a set (Flask lists its methods in the order of a `set`, which
    changes with the hash seed): sorted.
    Content-Length is compared on its own: Flask places an empty response's
    (the preflight's) after every other header a view or hook set.
    """
    body = response.get_json(force=True, silent=True)
    if isinstance(body, dict) and "token" in body:
        claims = jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"], leeway=60)
        del claims["jti"]
        body = {**body, "token": claims}
    if isinstance(body, dict) and "request_id" in body:
        body = {**body, "request_id": "<id>"}
    headers = [
        (
            k,
            "<id>"
            if k in ("X-Request-ID", "Date")  # Date: the two answers may straddle a second
            else ", ".join(sorted(v.split(", ")))
            if k == "Allow"
            else v,
        )
        for k, v in response.headers.items()
        if k != "Content-Length"
    ]
    return response.status_code, headers, response.headers.get("Content-Length"), body


def _cookie(svc: ServiceFixture, origin: str) -> dict[str, Any]:
    cookie = svc.session_cookie({"user_id": "user-42", "_fresh": True})
    return {"cookies": {"session": cookie}, "headers": {"Origin": origin}}


JSON = "application/json"
EVIL = "https://evil.example"
Recipe = Callable[[ServiceFixture], dict[str, Any]]
# Test-client arguments by name, with the status they must get: every success and refusal.
REQUESTS: dict[str, tuple[int, Recipe]] = {
    "bearer": (200, lambda s: {"headers": s.bearer_headers()}),
    "bearer-listed-origin": (200, lambda s: {"headers": {**s.bearer_headers(), "Origin": ORIGIN}}),
    "bearer-other-origin": (200, lambda s: {"headers": {**s.bearer_headers(), "Origin": EVIL}}),
    "bearer-body": (200, lambda s: {"headers": s.bearer_headers(), "json": {"workspace": "main"}}),
    "cookie": (200, lambda s: _cookie(s, ORIGIN)),
    "no-credentials": (401, lambda s: {}),
    "bad-token": (401, lambda s: {"headers": {"Authorization": "Bearer a.b.c"}}),
    "cookie-other-origin": (403, lambda s: _cookie(s, EVIL)),
    "unknown-workspace": (
        404,
        lambda s: {"headers": s.bearer_headers(), "json": {"workspace": "nope"}},
    ),
    "malformed-json": (
        400,
        lambda s: {"headers": s.bearer_headers(), "data": "{not json", "content_type": JSON},
    ),
    "body-too-large": (
        413,
        lambda s: {
            "headers": s.bearer_headers(),
            "data": "[" + " " * 2000 + "]",
            "content_type": JSON,
        },
    ),
    "body-at-the-cap": (
        200,
        lambda s: {
            "headers": s.bearer_headers(),
            "data": padded_body(MAX_BODY_BYTES),
            "content_type": JSON,
        },
    ),
    "body-over-the-cap": (
        413,
        lambda s: {
            "headers": s.bearer_headers(),
            "data": padded_body(MAX_BODY_BYTES + 1),
            "content_type": JSON,
        },
    ),
    "nested-too-deep": (
        400,
        lambda s: {"headers": s.bearer_headers(), "data": "[" * 1000, "content_type": JSON},
    ),
    "preflight-headers-on-a-post": (
        200,
        lambda s: {
            "headers": {
                **s.bearer_headers(),
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Private-Network": "true",
            }
        },
    ),
    "not-json": (415, lambda s: {"headers": s.bearer_headers(), "data": "workspace=main"}),
    "schema": (422, lambda s: {"headers": s.bearer_headers(), "json": {"workspace": 7}}),
}


def both(app: Flask, cookies: dict[str, str] | None = None, **kwargs: Any) -> list[TestResponse]:
    """The same request answered by the token endpoint and by the Flask view it replaced."""
    answers = []
    for wsgi in (app, flask_view(app)):
        client = Client(wsgi)
        for name, value in (cookies or {}).items():
            client.set_cookie(name, value)
        answers.append(client.post(TOKEN_PATH, **kwargs))
    return answers


@pytest.mark.parametrize("name", REQUESTS)
def test_the_token_endpoint_answers_as_the_flask_view(
    app: Flask, service: ServiceFixture, name: str
) -> None:
    status, recipe = REQUESTS[name]
    lean, view = both(app, **recipe(service))
    assert lean.status_code == status, lean.get_data(as_text=True)
    assert comparable(lean) == comparable(view)


def test_the_requests_compared_cover_every_status_of_the_endpoint() -> None:
    statuses = {status for status, _ in REQUESTS.values()}
    assert statuses == {200, 400, 401, 403, 404, 413, 415, 422}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", TOKEN_PATH),
        ("HEAD", TOKEN_PATH),
        ("PUT", TOKEN_PATH),
        ("OPTIONS", TOKEN_PATH),
        ("POST", TOKEN_PATH + "/"),
        ("POST", "//v1/messenger/token"),
        ("POST", "/V1/MESSENGER/TOKEN"),
        ("POST", "/v1/messenger/%74oken"),  # decoded: the token path itself
    ],
)
def test_other_methods_and_paths_get_flasks_own_answer(
    app: Flask, service: ServiceFixture, method: str, path: str
) -> None:
    kwargs: dict[str, Any] = {
        "method": method,
        "headers": {
            **service.bearer_headers(),
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
        },
    }
    lean, view = (Client(wsgi).open(path, **kwargs) for wsgi in (app, flask_view(app)))
    assert comparable(lean) == comparable(view)


def with_cors(service: ServiceFixture, origins: str) -> Flask:
    """The test service with another `cors_origins` (and no cookie auth beside "*")."""
    path = service.root / "service.toml"
    text = path.read_text().replace(f'cors_origins = ["{ORIGIN}"]', f"cors_origins = {origins}")
    if '"*"' in origins:  # refused with cookie authentication on
        session = text.index('[[workspaces.main.auth]]\nmethod = "session"')
        text = text[:session] + text[text.index("[workspaces.main.profile]") :]
    path.write_text(text)
    settings = load_settings(path, environ={INSTANCE_ENV: str(service.root / "instance")})
    now = time.time() + 5
    return create_app(settings, clock=lambda: now)


@pytest.mark.parametrize("origins", [f'["{ORIGIN}", "https://other.pete.example"]', '["*"]', "[]"])
@pytest.mark.parametrize("origin", [ORIGIN, "https://other.pete.example", EVIL, None])
def test_cors_headers_match_flask_cors_in_every_configuration(
    service: ServiceFixture, origins: str, origin: str | None
) -> None:
    app = with_cors(service, origins)
    headers = {**service.bearer_headers(), **({"Origin": origin} if origin else {})}
    lean, view = both(app, headers=headers)
    assert lean.status_code == 200
    assert comparable(lean) == comparable(view)


@pytest.mark.parametrize("path", [SCRIPT_PATH, MODULE_PATH, CONFIG_PATH])
@pytest.mark.parametrize("origin", [ORIGIN, EVIL, None])
def test_the_front_ends_files_keep_their_own_cors_grant(
    app: Flask, path: str, origin: str | None
) -> None:
    # They answer "*" themselves; a second Access-Control-Allow-Origin would
    # make browsers refuse the script (flask-cors left such a response alone).
    headers = {"Origin": origin} if origin else {}
    lean, view = (Client(wsgi).get(path, headers=headers) for wsgi in (app, flask_view(app)))
    assert lean.status_code == 200
    assert lean.headers.getlist("Access-Control-Allow-Origin") == ["*"]
    assert comparable(lean) == comparable(view)


# -- one way in: the token path is not a Flask route ----------------------------------------
# These replace the lean route's tests that Flask served the route whenever it
# had more to do (a hook, a signal receiver): there is no second way in now.


def test_the_token_path_is_not_a_flask_route(app: Flask, service: ServiceFixture) -> None:
    assert TOKEN_PATH not in {rule.rule for rule in app.url_map.iter_rules()}
    response = app.test_client().post(TOKEN_PATH, headers=service.bearer_headers())
    assert response.status_code == 200


def test_flask_hooks_do_not_run_for_the_token_endpoint(app: Flask, service: ServiceFixture) -> None:
    @app.before_request
    def refuse() -> None:
        abort(403)

    client = app.test_client()
    assert client.post(TOKEN_PATH, headers=service.bearer_headers()).status_code == 200
    assert client.get("/healthz").status_code == 403  # Flask's own routes do get it


def test_a_token_request_does_not_end_flasks_setup(app: Flask, service: ServiceFixture) -> None:
    # The lean route used to set Flask's private "first request" flag.
    assert app.test_client().post(TOKEN_PATH, headers=service.bearer_headers()).status_code == 200
    app.before_request(lambda: None)  # raised AssertionError after a first request


def test_flask_signals_are_not_sent_for_the_token_endpoint(
    app: Flask, service: ServiceFixture
) -> None:
    seen: list[str] = []

    def started(sender: Flask, **extra: Any) -> None:
        seen.append("started")

    with request_started.connected_to(started, app):
        client = app.test_client()
        assert client.post(TOKEN_PATH, headers=service.bearer_headers()).status_code == 200
        assert seen == []
        assert client.get("/healthz").status_code == 200
    assert seen == ["started"]


def test_trusted_hosts_are_honoured(app: Flask, service: ServiceFixture) -> None:
    app.config["TRUSTED_HOSTS"] = ["id.pete.example"]
    client = app.test_client()
    untrusted = client.post(
        TOKEN_PATH, headers={**service.bearer_headers(), "Host": "evil.example"}
    )
    assert untrusted.status_code == 400
    trusted = client.post(
        TOKEN_PATH, headers={**service.bearer_headers(), "Host": "id.pete.example"}
    )
    assert trusted.status_code == 200


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "GET", "HEAD"])
def test_trusted_hosts_are_honoured_for_every_method(
    app: Flask, service: ServiceFixture, method: str
) -> None:
    # Review: the Host was checked only for POST, so a preflight from a listed
    # origin to an untrusted Host succeeded. Flask checks it before routing,
    # whatever the method (as /healthz shows); a preflight that is not 2xx fails.
    app.config["TRUSTED_HOSTS"] = ["id.pete.example"]
    client = app.test_client()
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    untrusted = client.open(
        TOKEN_PATH, method=method, headers={**preflight, "Host": "evil.example"}
    )
    flask_route = client.open("/healthz", method=method, headers={"Host": "evil.example"})
    assert untrusted.status_code == flask_route.status_code == 400
    assert untrusted.mimetype == "application/problem+json"
    assert "X-Request-ID" in untrusted.headers
    trusted = client.open(
        TOKEN_PATH, method=method, headers={**preflight, "Host": "id.pete.example"}
    )
    assert trusted.status_code == (200 if method == "OPTIONS" else 405)


def test_the_body_cap_is_read_from_the_app_config_on_each_request(
    app: Flask, service: ServiceFixture
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 10
    response = app.test_client().post(
        TOKEN_PATH, headers=service.bearer_headers(), json={"workspace": "main"}
    )
    assert response.status_code == 413


# -- errors ------------------------------------------------------------------------------


def test_an_unexpected_error_in_the_token_endpoint_is_a_bare_500(
    app: Flask, service: ServiceFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = service_state(app).issuer

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"leaked {MESSENGER_SECRET}")

    monkeypatch.setattr(issuer, "issue_detailed", broken)
    response = app.test_client().post(
        TOKEN_PATH, headers={"Authorization": f"Bearer {service.idp_token()}"}
    )
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert MESSENGER_SECRET not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)


def test_an_error_handler_that_fails_still_gives_problem_json(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The endpoint's last resort renders the renderer's own failure (as Flask's
    # handle_exception does for its routes).
    real = problems.problem_response
    calls: list[int] = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the 401 handler failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(problems, "problem_response", fails_once)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().post(TOKEN_PATH)
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert len(calls) == 2
