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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values

access_log = logging.getLogger("identity_service.access")
audit_log = logging.getLogger("identity_service.audit")

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is echoed into logs and headers: accept only a short,
# plain token so it cannot forge log lines or smuggle a credential.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object per line; structured fields come from `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the service's loggers (called by the CLI and wsgi, not import)."""
    handler = logging.StreamHandler(sys.stderr)
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
    rate_limited: Counter
    rate_limit_storage_errors: Counter
    request_latency: Histogram

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            tokens_minted=Counter(
                "identity_tokens_minted", "Messenger tokens minted", ["workspace"],
                registry=registry,
            ),
            auth_failures=Counter(
                "identity_auth_failures", "Refused authentications",
                ["workspace", "method", "reason"],
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
            rate_limited=Counter(
                "identity_rate_limited", "Requests refused by the rate limiter", ["scope"],
                registry=registry,
            ),
            rate_limit_storage_errors=Counter(
                "identity_rate_limit_storage_errors",
                "Rate-limit storage failures (Redis down); on_storage_error decided the outcome",
                registry=registry,
            ),
            request_latency=Histogram(
                "identity_request_seconds", "Request latency", ["endpoint", "method", "status"],
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            ),
        )  # fmt: skip


def emit(logger: logging.Logger, message: str, fields: Mapping[str, Any]) -> None:
    """Log one structured INFO line.

    Builds the record directly: `Logger.info` would first walk the stack to find
    the caller's file and line (`findCaller`), which costs more than formatting
    the line and which no reader of these events needs.
    """
    if logger.isEnabledFor(logging.INFO):
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


def client_address() -> str | None:
    """The client's address (ProxyFix has already applied X-Forwarded-For when configured)."""
    return request.remote_addr


def install(app: Flask, metrics: Metrics) -> None:
    """Request ids, the access log line and the latency histogram."""

    @app.before_request
    def start() -> None:
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = supplied if _REQUEST_ID.match(supplied) else secrets.token_hex(8)
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        # Each `request.x` / `g.x` goes through a context-local proxy; on every
        # request of the service that adds up, so resolve both once.
        req = request._get_current_object()  # type: ignore[attr-defined]
        values = g.__dict__
        started = values.get("started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        rule = req.url_rule
        status = response.status_code
        metrics.request_latency.labels(
            rule.rule if rule else "<unmatched>", req.method, str(status)
        ).observe(elapsed)
        request_id = values.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        emit(
            access_log,
            "request",
            {
                "request_id": request_id,
                "method": req.method,
                # The path only, never the query string: nothing secret belongs
                # there, but a misbehaving client might put one there anyway.
                "path": req.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "client": req.remote_addr,
                "workspace": values.get("workspace"),
                "user_id": values.get("user_id"),
            },
        )
        return response
