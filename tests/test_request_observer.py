"""RequestObserver and ResponseHeaders: the WSGI layers every response of the service passes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response

from identity_service import create_app
from identity_service.http.headers import ResponseHeaders
from identity_service.http.middleware import REQUEST_ID_HEADER, RequestObserver
from identity_service.observability.metrics import Metrics
from tests.support.leak_guard import LeakGuard
from tests.support.service import make_service

FORCED = [("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer")]
DEFAULT_CSP = ("Content-Security-Policy", "frame-ancestors 'none'")


def observed_app() -> tuple[Flask, Metrics]:
    app = Flask("observed")

    @app.get("/plain")
    def plain() -> str:
        return "ok"

    @app.get("/own-policies")
    def own_policies() -> Response:
        # A view that sets headers the observer forces, and a CSP of its own.
        return Response(
            "ok",
            headers={
                "x-frame-options": "SAMEORIGIN",
                "Content-Security-Policy": "default-src 'self'",
            },
        )

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    metrics = Metrics.create()
    app.wsgi_app = RequestObserver(  # type: ignore[method-assign]
        ResponseHeaders(app.wsgi_app, FORCED, [DEFAULT_CSP]), metrics
    )
    return app, metrics


def _latency_count(metrics: Metrics, **labels: str) -> float:
    value = metrics.registry.get_sample_value("identity_request_seconds_count", labels)
    return value or 0.0


def test_forced_headers_replace_a_views_and_a_views_csp_is_kept() -> None:
    app, _ = observed_app()
    response = app.test_client().get("/own-policies")
    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    assert response.headers.getlist("Content-Security-Policy") == ["default-src 'self'"]
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_default_csp_fills_in_and_every_response_gets_a_request_id() -> None:
    app, _ = observed_app()
    for path, status in [("/plain", 200), ("/nope", 404), ("/boom", 500)]:
        response = app.test_client().get(path)
        assert response.status_code == status
        assert response.headers.getlist("Content-Security-Policy") == ["frame-ancestors 'none'"]
        assert len(response.headers[REQUEST_ID_HEADER]) == 16


ACCEPTED_REQUEST_IDS = {
    "UUID": "0f8b6a4e-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
    "UUID in capitals": "0F8B6A4E-3C2D-4E1F-9A8B-7C6D5E4F3A2B",
    "this service's own (16 hex)": "7b704e263195a5a1",
    "nginx's $request_id (32 hex)": "4d9f1a0c3b2e8d7f6a5b4c3d2e1f0a9b",
}
# Each of these could carry (or be) a credential, or forge a log line.
REFUSED_REQUEST_IDS = {
    "a JWT": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl",
    "a JWT without its signature": "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
    "a signed session cookie": "eyJ1c2VyX2lkIjoiNDIifQ.Z1a2b3.c4d5e6f7g8h9",
    "an opaque token": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "40 hex (a SHA-1, an API key)": "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
    "64 hex (a SHA-256, a secret)": "9f86d081884c7d659a2feaa0c55ad015"
    "a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "15 hex": "7b704e263195a5a",
    "a word": "req-9",
    "a UUID without hyphens and braces": "{0f8b6a4e-3c2d-4e1f-9a8b-7c6d5e4f3a2b}",
    "a line break": "7b704e263195a5a1\n",
    "a header injection": "7b704e263195a5a1; x=1",
    "empty": "",
}


@pytest.mark.parametrize("rid", ACCEPTED_REQUEST_IDS.values(), ids=ACCEPTED_REQUEST_IDS.keys())
def test_a_callers_request_id_in_an_accepted_shape_is_echoed(rid: str) -> None:
    app, _ = observed_app()
    response = app.test_client().get("/plain", headers={REQUEST_ID_HEADER: rid})
    assert response.headers[REQUEST_ID_HEADER] == rid


@pytest.mark.parametrize("rid", REFUSED_REQUEST_IDS.values(), ids=REFUSED_REQUEST_IDS.keys())
def test_a_callers_request_id_in_any_other_shape_is_replaced(
    rid: str, leak_guard: LeakGuard
) -> None:
    leak_guard.watch(rid)
    app, _ = observed_app()
    environ = {"HTTP_X_REQUEST_ID": rid}  # werkzeug's client would refuse the line break
    response = app.test_client().get("/plain", environ_overrides=environ)
    generated = response.headers[REQUEST_ID_HEADER]
    assert generated != rid and re.fullmatch(r"[0-9a-f]{16}", generated)


def test_latency_is_labelled_by_route_rule_and_unmatched_paths_share_one_label() -> None:
    app, metrics = observed_app()
    client = app.test_client()
    client.get("/plain")
    client.get("/nope")
    client.get("/other-nope")
    client.post("/plain")  # 405: no rule matched either
    labels: dict[str, Any] = {"endpoint": "/plain", "method": "GET", "status": "200"}
    assert _latency_count(metrics, **labels) == 1
    assert _latency_count(metrics, endpoint="<unmatched>", method="GET", status="404") == 2
    assert _latency_count(metrics, endpoint="<unmatched>", method="POST", status="405") == 1


def test_a_request_id_with_a_trailing_newline_is_replaced() -> None:
    app, _ = observed_app()
    environ_headers = {REQUEST_ID_HEADER: "abc\n"}
    seen: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append(headers)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/plain",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "HTTP_X_REQUEST_ID": environ_headers[REQUEST_ID_HEADER],
    }
    app.wsgi_app(environ, start_response)
    [rid] = [value for name, value in seen[0] if name == REQUEST_ID_HEADER]
    assert "\n" not in rid and len(rid) == 16


def test_a_views_own_request_id_is_replaced_not_doubled() -> None:
    app, _ = observed_app()

    @app.get("/own-id")
    def own_id() -> Response:
        return Response("ok", headers={"x-request-id": "from-the-view"})

    rid = ACCEPTED_REQUEST_IDS["UUID"]
    response = app.test_client().get("/own-id", headers={REQUEST_ID_HEADER: rid})
    assert response.headers.getlist(REQUEST_ID_HEADER) == [rid]


def test_made_up_methods_share_one_latency_label() -> None:
    app, metrics = observed_app()
    client = app.test_client()
    for method in ("BREW", "WHEN", "X1"):
        client.open("/plain", method=method)
    assert _latency_count(metrics, endpoint="<unmatched>", method="other", status="405") == 3
    assert _latency_count(metrics, endpoint="<unmatched>", method="BREW", status="405") == 0


@pytest.mark.parametrize(
    "path",
    [
        "/v1/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "/login/Bearer%20opaque-credential-0123",
    ],
)
def test_an_unmatched_path_is_logged_without_a_credential(path: str, leak_guard: LeakGuard) -> None:
    # A 404's path is whatever the client sent: it is logged (scanners are
    # worth seeing), but a credential-shaped part of it is not.
    leak_guard.watch("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "opaque-credential-0123")
    app, _ = observed_app()
    assert app.test_client().get(path).status_code == 404
    [access] = [r for r in leak_guard.records if r.name == "identity_service.access"]
    logged = access.fields["path"]  # type: ignore[attr-defined]
    assert "withheld" in logged and logged.startswith("/")


def test_a_path_matched_by_a_rule_with_a_variable_is_logged_without_a_credential(
    tmp_path: Path, leak_guard: LeakGuard
) -> None:
    # The service's app has one such rule: Flask's /static/<path:filename>.
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    leak_guard.watch(token)
    app = create_app(make_service(tmp_path).settings)
    assert app.test_client().get(f"/static/{token}").status_code == 404
    [access] = [r for r in leak_guard.records if r.name == "identity_service.access"]
    assert access.fields["path"] == "/static/<jwt withheld>"  # type: ignore[attr-defined]
