"""The only bridge from errors to HTTP: every error becomes application/problem+json (RFC 9457).

No response carries a stack trace, a secret, a token or a cookie: domain errors
bring their own client-safe `detail`, HTTP errors get Werkzeug's generic text
or a fixed text of ours (never a parser's message, which may quote the input),
and anything unexpected becomes a bare 500 whose detail is only the request id.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from identity_service.errors import IdentityServiceError
from identity_service.http.server_errors import BODY_ERRORS, refusal
from identity_service.observability import request_id

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"
TYPE_BASE = "https://identity-service.dev/problems/"


def problem_body(
    status: int,
    title: str,
    detail: str,
    slug: str,
    rid: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A problem document; `type` is a stable URI per kind of problem."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if rid:
        body["request_id"] = rid
    body.update(extra or {})
    return body


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """A problem+json response for the current request."""
    body = problem_body(status, title, detail, slug, request_id(), extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _domain(error: IdentityServiceError) -> Response:
    # Every kind of domain error states its own answer (errors.py); a 5xx one is
    # the operators' to fix, so its detail goes to the log as well.
    if error.status >= 500:
        log.error("%s: %s", type(error).__name__, error)
    return problem_response(
        error.status, error.title, error.detail, error.slug, error.headers, error.members
    )


def _http(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() not in {"content-type"}}
    slug = (error.name or "error").lower().replace(" ", "-")
    return problem_response(status, error.name, error.description or error.name, slug, headers)


def _body_framing(error: Exception) -> Response:
    # Raised by the server's input stream while a view reads the body: the
    # client's malformed framing, answered without a stack (the access line
    # records the 400). The server closes the connection afterwards.
    answer = refusal(error)
    if answer is None:  # not the client's fault after all
        return _unexpected(error)
    return problem_response(answer.status, answer.title, answer.detail, answer.slug)


# A bug's answer: the client learns only the request id (the server's own
# last-resort answer, in server.py, says the same).
INTERNAL_ERROR = (
    500,
    "Internal error",
    "the service failed to handle this request; quote the request id to the operators",
    "internal-error",
)


def _unexpected(error: Exception) -> Response:
    # The server log gets the exception's type and its stack (files, lines, code)
    # but not its message: a message can quote anything the failing code held,
    # secrets and tokens included. The client learns only the request id.
    log.error(
        "unhandled error: %s",
        type(error).__name__,
        extra={
            "fields": {
                "exception_type": f"{type(error).__module__}.{type(error).__qualname__}",
                "stack": "".join(traceback.format_tb(error.__traceback__)),
            }
        },
    )
    return problem_response(*INTERNAL_ERROR)


def register(app: Flask) -> None:
    """Route every error through problem+json."""
    app.register_error_handler(IdentityServiceError, _domain)
    app.register_error_handler(HTTPException, _http)
    for body_error in BODY_ERRORS:
        app.register_error_handler(body_error, _body_framing)
    app.register_error_handler(Exception, _unexpected)
