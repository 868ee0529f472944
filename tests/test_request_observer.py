"""RequestObserver: the WSGI middleware every response of the service passes through."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from identity_service.observability import REQUEST_ID_HEADER, Metrics, RequestObserver

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
        app.wsgi_app, metrics, FORCED, default_headers=[DEFAULT_CSP]
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


def test_an_acceptable_request_id_is_echoed_and_a_forged_one_replaced() -> None:
    app, _ = observed_app()
    client = app.test_client()
    assert (
        client.get("/plain", headers={REQUEST_ID_HEADER: "abc-123"}).headers[REQUEST_ID_HEADER]
        == "abc-123"
    )
    forged = client.get("/plain", headers={REQUEST_ID_HEADER: "not valid; 1"})
    assert forged.headers[REQUEST_ID_HEADER] != "not valid; 1"


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

    response = app.test_client().get("/own-id", headers={REQUEST_ID_HEADER: "from-caller"})
    assert response.headers.getlist(REQUEST_ID_HEADER) == ["from-caller"]


def test_made_up_methods_share_one_latency_label() -> None:
    app, metrics = observed_app()
    client = app.test_client()
    for method in ("BREW", "WHEN", "X1"):
        client.open("/plain", method=method)
    assert _latency_count(metrics, endpoint="<unmatched>", method="other", status="405") == 3
    assert _latency_count(metrics, endpoint="<unmatched>", method="BREW", status="405") == 0
