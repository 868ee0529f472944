"""The Flask extension `IdentityService(app, settings)`: the one place settings meet Flask.

Flask's extension pattern: the object holds only its options, `init_app`
builds the live objects (`Runtime.build`) and keeps them in the app's one
`app.extensions["identity_service"]` entry (`http.state.ServiceState`), so one
extension object may serve several apps (the application-factory pattern).

Every app it is initialised on gets `render_messenger_tag` as a Jinja global.
With `routes=True` the app becomes the whole service (what `create_app` does):
its error handlers, blueprints, the token endpoint mounted in front of Flask and
the layers every response passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from identity_service.config import load_settings
from identity_service.frontend import views as snippet_views
from identity_service.frontend.jinja import register_jinja
from identity_service.http import health, problems
from identity_service.http.api import TokenEndpoint
from identity_service.http.cors import Cors, CorsPolicy
from identity_service.http.headers import DEFAULT_CSP, ResponseHeaders, forced_headers
from identity_service.http.middleware import RequestObserver
from identity_service.http.paths import SCRIPT_PATH, TOKEN_PATH
from identity_service.http.state import EXTENSION, ServiceState, service_state
from identity_service.intercom import WIDGET_URL
from identity_service.runtime import KeyFiles, Runtime
from identity_service.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class IdentityService:
    """Signed Intercom Messenger tokens in a Flask app: `IdentityService(app, settings)`.

    `settings`: default `load_settings()` ($IDENTITY_SERVICE_CONFIG, else the
    bundled example), read when `init_app` runs. `token_url`, `script_url`,
    `widget_url`: where pages rendered by this app send browsers (the token
    endpoint for refreshes, messenger.js, Intercom's widget); the defaults are
    this app's own paths, right when `routes=True`. `routes`: serve the
    service's endpoints from this app too (see docs/embedding.md for what a
    product's app then takes on). `clock` stamps tokens and places rate-limit
    hits; `monotonic` times key caches, profile deadlines and breakers.
    `key_files`: bearer key files loaded already (`runtime.load_key_files`), as
    `identity-service serve` passes them to its workers.
    """

    def __init__(
        self,
        app: Flask | None = None,
        settings: Settings | None = None,
        *,
        routes: bool = False,
        token_url: str = TOKEN_PATH,
        script_url: str = SCRIPT_PATH,
        widget_url: str = WIDGET_URL,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        key_files: KeyFiles | None = None,
    ) -> None:
        self.settings = settings
        self.routes = routes
        self.token_url = token_url
        self.script_url = script_url
        self.widget_url = widget_url
        self.clock = clock
        self.monotonic = monotonic
        self.key_files = key_files
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build the live objects for `app`, register the Jinja helper, and the routes if asked."""
        if EXTENSION in app.extensions:
            # A second Runtime would mean two rate limiters and two metric sets for one app.
            raise RuntimeError("IdentityService is already initialised on this app")
        settings = self.settings or load_settings()
        runtime = Runtime.build(settings, self.clock, self.monotonic, self.key_files)
        app.extensions[EXTENSION] = ServiceState(
            runtime=runtime, response_headers=(*forced_headers(settings), DEFAULT_CSP)
        )
        register_jinja(
            app,
            token_url=self.token_url,
            script_url=self.script_url,
            widget_url=self.widget_url,
            clock=self.clock,
        )
        if self.routes:
            serve_routes(app)


def serve_routes(app: Flask) -> None:
    """The service's endpoints on `app`: problem+json errors, the blueprints, the token mount."""
    state = service_state(app)
    settings = state.settings
    app.config.setdefault("MAX_CONTENT_LENGTH", settings.service.max_body_bytes)
    problems.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(snippet_views.bp)
    token = TokenEndpoint(state.runtime, app.config)
    app.wsgi_app = serve(  # type: ignore[method-assign,assignment]
        TokenMount(token, app.wsgi_app), settings, state.runtime
    )


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
