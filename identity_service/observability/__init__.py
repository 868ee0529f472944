"""Logs, audit events and metrics: plain Python, no Flask (the request middleware is http/'s).

One JSON line per request (written by `http.middleware`), and one audit event
per mint and per authentication failure. What goes into these is chosen field
by field: never a token, a cookie, a secret, or an attribute value (names only).
"""

from identity_service.observability.audit import audit, audit_log
from identity_service.observability.logs import (
    JsonFormatter,
    JsonLineHandler,
    configure_logging,
    emit,
    json_line,
    redact,
)
from identity_service.observability.metrics import Metrics, exposition, use_multiprocess_metrics

__all__ = [
    "JsonFormatter",
    "JsonLineHandler",
    "Metrics",
    "audit",
    "audit_log",
    "configure_logging",
    "emit",
    "exposition",
    "json_line",
    "redact",
    "use_multiprocess_metrics",
]
