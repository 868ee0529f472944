"""gunicorn's own log lines, made safe: no query string, no credential, no exception message.

gunicorn writes some lines from what a client sent: the URI of a request
whose handling failed (query string included), the text of its parse errors
(a whole request line or header line), exceptions whose message quotes the
buffer it was reading. The service's worker never logs request input
(server.py), and this logger, installed through gunicorn's public
`logger_class` setting, holds every other line gunicorn writes (master and
workers, every level) to the same rule:

- an exception, as a log argument or as the record's `exc_info`, shows its
  type and stack; its message only when it is one of this package's errors,
  whose messages are written to be safe (errors.py), so a startup
  configuration error still names the file, the key and the fix;
- a query string (`?` and what follows, up to a space or quote) is cut;
- a JWT-shaped string or a Bearer/Basic credential is replaced.

The last two are a net under the first rule, not a licence to log input.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from gunicorn.glogging import Logger

from identity_service.errors import IdentityServiceError
from identity_service.observability.logs import redact


def describe(error: BaseException) -> str:
    """An exception's qualified type, and its message only when this package wrote it."""
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    if isinstance(error, IdentityServiceError):
        return f"{kind}: {error}"
    return kind


def _safe_argument(value: Any) -> Any:
    return describe(value) if isinstance(value, BaseException) else value


class RequestInputFilter(logging.Filter):
    """Rewrite each record into a message that carries no request input (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = _safe_argument(record.msg)
        args = record.args
        if isinstance(args, tuple):
            args = tuple(_safe_argument(a) for a in args)
        try:
            message = str(msg) % args if args else str(msg)
        except (TypeError, ValueError, KeyError):  # a message that is not a format
            message = str(msg)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            stack = "".join(traceback.format_tb(error.__traceback__))
            message = f"{message}\nTraceback (most recent call last):\n{stack}{describe(error)}"
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message)
        record.args = ()
        return True


class SafeLogger(Logger):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn's logger (its format, files and levels), every line through RequestInputFilter."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # setup() runs again on every reload: one filter per logger, not one per reload.
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RequestInputFilter) for f in log.filters):
                log.addFilter(RequestInputFilter())
