"""The token endpoint's lean route (`TokenRoute`) answers exactly as the Flask view would.

Every request in the other test modules already goes through the lean route;
here the same requests are also sent to Flask's own `wsgi_app` (the view),
and the two answers are compared: status, headers and body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask, abort, request, request_started
from werkzeug.test import Client, TestResponse

from identity_service import create_app
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.http import problems
from identity_service.http.paths import TOKEN_PATH
from identity_service.http.token_route import TokenRoute
from identity_service.observability import RequestObserver
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


def token_route(app: Flask) -> TokenRoute:
    observer = app.wsgi_app
    assert isinstance(observer, RequestObserver)
    assert isinstance(observer.app, TokenRoute)
    return observer.app


def comparable(response: TestResponse) -> tuple[int, list[tuple[str, str]], Any]:
    """Status, headers in order, and body; a token by its claims minus its (random) jti."""
    body = response.get_json(force=True, silent=True)
    if isinstance(body, dict) and "token" in body:
        claims = jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"], leeway=60)
        del claims["jti"]
        body = {**body, "token": claims}
    return response.status_code, list(response.headers.items()), body


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
    """The same request answered by the lean route and by the Flask view."""
    route = token_route(app)
    answers = []
    for wsgi in (route, route.inner):
        client = Client(wsgi)
        for name, value in (cookies or {}).items():
            client.set_cookie(name, value)
        answers.append(client.post(TOKEN_PATH, **kwargs))
    return answers


@pytest.mark.parametrize("name", REQUESTS)
def test_the_lean_route_answers_as_the_flask_view(
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
    route = token_route(app)
    kwargs: dict[str, Any] = {
        "method": method,
        "headers": {
            **service.bearer_headers(),
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
        },
    }
    lean, view = (Client(wsgi).open(path, **kwargs) for wsgi in (route, route.inner))
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


# -- when Flask would do more, it serves the route -------------------------------------


def test_the_service_app_is_served_by_the_lean_route(app: Flask) -> None:
    assert token_route(app).serves_alone()


def test_a_before_request_hook_makes_flask_serve_the_route(
    app: Flask, service: ServiceFixture
) -> None:
    @app.before_request
    def refuse() -> None:
        abort(403)

    response = app.test_client().post(TOKEN_PATH, headers=service.bearer_headers())
    assert response.status_code == 403
    assert not token_route(app).serves_alone()


def test_after_the_first_token_request_hooks_can_no_longer_be_added(
    app: Flask, service: ServiceFixture
) -> None:
    assert app.test_client().post(TOKEN_PATH, headers=service.bearer_headers()).status_code == 200
    with pytest.raises(AssertionError, match="already handled its first request"):
        app.before_request(lambda: None)


def test_a_signal_receiver_makes_flask_serve_the_route(app: Flask, service: ServiceFixture) -> None:
    seen: list[str] = []

    def started(sender: Flask, **extra: Any) -> None:
        seen.append(request.path)

    with request_started.connected_to(started, app):
        assert (
            app.test_client().post(TOKEN_PATH, headers=service.bearer_headers()).status_code == 200
        )
    assert seen == [TOKEN_PATH]
    assert token_route(app).serves_alone()  # the receiver is gone


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


def test_the_body_cap_is_read_from_the_app_config_on_each_request(
    app: Flask, service: ServiceFixture
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 10
    response = app.test_client().post(
        TOKEN_PATH, headers=service.bearer_headers(), json={"workspace": "main"}
    )
    assert response.status_code == 413


# -- errors ------------------------------------------------------------------------------


def test_an_unexpected_error_in_the_lean_route_is_a_bare_500(
    app: Flask, service: ServiceFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer = app.extensions["identity_service.issuer"]

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
    # Flask's last resort (handle_exception) renders the handler's own failure.
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
