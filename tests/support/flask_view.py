"""The API (/v1/) as it was served before the token endpoint became a WSGI app: the oracle.

A Flask view calling the same `token_response_body`, with flask-cors on /v1/*
configured exactly as the app factory configured it, Flask's own dispatch
(405, automatic OPTIONS, error handlers) and the same outer layers (request
observer, security headers). `tests/test_token_route.py` sends every request
to both and compares the answers, so the move out of Flask changed nothing a
client can see. flask-cors is a test dependency only for this.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, Request, Response, request
from flask_cors import CORS

from identity_service.frontend import views as snippet_views
from identity_service.http import problems
from identity_service.http.api import NO_STORE, token_response_body
from identity_service.http.headers import DEFAULT_CSP, ResponseHeaders, forced_headers
from identity_service.http.middleware import RequestObserver
from identity_service.http.paths import TOKEN_PATH
from identity_service.http.state import service_state
from identity_service.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def flask_view(app: Flask) -> WSGIApplication:
    """The token route of `app` (its runtime, settings and config) served by a Flask view."""
    runtime = service_state(app).runtime
    settings = runtime.settings
    view = Flask("identity_service")
    view.config.update(app.config)
    view.extensions.update(app.extensions)
    _install_flask_cors(view, settings)
    problems.register(view)
    # The front end's files are under /v1/ too, with a CORS grant of their own.
    view.register_blueprint(snippet_views.bp)

    @view.post(TOKEN_PATH)
    def messenger_token() -> Response:
        body = token_response_body(runtime, cast(Request, request))
        return Response(body, content_type="application/json", headers=NO_STORE)

    layered = ResponseHeaders(view.wsgi_app, forced_headers(settings), [DEFAULT_CSP])
    return RequestObserver(layered, runtime.metrics)


def _install_flask_cors(app: Flask, settings: Settings) -> None:
    """flask-cors on /v1/*, with the options the app factory gave it before."""
    origins = list(settings.service.cors_origins)
    if not origins:
        return
    wildcard = "*" in origins
    exact: list[str | re.Pattern[str]] = [
        o if o == "*" else re.compile(re.escape(o) + r"\Z") for o in origins
    ]
    options: dict[str, Any] = dict(
        resources={r"/v1/*": {"origins": exact}},
        supports_credentials=not wildcard,
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
        vary_header=True,
        always_send=False,
    )
    CORS(app, **options)
