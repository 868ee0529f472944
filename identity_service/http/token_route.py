"""The token endpoint's lean route: `POST /v1/messenger/token` without Flask's request machinery.

The token endpoint is the service's hot path. Flask's per-request work
(request and app contexts, URL adapter, session, `Response` object and the
after-request chain) was 40% of a token request's in-process CPU (131 us
against 78 us without it, `bench/wsgi_cost.py`), and the load targets compare
this endpoint with `/healthz` on the same server. This layer sits between
`RequestObserver` and Flask and answers the one route itself, with the same
code as the Flask view (`api.token_response_body`): one endpoint, two ways in.

What Flask would add to a successful response is added here: the CORS headers
(computed by flask-cors's own functions from the same options the app
registers) and `Cache-Control: no-store`. Every refusal is handed to Flask
inside a real request context, so errors go through the same problem+json
handlers and after-request hooks as any other route's. Should the app ever
have more for Flask to do on this route (a `before_request` hook, a signal
receiver, TRUSTED_HOSTS...), this layer steps aside and Flask serves it.
`token_response_body` must not use Flask's context locals (`request`, `g`,
`current_app`): there are none on this path, and every test of the endpoint
runs through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flask import (
    Flask,
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)
from flask_cors.core import get_cors_headers
from werkzeug.wrappers import Request

from identity_service.http.api import NO_STORE, token_response_body
from identity_service.http.paths import TOKEN_PATH
from identity_service.observability import ROUTE_KEY
from identity_service.runtime import Runtime

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask_cors.core import _ComputedCorsOptions as CorsOptions


# Every signal Flask sends while it dispatches a successful request.
_DISPATCH_SIGNALS = (
    appcontext_pushed,
    request_started,
    request_finished,
    request_tearing_down,
    appcontext_tearing_down,
    appcontext_popped,
)


class TokenRoute:
    """WSGI layer: serve the token route directly, pass every other request to Flask."""

    def __init__(
        self, app: Flask, inner: WSGIApplication, runtime: Runtime, cors: CorsOptions | None
    ) -> None:
        """`inner` is Flask's own `wsgi_app`; `cors` the options of the `/v1/*` resource."""
        self.app = app
        self.inner = inner
        self.runtime = runtime
        self.cors = cors
        self._plain: bool | None = None  # decided at the first token request

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Exactly the requests Flask would route to the token view: other
        # methods (405, the CORS preflight) and other paths stay Flask's.
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or environ.get("PATH_INFO") != TOKEN_PATH
            or not self.serves_alone()
        ):
            return self.inner(environ, start_response)
        environ[ROUTE_KEY] = TOKEN_PATH
        req = Request(environ)
        req.max_content_length = self.app.config["MAX_CONTENT_LENGTH"]  # -> 413, as in Flask
        try:
            body = token_response_body(self.runtime, req)
        except Exception as error:  # every error is Flask's to render
            return self._refusal(environ, start_response, error)
        # In the order Flask's Response would send them.
        headers = [
            *NO_STORE,
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
        if self.cors is not None and "HTTP_ORIGIN" in environ:
            # flask-cors's after-request hook does this for every /v1/* response;
            # with always_send off, a request without Origin gets nothing from it.
            headers.extend(
                (k, str(v))
                for k, v in get_cors_headers(self.cors, req.headers, "POST").items(multi=True)
            )
        start_response("200 OK", headers)
        return [body]

    def serves_alone(self) -> bool:
        """Whether Flask's dispatch would do nothing this route leaves out.

        Hooks are looked at once, at the first token request, which then also
        ends the app's setup the way Flask's own first request does: adding a
        hook afterwards raises. Signals and the host allowlist can change at
        any time, so they are looked at on every request.
        """
        if self._plain is None:
            app = self.app
            hooks: list[Mapping[Any, list[Any]]] = [
                app.before_request_funcs,
                app.url_value_preprocessors,
                app.teardown_request_funcs,
            ]
            after = [f for funcs in app.after_request_funcs.values() for f in funcs]
            cors_only = all(f.__name__ == "cors_after_request" for f in after)
            self._plain = (
                cors_only
                and not app.teardown_appcontext_funcs
                and not any(any(h.values()) for h in hooks)
            )
            app._got_first_request = True  # Flask's "setup is over" flag
        return (
            self._plain
            and self.app.config["TRUSTED_HOSTS"] is None
            and not any(signal.receivers for signal in _DISPATCH_SIGNALS)
        )

    def _refusal(
        self, environ: WSGIEnvironment, start_response: StartResponse, error: Exception
    ) -> Iterable[bytes]:
        """The response Flask gives when the view raises `error` (its `wsgi_app`, in short)."""
        app = self.app
        with app.request_context(environ):
            try:
                response = app.finalize_request(app.handle_user_exception(error))
            except Exception as unhandled:  # Flask's own last resort: a 500
                response = app.handle_exception(unhandled)
            return response(environ, start_response)
