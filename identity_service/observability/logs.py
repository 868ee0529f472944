"""Log lines: one JSON object per line, written as cheaply as the logging setup allows.

What goes into a line is chosen field by field by its caller: never a token,
a cookie, a secret, or an attribute value (names only). `redact` cleans text a
client chose (a path, gunicorn's own lines) before it is logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

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
