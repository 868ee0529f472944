"""Logs, audit events and metrics.

One JSON line per request (with a request id), and one audit event per mint
and per authentication failure. What goes into these is chosen field by field:
never a token, a cookie, a secret, or an attribute value (names only).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from flask import request
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

access_log = logging.getLogger("identity_service.access")
audit_log = logging.getLogger("identity_service.audit")

REQUEST_ID_HEADER = "X-Request-ID"
# Where the observer and the views leave per-request facts: in the WSGI environ,
# which outlives Flask's request context and is read after the response.
REQUEST_ID_KEY = "identity_service.request_id"
WORKSPACE_KEY = "identity_service.workspace"
USER_ID_KEY = "identity_service.user_id"
# The route rule of a request served outside Flask's routing (token_route).
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


_QUERY = re.compile(r"\?[^\s'\"]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*")
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s'\"]+")


def redact(text: str) -> str:
    """`text` without query strings, JWT-shaped strings or Bearer/Basic credentials.

    For text a client chose that must still be logged: a 404's path,
    gunicorn's own lines (server_logging).
    """
    text = _QUERY.sub("?<query withheld>", text)
    text = _JWT.sub("<jwt withheld>", text)
    return _SCHEME_CREDENTIAL.sub(r"\1\2<credential withheld>", text)


def json_line(
    created: float, level: str, logger: str, message: str, fields: Mapping[str, Any] | None
) -> str:
    """One log line: time, level, logger and message, then the structured fields."""
    entry: dict[str, Any] = {
        "time": round(created, 3),
        "level": level,
        "logger": logger,
        "message": message,
    }
    if fields:
        entry.update(fields)
    try:
        # orjson: compact, and a sixth of json.dumps's cost (two lines a mint).
        line: str | None = orjson.dumps(entry, default=str).decode()
    except TypeError:  # a lone surrogate (from a path or a claim), a type orjson refuses
        line = None
    if line is not None and line.isascii():
        return line
    # Non-ASCII text can hold line separators (U+2028, U+0085) that some log
    # readers split on, and orjson refuses lone surrogates: such lines (rare:
    # paths, user ids and names come from outside) are escaped to ASCII.
    return json.dumps(entry, separators=(",", ":"), default=str)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object per line; structured fields come from `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra: dict[str, Any] = dict(fields) if isinstance(fields, Mapping) else {}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        return json_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), extra
        )


class JsonLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The service's own handler: JSON lines on a stream (see `configure_logging`).

    `emit()` below writes structured events straight through `write_event`
    when this handler is the only one that would see them: the line is the one
    JsonFormatter would render, without building a LogRecord or walking the
    logging machinery (together about half the cost of each event, and a
    mint writes two).
    """

    def write_event(self, logger: str, message: str, fields: Mapping[str, Any]) -> None:
        created = time.time()
        try:
            line = json_line(created, "info", logger, message, fields)
            with self.lock:  # type: ignore[union-attr]  # StreamHandler always has one
                self.stream.write(line + self.terminator)
                self.stream.flush()
        except Exception:
            record = logging.LogRecord(logger, logging.INFO, "(structured)", 0, message, (), None)
            self.handleError(record)


def _sole_handler(logger: logging.Logger) -> JsonLineHandler | None:
    """The JsonLineHandler an INFO event of `logger` would reach, if it reaches nothing else.

    None when any filter, any other handler, a replaced formatter or a
    handler's level would see or change the event: then it takes the ordinary
    logging path.
    """
    if logger.disabled:
        return None
    found: JsonLineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if (
                found is not None
                or type(handler) is not JsonLineHandler
                or type(handler.formatter) is not JsonFormatter
                or handler.filters
                or handler.level > logging.INFO
            ):
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """JSON lines on stderr (or `stream`) for the service's loggers.

    Called by the CLI and wsgi.py, never at import: an embedding application
    keeps its own logging unless it asks for ours.
    """
    handler = JsonLineHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("identity_service")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@dataclass(frozen=True)
class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    registry: CollectorRegistry
    tokens_minted: Counter
    auth_failures: Counter
    attributes_dropped: Counter
    profile_unavailable: Counter
    profile_no_row: Counter
    profile_mismatch: Counter
    rate_limited: Counter
    rate_limit_storage_errors: Counter
    rate_limit_storage_skipped: Counter
    request_latency: Histogram

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            tokens_minted=Counter(
                "identity_tokens_minted", "Messenger tokens minted", ["workspace", "platform"],
                registry=registry,
            ),
            auth_failures=Counter(
                "identity_auth_failures", "Refused authentications",
                ["workspace", "platform", "method", "reason"],
                registry=registry,
            ),
            attributes_dropped=Counter(
                "identity_attributes_dropped", "Invalid attributes left out of tokens",
                ["workspace", "attribute", "reason"], registry=registry,
            ),
            profile_unavailable=Counter(
                "identity_profile_unavailable", "Mints without profile data (database down)",
                ["workspace"], registry=registry,
            ),
            profile_no_row=Counter(
                "identity_profile_no_row", "Mints for users without a profile row",
                ["workspace"], registry=registry,
            ),
            profile_mismatch=Counter(
                "identity_profile_mismatch",
                "Profile rows ignored because their id is not the token's user id",
                ["workspace"], registry=registry,
            ),
            rate_limited=Counter(
                "identity_rate_limited", "Requests refused by the rate limiter",
                ["scope", "platform"],
                registry=registry,
            ),
            rate_limit_storage_errors=Counter(
                "identity_rate_limit_storage_errors",
                "Rate-limit storage failures (Redis down); on_storage_error decided the outcome",
                registry=registry,
            ),
            rate_limit_storage_skipped=Counter(
                "identity_rate_limit_storage_skipped",
                "Rate-limit checks that skipped the storage after a failure (circuit breaker "
                "open); on_storage_error decided the outcome",
                registry=registry,
            ),
            request_latency=Histogram(
                "identity_request_seconds", "Request latency", ["endpoint", "method", "status"],
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            ),
        )  # fmt: skip

    def count_profile(self, workspace: str, outcome: str) -> None:
        """Count a mint whose profile step did not find the user's own row."""
        counter = {
            "unavailable": self.profile_unavailable,
            "no_row": self.profile_no_row,
            "mismatch": self.profile_mismatch,
        }.get(outcome)
        if counter is not None:
            counter.labels(workspace).inc()


def emit(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> None:
    """Log one structured INFO line.

    With the service's own logging (`configure_logging`) and nothing else
    listening, the line is written directly (`JsonLineHandler.write_event`).
    Otherwise the record is built here rather than by `Logger.info`, which
    would first walk the stack to find the caller's file and line
    (`findCaller`), a cost no reader of these events needs.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    direct = _sole_handler(logger)
    if direct is not None:
        direct.write_event(logger.name, message, fields)
    else:
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            "(structured)",
            0,
            message,
            (),
            None,
            extra={"fields": fields},
        )
        logger.handle(record)


def use_multiprocess_metrics() -> None:
    """In a gunicorn worker with $PROMETHEUS_MULTIPROC_DIR set, keep metric values in
    the shared files, so that /metrics can sum every worker.

    prometheus_client picks where values live when it is first imported, which
    in the CLI happens before the directory is chosen; pick again, before any
    metric of this worker's app exists.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def exposition() -> CollectorRegistry | None:
    """The registry to expose instead of the app's own: every worker's, in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or values.ValueClass is values.MutexValue:
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def audit(event: str, **fields: Any) -> None:
    """Write one audit event; callers pass names and ids only, never values or credentials."""
    emit(audit_log, event, {"event": event, **fields})


def generate_request_id() -> str:
    """A fresh request id: 16 hex characters."""
    return secrets.token_hex(8)


def request_id() -> str | None:
    """This request's id (the caller's X-Request-ID when acceptable, else generated)."""
    value: str | None = request.environ.get(REQUEST_ID_KEY)
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
    """WSGI middleware around the Flask app: request id, response headers, latency, access line.

    Working on the raw WSGI call rather than in Flask's before/after_request
    hooks keeps these per-request costs (they are paid by every request,
    /healthz included) to plain list and dict operations: werkzeug's `Headers`
    and the context-local proxies cost several times more. It also sees every
    response, error pages included, with the status that was really sent.
    """

    def __init__(
        self,
        app: WSGIApplication,
        metrics: Metrics,
        forced_headers: Sequence[tuple[str, str]],
        default_headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """`forced_headers` replace any a view set; `default_headers` only fill in absent ones."""
        self.app = app
        self.metrics = metrics
        self.forced = list(forced_headers)
        # The request id is ours too: a view's own X-Request-ID is replaced, not doubled.
        self.forced_names = frozenset(
            [*(name.lower() for name, _ in forced_headers), REQUEST_ID_HEADER.lower()]
        )
        self.defaults = [(name.lower(), (name, value)) for name, value in default_headers]
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
            present = {name.lower() for name, _ in headers}
            if present & self.forced_names:
                headers[:] = [h for h in headers if h[0].lower() not in self.forced_names]
            headers.extend(self.forced)
            headers.extend(header for name, header in self.defaults if name not in present)
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
