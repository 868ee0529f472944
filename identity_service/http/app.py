"""The Flask application factory: the only place that wires settings into Flask."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask_cors import CORS
from flask_cors.core import get_cors_options
from werkzeug.middleware.proxy_fix import ProxyFix

from identity_service.config import load_settings
from identity_service.frontend import views as snippet_views
from identity_service.http import api, health, problems
from identity_service.http.token_route import TokenRoute
from identity_service.observability import RequestObserver
from identity_service.runtime import EXTENSION, KeyFiles, Runtime
from identity_service.settings import Settings

if TYPE_CHECKING:
    from flask_cors.core import _ComputedCorsOptions as CorsOptions

HSTS = "max-age=63072000; includeSubDomains"
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
# Views that need a policy of their own (the snippet's pages) set it; others get this.
DEFAULT_CSP = ("Content-Security-Policy", "frame-ancestors 'none'")
API_RESOURCE = r"/v1/*"
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

    cors = _install_cors(app, settings)
    problems.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(snippet_views.bp)

    forced = [
        *SECURITY_HEADERS,
        *([("Strict-Transport-Security", HSTS)] if settings.service.hsts else []),
    ]
    app.extensions[RESPONSE_HEADERS] = (*forced, DEFAULT_CSP)
    # The token route skips Flask's request machinery (see token_route).
    # Outside it, every response (error pages and CORS preflights included)
    # gets the security headers, a request id, a latency sample and an access line.
    routed = TokenRoute(app, app.wsgi_app, runtime, cors)
    app.wsgi_app = RequestObserver(  # type: ignore[method-assign]
        routed, runtime.metrics, forced, default_headers=[DEFAULT_CSP]
    )
    if settings.service.proxy_hops:
        # Trust exactly the configured number of proxies for client address and
        # scheme; outermost, so the access line already sees the real client.
        hops = settings.service.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app


def _install_cors(app: Flask, settings: Settings) -> CorsOptions | None:
    """Install flask-cors on /v1/*; the options it resolved for that resource, for TokenRoute."""
    origins = list(settings.service.cors_origins)
    if not origins:
        return None  # same-origin deployments need no CORS at all
    wildcard = "*" in origins
    # flask-cors compares listed strings case-insensitively; the documented rule
    # is an exact match (browsers send origins in lowercase, and the loader
    # refuses any other spelling), so each origin goes in as an exact pattern.
    exact: list[str | re.Pattern[str]] = [
        o if o == "*" else re.compile(re.escape(o) + r"\Z") for o in origins
    ]
    resource = {"origins": exact}
    options: dict[str, Any] = dict(
        resources={API_RESOURCE: resource},
        # Credentials (cookies) only ever for explicitly listed origins;
        # configuration refuses "*" when cookie authentication is on.
        supports_credentials=not wildcard,
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
        vary_header=True,
        # CORS headers only for requests that ask (browsers always send
        # Origin): flask-cors would otherwise list every allowed origin, one
        # header each, on every response, telling anyone the allowlist.
        always_send=False,
    )
    CORS(app, **options)
    # Resolved as flask-cors resolves a resource's options in `init_app`.
    return get_cors_options(app, options, resource)
