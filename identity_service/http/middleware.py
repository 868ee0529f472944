"""The request middleware: a request id, a latency sample and an access line for every request.

Per-request facts travel in the WSGI environ, which outlives any framework's
request context and is read after the response: the observer puts the request
id there, the token endpoint who the request was for (`note`), and the route
that served it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from identity_service.observability.logs import emit, redact
from identity_service.observability.metrics import Metrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The logger name is part of the operations contract (docs/operations.md).
access_log = logging.getLogger("identity_service.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = "identity_service.request_id"
WORKSPACE_KEY = "identity_service.workspace"
USER_ID_KEY = "identity_service.user_id"
# The route rule of a request served outside Flask's routing (the token endpoint).
ROUTE_KEY = "identity_service.route"
# The methods that get a latency label of their own; any other is "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A caller's request id is echoed into logs and headers, so only shapes that
# cannot carry a credential are taken: a UUID, or 16 to 32 hex digits (this
# service's own ids, nginx's $request_id). A JWT, a signed cookie or an opaque
# token has dots or letters beyond f; 40 or 64 hex digits (a SHA-1 or SHA-256,
# many API keys and secrets) are too long. Anything else is replaced.
# deploy/nginx/identity-service.conf applies the same pattern (a test holds them equal).
REQUEST_ID_PATTERN = (
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|[0-9A-Fa-f]{16,32}"
)
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def generate_request_id() -> str:
    """A fresh request id: 16 hex characters."""
    return secrets.token_hex(8)


def request_id(environ: WSGIEnvironment) -> str | None:
    """This request's id (the caller's X-Request-ID when acceptable, else generated)."""
    value: str | None = environ.get(REQUEST_ID_KEY)
    return value


def note(
    environ: WSGIEnvironment, workspace: str | None = None, user_id: str | None = None
) -> None:
    """Record who this request was for, for its access line (ids only, never values)."""
    if workspace is not None:
        environ[WORKSPACE_KEY] = workspace
    if user_id is not None:
        environ[USER_ID_KEY] = user_id


class RequestObserver:
    """WSGI middleware around the whole app: request id, latency, access line.

    Working on the raw WSGI call rather than in Flask's before/after_request
    hooks keeps these per-request costs (they are paid by every request,
    /healthz included) to plain list and dict operations: werkzeug's `Headers`
    and the context-local proxies cost several times more. It also sees every
    response, error pages and the token endpoint included, with the status
    that was really sent.
    """

    def __init__(self, app: WSGIApplication, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._latency: dict[tuple[str, str, str], Any] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        supplied = environ.get("HTTP_X_REQUEST_ID", "")
        rid = supplied if _REQUEST_ID.fullmatch(supplied) else generate_request_id()
        environ[REQUEST_ID_KEY] = rid
        sent: list[tuple[str, str, str]] = []  # (status, route rule, path)

        def observed(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # Read the matched route now: once the app returns, Flask has
            # already cleared environ["werkzeug.request"].
            req = environ.get("werkzeug.request")
            rule = getattr(req, "url_rule", None)
            sent.append(
                (
                    status,
                    rule.rule if rule is not None else environ.get(ROUTE_KEY, "<unmatched>"),
                    req.path if req is not None else environ.get("PATH_INFO", ""),
                )
            )
            # The request id is ours: a view's own X-Request-ID is replaced, not doubled.
            if any(name.lower() == "x-request-id" for name, _ in headers):
                headers[:] = [h for h in headers if h[0].lower() != "x-request-id"]
            headers.append((REQUEST_ID_HEADER, rid))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, observed)
        finally:
            status_line, endpoint, path = (
                sent[-1] if sent else ("500", "<unmatched>", environ.get("PATH_INFO", ""))
            )
            elapsed = time.perf_counter() - started
            self._finish(environ, status_line[:3], endpoint, path, elapsed)

    def _finish(
        self, environ: WSGIEnvironment, status: str, endpoint: str, path: str, elapsed: float
    ) -> None:
        method = environ.get("REQUEST_METHOD", "")
        # Any token is a valid method to an HTTP parser: a label per method
        # sent would let a client grow the metric without bound.
        key = (endpoint, method if method in _METHODS else "other", status)
        child = self._latency.get(key)
        if child is None:  # labels() costs a lock and a tuple build; children are reused
            child = self._latency[key] = self.metrics.request_latency.labels(*key)
        child.observe(elapsed)
        if "<" in endpoint:
            # No route matched ("<unmatched>"), or one with a variable part
            # (Flask's /static/<path:filename>): the path is the client's, and
            # may hold a credential (a token pasted into a URL). Other matched
            # paths are the service's own fixed routes.
            path = redact(path)
        emit(
            access_log,
            "request",
            {
                "request_id": environ.get(REQUEST_ID_KEY),
                "method": method,
                # The path only, never the query string: nothing secret belongs
                # there, but a misbehaving client might put one there anyway.
                "path": path,
                "status": int(status) if status.isdigit() else 0,
                "duration_ms": round(elapsed * 1000, 2),
                "client": environ.get("REMOTE_ADDR"),
                "workspace": environ.get(WORKSPACE_KEY),
                "user_id": environ.get(USER_ID_KEY),
            },
        )
