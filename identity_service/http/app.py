"""The Flask application factory: the only place that wires settings into Flask."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from identity_service.config import load_settings
from identity_service.frontend import views as snippet_views
from identity_service.http import health, problems
from identity_service.http.api import TokenEndpoint
from identity_service.http.cors import Cors, CorsPolicy
from identity_service.http.headers import DEFAULT_CSP, ResponseHeaders, forced_headers
from identity_service.http.middleware import RequestObserver
from identity_service.http.paths import TOKEN_PATH
from identity_service.runtime import EXTENSION, KeyFiles, Runtime
from identity_service.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Where the app keeps the headers every response of its gets (the security
# headers, HSTS when on, the default CSP), for the server's own error answers.
RESPONSE_HEADERS = "identity_service.response_headers"


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    key_files: KeyFiles | None = None,
    **options: Any,
) -> Flask:
    """Create the app on `settings` (default: $IDENTITY_SERVICE_CONFIG or the bundled example).

    `key_files`: bearer key files loaded already (`runtime.load_key_files`), as
    `identity-service serve` passes them to its workers.
    """
    settings = settings or load_settings()
    app = Flask("identity_service")
    app.config.update(MAX_CONTENT_LENGTH=settings.service.max_body_bytes, **options)
    runtime = Runtime.build(settings, clock, monotonic, key_files)
    app.extensions[EXTENSION] = runtime
    app.extensions["identity_service.settings"] = settings
    app.extensions["identity_service.issuer"] = runtime.issuer

    problems.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(snippet_views.bp)

    forced = forced_headers(settings)
    app.extensions[RESPONSE_HEADERS] = (*forced, DEFAULT_CSP)
    token = TokenEndpoint(runtime, app.config)
    app.wsgi_app = serve(  # type: ignore[method-assign,assignment]
        TokenMount(token, app.wsgi_app), settings, runtime
    )
    return app


def serve(inner: WSGIApplication, settings: Settings, runtime: Runtime) -> WSGIApplication:
    """The layers every request passes, outermost first: proxy headers, observer, security
    headers, CORS (/v1/ only), then `inner`: the token endpoint's mount in front of Flask.

    Every response (error pages and CORS preflights included) gets the security
    headers, a request id, a latency sample and an access line.
    """
    app = inner
    policy = CorsPolicy.from_settings(settings)
    if policy is not None:  # same-origin deployments need no CORS at all
        app = Cors(app, policy)
    app = RequestObserver(
        ResponseHeaders(app, forced_headers(settings), [DEFAULT_CSP]), runtime.metrics
    )
    if settings.service.proxy_hops:
        # Trust exactly the configured number of proxies for client address and
        # scheme; outermost, so the access line already sees the real client.
        hops = settings.service.proxy_hops
        app = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops)
    return app


class TokenMount:
    """The token endpoint at exactly `TOKEN_PATH`, every other path Flask's.

    An exact match, not a prefix (werkzeug's DispatcherMiddleware would also
    take `/v1/messenger/token/...` and rewrite SCRIPT_NAME): any other path,
    however close, is Flask's to answer (a 404).
    """

    def __init__(self, token: WSGIApplication, flask: WSGIApplication) -> None:
        self.token = token
        self.flask = flask

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == TOKEN_PATH:
            return self.token(environ, start_response)
        return self.flask(environ, start_response)
